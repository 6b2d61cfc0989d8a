"""Science building blocks: HEALPix pixels, north/south resolution, randoms and effective area.

References where installed: healpy (pixels), astropy (Galactic coordinates), desitarget
(``targets.resolve``); each test skips cleanly without its reference.
"""

from __future__ import annotations

import hashlib
import math

import fitsio
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from halo_lrg.count.randoms import (
    RANDOMS_COLUMNS,
    RandomsCount,
    count_randoms_per_brick,
    kept_randoms,
)
from halo_lrg.fits.reader import SweepError
from halo_lrg.science.area import (
    AREA_COLUMNS,
    add_effective_area,
    area_table,
    effective_area,
    effective_area_error,
    merge_randoms_counts,
    read_area_csv,
)
from halo_lrg.science.bricks import brickname_at
from halo_lrg.science.cuts import DESI_MASKBITS_REJECT
from halo_lrg.science.density import DENSITY_COLUMNS, TableError, density_table
from halo_lrg.science.healpix import (
    MAX_NSIDE,
    check_nside,
    nest_to_radec,
    npix,
    pixel_area,
    radec_to_nest,
)
from halo_lrg.science.resolve import (
    RESOLVE_DEC,
    RESOLVE_NSIDE,
    galactic_latitude,
    in_north_galactic_cap,
    radec_to_galactic,
    resolve_catalogue,
    resolve_mask,
)
from halo_lrg.survey.names import SweepBox
from halo_lrg.survey.synth import (
    HARMLESS_BITS,
    PlantedMask,
    generate_randoms,
    generate_sweep,
    randoms_dtype,
)

SKY = 4 * math.pi * (180 / math.pi) ** 2
BOX = SweepBox(150.0, 155.0, 0.0, 5.0)
MASK = PlantedMask.default_for(BOX)


