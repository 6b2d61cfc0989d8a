"""LRG selections on Legacy Surveys sweep columns: pure numpy, no Spark, no I/O.

Every selection is a :class:`Selection`: a name, the sweep columns it needs, and a vectorised
function from a mapping of column arrays to a boolean mask. Importing this module does not
import pyspark, so notebooks can use it on catalogues read any way they like::

    from halo_lrg.cuts import get_selection
    seed = get_selection("seed")
    mask = seed(catalogue)            # catalogue: dict / structured array / astropy Table

Selections:

``seed``
    The original halo-lrg cut on dereddened AB magnitudes: ``z < lrg_z_mag_max`` (20.4),
    ``r - z > lrg_min_r_minus_z`` (0.4), ``z - W1 > lrg_min_z_minus_w1`` (0.8).
``desi-lrg-south`` / ``desi-lrg-north``
    The DESI main-survey LRG target selection (desitarget ``cuts.isLRG``; Zhou et al. 2023,
    AJ 165, 58) with its quality mask, for DECam and BASS/MzLS photometry respectively.
``desi-lrg``
    The DESI selection choosing south or north per object from ``PHOTSYS`` when the file has
    it, else from ``RELEASE`` (sweeps since DR9 carry no PHOTSYS).

No value raises or warns. What a non-finite or non-positive value does:

``seed``
    An object whose dereddened r, z or W1 flux is non-positive, NaN or infinite (a zero or
    non-finite MW_TRANSMISSION included) is never selected.
``desi-lrg*``
    Exactly as desitarget's ``isLRG`` (fluxes divided by MW_TRANSMISSION as desitarget's own
    reader divides them, then compared in float32; ``tests/test_hostile.py`` checks each case
    against desitarget):

    * NaN in FLUX_R, FLUX_Z, FLUX_W1, FIBERFLUX_Z, their MW_TRANSMISSION, FLUX_IVAR_R/Z/W1,
      GAIA_PHOT_G_MEAN_MAG or FIBERTOTFLUX_Z never selects (every comparison with NaN is
      false).
    * A zero, negative or -inf dereddened r, z, W1 or zfiber flux never selects (the quality
      mask wants them positive); nor does +inf r or z (the colour cuts fail).
    * **+inf W1 or +inf zfiber can select**: their magnitudes are -inf, which passes every cut
      they enter. A finite FLUX_W1 over MW_TRANSMISSION_W1 = 0 is +inf W1.
    * The g flux enters only the low-z cut's ``g - W1`` branch, which ``r - W1`` can stand in
      for: an object passing on ``r - W1`` is selected whatever g is (NaN, infinite, zero,
      negative; MW_TRANSMISSION_G likewise). A zero or negative g clips to 1e-7 nanomaggies
      (g = 40 mag), which passes ``g - W1``; NaN or +inf g fails it.
    * FIBERTOTFLUX_Z is only a bright limit: zero, negative and -inf pass it, +inf fails.
    * +inf FLUX_IVAR_R/Z/W1 passes (> 0); +inf GAIA_PHOT_G_MEAN_MAG passes (> 18).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

from halo_lrg.config import CutsConfig

__all__ = [
    "AB_ZEROPOINT", "DESI_COLUMNS", "DESI_FLUX_FLOOR", "DESI_GAIA_G_BRIGHT_LIMIT",
    "DESI_LRG_NORTH", "DESI_LRG_SOUTH", "DESI_MASKBITS_REJECT", "DESI_ZFIBERTOT_BRIGHT_LIMIT",
    "NORTH_RELEASES", "SEED_COLUMNS", "SELECTION_NAMES", "SOUTH_RELEASES", "DesiLrgColourCuts",
    "Selection", "SelectionError", "UnknownReleaseError", "dereddened_flux", "desi_lrg",
    "desi_lrg_colours", "desi_lrg_quality", "get_selection", "is_south", "magnitude",
    "photsys_from_release", "seed_lrg",
]

#: Zero point of Legacy Surveys fluxes (nanomaggies) on the AB magnitude scale.
AB_ZEROPOINT = 22.5

# RELEASE -> photometric system (reference §1). DR10.1's re-processed bricks are 10002.
SOUTH_RELEASES = frozenset(
    {3000, 5000, 7000, 7999, 8000, 9000, 9002, 9004, 9006, 9008, 9010, 9012, 10000, 10002})
NORTH_RELEASES = frozenset({4000, 6000, 8001, 9001, 9003, 9005, 9007, 9009, 9011, 9013})


class UnknownReleaseError(ValueError):
    """A RELEASE value the photometric-system map does not know."""


class SelectionError(ValueError):
    """An unknown selection name or an invalid threshold."""


def magnitude(flux: Any) -> np.ndarray:
    """AB magnitude of a flux in nanomaggies; NaN where the flux is non-positive or not finite."""
    flux = np.asarray(flux)
    dtype = np.result_type(flux.dtype, np.float32)
    out = np.full(flux.shape, np.nan, dtype=dtype)
    ok = np.isfinite(flux) & (flux > 0)
    out[ok] = AB_ZEROPOINT - 2.5 * np.log10(flux[ok])
    return out


def dereddened_flux(flux: Any, mw_transmission: Any) -> np.ndarray:
    """Flux corrected for Galactic extinction: ``FLUX_X / MW_TRANSMISSION_X``.

    A zero or non-finite transmission gives NaN (never selected), not a division warning.
    """
    flux = np.asarray(flux)
    mw = np.asarray(mw_transmission)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = flux / mw
    out[~(np.isfinite(mw) & (mw > 0))] = np.nan
    return out


def photsys_from_release(release: Any, unknown: str = "") -> np.ndarray:
    """``'S'`` or ``'N'`` per object from its RELEASE.

    An unknown release raises :class:`UnknownReleaseError` listing the values, unless
    ``unknown`` is ``'S'`` or ``'N'``, which is then assumed for them.
    """
    release = np.asarray(release).astype(np.int64, copy=False)
    if release.size == 0:
        return np.array([], dtype="<U1")
    # A catalogue holds a handful of RELEASE values over a small range: find them with a
    # histogram (O(n), no sort), classify those few, and map back through a lookup table.
    low = int(release.min())
    offsets = release - low
    values = np.flatnonzero(np.bincount(offsets)) + low
    south = np.isin(values, list(SOUTH_RELEASES))
    north = np.isin(values, list(NORTH_RELEASES))
    unknown_values = values[~(south | north)]
    if unknown_values.size and unknown not in ("S", "N"):
        shown = ", ".join(str(v) for v in unknown_values[:10])
        raise UnknownReleaseError(
            f"unknown RELEASE value(s) {shown}: cannot tell south (DECam) from north "
            "(BASS/MzLS); set cuts.unknown_release_photsys to 'S' or 'N' to assume one")
    if unknown == "S":
        south |= ~north
    table = np.full(int(values[-1]) - low + 1, "N", dtype="<U1")
    table[values[south] - low] = "S"
    return table[offsets]


def _column(cat: Mapping[str, Any], name: str) -> np.ndarray:
    # Sweeps are big-endian; numpy handles that transparently, so no byte swapping here.
    return np.asarray(cat[name])


@dataclass(frozen=True)
class Selection:
    """A named LRG selection: ``selection(catalogue) -> bool array``."""

    name: str
    columns: tuple[str, ...]
    function: Callable[[Mapping[str, Any]], np.ndarray] = field(repr=False)
    #: Columns used when present (``PHOTSYS`` for ``desi-lrg``), never required.
    optional_columns: tuple[str, ...] = ()
    description: str = ""
    #: Thresholds and choices that define it, for the run manifest.
    parameters: Mapping[str, Any] = field(default_factory=dict)

    def __call__(self, catalogue: Mapping[str, Any]) -> np.ndarray:
        missing = [c for c in self.columns if c not in _names(catalogue)]
        if missing:
            raise KeyError(f"selection {self.name!r} needs column(s) {', '.join(missing)}")
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            return np.asarray(self.function(catalogue), dtype=bool)


def _names(catalogue: Mapping[str, Any]) -> set[str]:
    names = getattr(getattr(catalogue, "dtype", None), "names", None)
    if names is not None:
        return set(names)
    if hasattr(catalogue, "colnames"):  # astropy Table
        return set(catalogue.colnames)
    return set(catalogue.keys())


# --- the seed selection -------------------------------------------------------------------

SEED_COLUMNS = ("FLUX_R", "FLUX_Z", "FLUX_W1",
                "MW_TRANSMISSION_R", "MW_TRANSMISSION_Z", "MW_TRANSMISSION_W1")


def seed_lrg(
    cat: Mapping[str, Any],
    lrg_z_mag_max: float,
    lrg_min_r_minus_z: float,
    lrg_min_z_minus_w1: float,
) -> np.ndarray:
    """The seed cut: dereddened ``z < z_max``, ``r - z > min_rz``, ``z - W1 > min_zw1``.

    Computed in float64 so a threshold means what it says to the last digit the catalogue
    holds; NaN magnitudes (non-positive or non-finite fluxes) compare false and never select.
    """
    def mag(band: str) -> np.ndarray:
        flux = dereddened_flux(_column(cat, f"FLUX_{band}").astype(np.float64),
                               _column(cat, f"MW_TRANSMISSION_{band}").astype(np.float64))
        return magnitude(flux)

    r, z, w1 = mag("R"), mag("Z"), mag("W1")
    return (z < lrg_z_mag_max) & (r - z > lrg_min_r_minus_z) & (z - w1 > lrg_min_z_minus_w1)


# --- the DESI main-survey selection -------------------------------------------------------

@dataclass(frozen=True)
class DesiLrgColourCuts:
    """The constants that differ between the DESI south and north LRG selections."""

    zfiber_max: float
    lowz_g_w1_min: float
    lowz_r_w1_min: float
    sliding_slope: float
    sliding_w1_pivot: float
    sliding_w1_offset: float
    sliding_r_w1_override: float


# Zhou et al. 2023 (AJ 165, 58), table 1; desitarget cuts.isLRG_colors.
DESI_LRG_SOUTH = DesiLrgColourCuts(21.6, 2.9, 1.8, 1.8, 17.14, 16.33, 3.3)
DESI_LRG_NORTH = DesiLrgColourCuts(21.61, 2.97, 1.8, 1.83, 17.13, 16.31, 3.4)
DESI_NONSTELLAR_SLOPE, DESI_NONSTELLAR_OFFSET = 0.8, 0.6
DESI_ZFIBERTOT_BRIGHT_LIMIT = 17.5  # magnitude; FIBERTOTFLUX_Z is not dereddened
DESI_GAIA_G_BRIGHT_LIMIT = 18.0     # 0 means "no Gaia match" and passes
DESI_MASKBITS_REJECT = (1 << 1) | (1 << 12) | (1 << 13)  # BRIGHT, GALAXY, CLUSTER = 12290
DESI_FLUX_FLOOR = 1e-7              # desitarget clips fluxes here before log10

DESI_COLUMNS = (
    "FLUX_G", "FLUX_R", "FLUX_Z", "FLUX_W1",
    "FLUX_IVAR_R", "FLUX_IVAR_Z", "FLUX_IVAR_W1",
    "MW_TRANSMISSION_G", "MW_TRANSMISSION_R", "MW_TRANSMISSION_Z", "MW_TRANSMISSION_W1",
    "FIBERFLUX_Z", "FIBERTOTFLUX_Z", "GAIA_PHOT_G_MEAN_MAG",
    "NOBS_G", "NOBS_R", "NOBS_Z", "MASKBITS",
)


def _desi_fluxes(cat: Mapping[str, Any]) -> dict[str, np.ndarray]:
    # float32 throughout, as desitarget computes on the catalogue's own type.
    def col(name: str) -> np.ndarray:
        return _column(cat, name).astype(np.float32, copy=False)

    return {
        "g": col("FLUX_G") / col("MW_TRANSMISSION_G"),
        "r": col("FLUX_R") / col("MW_TRANSMISSION_R"),
        "z": col("FLUX_Z") / col("MW_TRANSMISSION_Z"),
        "w1": col("FLUX_W1") / col("MW_TRANSMISSION_W1"),
        "zfiber": col("FIBERFLUX_Z") / col("MW_TRANSMISSION_Z"),
        "zfibertot": col("FIBERTOTFLUX_Z"),
    }


def desi_lrg_quality(cat: Mapping[str, Any], fluxes: Optional[dict] = None) -> np.ndarray:
    """desitarget's ``notinLRG_mask``: positive fluxes with positive ivar, observed in g, r
    and z, no bright Gaia star, not too bright in the fibre, outside bright-star/galaxy masks."""
    f = fluxes or _desi_fluxes(cat)
    ok = (_column(cat, "FLUX_IVAR_R") > 0) & (f["r"] > 0)
    ok &= (_column(cat, "FLUX_IVAR_Z") > 0) & (f["z"] > 0) & (f["zfiber"] > 0)
    ok &= (_column(cat, "FLUX_IVAR_W1") > 0) & (f["w1"] > 0)
    gaia_g = _column(cat, "GAIA_PHOT_G_MEAN_MAG")
    ok &= (gaia_g == 0) | (gaia_g > DESI_GAIA_G_BRIGHT_LIMIT)
    ok &= f["zfibertot"] < np.float32(10 ** (-0.4 * (DESI_ZFIBERTOT_BRIGHT_LIMIT - AB_ZEROPOINT)))
    ok &= (_column(cat, "NOBS_G") > 0) & (_column(cat, "NOBS_R") > 0)
    ok &= _column(cat, "NOBS_Z") > 0
    ok &= (_column(cat, "MASKBITS").astype(np.int64) & DESI_MASKBITS_REJECT) == 0
    return ok


def desi_lrg_colours(fluxes: Mapping[str, np.ndarray], cuts: DesiLrgColourCuts) -> np.ndarray:
    """desitarget's ``isLRG_colors`` on dereddened fluxes (clipped at 1e-7 nanomaggies)."""
    def mag(band: str) -> np.ndarray:
        # NaN stays NaN through clip, and every comparison with NaN is false.
        return np.float32(AB_ZEROPOINT) - np.float32(2.5) * np.log10(
            np.clip(fluxes[band], np.float32(DESI_FLUX_FLOOR), None))

    g, r, z, w1, zfiber = mag("g"), mag("r"), mag("z"), mag("w1"), mag("zfiber")
    lrg = z - w1 > DESI_NONSTELLAR_SLOPE * (r - z) - DESI_NONSTELLAR_OFFSET  # non-stellar
    lrg &= zfiber < cuts.zfiber_max                                          # faint limit
    lrg &= (g - w1 > cuts.lowz_g_w1_min) | (r - w1 > cuts.lowz_r_w1_min)     # low-z
    lrg &= (((r - w1 > (w1 - cuts.sliding_w1_pivot) * cuts.sliding_slope)    # sliding cut
             & (r - w1 > w1 - cuts.sliding_w1_offset))
            | (r - w1 > cuts.sliding_r_w1_override))
    return lrg


