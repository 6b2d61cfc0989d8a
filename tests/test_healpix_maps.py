"""HEALPix maps: per-pixel tallies (against healpy and a brute-force count), map files healpy
and astropy read, effective area per pixel from randoms, and `plot --healpix`.

healpy is the reference for pixel indices and the reader of the FITS maps; it is GPL and
test-only (each test that needs it skips cleanly without it).
"""

from __future__ import annotations

import math

import fitsio
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from halo_lrg.cli import main
from halo_lrg.count.pixels import (
    PixelCounts,
    PixelTally,
    chunk_pixel_counts,
    map_bytes,
    merge_pixel_counts,
    write_map,
)
from halo_lrg.count.randoms import count_randoms, count_randoms_per_brick, kept_randoms
from halo_lrg.fits.reader import SweepError
from halo_lrg.science.area import (
    PIXEL_AREA_COLUMNS,
    area_table,
    merge_pixel_randoms,
    merge_randoms_counts,
    pixel_area_map,
)
from halo_lrg.science.healpix import MAX_NSIDE, nest_to_radec, npix, pixel_area, radec_to_nest
from halo_lrg.science.healpix_map import (
    HealpixMap,
    MapError,
    counts_map,
    read_map,
    with_effective_area,
)
from halo_lrg.science.plot import healpix_figure, healpix_values, plot_healpix_map
from halo_lrg.survey.names import SweepBox
from halo_lrg.survey.synth import PlantedMask, generate_randoms

BOX = SweepBox(150.0, 155.0, 0.0, 5.0)
MASK = PlantedMask.default_for(BOX)
DEC_TWO_THIRDS = math.degrees(math.asin(2 / 3))  # where HEALPix's polar caps begin


def brute_force(pixel: np.ndarray, selected: np.ndarray) -> PixelCounts:
    """Per-pixel totals the obvious way: np.unique, then a sum per pixel and selection."""
    unique, inverse, n_objects = np.unique(pixel, return_inverse=True, return_counts=True)
    counts = np.zeros((selected.shape[0], unique.size), np.int64)
    for j in range(selected.shape[0]):
        np.add.at(counts[j], inverse.ravel(), selected[j].astype(np.int64))
    return PixelCounts(unique, n_objects, counts)


def assert_healpy_pixels(hp, ra: np.ndarray, dec: np.ndarray, nside: int,
                         ours: np.ndarray) -> None:
    """``ours`` is healpy's pixel of each point, or, for a point on a pixel edge (healpy's
    own answer changes within 1e-9 degrees: at nside 2, (0, 0) is a corner where healpy's
    cos(π/2) = 6e-17 picks a side), the pixel of a neighbour that close."""
    theirs = hp.ang2pix(nside, ra, dec, nest=True, lonlat=True)
    differ = np.flatnonzero(ours != theirs)
    for i in differ:
        step = 1e-9
        near = {int(hp.ang2pix(nside, (ra[i] + a * step) % 360.0,
                               np.clip(dec[i] + b * step, -90, 90), nest=True, lonlat=True))
                for a in (-1, 0, 1) for b in (-1, 0, 1)}
        assert len(near) > 1 and int(ours[i]) in near, (ra[i], dec[i], ours[i], theirs[i])


def assert_same(a: PixelCounts, b: PixelCounts) -> None:
    for x, y in zip(a, b):
        assert x.dtype == np.int64
        np.testing.assert_array_equal(x, y)