def sky_points(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Uniform on the sphere, with the awkward places added: both poles exactly and within
    1e-6°, RA 0, 360, just below 360, negative and beyond 360, Dec ±2/3 boundary, Dec 0."""
    rng = np.random.default_rng(seed)
    ra = rng.uniform(0, 360, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    k = n // 20
    dec[:k] = 90 - rng.uniform(0, 0.5, k) ** 4  # crowding at the north pole
    dec[k:2 * k] = -90 + rng.uniform(0, 0.5, k) ** 4
    dec[2 * k:2 * k + 50], dec[2 * k + 50:2 * k + 100] = 90.0, -90.0
    ra[3 * k:4 * k] = rng.choice([0.0, 360.0, np.nextafter(360.0, 0), -1e-9, -90.0, 359.999999,
                                  720.0 + 1e-7, 1e-12], k)
    dec[4 * k:4 * k + 100] = np.degrees(np.arcsin(2 / 3)) + rng.normal(0, 1e-6, 100)
    dec[4 * k + 100:4 * k + 200] = 0.0
    return ra, dec


# --- HEALPix -------------------------------------------------------------------------------

@pytest.mark.parametrize("nside", [1, 2, 8, 64, 256, 1024, 4096, MAX_NSIDE])
def test_nested_pixels_equal_healpy(nside):
    hp = pytest.importorskip("healpy")
    ra, dec = sky_points(120_000, seed=nside)
    ours = radec_to_nest(ra, dec, nside)
    theirs = hp.ang2pix(nside, ra, dec, nest=True, lonlat=True)
    assert ours.dtype == np.int64
    np.testing.assert_array_equal(ours, theirs)
    # Pixel centres too, and points a hair away from them land back in the same pixel.
    pixels = np.unique(np.concatenate([theirs, np.arange(min(npix(nside), 50_000))]))
    c_ra, c_dec = nest_to_radec(pixels, nside)
    t_ra, t_dec = hp.pix2ang(nside, pixels, nest=True, lonlat=True)
    np.testing.assert_allclose(c_dec, t_dec, rtol=0, atol=1e-10)
    np.testing.assert_allclose((c_ra - t_ra + 180) % 360 - 180, 0, atol=1e-10)
    np.testing.assert_array_equal(radec_to_nest(c_ra, c_dec, nside), pixels)
    assert pixel_area(nside) == pytest.approx(hp.nside2pixarea(nside, degrees=True), rel=1e-14)


def test_pixel_area_and_counts():
    for nside in (1, 64, 256, MAX_NSIDE):
        assert npix(nside) * pixel_area(nside) == pytest.approx(SKY, rel=1e-12)
        assert pixel_area(nside, degrees=False) == pytest.approx(4 * math.pi / npix(nside))
    assert pixel_area(256) == pytest.approx(0.0524559, rel=1e-5)  # DESI pixweight's nside


def test_every_pixel_centre_round_trips_and_pixels_are_equal_area():
    nside = 32
    pixels = np.arange(npix(nside))
    np.testing.assert_array_equal(radec_to_nest(*nest_to_radec(pixels, nside), nside), pixels)
    # Uniform points fill every pixel equally (equal areas): a chi-square of ~1 per pixel.
    rng = np.random.default_rng(5)
    n = 3_000_000
    hits = np.bincount(radec_to_nest(rng.uniform(0, 360, n),
                                     np.degrees(np.arcsin(rng.uniform(-1, 1, n))), nside),
                       minlength=pixels.size)
    expected = n / pixels.size
    assert np.mean((hits - expected) ** 2 / expected) == pytest.approx(1.0, abs=0.1)


@settings(max_examples=300, deadline=None)
@given(ra=st.floats(-720, 720), dec=st.floats(-90, 90),
       order=st.integers(0, 12))
def test_nested_pixels_are_hierarchical(ra, dec, order):
    """A pixel at 2·nside lies inside its parent at nside: index // 4."""
    nside = 2**order
    fine = radec_to_nest(ra, dec, 2 * nside)
    coarse = radec_to_nest(ra, dec, nside)
    assert fine // 4 == coarse
    assert 0 <= coarse < npix(nside)


def test_bad_nside_and_coordinates_are_refused():
    for bad in (0, 3, 12, -4, 2 * MAX_NSIDE, 2.5, "64x"):
        with pytest.raises(ValueError, match="nside"):
            check_nside(bad)
    assert check_nside(64.0) == 64
    with pytest.raises(ValueError, match="Dec must be within"):
        radec_to_nest([10.0], [91.0], 64)
    with pytest.raises(ValueError, match="RA must be finite"):
        radec_to_nest([np.nan], [0.0], 64)
    with pytest.raises(ValueError, match="within"):
        nest_to_radec([npix(4)], 4)
    assert radec_to_nest(10.0, 20.0, 8).shape == ()
    assert radec_to_nest(np.zeros((2, 3)), 5.0, 8).shape == (2, 3)


# --- Galactic coordinates and north/south resolution ------------------------------------------

def test_galactic_coordinates_equal_astropy():
    coordinates = pytest.importorskip("astropy.coordinates")
    units = pytest.importorskip("astropy.units")
    ra, dec = sky_points(100_000, seed=11)
    ra = np.mod(ra, 360)
    theirs = coordinates.SkyCoord(ra * units.deg, dec * units.deg).galactic
    gl, gb = radec_to_galactic(ra, dec)
    np.testing.assert_allclose(gb, theirs.b.deg, rtol=0, atol=1e-9)
    away = np.abs(gb) < 89.9  # l is undefined at the Galactic poles
    dl = (gl - theirs.l.deg + 180) % 360 - 180
    np.testing.assert_allclose(dl[away], 0, atol=1e-8)


def test_known_galactic_points():
    # The north Galactic pole (defined in FK5 J2000: given as ICRS it is 11 mas off, the
    # frame bias), the Galactic centre and the north celestial pole's longitude.
    assert galactic_latitude(192.8594812065348, 27.12825118085622) == pytest.approx(90, abs=1e-5)
    gl, gb = radec_to_galactic(266.40498829, -28.93617776)  # astropy's (l, b) = (0, 0)
    assert abs(gb) < 1e-6 and min(gl, 360 - gl) < 1e-6
    assert radec_to_galactic(0.0, 90.0)[0] == pytest.approx(122.9319185680026, abs=1e-4)


def resolve_points(seed: int):
    """Random points, points on and around Dec 32.375, and points within 1° of b = 0."""
    coordinates = pytest.importorskip("astropy.coordinates")
    units = pytest.importorskip("astropy.units")
    rng = np.random.default_rng(seed)
    n = 60_000
    ra = rng.uniform(0, 360, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    dec[:10_000] = RESOLVE_DEC + rng.normal(0, 0.02, 10_000)
    dec[:500] = RESOLVE_DEC
    dec[500:1000] = np.nextafter(RESOLVE_DEC, -np.inf)
    plane = coordinates.SkyCoord(l=rng.uniform(0, 360, 30_000) * units.deg,
                                 b=rng.uniform(-1, 1, 30_000) * units.deg,
                                 frame="galactic").icrs
    ra[10_000:40_000], dec[10_000:40_000] = plane.ra.deg, plane.dec.deg
    photsys = np.where(rng.random(n) < 0.5, "N", "S")
    return ra, dec, photsys


def test_resolve_equals_desitarget():
    targets_module = pytest.importorskip("desitarget.targets")
    ra, dec, photsys = resolve_points(seed=3)
    table = np.zeros(ra.size, dtype=[("RA", "f8"), ("DEC", "f8"), ("PHOTSYS", "S1"),
                                     ("ROW", "i8")])
    table["RA"], table["DEC"], table["PHOTSYS"] = ra, dec, photsys
    table["ROW"] = np.arange(ra.size)
    theirs = np.zeros(ra.size, dtype=bool)
    theirs[targets_module.resolve(table)["ROW"]] = True
    ours = resolve_mask(ra, dec, photsys)
    np.testing.assert_array_equal(ours, theirs)
    # bytes PHOTSYS (as astropy reads it) and the catalogue form give the same answer
    np.testing.assert_array_equal(resolve_mask(ra, dec, table["PHOTSYS"]), ours)
    np.testing.assert_array_equal(resolve_catalogue(table), ours)
    # The plane sample matters: an object's own b > 0 would decide differently near it.
    own_rule = (photsys == "N") == ((dec >= RESOLVE_DEC) & (galactic_latitude(ra, dec) > 0))
    assert (own_rule != ours).sum() > 100


def test_resolve_from_release_equals_desitarget():
    targets_module = pytest.importorskip("desitarget.targets")
    ra, dec, photsys = resolve_points(seed=4)
    release = np.where(photsys == "N", 9011, 9010).astype(np.int16)
    table = np.zeros(ra.size, dtype=[("RA", "f8"), ("DEC", "f8"), ("RELEASE", "i2"),
                                     ("ROW", "i8")])
    table["RA"], table["DEC"], table["RELEASE"] = ra, dec, release
    table["ROW"] = np.arange(ra.size)
    theirs = np.zeros(ra.size, dtype=bool)
    theirs[targets_module.resolve(table)["ROW"]] = True
    np.testing.assert_array_equal(resolve_catalogue(table), theirs)
    # DR10.1's 10002 (which desitarget 4.4 does not know) is DECam: south.
    table["RELEASE"] = 10002
    np.testing.assert_array_equal(resolve_catalogue(table),
                                  resolve_mask(ra, dec, np.full(ra.size, "S")))


def test_resolve_rule_without_references():
    # North area needs both Dec >= 32.375 and the north Galactic cap.
    ra = np.array([180.0, 180.0, 180.0, 300.0, 90.0])
    dec = np.array([40.0, RESOLVE_DEC, 30.0, 40.0, 60.0])  # NGC, edge, below, south cap, ...
    north = resolve_mask(ra, dec, ["N"] * 5)
    south = resolve_mask(ra, dec, [" S"] * 5)  # padding ignored
    np.testing.assert_array_equal(north, ~south)
    assert north[:3].tolist() == [True, True, False]
    assert galactic_latitude(300.0, 40.0) > 0 and galactic_latitude(90.0, 60.0) > 0
    # The cap is decided per nside-64 pixel: every point of a pixel gets its centre's answer.
    rng = np.random.default_rng(8)
    r, d = rng.uniform(0, 360, 20_000), rng.uniform(-30, 70, 20_000)
    pixel_ra, pixel_dec = nest_to_radec(radec_to_nest(r, d, RESOLVE_NSIDE), RESOLVE_NSIDE)
    np.testing.assert_array_equal(in_north_galactic_cap(r, d),
                                  galactic_latitude(pixel_ra, pixel_dec) >= 0)
    with pytest.raises(ValueError, match="PHOTSYS must be 'N' or 'S', got ''"):
        resolve_mask([1.0, 2.0], [0.0, 0.0], ["N", ""])
    with pytest.raises(ValueError, match="shape"):
        resolve_mask([1.0, 2.0], [0.0, 0.0], ["N"])


# --- randoms: the file ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def randoms(tmp_path_factory):
    """Two masked randoms files over BOX, and an unmasked one."""
    out = tmp_path_factory.mktemp("randoms")
    files = [generate_randoms(out / f"randoms-1-{k}.fits", BOX, seed=k, mask=MASK)
             for k in range(2)]
    plain = generate_randoms(out / "plain.fits", BOX, seed=7)
    return {"files": files, "plain": plain, "dir": out}


def test_randoms_have_the_dr10_schema_and_stay_in_their_box(randoms):
    summary = randoms["files"][0]
    with fitsio.FITS(summary.path) as fits:
        hdu = fits[1]
        assert hdu.get_extname() == "RANDOMS"
        assert hdu.read_header()["DENSITY"] == 2500.0
        tforms = {name: hdu.read_header()[f"TFORM{i + 1}"].strip()
                  for i, name in enumerate(hdu.get_colnames())}
        data = hdu.read()
    assert list(data.dtype.names) == list(randoms_dtype().names)
    for column in ("RA", "DEC", "BRICKNAME", "NOBS_G", "NOBS_R", "NOBS_I", "NOBS_Z",
                   "MASKBITS", "PHOTSYS", "EBV", "PSFDEPTH_G", "PSFDEPTH_Z", "GALDEPTH_R"):
        assert column in tforms
    assert (tforms["PHOTSYS"], tforms["BRICKNAME"], tforms["MASKBITS"], tforms["NOBS_Z"]) == (
        "1A", "8A", "J", "I")
    assert summary.rows == len(data)
    assert BOX.contains(data["RA"], data["DEC"]).all()
    np.testing.assert_array_equal(np.char.strip(data["BRICKNAME"].astype(str)),
                                  brickname_at(data["RA"], data["DEC"]))
    assert set(np.char.strip(data["PHOTSYS"].astype(str))) == {"S"}
    # Poisson total at 2500 per deg² of the box
    mean = 2500 * summary.area_deg2
    assert abs(summary.rows - mean) < 4 * math.sqrt(mean)
    assert summary.area_deg2 == pytest.approx(
        5 * math.degrees(math.sin(math.radians(5))), rel=1e-12)


def test_randoms_are_uniform_on_the_sphere(randoms):
    data = fitsio.read(randoms["plain"].path, columns=["RA", "DEC"])
    # sin(Dec) and RA uniform: each fifth of the box in RA and in sin(Dec) holds a fifth.
    edges = np.degrees(np.arcsin(np.linspace(0, math.sin(math.radians(5)), 6)))
    for values, bins in ((data["RA"], np.linspace(150, 155, 6)), (data["DEC"], edges)):
        counts, _ = np.histogram(values, bins)
        expected = len(values) / 5
        assert np.all(np.abs(counts - expected) < 4 * math.sqrt(expected))


def test_randoms_are_deterministic_and_the_mask_is_planted(tmp_path, randoms):
    again = generate_randoms(tmp_path / "again.fits", BOX, seed=0, mask=MASK)

    def digest(path):
        return hashlib.sha256(open(path, "rb").read()).hexdigest()

    assert digest(again.path) == digest(randoms["files"][0].path)
    data = fitsio.read(randoms["files"][0].path)
    hole = MASK.in_hole(data["RA"], data["DEC"])
    stripe = MASK.in_stripe(data["DEC"])
    assert hole.sum() > 1000 and stripe.sum() > 1000
    assert (data["MASKBITS"][hole] & 2 == 2).all() and not (data["MASKBITS"][~hole] & 2).any()
    assert (data["NOBS_Z"][stripe] == 0).all() and (data["NOBS_Z"][~stripe] > 0).all()
    assert (data["NOBS_G"] > 0).all() and (data["NOBS_R"] > 0).all()
    # a few harmless bits (not in the DESI mask) are set at random
    harmless = sum(1 << b for b in HARMLESS_BITS)
    assert 0.03 < np.mean(data["MASKBITS"] & harmless != 0) < 0.07


def test_planting_a_mask_in_a_sweep_changes_only_the_masked_columns(tmp_path):
    plain = generate_sweep(tmp_path / "a.fits", BOX, 20_000, seed=3)
    masked = generate_sweep(tmp_path / "b.fits", BOX, 20_000, seed=3, mask=MASK)
    a, b = fitsio.read(plain.path, ext=1), fitsio.read(masked.path, ext=1)
    changed = {"MASKBITS", "NOBS_Z", "PSFDEPTH_Z", "GALDEPTH_Z", "PSFSIZE_Z", "FLUX_IVAR_Z"}
    for name in a.dtype.names:
        if name not in changed:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    hole, stripe = MASK.in_hole(b["RA"], b["DEC"]), MASK.in_stripe(b["DEC"])
    assert hole.any() and stripe.any()
    np.testing.assert_array_equal(b["MASKBITS"], np.where(hole, a["MASKBITS"] | 2,
                                                          a["MASKBITS"]))
    assert (b["NOBS_Z"][stripe] == 0).all()
    np.testing.assert_array_equal(b["NOBS_Z"][~stripe], a["NOBS_Z"][~stripe])


# --- randoms: counting ---------------------------------------------------------------------

@pytest.mark.parametrize("mask_bits", [DESI_MASKBITS_REJECT, 0, 2, 1 << 12])
def test_count_randoms_equals_a_direct_count(randoms, mask_bits):
    path = randoms["files"][0].path
    data = fitsio.read(path)
    keep = ((data["NOBS_G"] > 0) & (data["NOBS_R"] > 0) & (data["NOBS_Z"] > 0)
            & (data["MASKBITS"] & mask_bits == 0))
    names = np.char.strip(data["BRICKNAME"].astype(str))
    expected = pd.DataFrame({"brickname": names, "keep": keep}).groupby("brickname").agg(
        n_total=("keep", "size"), n_kept=("keep", "sum"))
    for fast_path in (True, False):
        counted = count_randoms_per_brick(path, mask_bits, chunk_rows=5000,
                                          fast_path=fast_path)
        assert isinstance(counted, RandomsCount)
        brickname, n_total, n_kept = counted  # unpacks as the brief's triple
        assert brickname.tolist() == expected.index.tolist()
        np.testing.assert_array_equal(n_total, expected["n_total"])
        np.testing.assert_array_equal(n_kept, expected["n_kept"])
    assert (counted.frame().columns.tolist() == ["brickname", "n_randoms", "n_kept"])


def test_count_randoms_from_chunks_and_only_the_needed_columns(tmp_path, randoms):
    data = fitsio.read(randoms["files"][0].path)
    # chunks from any reader (here: slices of the whole table, names as str)
    chunks = ({c: data[c][i:i + 7000] for c in RANDOMS_COLUMNS}
              for i in range(0, len(data), 7000))
    from_chunks = count_randoms_per_brick(chunks)
    from_file = count_randoms_per_brick(randoms["files"][0].path)
    np.testing.assert_array_equal(from_chunks.brickname, from_file.brickname)
    np.testing.assert_array_equal(from_chunks.n_kept, from_file.n_kept)
    # a file with just the five columns counts the same; without MASKBITS it is named
    fitsio.write(str(tmp_path / "five.fits"), data[list(RANDOMS_COLUMNS)], clobber=True)
    np.testing.assert_array_equal(count_randoms_per_brick(tmp_path / "five.fits").n_kept,
                                  from_file.n_kept)
    fitsio.write(str(tmp_path / "four.fits"), data[list(RANDOMS_COLUMNS[:-1])], clobber=True)
    with pytest.raises(SweepError, match=r"four\.fits: missing column MASKBITS"):
        count_randoms_per_brick(tmp_path / "four.fits")
    with pytest.raises(ValueError, match="mask_bits"):
        count_randoms_per_brick(randoms["files"][0].path, mask_bits=-1)
    # a 16-bit MASKBITS (DR9) takes any 31-bit mask
    assert kept_randoms({"NOBS_G": [1], "NOBS_R": [1], "NOBS_Z": [1],
                         "MASKBITS": np.array([2], np.int16)}, 2**20).tolist() == [True]


def test_count_randoms_resolving_north_and_south(tmp_path):
    box = SweepBox(180.0, 185.0, 30.0, 35.0)  # straddles Dec 32.375 in the north cap
    north = generate_randoms(tmp_path / "n.fits", box, 400, seed=1, photsys="N")
    south = generate_randoms(tmp_path / "s.fits", box, 400, seed=2, photsys="S")
    both = [fitsio.read(north.path), fitsio.read(south.path)]
    table = np.concatenate(both)
    expected = resolve_mask(table["RA"], table["DEC"], table["PHOTSYS"])
    assert 0 < expected.sum() < len(table)
    kept = (sum(count_randoms_per_brick(s.path, resolve=True).n_kept.sum()
                for s in (north, south)))
    assert kept == expected.sum()
    # each position is kept once: north above Dec 32.375, south below
    ok = np.concatenate([b["DEC"] >= RESOLVE_DEC if i == 0 else b["DEC"] < RESOLVE_DEC
                         for i, b in enumerate(both)])
    np.testing.assert_array_equal(expected, ok)


# --- effective area ------------------------------------------------------------------------

def box_bricks(box: SweepBox) -> pd.DataFrame:
    from halo_lrg.science.bricks import bricks_overlapping

    bricks = bricks_overlapping(box.ra_min, box.ra_max, box.dec_min, box.dec_max)
    bricks["cra1"] = np.maximum(bricks["ra1"], box.ra_min)
    bricks["cra2"] = np.minimum(bricks["ra2"], box.ra_max)
    bricks["cdec1"] = np.maximum(bricks["dec1"], box.dec_min)
    bricks["cdec2"] = np.minimum(bricks["dec2"], box.dec_max)
    return bricks


def true_areas(bricks: pd.DataFrame, mask_bits: int) -> np.ndarray:
    return np.array([MASK.unmasked_area(r.cra1, r.cra2, r.cdec1, r.cdec2, mask_bits)
                     for r in bricks.itertuples()])


def test_the_planted_mask_area_is_exact():
    # The hole lies inside the box and away from the stripe: a spherical cap, exactly.
    cap = 2 * math.pi * (1 - math.cos(math.radians(MASK.hole_radius))) * (180 / math.pi) ** 2
    box_area = 5 * math.degrees(math.sin(math.radians(5)))
    stripe = 5 * math.degrees(math.sin(math.radians(MASK.stripe_dec_max))
                              - math.sin(math.radians(MASK.stripe_dec_min)))
    whole = MASK.unmasked_area(150, 155, 0, 5)
    assert whole == pytest.approx(box_area - stripe - cap, rel=1e-10)
    assert MASK.unmasked_area(150, 155, 0, 5, mask_bits=0) == pytest.approx(box_area - stripe,
                                                                            rel=1e-12)
    # Brick by brick the pieces add up to the whole.
    bricks = box_bricks(BOX)
    assert true_areas(bricks, DESI_MASKBITS_REJECT).sum() == pytest.approx(whole, rel=1e-10)
    with pytest.raises(ValueError, match="at random"):
        MASK.unmasked_area(150, 155, 0, 5, mask_bits=1 << 11)


@pytest.mark.parametrize("mask_bits", [DESI_MASKBITS_REJECT, 0])
def test_effective_area_equals_the_true_unmasked_area(randoms, mask_bits):
    files = randoms["files"]
    table = area_table(merge_randoms_counts(
        count_randoms_per_brick(s.path, mask_bits).frame() for s in files), len(files))
    assert table.columns.tolist() == AREA_COLUMNS
    # In total: within 4 sigma (Poisson) of box - hole - stripe.
    truth = MASK.unmasked_area(150, 155, 0, 5, mask_bits)
    sigma = float(effective_area_error(table["n_kept"].sum(), len(files)))
    measured = table["area_eff_deg2"].sum()
    assert abs(measured - truth) < 4 * sigma, (measured, truth, sigma)
    assert sigma / truth < 0.004  # two files: 0.3%
    # Brick by brick: each within 5 sigma, and the scatter is Poisson (chi² / dof ~ 1).
    bricks = box_bricks(BOX)
    bricks["truth"] = true_areas(bricks, mask_bits)
    merged = bricks.merge(table, on="brickname", how="left").fillna({"n_kept": 0})
    expected = merged["truth"] * 2500 * len(files)
    seen = expected > 0
    z = (merged["n_kept"][seen] - expected[seen]) / np.sqrt(expected[seen])
    assert np.abs(z).max() < 5.5
    assert np.mean(z**2) == pytest.approx(1.0, abs=0.2)
    assert (merged["n_kept"][~seen] == 0).all()  # wholly masked bricks keep nothing
    if mask_bits:
        inside_hole = merged["truth"] == 0
        assert inside_hole.sum() > 10


def test_density_over_effective_area_is_flat_where_geometric_is_not(randoms, tmp_path):
    # A "galaxy" sample: 600 per deg² through the same mask, counted with the same cuts.
    galaxies = generate_randoms(tmp_path / "galaxies.fits", BOX, 600, seed=99, mask=MASK)
    counted = count_randoms_per_brick(galaxies.path)
    counts = pd.DataFrame({"brickname": counted.brickname, "lrg_count": counted.n_kept})
    files = randoms["files"]
    area = area_table(merge_randoms_counts(count_randoms_per_brick(s.path).frame()
                                           for s in files), len(files))
    table = density_table(counts, area=area)
    assert table.columns.tolist() == [*DENSITY_COLUMNS, "area_eff_deg2", "lrg_density_eff"]
    inside = box_bricks(BOX)
    whole = inside[(inside["cra1"] == inside["ra1"]) & (inside["cra2"] == inside["ra2"])
                   & (inside["cdec1"] == inside["dec1"]) & (inside["cdec2"] == inside["dec2"])]
    table = table[table["brickname"].isin(whole["brickname"])]  # not clipped by the box
    cut = table["area_eff_deg2"] < 0.8 * table["area_deg2"]  # bricks the mask bites into
    clean = table["area_eff_deg2"] > 0.95 * table["area_deg2"]
    assert cut.sum() > 30 and clean.sum() > 100
    geometric = table["lrg_count"][cut].sum() / table["area_deg2"][cut].sum()
    effective = table["lrg_count"][cut].sum() / table["area_eff_deg2"][cut].sum()
    sigma = 600 * math.sqrt(1 / table["lrg_count"][cut].sum()
                            + 1 / (2500 * 2 * table["area_eff_deg2"][cut].sum()))
    assert geometric < 0.7 * 600  # the full-area density dips where the mask bites
    assert abs(effective - 600) < 4 * sigma  # the effective one does not
    clean_density = table["lrg_count"][clean].sum() / table["area_eff_deg2"][clean].sum()
    assert abs(effective - clean_density) < 5 * sigma


def test_effective_area_arithmetic_and_joins():
    assert effective_area(2500, 1) == 1.0
    assert effective_area(5000, 4, density=1250) == 1.0
    np.testing.assert_allclose(effective_area(np.array([0, 250]), 2), [0.0, 0.05])
    assert float(effective_area_error(2500, 1)) == pytest.approx(0.02)
    for bad in ({"n_files": 0}, {"n_files": 1.5}, {"n_files": 1, "density": 0.0}):
        with pytest.raises(ValueError):
            effective_area(1, **{"density": 2500.0, **bad})
    merged = merge_randoms_counts([
        pd.DataFrame({"brickname": ["1501p025", "0001p000"], "n_randoms": [10, 20],
                      "n_kept": [9, 0]}),
        pd.DataFrame({"brickname": ["1501p025 "], "n_randoms": [5], "n_kept": [5]})])
    assert merged.to_dict("list") == {"brickname": ["0001p000", "1501p025"],
                                      "n_randoms": [20, 15], "n_kept": [0, 14]}
    counts = pd.DataFrame({"brickname": ["1501p025", "0001p000", "1503p025"],
                           "lrg_count": [7, 3, 1]})
    area = area_table(merged, n_files=1, density=100.0)
    table = density_table(counts, area=area)
    assert table["area_eff_deg2"].tolist()[:2] == [0.14, 0.0]
    assert table["lrg_density_eff"][0] == pytest.approx(50.0)
    assert np.isnan(table["lrg_density_eff"][1])  # nothing seen: no density
    assert np.isnan(table["area_eff_deg2"][2]) and np.isnan(table["lrg_density_eff"][2])
    # QA columns still follow; today's table is unchanged without an area
    qa = pd.DataFrame({"brickname": ["0001p000"], "EBV": [0.1], "area_eff_deg2": [9.0]})
    with_qa = density_table(counts, qa, area)
    assert with_qa.columns.tolist() == [*DENSITY_COLUMNS, "area_eff_deg2", "lrg_density_eff",
                                        "EBV"]
    plain = density_table(counts)
    assert plain.columns.tolist() == DENSITY_COLUMNS
    pd.testing.assert_frame_equal(plain, table[DENSITY_COLUMNS])
    with pytest.raises(TableError, match="repeats"):
        add_effective_area(plain, pd.concat([area, area]))


def test_read_area_csv(tmp_path):
    path = tmp_path / "area.csv"
    path.write_text("brickname,n_randoms,n_kept,area_eff_deg2\n1501p025,10,9,0.0036\n")
    assert read_area_csv(path)["area_eff_deg2"].tolist() == [0.0036]
    path.write_text("brickname,n_kept\n1501p025,9\n")
    with pytest.raises(TableError, match=r"area\.csv: not an area table \(no area_eff_deg2"):
        read_area_csv(path)
    path.write_text("brickname,area_eff_deg2\n1501p025,-1\n")
    with pytest.raises(TableError, match="finite numbers"):
        read_area_csv(path)
    path.write_text("brickname,area_eff_deg2\n1501p025,1\n1501p025,2\n")
    with pytest.raises(TableError, match="repeats"):
        read_area_csv(path)
    with pytest.raises(TableError, match="no such file"):
        read_area_csv(tmp_path / "nope.csv")
