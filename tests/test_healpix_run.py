"""``halo-lrg run --healpix-nside N``: objects and LRGs per NESTED HEALPix pixel beside the
bricks, from the same read of each file, equal to a per-object reference (healpy's pixels,
desitarget's resolution), written as a CSV and a partial-sky FITS map healpy reads."""

from __future__ import annotations

import json
from pathlib import Path

import fitsio
import healpy
import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from click.testing import CliRunner

from halo_lrg.cli import main
from halo_lrg.science.cuts import get_selections
from halo_lrg.science.resolve import resolve_catalogue
from halo_lrg.spark.run import JobSpec, run_job
from test_resolve_run import BOTH, NORTH, SOUTH, SOUTH_ONLY, write

NSIDE = 64
pytestmark = pytest.mark.spark


def run(spark, config, index, out, **settings):
    return run_job(spark, JobSpec(str(index), str(out),
                                  config.replace(run={"healpix_nside": NSIDE, **settings})),
                   emit=lambda _line: None)


def read_map_csv(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "lrg_healpix.csv", comment="#")


def reference(paths, names, resolve=False) -> pd.DataFrame:
    """Per pixel, from every object: healpy's pixel, each selection's mask (and
    desitarget's rule for which objects north/south resolution keeps)."""
    data = np.concatenate([fitsio.read(str(p), ext=1) for p in paths])
    chunk = {name: data[name].astype(data[name].dtype.newbyteorder("="))
             for name in data.dtype.names if data[name].dtype.kind != "S"}
    chunk["PHOTSYS"] = np.char.strip(data["PHOTSYS"].astype(str)) \
        if "PHOTSYS" in data.dtype.names else None
    if chunk["PHOTSYS"] is None:
        del chunk["PHOTSYS"]
    keep = resolve_catalogue(chunk) if resolve else np.ones(len(data), bool)
    pixel = healpy.ang2pix(NSIDE, data["RA"], data["DEC"], nest=True, lonlat=True)
    frame = pd.DataFrame({"pixel": pixel[keep], "n_objects": 1})
    for selection in get_selections(names):
        frame[selection.name] = selection(chunk)[keep].astype(int)
    return frame.groupby("pixel", as_index=False).sum()


def test_the_map_counts_each_object_in_its_healpy_pixel(spark, config, sample, tmp_path):
    out = tmp_path / "out"
    run(spark, config, sample["index"], out, resolve="off")
    got = read_map_csv(out)
    want = reference(sample["paths"], ["seed"]).rename(columns={"seed": "lrg_count"})
    pd.testing.assert_frame_equal(got[["pixel", "n_objects", "lrg_count"]], want,
                                  check_dtype=False)
    assert (out / "lrg_healpix.csv").read_text().startswith(f"# HEALPix NSIDE={NSIDE} ")
    ra, dec = healpy.pix2ang(NSIDE, got["pixel"].to_numpy(), nest=True, lonlat=True)
    np.testing.assert_allclose(got["ra"], ra)
    np.testing.assert_allclose(got["dec"], dec)
    bricks = pd.read_csv(out / "lrg_counts_per_brick" / "part-00000.csv")
    assert got["lrg_count"].sum() == bricks["lrg_count"].sum()
    manifest = json.loads((out / "manifest.json").read_text())
    assert {o["name"] for o in manifest["outputs"]} >= {"lrg_healpix.csv", "lrg_healpix.fits"}


def test_the_fits_map_is_a_partial_sky_map_healpy_reads(spark, config, sample, tmp_path):
    out = tmp_path / "out"
    run(spark, config, sample["index"], out)
    table = read_map_csv(out)
    full = healpy.read_map(str(out / "lrg_healpix.fits"), field=("lrg_count",), partial=True,
                           nest=True)
    assert full.size == 12 * NSIDE**2
    np.testing.assert_array_equal(full[table["pixel"]], table["lrg_count"])
    seen = np.zeros(full.size, bool)
    seen[table["pixel"]] = True
    assert np.all(full[~seen] == healpy.UNSEEN)
    header = fits.getheader(out / "lrg_healpix.fits", 1)
    assert (header["ORDERING"], header["NSIDE"], header["INDXSCHM"]) == \
        ("NESTED", NSIDE, "EXPLICIT")
    assert header["SELECTION"] == "seed"  # the run's provenance, as in its other tables


