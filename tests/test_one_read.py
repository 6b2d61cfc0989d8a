"""Several selections counted in one read give exactly what each gives counted alone.

Counting several selections shares work between them (SharedColumns); DESI's selection is
evaluated in steps on the rows its cheaper cuts leave, and a chunk read lazily decodes its
other columns at those rows only (fits.layout.RecordColumns). None of that may change a
count: these tests count random selections together and alone, on files and catalogues whose
values straddle every DESI threshold and include the hostile ones (NaN, infinities, zero and
negative fluxes, zero transmissions), and hold DESI's built-in selections to desitarget.
"""

from __future__ import annotations

import logging

import fitsio
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from halo_lrg.config import load_config
from halo_lrg.count.local import count_sparse, count_sweep_file
from halo_lrg.fits.layout import RecordColumns
from halo_lrg.fits.reader import iter_column_chunks, sweep_layout
from halo_lrg.science.cuts import (
    DESI_COLUMNS,
    DESI_SPARSE_COLUMNS,
    SharedColumns,
    get_selections,
)
from halo_lrg.science.footprint import Footprint
from halo_lrg.survey.synth import dr10_dtype
from test_cuts_vs_desitarget import random_catalogue

#: Variants whose thresholds differ from the built-in selections' in every DESI cut (fainter
#: and brighter fibre limits, another sliding cut and low-z limit), and the seed's.
VARIANTS = {
    "z20p2": {"base": "seed", "lrg_z_mag_max": 20.2},
    "faint": {"base": "desi-lrg-south", "zfiber_max": 21.9},
    "bright": {"base": "desi-lrg-south", "zfiber_max": 20.9, "lowz_g_w1_min": 3.1},
    "slide": {"base": "desi-lrg-north", "sliding_r_w1_override": 3.0, "sliding_slope": 1.6,
              "lowz_r_w1_min": 1.5},
    "any-n": {"base": "desi-lrg", "unknown_release_photsys": "N"},
}
POOL = ["seed", "desi-lrg-south", "desi-lrg-north", "desi-lrg", *VARIANTS]
CUTS = load_config(env={}).cuts
BRICKS = np.array([b"1501p025", b"1501p027", b"1503p025", b"1504p027", b"1506p030"])


