"""The LRG selections, as specifications: thresholds, edges, NaN and the DESI tables."""

from __future__ import annotations

import math
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from halo_lrg.config import load_config
from halo_lrg.science.cuts import (
    DESI_COLUMNS,
    SELECTION_NAMES,
    SelectionError,
    UnknownReleaseError,
    dereddened_flux,
    get_selection,
    magnitude,
    photsys_from_release,
)

CUTS = load_config().cuts

fluxes = st.one_of(
    st.floats(min_value=-50, max_value=5000, allow_nan=False, width=32),
    st.sampled_from([0.0, -0.0, float("nan"), float("inf"), float("-inf"), 1e-30]),
)
transmissions = st.one_of(st.floats(min_value=0.5, max_value=1.0, width=32),
                          st.sampled_from([0.0, float("nan")]))


def seed_reference(r, z, w1, mw_r, mw_z, mw_w1, z_max=20.4, rz=0.4, zw1=0.8) -> bool:
    """The seed cut for one object, written out with plain floats."""
    def mag(flux, mw):
        if not (math.isfinite(flux) and math.isfinite(mw)) or mw <= 0 or flux / mw <= 0:
            return None
        return 22.5 - 2.5 * math.log10(flux / mw)

    rm, zm, wm = mag(r, mw_r), mag(z, mw_z), mag(w1, mw_w1)
    if None in (rm, zm, wm):
        return False
    return zm < z_max and rm - zm > rz and zm - wm > zw1


def seed_catalogue(rows):
    columns = ("FLUX_R", "FLUX_Z", "FLUX_W1", "MW_TRANSMISSION_R", "MW_TRANSMISSION_Z",
               "MW_TRANSMISSION_W1")
    return {c: np.array([row[i] for row in rows], dtype=">f4") for i, c in enumerate(columns)}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(fluxes, fluxes, fluxes, transmissions, transmissions, transmissions),
                min_size=1, max_size=30))
def test_seed_matches_scalar_definition_and_never_warns(rows):
    cat = seed_catalogue(rows)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mask = get_selection("seed", CUTS)(cat)
    as_f32 = [tuple(float(np.float32(v)) for v in row) for row in rows]
    assert mask.tolist() == [seed_reference(*row) for row in as_f32]


@settings(max_examples=200, deadline=None)
@given(z_mag=st.floats(17, 22), rz=st.floats(0.4, 2.5), zw1=st.floats(0.3, 2.5),
       z_max=st.floats(18, 21.5), min_rz=st.floats(0, 1.5), min_zw1=st.floats(0, 1.5))
def test_seed_thresholds_are_honoured(z_mag, rz, zw1, z_max, min_rz, min_zw1):
    z = 10 ** (-0.4 * (z_mag - 22.5))
    cat = seed_catalogue([(z * 10 ** (-0.4 * rz), z, z * 10 ** (0.4 * zw1), 1.0, 1.0, 1.0)])
    cuts = load_config().replace(cuts={"lrg_z_mag_max": z_max, "lrg_min_r_minus_z": min_rz,
                                       "lrg_min_z_minus_w1": min_zw1}).cuts
    selected = bool(get_selection("seed", cuts)(cat)[0])
    # Away from the edges (float32 fluxes carry ~1e-6 mag of rounding) the answer is exact.
    margins = (z_max - z_mag, rz - min_rz, zw1 - min_zw1)
    if min(abs(m) for m in margins) > 1e-4:
        assert selected == all(m > 0 for m in margins)


def test_seed_edges_are_strict():
    # r - z = 2.5 and z - W1 = 2.5 pass easily; only z sits near its limit of 20.4.
    def at_z(z_mag):
        z = 10 ** (-0.4 * (z_mag - 22.5))
        return (z / 10, z, z * 10, 1.0, 1.0, 1.0)

    sel = get_selection("seed", CUTS)
    assert sel(seed_catalogue([at_z(20.399), at_z(20.401), at_z(20.5)])).tolist() == [
        True, False, False]
    # Colour edges: r - z just above / below 0.4, with z bright.
    z = 10 ** (-0.4 * (19.0 - 22.5))
    rows = [(z * 10 ** (-0.4 * 0.401), z, z * 10, 1, 1, 1),
            (z * 10 ** (-0.4 * 0.399), z, z * 10, 1, 1, 1),
            (z / 10, z, z * 10 ** (0.4 * 0.801), 1, 1, 1),
            (z / 10, z, z * 10 ** (0.4 * 0.799), 1, 1, 1)]
    assert sel(seed_catalogue(rows)).tolist() == [True, False, True, False]


