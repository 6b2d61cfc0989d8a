"""The brick grid, sweep names and the DR10-schema generator, as specifications."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import fitsio
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from halo_lrg.config import load_config
from halo_lrg.science.bricks import UnknownBrickError, brick_table, brickid_at, brickname_at
from halo_lrg.science.cuts import get_selection
from halo_lrg.survey.names import SweepBox, parse_sweep_name, sweep_name
from halo_lrg.survey.synth import (
    _placement,
    dr9_dtype,
    dr10_columns,
    generate_sample,
    generate_sweep,
    write_defect,
)

# --- brick grid --------------------------------------------------------------------------------

def test_grid_has_every_brick_and_covers_the_sphere():
    table = brick_table()
    assert len(table) == 662_174
    assert table["brickid"].tolist() == list(range(1, 662_175))
    assert table["brickname"].is_unique
    assert table["area_deg2"].sum() == pytest.approx(4 * math.pi * (180 / math.pi) ** 2, rel=1e-12)
    assert table["area_deg2"].sum() == pytest.approx(41252.961, abs=5e-4)


@pytest.mark.parametrize("name,brickid,ra,dec,bounds,area", [
    ("1501p025", 345368, 150.125, 2.5, (150.0, 150.25, 2.375, 2.625), 0.0624404643164),
    ("0001p000", 330368, 0.125, 0.0, (0.0, 0.25, -0.125, 0.125), 0.0624999504204),
    ("1800m900", 1, 180.0, -90.0, (0.0, 360.0, -90.0, -89.875), 0.0490873657421),
    ("1800p900", 662174, 180.0, 90.0, (0.0, 360.0, 89.875, 90.0), 0.0490873657421),
])
def test_known_bricks_from_the_reference(name, brickid, ra, dec, bounds, area):
    row = brick_table([name]).iloc[0]
    assert (row.brickname, row.brickid, row.ra, row.dec) == (name, brickid, ra, dec)
    assert (row.ra1, row.ra2, row.dec1, row.dec2) == pytest.approx(bounds, abs=1e-12)
    assert row.area_deg2 == pytest.approx(area, abs=1e-12)
    assert brickname_at(ra, dec)[0] == name and brickid_at(ra, dec)[0] == brickid


@settings(max_examples=200, deadline=None)
@given(ra=st.floats(0, 360, exclude_max=True), dec=st.floats(-90, 90))
def test_the_brick_at_a_point_contains_it_and_round_trips(ra, dec):
    name = brickname_at(ra, dec)[0]
    row = brick_table([name]).iloc[0]
    assert row.brickid == brickid_at(ra, dec)[0]
    # Edges are computed as col x 360/n (as desiutil does), so a point exactly on an edge
    # may sit a rounding error outside the brick's stored bounds.
    eps = 1e-9
    assert row.ra1 - eps <= ra < row.ra2 + eps
    assert row.dec1 - eps <= dec <= row.dec2 + eps


def test_grid_equals_desiutil():
    desiutil_brick = pytest.importorskip("desiutil.brick")
    theirs = desiutil_brick.Bricks().to_table()
    ours = brick_table()
    assert (np.asarray(theirs["BRICKNAME"]).astype(str) == ours["brickname"].to_numpy()).all()
    for column in ("RA", "DEC", "RA1", "RA2", "DEC1", "DEC2"):
        np.testing.assert_array_equal(np.asarray(theirs[column]), ours[column.lower()])
    rng = np.random.default_rng(1)
    ra, dec = rng.uniform(0, 360, 50_000), np.degrees(np.arcsin(rng.uniform(-1, 1, 50_000)))
    np.testing.assert_array_equal(desiutil_brick.Bricks().brickid(ra, dec), brickid_at(ra, dec))


def test_unknown_bricknames_are_named():
    with pytest.raises(UnknownBrickError, match=r"2 unknown brickname\(s\): 'nope', '9999p999'"):
        brick_table(["1501p025", "nope", "9999p999"])
    with pytest.raises(ValueError, match="Dec must be within"):
        brickname_at(10.0, 91.0)


# --- sweep names -------------------------------------------------------------------------------

@pytest.mark.parametrize("name,box", [
    ("sweep-150p000-155p005.fits", SweepBox(150, 155, 0, 5)),
    ("sweep-200m010-210m005.fits", SweepBox(200, 210, -10, -5)),
    ("sweep-000m005-005p000.fits", SweepBox(0, 5, -5, 0)),
    ("sweep-355p085-360p090.fits", SweepBox(355, 360, 85, 90)),
])
def test_sweep_names_round_trip(name, box):
    assert parse_sweep_name(name) == box
    assert parse_sweep_name(f"https://host/dr10/south/sweep/10.1/{name}") == box
    assert parse_sweep_name(f"s3://bucket/a/{name}") == box
    assert sweep_name(box) == name


@pytest.mark.parametrize("name", ["sweep-150p000-155p005-pz.fits", "sweep-150p000.fits",
                                  "notes.txt", "sweep-155p000-150p005.fits"])
def test_non_sweep_names_do_not_parse(name):
    assert parse_sweep_name(name) is None


# --- the generator -----------------------------------------------------------------------------

def test_generated_sweep_has_the_dr10_schema(sample):
    path = str(sample["paths"][0])
    header = fitsio.read_header(path, ext=1)
    assert header["EXTNAME"].strip() == "SWEEP" and header["NAXIS1"] == 505
    columns = dr10_columns()
    assert header["TFIELDS"] == len(columns) == 130
    for i, (name, tform, _offset) in enumerate(columns, start=1):
        assert (header[f"TTYPE{i}"].strip(), header[f"TFORM{i}"].strip()) == (name, tform)
    primary = fitsio.read_header(path, ext=0)
    box = sample["summaries"][0].box
    assert (primary["RAMIN"], primary["RAMAX"], primary["DECMIN"], primary["DECMAX"]) == (
        box.ra_min, box.ra_max, box.dec_min, box.dec_max)
    with open(path, "rb") as fh:  # big-endian on disk: RELEASE 10000/10002 as >i2
        fh.seek(fitsio.FITS(path)[1].get_offsets()["data_start"])
        assert int.from_bytes(fh.read(2), "big") in (10000, 10002)


def test_generated_objects_are_consistent_and_inside_their_box(sample):
    for summary in sample["summaries"]:
        data = fitsio.read(summary.path, ext="SWEEP",
                           columns=["RA", "DEC", "BRICKNAME", "BRICKID", "OBJID", "RELEASE"])
        assert summary.box.contains(data["RA"], data["DEC"]).all()
        assert (brickname_at(data["RA"], data["DEC"]) == data["BRICKNAME"]).all()
        assert (brickid_at(data["RA"], data["DEC"]) == data["BRICKID"]).all()
        assert (np.diff(data["BRICKID"]) >= 0).all()  # sorted by brick
        assert set(np.unique(data["RELEASE"])) == {10000, 10002}


def test_generation_is_deterministic(tmp_path):
    a = generate_sample(tmp_path / "a", files=1, rows=2000, seed=5)[0]
    b = generate_sample(tmp_path / "b", files=1, rows=2000, seed=5)[0]
    digest = [hashlib.sha256(Path(s.path).read_bytes()).hexdigest() for s in (a, b)]
    assert digest[0] == digest[1]
    assert (tmp_path / "a" / "index.txt").read_text().strip().endswith(
        "sweep-150p000-155p005.fits")


@pytest.mark.parametrize("selection", ["seed", "desi-lrg"])
def test_lrg_density_is_of_the_published_order(tmp_path, selection):
    box = SweepBox(150, 155, 0, 5)
    rows, density = 40_000, load_config().synth.object_density
    summary = generate_sweep(tmp_path / "s.fits", box, rows, seed=3, object_density=density)
    table = fitsio.read(summary.path, ext="SWEEP")
    area = _placement(box, rows, density)["carea"].sum()
    lrg_per_deg2 = get_selection(selection, load_config().cuts)(table).sum() / area
    assert 300 < lrg_per_deg2 < 1200  # DESI: 605 per deg²


def test_defects_are_what_they_claim(defects, tmp_path):
    with pytest.raises(OSError):
        fitsio.FITS(str(defects["not-fits"]))
    with fitsio.FITS(str(defects["truncated"])) as fits:
        hdu = fits[1]
        declared = hdu.get_offsets()["data_start"] + hdu.get_nrows() * 505
    assert defects["truncated"].stat().st_size < declared
    assert "FLUX_W1" not in fitsio.FITS(str(defects["missing-column"]))[1].get_colnames()
    assert fitsio.FITS(str(defects["empty"]))[1].get_nrows() == 0
    dr9 = write_defect(tmp_path / "sweep-000p000-010p005.fits", "dr9")
    assert fitsio.read_header(str(dr9), 1)["NAXIS1"] == dr9_dtype().itemsize == 449
    assert len(fitsio.FITS(str(dr9))[1].get_colnames()) == 115


def test_synth_boxes_are_distinct_up_to_the_whole_sky():
    from halo_lrg.survey.synth import sample_boxes

    assert [sweep_name(b) for b in sample_boxes(4, 150.0, 0.0)] == [
        "sweep-150p000-155p005.fits", "sweep-150p005-155p010.fits",
        "sweep-155p000-160p005.fits", "sweep-155p005-160p010.fits"]
    for files in (1296, 1297, 1436, 2592):  # DR10 south has 1436; the sky 72 x 36
        boxes = sample_boxes(files, 150.0, 0.0)
        assert len({sweep_name(b) for b in boxes}) == files
        assert all(-90 <= b.dec_min < b.dec_max <= 90 for b in boxes)
    with pytest.raises(ValueError, match="only 2592 distinct"):
        sample_boxes(2593, 150.0, 0.0)