def desi_lrg(cat: Mapping[str, Any], south: Any = True) -> np.ndarray:
    """DESI main-survey LRGs. ``south`` is a bool or a per-object bool array."""
    fluxes = _desi_fluxes(cat)
    quality = desi_lrg_quality(cat, fluxes)
    south = np.asarray(south, dtype=bool)
    if south.ndim == 0:
        cuts = DESI_LRG_SOUTH if south else DESI_LRG_NORTH
        return quality & desi_lrg_colours(fluxes, cuts)
    return quality & np.where(south, desi_lrg_colours(fluxes, DESI_LRG_SOUTH),
                              desi_lrg_colours(fluxes, DESI_LRG_NORTH))


def is_south(cat: Mapping[str, Any], unknown_release_photsys: str = "") -> np.ndarray:
    """Per-object south flag: from PHOTSYS when present, else from RELEASE."""
    if "PHOTSYS" in _names(cat):
        photsys = np.char.strip(np.asarray(cat["PHOTSYS"]).astype(str))
        return photsys == "S"
    return photsys_from_release(_column(cat, "RELEASE"), unknown_release_photsys) == "S"


# --- the registry ----------------------------------------------------------------------------

SELECTION_NAMES = ("seed", "desi-lrg", "desi-lrg-south", "desi-lrg-north")