def test_non_positive_and_non_finite_fluxes_never_select():
    good = (100.0, 300.0, 1500.0)
    cat_rows = []
    for band in range(3):
        for bad in (0.0, -5.0, float("nan"), float("inf"), float("-inf")):
            row = [*list(good), 1.0, 1.0, 1.0]
            row[band] = bad
            cat_rows.append(tuple(row))
    sel = get_selection("seed", CUTS)
    assert sel(seed_catalogue([(*good, 1.0, 1.0, 1.0)]))[0]  # the good one passes
    assert not sel(seed_catalogue(cat_rows)).any()


def test_magnitude_and_dereddening():
    np.testing.assert_allclose(magnitude([1.0, 10.0, 100.0]), [22.5, 20.0, 17.5])
    assert np.isnan(magnitude([0.0, -1.0, np.nan, np.inf])).all()
    np.testing.assert_allclose(dereddened_flux([2.0], [0.5]), [4.0])
    assert np.isnan(dereddened_flux([2.0, 2.0], [0.0, np.nan])).all()


# --- DESI ---------------------------------------------------------------------------------------

def desi_row(g=22.0, r=21.0, z=19.5, w1=18.3, zfiber=20.4, **overrides):
    """One object given magnitudes (no extinction); an LRG under both sets of cuts."""
    def flux(mag):
        return 10 ** (-0.4 * (mag - 22.5))

    row = {"FLUX_G": flux(g), "FLUX_R": flux(r), "FLUX_Z": flux(z), "FLUX_W1": flux(w1),
           "FLUX_IVAR_R": 10.0, "FLUX_IVAR_Z": 10.0, "FLUX_IVAR_W1": 1.0,
           "MW_TRANSMISSION_G": 1.0, "MW_TRANSMISSION_R": 1.0, "MW_TRANSMISSION_Z": 1.0,
           "MW_TRANSMISSION_W1": 1.0, "FIBERFLUX_Z": flux(zfiber),
           "FIBERTOTFLUX_Z": flux(zfiber), "GAIA_PHOT_G_MEAN_MAG": 0.0,
           "NOBS_G": 2, "NOBS_R": 2, "NOBS_Z": 2, "MASKBITS": 0, "RELEASE": 10000}
    row.update(overrides)
    return row


def catalogue(rows):
    dtypes = {"NOBS_G": ">i2", "NOBS_R": ">i2", "NOBS_Z": ">i2", "MASKBITS": ">i4",
              "RELEASE": ">i2"}
    return {k: np.array([r[k] for r in rows], dtype=dtypes.get(k, ">f4")) for k in rows[0]}


@pytest.mark.parametrize("name", ["desi-lrg-south", "desi-lrg-north", "desi-lrg"])
def test_desi_typical_lrg_passes_and_each_quality_cut_rejects(name):
    sel = get_selection(name, CUTS)
    assert sel(catalogue([desi_row()]))[0]
    rejections = {
        "no r ivar": {"FLUX_IVAR_R": 0.0},
        "no W1 ivar": {"FLUX_IVAR_W1": 0.0},
        "negative z": {"FLUX_Z": -1.0},
        "zero fibre flux": {"FIBERFLUX_Z": 0.0},
        "bright Gaia star": {"GAIA_PHOT_G_MEAN_MAG": 17.0},
        "too bright in the fibre": {"FIBERTOTFLUX_Z": 10 ** (-0.4 * (17.4 - 22.5))},
        "unobserved in g": {"NOBS_G": 0},
        "BRIGHT mask bit": {"MASKBITS": 1 << 1},
        "GALAXY mask bit": {"MASKBITS": 1 << 12},
        "CLUSTER mask bit": {"MASKBITS": 1 << 13},
        "NaN W1": {"FLUX_W1": float("nan")},
    }
    rows = [desi_row(**change) for change in rejections.values()]
    mask = sel(catalogue(rows))
    assert not mask.any(), [k for k, m in zip(rejections, mask) if m]
    # Faint Gaia matches and other mask bits do not reject.
    assert sel(catalogue([desi_row(GAIA_PHOT_G_MEAN_MAG=19.0, MASKBITS=1 << 5)]))[0]