def test_several_selections_and_north_south_resolution_per_pixel(spark, config, tmp_path):
    north = [write(tmp_path / "north", box, NORTH, seed=k) for k, box in enumerate(BOTH)]
    south = [write(tmp_path / "south", box, SOUTH, seed=10 + k) for k, box in enumerate(BOTH)]
    south.append(write(tmp_path / "south", SOUTH_ONLY, SOUTH, seed=20))
    index = tmp_path / "index.txt"
    index.write_text("".join(f"{p}\n" for p in [*north, *south]))
    names = ["seed", "desi-lrg"]
    out = tmp_path / "out"
    result = run(spark, config.replace(cuts={"selection": ",".join(names)}), index, out)
    assert result.north_south["applied"]
    got = read_map_csv(out)
    want = reference([*north, *south], names, resolve=True)
    pd.testing.assert_frame_equal(got[["pixel", "n_objects", *names]], want,
                                  check_dtype=False)
    bricks = pd.read_csv(out / "lrg_counts_per_brick" / "part-00000.csv")
    assert got[["n_objects", *names]].sum().tolist() == \
        bricks[["n_objects", *names]].sum().tolist()


def test_resumed_split_and_packed_runs_give_the_same_map(spark, config, sample, tmp_path):
    plain = tmp_path / "plain"
    run(spark, config, sample["index"], plain, split_bytes=0, pack_bytes=0)
    expected = (plain / "lrg_healpix.csv").read_bytes()
    split = tmp_path / "split"
    size = sample["paths"][0].stat().st_size
    first = run(spark, config, sample["index"], split, split_bytes=size // 3 + 1)
    assert (split / "lrg_healpix.csv").read_bytes() == expected
    again = run(spark, config, sample["index"], split, split_bytes=size // 3 + 1)
    assert again.plan["pieces_reused"] == first.plan["pieces"] and again.plan["tasks"] == 0
    assert (split / "lrg_healpix.csv").read_bytes() == expected
    # A different nside is a different count: nothing stored is reused for it.
    other = run(spark, config, sample["index"], split, split_bytes=size // 3 + 1,
                healpix_nside=NSIDE * 2)
    assert other.plan["pieces_reused"] == 0
    assert read_map_csv(split)["n_objects"].sum() == sum(s.rows for s in sample["summaries"])


def test_a_run_without_a_map_removes_the_previous_one(spark, config, sample, tmp_path):
    out = tmp_path / "out"
    run(spark, config, sample["index"], out)
    assert (out / "lrg_healpix.fits").exists()
    run(spark, config, sample["index"], out, healpix_nside=0)
    assert not (out / "lrg_healpix.csv").exists() and not (out / "lrg_healpix.fits").exists()


def test_the_cli_takes_the_nside_and_refuses_one_that_is_not_a_power_of_two(spark, sample,
                                                                            tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", "--index", str(sample["index"]), "--output",
                                       str(out), "--healpix-nside", "32"])
    assert result.exit_code == 0, result.output
    assert "lrg_healpix.csv" in result.output
    assert (out / "lrg_healpix.csv").read_text().startswith("# HEALPix NSIDE=32 ")
    bad = CliRunner().invoke(main, ["run", "--index", str(sample["index"]), "--output",
                                    str(out), "--healpix-nside", "48"])
    assert bad.exit_code == 2 and "power of two" in bad.output


def test_the_map_over_its_effective_area_from_randoms_is_drawn(spark, config, tmp_path):
    from halo_lrg.science.healpix_map import read_map, with_effective_area

    out = tmp_path / "out"
    cli = CliRunner()
    made = cli.invoke(main, ["synth", str(tmp_path / "sample"), "--files", "1", "--rows",
                             "6000", "--randoms", "1"])
    assert made.exit_code == 0, made.output
    done = cli.invoke(main, ["run", "--index", str(tmp_path / "sample" / "index.txt"),
                             "--output", str(out), "--healpix-nside", "16"])
    assert done.exit_code == 0, done.output
    done = cli.invoke(main, ["area", "--randoms", str(tmp_path / "sample" / "randoms.txt"),
                             "--output", str(out / "area.csv"), "--healpix-nside", "16"])
    assert done.exit_code == 0, done.output
    drawn = cli.invoke(main, ["plot", "--healpix", str(out / "lrg_healpix.csv"), "--area",
                              str(out / "area_healpix16.csv"), "--output",
                              str(out / "map.png")])
    assert drawn.exit_code == 0, drawn.output
    assert (out / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    joined = with_effective_area(read_map(out / "lrg_healpix.csv"),
                                 read_map(out / "area_healpix16.csv"))
    assert joined.table["area_eff_deg2"].notna().all()  # randoms cover every counted pixel
    run(spark, config, tmp_path / "sample" / "index.txt", tmp_path / "other")  # nside 64
    mismatch = cli.invoke(main, ["plot", "--healpix", str(tmp_path / "other" / "lrg_healpix.csv"),
                                 "--area", str(out / "area_healpix16.csv"), "--output",
                                 str(out / "bad.png")])
    assert mismatch.exit_code != 0 and "area_healpix16.csv" in mismatch.output
    assert "nside 16" in mismatch.output and "64" in mismatch.output