def get_selection(name: str, cuts: Optional[CutsConfig] = None) -> Selection:
    """The selection called ``name``, with thresholds from ``cuts`` (default: ``conf/``)."""
    if cuts is None:
        from halo_lrg.config import load_config

        cuts = load_config().cuts
    if name == "seed":
        thresholds = {"lrg_z_mag_max": cuts.lrg_z_mag_max,
                      "lrg_min_r_minus_z": cuts.lrg_min_r_minus_z,
                      "lrg_min_z_minus_w1": cuts.lrg_min_z_minus_w1}
        bad = {k: v for k, v in thresholds.items() if not np.isfinite(v)}
        if bad:
            raise SelectionError(f"seed thresholds must be finite numbers, got {bad}")
        return Selection(
            "seed", SEED_COLUMNS, lambda cat: seed_lrg(cat, **thresholds),
            description="dereddened z < {lrg_z_mag_max}, r - z > {lrg_min_r_minus_z}, "
                        "z - W1 > {lrg_min_z_minus_w1}".format(**thresholds),
            parameters=thresholds)
    if name in ("desi-lrg-south", "desi-lrg-north"):
        south = name.endswith("south")
        constants = DESI_LRG_SOUTH if south else DESI_LRG_NORTH
        return Selection(
            name, DESI_COLUMNS, lambda cat: desi_lrg(cat, south=south),
            description=f"DESI main-survey LRGs, {'south (DECam)' if south else 'north'} cuts",
            parameters={"photsys": "S" if south else "N", **vars(constants)})
    if name == "desi-lrg":
        unknown = cuts.unknown_release_photsys
        if unknown not in ("", "S", "N"):
            raise SelectionError(
                f"cuts.unknown_release_photsys must be '', 'S' or 'N', got {unknown!r}")
        return Selection(
            name, (*DESI_COLUMNS, "RELEASE"),
            lambda cat: desi_lrg(cat, south=is_south(cat, unknown)),
            optional_columns=("PHOTSYS",),
            description="DESI main-survey LRGs, south or north per object (PHOTSYS or RELEASE)",
            parameters={"unknown_release_photsys": unknown})
    raise SelectionError(
        f"unknown selection {name!r}; choose one of: {', '.join(SELECTION_NAMES)}")