def test_desi_south_and_north_differ_where_the_table_says():
    # zfiber between the two faint limits (21.6 south, 21.61 north).
    between = desi_row(zfiber=21.605)
    assert not get_selection("desi-lrg-south", CUTS)(catalogue([between]))[0]
    assert get_selection("desi-lrg-north", CUTS)(catalogue([between]))[0]
    # r - W1 = 3.35: above the south override (3.3) but below the north one (3.4), with
    # W1 = 20 so faint that the sliding slope fails (1.8 x (20 - 17.14) = 5.1 > 3.35);
    # z = 21.2 keeps the non-stellar cut (1.2 > 0.8 x 2.15 - 0.6 = 1.12).
    row = desi_row(g=25.0, r=23.35, z=21.2, w1=20.0, zfiber=21.5)
    assert get_selection("desi-lrg-south", CUTS)(catalogue([row]))[0]
    assert not get_selection("desi-lrg-north", CUTS)(catalogue([row]))[0]


def test_desi_non_positive_g_passes_lowz_through_its_g_branch():
    # r - W1 = 1.5 < 1.8 fails the r branch of the low-z cut, but passes the sliding cut
    # (1.5 > 1.8 x (17.5 - 17.14) = 0.65 and 1.5 > 17.5 - 16.33 = 1.17); g <= 0 clips to
    # 40 mag, so g - W1 is huge and the g branch passes.
    row = desi_row(g=22.0, r=19.0, z=18.5, w1=17.5, zfiber=19.5)
    row["FLUX_G"] = 0.0
    sel = get_selection("desi-lrg-south", CUTS)
    assert sel(catalogue([row]))[0]
    row["FLUX_G"] = 10 ** (-0.4 * (20.0 - 22.5))  # g - W1 = 2.5 < 2.9: now low-z fails
    assert not sel(catalogue([row]))[0]


def test_desi_lrg_routes_each_object_by_release_then_photsys():
    between = dict(zfiber=21.605)  # passes north only
    rows = [desi_row(RELEASE=10000, **between), desi_row(RELEASE=10002, **between),
            desi_row(RELEASE=9011, **between)]
    sel = get_selection("desi-lrg", CUTS)
    assert sel(catalogue(rows)).tolist() == [False, False, True]
    cat = catalogue(rows)
    cat["PHOTSYS"] = np.array(["N", "N", "S"])  # PHOTSYS, when present, wins
    assert sel(cat).tolist() == [True, True, False]


def test_unknown_release_is_an_error_or_a_configured_default():
    cat = catalogue([desi_row(RELEASE=1234)])
    with pytest.raises(UnknownReleaseError, match="1234"):
        get_selection("desi-lrg", CUTS)(cat)
    assumed = load_config().replace(cuts={"unknown_release_photsys": "N"}).cuts
    assert get_selection("desi-lrg", assumed)(cat).tolist() == [True]


def test_photsys_map_covers_the_reference_releases():
    assert photsys_from_release([10000, 10002, 9010, 9012, 8000]).tolist() == ["S"] * 5
    assert photsys_from_release([9011, 8001, 6000, 4000]).tolist() == ["N"] * 4


def test_selections_declare_their_columns_and_refuse_unknown_names():
    for name in SELECTION_NAMES:
        sel = get_selection(name, CUTS)
        assert sel.columns and len(set(sel.columns)) == len(sel.columns)
    assert set(DESI_COLUMNS) <= set(get_selection("desi-lrg", CUTS).columns)
    assert "RELEASE" in get_selection("desi-lrg", CUTS).columns
    with pytest.raises(SelectionError, match="unknown selection 'lrg'"):
        get_selection("lrg", CUTS)
    with pytest.raises(KeyError, match="FLUX_W1"):
        get_selection("seed", CUTS)({"FLUX_R": np.ones(1)})


def test_importing_cuts_does_not_import_pyspark_or_fitsio():
    code = ("import sys, halo_lrg.science.cuts; "
            "bad = [m for m in ('pyspark', 'py4j', 'fitsio', 'pandas') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