def awkward_sky(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Uniform on the sphere with the places pixel codes get wrong: both poles, exactly and
    within 1e-7°, RA exactly 0 and 360 and just below 360, the cap boundary, the equator."""
    rng = np.random.default_rng(seed)
    ra = rng.uniform(0, 360, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    k = n // 10
    dec[:k] = 90 - rng.uniform(0, 0.3, k) ** 4
    dec[k:2 * k] = -90 + rng.uniform(0, 0.3, k) ** 4
    dec[2 * k:2 * k + 20], dec[2 * k + 20:2 * k + 40] = 90.0, -90.0
    ra[3 * k:4 * k] = rng.choice([0.0, 360.0, np.nextafter(360.0, 0), 1e-12, 359.9999999], k)
    dec[4 * k:4 * k + 50] = DEC_TWO_THIRDS + rng.normal(0, 1e-6, 50)
    dec[4 * k + 50:4 * k + 100] = 0.0
    return ra, dec


# --- the tally against healpy and brute force -----------------------------------------------

ANGLE_RA = st.one_of(st.floats(0, 360), st.sampled_from([0.0, 360.0, np.nextafter(360.0, 0),
                                                         5e-324, 180.0, 90.0]))
ANGLE_DEC = st.one_of(st.floats(-90, 90), st.sampled_from(
    [90.0, -90.0, 89.9999999, -89.9999999, DEC_TWO_THIRDS, -DEC_TWO_THIRDS, 0.0]))


@settings(max_examples=150, deadline=None)
@given(data=st.data(), nside=st.sampled_from([1, 2, 16, 256, 4096, MAX_NSIDE]),
       n=st.integers(0, 200), k=st.integers(0, 3))
def test_tally_matches_healpy_and_a_brute_force_count(data, nside, n, k):
    hp = pytest.importorskip("healpy")
    ra = data.draw(arrays(np.float64, n, elements=ANGLE_RA), label="ra")
    dec = data.draw(arrays(np.float64, n, elements=ANGLE_DEC), label="dec")
    selected = data.draw(arrays(np.bool_, (k, n)), label="selected")
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=4), label="chunk cuts"))
    tally = PixelTally(nside, k)
    for lo, hi in zip([0, *cuts], [*cuts, n]):  # several chunks, some empty
        tally.add(ra[lo:hi], dec[lo:hi], selected[:, lo:hi] if k else None)
    pixel = radec_to_nest(ra, dec, nside)
    assert_healpy_pixels(hp, ra, dec, nside, pixel)
    assert_same(tally.totals(), brute_force(pixel, selected))
    assert tally.rows == n


@pytest.mark.parametrize("nside", [1, 64, 256, 8192])
def test_many_chunks_fold_into_the_same_totals(nside):
    # 300k rows in 8192-row chunks: at nside 8192 nearly every row finds a new pixel, so
    # the pending partials are folded many times over.
    hp = pytest.importorskip("healpy")
    ra, dec = awkward_sky(300_000, seed=nside)
    rng = np.random.default_rng(nside)
    selected = rng.random((2, ra.size)) < [[0.3], [0.01]]
    tally = PixelTally(nside, 2)
    for start in range(0, ra.size, 8192):
        tally.add(ra[start:start + 8192], dec[start:start + 8192],
                  selected[:, start:start + 8192], first_row=start)
    reference = radec_to_nest(ra, dec, nside)
    assert_healpy_pixels(hp, ra, dec, nside, reference)
    totals = tally.totals()
    assert_same(totals, brute_force(reference, selected))
    assert totals.n_objects.sum() == ra.size and (np.diff(totals.pixel) > 0).all()
    # Tallies of parts (files, tasks) merge into the tally of the whole.
    halves = []
    for part in (slice(0, 123_457), slice(123_457, None)):
        half = PixelTally(nside, 2)
        half.add(ra[part], dec[part], selected[:, part])
        halves.append(half.totals())
    assert_same(merge_pixel_counts(halves), totals)
    assert_same(merge_pixel_counts(reversed(halves)), totals)


def test_many_selections_take_the_unpacked_path():
    # More selections than fit under a pixel id in one int64 key: grouped by argsort.
    rng = np.random.default_rng(3)
    ra, dec = awkward_sky(5000, seed=3)
    selected = rng.random((40, ra.size)) < 0.5
    pixel = radec_to_nest(ra, dec, 32)
    assert_same(chunk_pixel_counts(pixel, selected), brute_force(pixel, selected))
    assert_same(chunk_pixel_counts(pixel, selected[:3]), brute_force(pixel, selected[:3]))
    tally = PixelTally(32, 40)
    tally.add(ra, dec, selected)
    assert_same(tally.totals(), brute_force(pixel, selected))


def test_totals_are_a_copy_and_the_empty_tally_has_shape():
    tally = PixelTally(16, 2)
    empty = tally.totals()
    assert empty.pixel.shape == (0,) and empty.counts.shape == (2, 0)
    tally.add([10.0], [20.0], np.array([[True], [False]]))
    first = tally.totals()
    first.n_objects[0] = 99
    assert tally.totals().n_objects.tolist() == [1]
    assert tally.totals().counts.tolist() == [[1], [0]]
    assert merge_pixel_counts([], selections=2).counts.shape == (2, 0)
    frame = tally.totals().frame(["a", "b"])
    assert frame.columns.tolist() == ["pixel", "n_objects", "a", "b"]
    assert frame.dtypes.tolist() == [np.int64] * 4


@pytest.mark.parametrize(("ra", "dec", "message"), [
    ([10.0, np.nan], [0.0, 0.0], r"RA is NaN at row 101 \(1 bad RA"),
    ([10.0, 360.5, -1.0], [0.0, 0.0, 0.0], r"RA = 360\.5 is outside \[0, 360\] at row 101 "
                                           r"\(2 bad RA"),
    ([10.0, 11.0], [0.0, 90.25], r"Dec = 90\.25 is outside \[-90, 90\] at row 101"),
    ([10.0], [np.nan], r"Dec is NaN at row 100"),
])
def test_bad_angles_are_refused_naming_the_value_and_row(ra, dec, message):
    tally = PixelTally(256)
    with pytest.raises(ValueError, match=message):
        tally.add(ra, dec, first_row=100)
    assert tally.totals().pixel.size == 0  # nothing of the refused chunk was counted


def test_bad_shapes_and_arguments_are_refused():
    tally = PixelTally(4, 1)
    with pytest.raises(ValueError, match=r"shape \(1, 2\) \(selections, rows\), got \(2,\)"):
        tally.add([1.0, 2.0], [0.0, 0.0], np.array([True, False]))
    with pytest.raises(ValueError, match="bool array"):
        tally.add([1.0], [0.0], np.array([[1]]))
    with pytest.raises(ValueError, match="selected is missing"):
        tally.add([1.0], [0.0])
    with pytest.raises(ValueError, match="1-D arrays of one length"):
        tally.add([1.0, 2.0], [0.0], np.array([[True, True]]))
    with pytest.raises(ValueError, match="power of two"):
        PixelTally(3)
    with pytest.raises(ValueError, match="selections must be a whole number"):
        PixelTally(4, -1)
    with pytest.raises(ValueError, match=r"totals of 2 selection\(s\) with totals of 1"):
        merge_pixel_counts([PixelTally(4, 1).totals(), PixelTally(4, 2).totals()])
    with pytest.raises(ValueError, match="no totals to merge"):
        merge_pixel_counts([])


# --- map tables and files --------------------------------------------------------------------

def sample_map(nside: int = 64, names=("desi-lrg", "Seed")) -> HealpixMap:
    rng = np.random.default_rng(nside)
    ra = rng.uniform(148, 157, 40_000)
    dec = np.degrees(np.arcsin(rng.uniform(math.sin(math.radians(-2)),
                                           math.sin(math.radians(7)), ra.size)))
    tally = PixelTally(nside, len(names))
    tally.add(ra, dec, rng.random((len(names), ra.size)) < [[0.05]] * len(names))
    return counts_map(nside, *tally.totals(), names=list(names))


def test_counts_map_columns_and_centres():
    hmap = sample_map()
    assert hmap.table.columns.tolist() == ["pixel", "ra", "dec", "n_objects", "desi-lrg",
                                           "Seed"]
    assert hmap.selections == ["desi-lrg", "Seed"] and hmap.ordering == "NESTED"
    ra, dec = nest_to_radec(hmap.table["pixel"].to_numpy(), 64)
    np.testing.assert_array_equal(hmap.table["ra"], ra)
    np.testing.assert_array_equal(hmap.table["dec"], dec)
    np.testing.assert_array_equal(radec_to_nest(hmap.table["ra"], hmap.table["dec"], 64),
                                  hmap.table["pixel"])
    one = counts_map(8, [5, 1], [3, 4], [[1, 2]])
    assert one.table.columns.tolist() == ["pixel", "ra", "dec", "n_objects", "lrg_count"]
    assert one.table["pixel"].tolist() == [1, 5] and one.table["lrg_count"].tolist() == [2, 1]
    assert counts_map(8, [5], [3], np.zeros((0, 1))).selections == []
    with pytest.raises(MapError, match="2 selections need names"):
        counts_map(8, [5], [3], [[1], [1]])
    with pytest.raises(MapError, match="not a map column"):
        counts_map(8, [5], [3], [[1]], names=["n_objects"])
    with pytest.raises(MapError, match="sorted, each pixel once"):
        HealpixMap(8, pd.DataFrame({"pixel": [3, 3]}))
    with pytest.raises(MapError, match=r"within \[0, 768\)"):
        HealpixMap(8, pd.DataFrame({"pixel": [768]}))


def test_fits_map_is_what_healpy_and_astropy_read(tmp_path):
    hp = pytest.importorskip("healpy")
    from astropy.table import Table

    hmap = sample_map()
    path = write_map(hmap, tmp_path / "map.fits", header={"halo_lrg_version": "9.9"})
    pixel = hmap.table["pixel"].to_numpy()
    # Field k is the k-th column after PIXEL; a name is given as a tuple.
    for field, column in [(2, "n_objects"), (3, "desi-lrg"), (("Seed",), "Seed")]:
        full = hp.read_map(path, field=field, partial=True, nest=True)
        assert full.size == npix(64)
        np.testing.assert_array_equal(full[pixel], hmap.table[column])
        outside = np.setdiff1d(np.arange(npix(64)), pixel)
        assert (full[outside] == hp.UNSEEN).all()
    # healpy's RING view of the same file agrees through its own reordering.
    ring = hp.read_map(path, field=2, partial=True, nest=False)
    np.testing.assert_array_equal(ring[hp.nest2ring(64, pixel)], hmap.table["n_objects"])

    table = Table.read(path, hdu="HEALPIX")
    assert table.colnames == ["PIXEL", "ra", "dec", "n_objects", "desi-lrg", "Seed"]
    assert table["PIXEL"].dtype.newbyteorder("=") == np.int64
    assert str(table["ra"].unit) == "deg" and table["n_objects"].unit is None
    header = table.meta
    assert (header["PIXTYPE"], header["ORDERING"], header["NSIDE"], header["INDXSCHM"],
            header["OBJECT"], header["COORDSYS"]) == ("HEALPIX", "NESTED", 64, "EXPLICIT",
                                                      "PARTIAL", "C")
    assert (header["FIRSTPIX"], header["LASTPIX"], header["OBS_NPIX"]) == (
        pixel[0], pixel[-1], pixel.size)
    assert header["HALO_LRG_VERSION"] == "9.9"
    np.testing.assert_array_equal(table["Seed"], hmap.table["Seed"])
    pd.testing.assert_frame_equal(read_map(path).table, hmap.table)
    assert read_map(path).nside == 64
    with pytest.raises(MapError, match="replace the map's own NSIDE"):
        map_bytes(hmap, "fits", header={"nside": 1})


def test_csv_map_round_trips_and_pandas_reads_it(tmp_path):
    hmap = sample_map(nside=128)
    path = write_map(hmap, tmp_path / "map.csv")
    assert path.read_text().splitlines()[0] == \
        "# HEALPix NSIDE=128 ORDERING=NESTED COORDSYS=C"
    plain = pd.read_csv(path, comment="#")
    assert plain.columns.tolist() == hmap.table.columns.tolist()
    back = read_map(path)
    assert back.nside == 128 and back.selections == ["desi-lrg", "Seed"]
    pd.testing.assert_frame_equal(back.table, hmap.table, check_exact=False, rtol=1e-9)
    with pytest.raises(MapError, match="cannot tell the map format"):
        write_map(hmap, tmp_path / "map.txt")


def test_foreign_and_broken_map_files_are_refused_by_name(tmp_path):
    hp = pytest.importorskip("healpy")
    values = np.full(npix(64), hp.UNSEEN)  # (healpy cannot write int8 PIXEL: nside >= 8)
    values[[3, 40_000]] = [1.5, 2.5]
    # healpy's own partial map (PIXEL int32, then its column): read, centres added.
    hp.write_map(str(tmp_path / "healpy.fits"), values, nest=True, partial=True,
                 column_names=["SIGNAL"])
    theirs = read_map(tmp_path / "healpy.fits")
    assert theirs.table.columns.tolist() == ["pixel", "ra", "dec", "SIGNAL"]
    assert theirs.table["pixel"].tolist() == [3, 40_000] and theirs.nside == 64
    assert theirs.table["SIGNAL"].tolist() == [1.5, 2.5]
    np.testing.assert_array_equal(theirs.table["dec"], nest_to_radec([3, 40_000], 64)[1])
    hp.write_map(str(tmp_path / "ring.fits"), values, nest=False, partial=True)
    with pytest.raises(MapError, match=r"ring\.fits: ORDERING is RING: .*NESTED"):
        read_map(tmp_path / "ring.fits")
    hp.write_map(str(tmp_path / "full.fits"), np.arange(npix(64), dtype=float), nest=True)
    with pytest.raises(MapError, match=r"full\.fits: INDXSCHM is IMPLICIT"):
        read_map(tmp_path / "full.fits")
    (tmp_path / "plain.csv").write_text("pixel,n\n1,2\n")
    with pytest.raises(MapError, match=r"plain\.csv: the first line must be"):
        read_map(tmp_path / "plain.csv")
    (tmp_path / "bad.csv").write_text("# HEALPix NSIDE=3 ORDERING=NESTED\npixel\n1\n")
    with pytest.raises(MapError, match=r"bad\.csv: NSIDE '3' is not usable"):
        read_map(tmp_path / "bad.csv")
    (tmp_path / "twice.csv").write_text("# HEALPix NSIDE=4 ORDERING=NESTED\npixel\n1\n1\n")
    with pytest.raises(MapError, match=r"twice\.csv: a pixel is listed twice"):
        read_map(tmp_path / "twice.csv")
    (tmp_path / "junk.fits").write_bytes(b"not a fits file" * 300)
    with pytest.raises(MapError, match=r"junk\.fits: not a FITS file"):
        read_map(tmp_path / "junk.fits")
    with pytest.raises(MapError, match=r"nope\.fits: no such file"):
        read_map(tmp_path / "nope.fits")


def test_effective_area_joins_per_pixel():
    counts = counts_map(16, [1, 2, 3], [10, 20, 30], [[4, 5, 6]])
    area = HealpixMap(16, pd.DataFrame({"pixel": [1, 3, 7], "area_eff_deg2": [2.0, 0.0, 1.0]}))
    joined = with_effective_area(counts, area)
    assert joined.table.columns.tolist() == ["pixel", "ra", "dec", "n_objects", "lrg_count",
                                             "area_eff_deg2", "lrg_density_eff"]
    np.testing.assert_array_equal(joined.table["area_eff_deg2"], [2.0, np.nan, 0.0])
    np.testing.assert_array_equal(joined.table["lrg_density_eff"], [2.0, np.nan, np.nan])
    assert joined.selections == ["lrg_count"] and joined.has_effective_area
    named = counts_map(16, [1], [1], [[1], [0]], names=["a", "b"], area=area)
    assert named.table.columns.tolist()[-2:] == ["a_density_eff", "b_density_eff"]
    with pytest.raises(MapError, match="nside 32, the counts at 16"):
        with_effective_area(counts, HealpixMap(32, area.table))


# --- randoms per pixel, effective area per pixel ------------------------------------------

@pytest.fixture(scope="module")
def randoms(tmp_path_factory):
    out = tmp_path_factory.mktemp("randoms")
    return [generate_randoms(out / f"randoms-1-{k}.fits", BOX, seed=10 + k, mask=MASK).path
            for k in range(2)]


def test_randoms_per_pixel_in_the_same_read_as_per_brick(randoms):
    hp = pytest.importorskip("healpy")
    path = randoms[0]
    counted = count_randoms(path, chunk_rows=5000, nside=256)
    bricks = count_randoms_per_brick(path, chunk_rows=5000)
    for ours, theirs in zip(counted.bricks, bricks):
        np.testing.assert_array_equal(ours, theirs)
    assert count_randoms(path).pixels is None
    data = fitsio.read(path, columns=["RA", "DEC", "NOBS_G", "NOBS_R", "NOBS_Z", "MASKBITS"])
    pixel = radec_to_nest(data["RA"], data["DEC"], 256)
    assert_healpy_pixels(hp, data["RA"], data["DEC"], 256, pixel)
    reference = brute_force(pixel, kept_randoms(data)[None, :])
    pixels = counted.pixels
    assert pixels.nside == 256
    np.testing.assert_array_equal(pixels.pixel, reference.pixel)
    np.testing.assert_array_equal(pixels.n_total, reference.n_objects)
    np.testing.assert_array_equal(pixels.n_kept, reference.counts[0])
    assert pixels.n_kept.sum() == bricks.n_kept.sum() and 0 < pixels.n_kept.sum() < len(data)
    assert pixels.frame().columns.tolist() == ["pixel", "n_randoms", "n_kept"]


def test_a_bad_position_in_randoms_names_the_row():
    chunk = {"BRICKNAME": np.array([b"1501p025"] * 3), "NOBS_G": np.ones(3),
             "NOBS_R": np.ones(3), "NOBS_Z": np.ones(3), "MASKBITS": np.zeros(3, np.int32),
             "RA": np.array([150.1, 150.1, np.nan]), "DEC": np.array([2.5, 2.5, 2.5])}
    with pytest.raises(SweepError, match=r"<chunks>: RA is NaN at row 3 "):
        count_randoms([{k: v[:2] for k, v in chunk.items()},
                       {k: v[1:] for k, v in chunk.items()}], nside=64)
    del chunk["DEC"]
    with pytest.raises(SweepError, match="missing column DEC"):
        count_randoms([chunk], nside=64)
    assert count_randoms([chunk]).bricks.n_total.tolist() == [3]  # positions not needed


def pixel_areas(paths, nside):
    counted = [count_randoms(p, nside=nside) for p in paths]
    per_pixel = pixel_area_map(merge_pixel_randoms(c.pixels.frame() for c in counted),
                               nside, len(paths))
    per_brick = area_table(merge_randoms_counts(c.bricks.frame() for c in counted),
                           len(paths))
    return per_pixel, per_brick


@pytest.mark.parametrize("nside", [128, 256])
def test_pixel_effective_area_sums_to_the_brick_total_and_is_the_pixel_area_where_clean(
        randoms, nside):
    per_pixel, per_brick = pixel_areas(randoms, nside)
    table = per_pixel.table
    assert table.columns.tolist() == PIXEL_AREA_COLUMNS and per_pixel.nside == nside
    assert table["area_eff_deg2"].sum() == pytest.approx(per_brick["area_eff_deg2"].sum(),
                                                         rel=1e-12)
    np.testing.assert_allclose(table["area_eff_deg2"], table["n_kept"] / 5000)
    np.testing.assert_allclose(table["area_eff_err_deg2"], np.sqrt(table["n_kept"]) / 5000)
    # Pixels wholly inside the box and far from the hole and the stripe: all their area is
    # seen, so n_kept is Poisson with mean pixel_area x 2500 x 2 files.
    margin = math.sqrt(pixel_area(nside))  # a pixel's centre-to-corner is ~0.7 of this
    ra, dec = table["ra"], table["dec"]
    hole = np.degrees(np.arccos(np.clip(
        np.sin(np.radians(dec)) * math.sin(math.radians(MASK.hole_dec))
        + np.cos(np.radians(dec)) * math.cos(math.radians(MASK.hole_dec))
        * np.cos(np.radians(ra - MASK.hole_ra)), -1, 1)))
    clean = ((ra > BOX.ra_min + margin) & (ra < BOX.ra_max - margin)
             & (dec > BOX.dec_min + margin) & (dec < BOX.dec_max - margin)
             & (hole > MASK.hole_radius + margin)
             & ((dec < MASK.stripe_dec_min - margin) | (dec > MASK.stripe_dec_max + margin)))
    assert clean.sum() >= 10
    z = (table["area_eff_deg2"][clean] - pixel_area(nside)) / table["area_eff_err_deg2"][clean]
    assert np.abs(z).max() < 4.5, z.abs().max()
    # chi² per pixel ~ 1 (its spread is sqrt(2 / pixels)): the error is Poisson, not more.
    assert np.mean(z**2) == pytest.approx(1.0, abs=4 * math.sqrt(2 / clean.sum()))
    # Pixels in the hole's middle keep nothing; the stripe's pixels lose part of their area.
    centre = radec_to_nest(MASK.hole_ra, MASK.hole_dec, nside)
    assert table.loc[table["pixel"] == centre, "n_kept"].tolist() == [0]


# --- plotting ------------------------------------------------------------------------------

def hot_map(nside: int, hot_ra: float, hot_dec: float, around: float = 12.0) -> HealpixMap:
    """A flat map (every pixel 100 counts) of the pixels within ``around`` degrees of a
    point 0.4 x ``around`` east and north of the hot spot (off-centre, so a mirrored image
    would put it elsewhere), the hot spot's own pixel holding 1000."""
    pixels = np.arange(npix(nside))
    ra, dec = nest_to_radec(pixels, nside)
    c_dec = min(hot_dec + 0.4 * around, 90.0)
    c_ra = hot_ra + 0.4 * around / max(math.cos(math.radians(c_dec)), 0.1)
    near = np.degrees(np.arccos(np.clip(
        np.sin(np.radians(dec)) * math.sin(math.radians(c_dec))
        + np.cos(np.radians(dec)) * math.cos(math.radians(c_dec))
        * np.cos(np.radians(ra - c_ra)), -1, 1))) < around
    pixel = pixels[near]
    counts = np.full(pixel.size, 100)
    counts[pixel == radec_to_nest(hot_ra, hot_dec, nside)] = 1000
    return counts_map(nside, pixel, counts, counts[None, :])


def brightest_place(fig, path) -> tuple[np.ndarray, np.ndarray, object]:
    """Where the colour map's top colour lies in the PNG's map axes: (rows, cols) of those
    image pixels, in display coordinates (x right, y up), and the map's axes."""
    import matplotlib.image

    ax = fig.axes[0]
    fig.savefig(path, dpi=fig.dpi)
    png = matplotlib.image.imread(str(path))[:, :, :3]
    height = png.shape[0]
    image = ax.get_images()[0]
    top = np.array(image.cmap(1.0)[:3])
    box = ax.get_window_extent()
    hit = np.abs(png - top).max(axis=2) < 0.02
    rows, cols = np.nonzero(hit)
    y = height - rows - 0.5
    x = cols + 0.5
    inside = (x > box.x0) & (x < box.x1) & (y > box.y0) & (y < box.y1)
    return x[inside], y[inside], ax


@pytest.mark.parametrize(("hot_ra", "hot_dec"), [
    (90.0, 30.0),  # east of the centre: on the right half, as on the sky
    (270.0, -20.0),  # on the left half
    (359.5, 10.0),  # beside the seam at RA 0/360: on the far left
    (0.5, 10.0),  # and its far right
    (33.0, 87.5),  # near the pole
])
def test_mollweide_puts_the_hot_pixel_where_it_is_on_the_sky(tmp_path, hot_ra, hot_dec):
    import matplotlib.pyplot as plt

    hmap = hot_map(16, hot_ra, hot_dec)
    fig = healpix_figure(hmap, zoom=False, dpi=60, figsize=(10, 6))
    try:
        x, y, ax = brightest_place(fig, tmp_path / "map.png")
        assert x.size >= 3  # a visible patch of the top colour (small near the pole)
        # Where the hot pixel's centre is drawn: longitude = 180° - RA (RA grows leftwards).
        lon = math.radians((180.0 - hot_ra + 180.0) % 360.0 - 180.0)
        ex, ey = ax.transData.transform((lon, math.radians(hot_dec)))
        size = math.sqrt(pixel_area(16)) / 360 * ax.get_window_extent().width * 3
        assert np.hypot(x - ex, y - ey).max() < size, (hot_ra, hot_dec)
        centre_x = (ax.get_window_extent().x0 + ax.get_window_extent().x1) / 2
        if 0 < hot_ra < 180:
            assert (x > centre_x).all()
        if 180 < hot_ra < 360:
            assert (x < centre_x).all()
    finally:
        plt.close(fig)


@pytest.mark.parametrize(("hot_ra", "hot_dec"), [(152.0, 2.0), (0.5, -5.0), (359.5, -5.0)])
def test_zoomed_plot_puts_the_hot_pixel_where_it_is(tmp_path, hot_ra, hot_dec):
    import matplotlib.pyplot as plt

    hmap = hot_map(64, hot_ra, hot_dec, around=4.0)
    fig = healpix_figure(hmap, dpi=60, figsize=(8, 6))  # small: zoomed on its own
    try:
        ax = fig.axes[0]
        assert ax.name == "rectilinear" and ax.get_xlim()[0] > ax.get_xlim()[1]  # RA leftwards
        x, y, ax = brightest_place(fig, tmp_path / "zoom.png")
        assert x.size > 10
        left, right = ax.get_xlim()
        # The same RA on the axis: a window across the seam runs on past 360 (or below 0).
        ra = hot_ra + 360 * round(((left + right) / 2 - hot_ra) / 360)
        ex, ey = ax.transData.transform((ra, hot_dec))
        size = math.sqrt(pixel_area(64)) / (left - right) * ax.get_window_extent().width * 2
        assert np.hypot(x - ex, y - ey).max() < size
    finally:
        plt.close(fig)


def test_plot_values_prefer_the_effective_density(tmp_path):
    counts = counts_map(16, [1, 2], [10, 20], [[4, 5]])
    values, label, _ = healpix_values(counts)
    np.testing.assert_allclose(values, np.array([4, 5]) / pixel_area(16))
    area = HealpixMap(16, pd.DataFrame({"pixel": [1, 2], "area_eff_deg2": [2.0, 0.5]}))
    values, label, _ = healpix_values(with_effective_area(counts, area))
    np.testing.assert_allclose(values, [2.0, 10.0])
    assert label.startswith("LRG density")
    np.testing.assert_allclose(healpix_values(counts, "n_objects")[0],
                               np.array([10, 20]) / pixel_area(16))
    with pytest.raises(MapError, match="no selection 'x'"):
        healpix_values(counts, "x")
    out = plot_healpix_map(with_effective_area(counts, area), tmp_path / "m.png",
                           histogram=tmp_path / "h.png", dpi=40, figsize=(6, 4))
    assert out.stat().st_size > 5000 and (tmp_path / "h.png").stat().st_size > 3000


def test_plot_healpix_through_the_cli(tmp_path):
    hmap = sample_map(nside=32)
    write_map(hmap, tmp_path / "map.fits")
    write_map(hmap, tmp_path / "map.csv")
    runner = CliRunner()
    for args in (["--healpix", str(tmp_path / "map.fits")],
                 ["--healpix", str(tmp_path / "map.csv"), "--mollweide", "--selection", "Seed"],
                 ["--healpix", str(tmp_path / "map.fits"), "--zoom", "--histogram",
                  str(tmp_path / "hist.png")]):
        out = tmp_path / "sky.png"
        out.unlink(missing_ok=True)
        result = runner.invoke(main, ["plot", *args, "--output", str(out)])
        assert result.exit_code == 0, result.output
        assert f"map -> {out}" in result.output and out.stat().st_size > 10_000
    result = runner.invoke(main, ["plot", "--output", str(tmp_path / "x.png")])
    assert result.exit_code == 2 and "one of the two" in result.output
    result = runner.invoke(main, ["plot", "d.csv", "--zoom", "--output", "x.png"])
    assert result.exit_code == 2 and "apply to --healpix" in result.output
    result = runner.invoke(main, ["plot", "--healpix", str(tmp_path / "map.fits"),
                                  "--selection", "nope", "--output", "x.png"])
    assert result.exit_code == 1 and "no selection 'nope'" in result.output
    assert "map.fits" in result.output
    result = runner.invoke(main, ["plot", "--healpix", str(tmp_path / "gone.fits"),
                                  "--output", "x.png"])
    assert result.exit_code == 1 and "gone.fits: no such file" in result.output