def catalogue(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """DR10 columns (big-endian, as a sweep stores them) scattered around every DESI
    threshold (test_cuts_vs_desitarget's), with hostile values, infinities included, mixed
    into every column a cut reads, and releases of both hemispheres."""
    cat = random_catalogue(rng, n)
    hostile = np.array([0.0, -3.0, np.nan, np.inf, -np.inf], dtype=">f4")
    for name in [c for c in DESI_COLUMNS if not c.startswith(("NOBS", "MASKBITS"))]:
        hit = rng.random(n) < 0.01
        cat[name][hit] = rng.choice(hostile, hit.sum())
    cat["RELEASE"] = rng.choice(np.array([10000, 9011], dtype=">i2"), n)  # south and north
    return cat


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A DR10-schema sweep of such rows: grouped by brick, then a shuffled tail."""
    rng = np.random.default_rng(20240516)
    n = 4000
    rows = np.zeros(n, dtype=dr10_dtype())
    for name, values in catalogue(rng, n).items():
        rows[name] = values
    rows["BRICKNAME"] = np.r_[np.repeat(BRICKS, 600), rng.choice(BRICKS, n - 3000)]
    rows["RA"] = rng.uniform(150.0, 151.0, n)
    rows["DEC"] = rng.uniform(2.0, 3.5, n)
    path = tmp_path_factory.mktemp("one-read") / "sweep-150p000-155p005.fits"
    fitsio.write(str(path), rows, extname="SWEEP", clobber=True)
    return path


@settings(max_examples=25, deadline=None)
@given(names=st.lists(st.sampled_from(POOL), min_size=2, max_size=len(POOL), unique=True),
       chunk_rows=st.sampled_from([50, 333, 1000, 4000]), fast=st.booleans(),
       footprint=st.booleans(), resolve=st.booleans())
def test_several_selections_in_one_read_count_as_each_alone(sweep, names, chunk_rows, fast,
                                                             footprint, resolve):
    selections = get_selections(names, CUTS, VARIANTS)
    area = Footprint(150.2, 150.9, 2.2, 3.3) if footprint else None
    together = count_sweep_file(sweep, selections, chunk_rows, fast, area, resolve=resolve)
    assert together.selections == tuple(names)
    for k, selection in enumerate(selections):
        alone = count_sweep_file(sweep, selection, chunk_rows, fast, area, resolve=resolve)
        np.testing.assert_array_equal(together.brickname, alone.brickname)
        np.testing.assert_array_equal(together.n_objects, alone.n_objects)
        np.testing.assert_array_equal(together.lrg_counts[k], alone.lrg_count,
                                      err_msg=selection.name)
        if resolve:
            np.testing.assert_array_equal(together.dropped_counts[k], alone.dropped_counts[0],
                                          err_msg=selection.name)
    assert together.lrg_counts.sum() > 0


def test_desi_counts_of_a_lazily_read_file_are_desitarget_s(sweep):
    desitarget_cuts = pytest.importorskip("desitarget.cuts")
    logging.getLogger("desitarget").setLevel(logging.ERROR)
    table = fitsio.read(str(sweep), ext="SWEEP")
    selections = get_selections("seed,desi-lrg-south,desi-lrg-north,desi-lrg", CUTS)
    counted = count_sweep_file(sweep, selections, 700, True)
    with np.errstate(all="ignore"):
        in_south, in_north = (np.asarray(desitarget_isLRG(desitarget_cuts, table, south),
                                         dtype=bool) for south in (True, False))
    routed = np.where(table["RELEASE"] == 10000, in_south, in_north)  # 9011: north
    for k, theirs in ((1, in_south), (2, in_north), (3, routed)):
        names, per_brick = np.unique(np.char.rstrip(table["BRICKNAME"].astype("U")),
                                     return_inverse=True)
        expected = np.bincount(per_brick, theirs, names.size).astype(np.int64)
        np.testing.assert_array_equal(counted.brickname, names)
        np.testing.assert_array_equal(counted.lrg_counts[k], expected)
        assert expected.sum() > 0


def desitarget_isLRG(desitarget_cuts, cat, south: bool) -> np.ndarray:
    def dered(flux, mw):  # as desitarget's own reader divides them
        return cat[flux] / cat[mw]

    return desitarget_cuts.isLRG(
        gflux=dered("FLUX_G", "MW_TRANSMISSION_G"), rflux=dered("FLUX_R", "MW_TRANSMISSION_R"),
        zflux=dered("FLUX_Z", "MW_TRANSMISSION_Z"), w1flux=dered("FLUX_W1", "MW_TRANSMISSION_W1"),
        zfiberflux=dered("FIBERFLUX_Z", "MW_TRANSMISSION_Z"),
        rfluxivar=cat["FLUX_IVAR_R"], zfluxivar=cat["FLUX_IVAR_Z"],
        w1fluxivar=cat["FLUX_IVAR_W1"], gaiagmag=cat["GAIA_PHOT_G_MEAN_MAG"],
        gnobs=cat["NOBS_G"], rnobs=cat["NOBS_R"], znobs=cat["NOBS_Z"],
        maskbits=cat["MASKBITS"], zfibertotflux=cat["FIBERTOTFLUX_Z"], south=south)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.sampled_from([1, 7, 500, 3000]),
       names=st.permutations(POOL))
def test_selections_sharing_a_catalogue_select_as_each_alone(seed, n, names):
    cat = catalogue(np.random.default_rng(seed), n)
    selections = get_selections(names, CUTS, VARIANTS)
    shared = SharedColumns(cat)
    for selection in selections:
        np.testing.assert_array_equal(selection(shared), selection(cat),
                                      err_msg=selection.name)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_desi_hemispheres_found_together_are_desitarget_s(seed):
    desitarget_cuts = pytest.importorskip("desitarget.cuts")
    logging.getLogger("desitarget").setLevel(logging.ERROR)
    cat = catalogue(np.random.default_rng(seed), 4000)
    shared = SharedColumns(cat)
    south, north = get_selections("desi-lrg-south,desi-lrg-north", CUTS)
    for selection, is_south in ((north, False), (south, True)):  # north first: both found
        with np.errstate(all="ignore"):
            theirs = np.asarray(desitarget_isLRG(desitarget_cuts, cat, is_south), dtype=bool)
        assert theirs.any()
        np.testing.assert_array_equal(selection(shared), theirs, err_msg=selection.name)


def test_a_lazy_chunk_decodes_sparse_columns_only_at_the_rows_read(sweep):
    selections = get_selections("seed,desi-lrg-south", CUTS)
    assert set(count_sparse(selections)) == set(DESI_SPARSE_COLUMNS) - {"FLUX_Z",
                                                                         "MW_TRANSMISSION_Z"}
    eager = next(iter_column_chunks(str(sweep), DESI_COLUMNS, 1000))
    chunks = iter_column_chunks(str(sweep), DESI_COLUMNS, 1000, lazy=DESI_SPARSE_COLUMNS)
    lazy = next(chunks)
    assert isinstance(lazy, RecordColumns) and list(lazy) == list(eager)
    rows = np.array([0, 3, 3, 998, 17])
    at_rows = lazy.columns_rows(["FLUX_G", "FLUX_R", "MASKBITS"], rows)
    for name in ("FLUX_G", "FLUX_R", "MASKBITS"):
        np.testing.assert_array_equal(at_rows[name], eager[name][rows])
        assert at_rows[name].dtype == eager[name].dtype
    np.testing.assert_array_equal(lazy["NOBS_Z"], eager["NOBS_Z"])  # decoded whole, now
    next(chunks)  # the reader moves on: the first chunk's buffer now holds the second's rows
    np.testing.assert_array_equal(lazy["FLUX_R"], eager["FLUX_R"])  # decoded before
    np.testing.assert_array_equal(lazy["NOBS_Z"], eager["NOBS_Z"])
    with pytest.raises(RuntimeError, match="FLUX_IVAR_R"):
        lazy["FLUX_IVAR_R"]
    with pytest.raises(RuntimeError, match="GAIA_PHOT_G_MEAN_MAG"):
        lazy.columns_rows(["GAIA_PHOT_G_MEAN_MAG"], rows)
    assert sweep_layout(str(sweep)).nrows == 4000


def neighbours(value: float, count: int) -> np.ndarray:
    """The ``count`` float32 values either side of ``value`` (as float32), in order."""
    middle = np.array([value], np.float32).view(np.int32)[0]
    return (middle + np.arange(-count, count + 1, dtype=np.int32)).view(np.float32)


def magnitude32(flux: np.ndarray) -> np.ndarray:
    """desitarget's float32 magnitude of a float32 flux."""
    return np.float32(22.5) - np.float32(2.5) * np.log10(flux.clip(np.float32(1e-7)))


def flux32(mag) -> np.ndarray:
    return np.asarray(10 ** (-0.4 * (np.asarray(mag, float) - 22.5)), np.float32)


def lrgs(n: int, g=22.0, r=21.0, z=19.5, w1=18.3, zfiber=20.4) -> dict[str, np.ndarray]:
    """``n`` objects that are DESI LRGs under both hemispheres' cuts, from magnitudes (or
    float32 flux arrays, as given)."""
    def column(value) -> np.ndarray:
        value = np.asarray(value)
        return np.broadcast_to(value if value.dtype == np.float32 else flux32(value), n)

    cat = {"FLUX_G": column(g), "FLUX_R": column(r), "FLUX_Z": column(z),
           "FLUX_W1": column(w1), "FIBERFLUX_Z": column(zfiber),
           "FIBERTOTFLUX_Z": column(zfiber)}
    cat = {name: values.astype(">f4") for name, values in cat.items()}
    for name in DESI_COLUMNS:
        if name not in cat:
            kind = ">i2" if name.startswith("NOBS") else ">i4" if name == "MASKBITS" else ">f4"
            fill = 0 if name in ("GAIA_PHOT_G_MEAN_MAG", "MASKBITS") else \
                5 if name.startswith("FLUX_IVAR") else 1
            cat[name] = np.full(n, fill, kind)
    cat["RELEASE"] = np.full(n, 10000, ">i2")
    return cat


def rows_at_boundaries() -> dict[str, np.ndarray]:
    """DESI LRGs but for one or two quantities, stepped a float32 at a time across a
    threshold, values equal to the float32 threshold included: the fibre magnitude across
    both faint limits (21.6, 21.61), which split the rows DESI's second step looks at; r and
    W1 across the south's sliding cut (its slope, offset and override), which splits its
    first."""
    parts = []
    for limit in (21.6, 21.61):
        fibres = neighbours(flux32(limit), 2000)
        assert (magnitude32(fibres) == np.float32(limit)).any()
        parts.append(lrgs(fibres.size, zfiber=fibres))
    # r - W1 against 1.8 (W1 - 17.14) at W1 ~ 18.5, and against W1 - 16.33 at W1 ~ 17.5
    # (where the offset binds: g - W1 passes the low-z cut there, z the non-stellar one).
    for mags, rhs in (({"w1": 18.5, "r": 20.948}, lambda w: (w - np.float32(17.14))
                       * np.float32(1.8)),
                      ({"w1": 17.5, "r": 18.67, "z": 18.0, "zfiber": 19.0, "g": 21.0},
                       lambda w: w - np.float32(16.33))):
        w1, r = neighbours(flux32(mags["w1"]), 150), neighbours(flux32(mags["r"]), 150)
        r, w1 = (grid.ravel() for grid in np.meshgrid(r, w1, indexing="ij"))
        difference = magnitude32(r) - magnitude32(w1) - rhs(magnitude32(w1))
        assert (difference == 0).any() and (difference > 0).any() and (difference < 0).any()
        parts.append(lrgs(r.size, **{**mags, "r": r, "w1": w1}))
    # r - W1 against the south's override (3.3) at W1 = 20, where nothing else in the
    # sliding cut passes (a difference of magnitudes near 23 and 20 never equals float32
    # 3.3 exactly: the values either side of it).
    w1 = magnitude32(flux32([20.0]))[0]
    r = neighbours(flux32(23.3), 2000)
    assert (magnitude32(r) - w1 > np.float32(3.3)).any()
    assert (magnitude32(r) - w1 < np.float32(3.3)).any()
    parts.append(lrgs(r.size, g=25.0, r=r, z=21.2, w1=20.0, zfiber=21.5))
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def test_objects_exactly_at_the_thresholds_that_split_desi_s_steps_are_desitarget_s():
    desitarget_cuts = pytest.importorskip("desitarget.cuts")
    logging.getLogger("desitarget").setLevel(logging.ERROR)
    cat = rows_at_boundaries()
    shared = SharedColumns(cat)
    south, north = get_selections("desi-lrg-south,desi-lrg-north", CUTS)
    for selection, is_south in ((south, True), (north, False)):
        with np.errstate(all="ignore"):
            theirs = np.asarray(desitarget_isLRG(desitarget_cuts, cat, is_south), dtype=bool)
        assert theirs.any() and not theirs.all()  # each range crosses a threshold
        np.testing.assert_array_equal(selection(cat), theirs, err_msg=selection.name)
        np.testing.assert_array_equal(selection(shared), theirs, err_msg=selection.name)
