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

Named variants (the configuration's ``[selections]`` tables) start from one of these and
override thresholds: ``z20p2 = {base = "seed", lrg_z_mag_max = 20.2}``
(:func:`selection_variant`); a variant's name works wherever a built-in one does.
:func:`get_selections` takes several names (``"seed,desi-lrg,z20p2"``) for counting them in
one read of each file; :meth:`Selection.definition` says what each is, for the manifest.

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

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

import numpy as np

from halo_lrg.config import Config, ConfigError, CutsConfig

__all__ = [
    "AB_ZEROPOINT", "DESI_COLUMNS", "DESI_FLUX_FLOOR", "DESI_GAIA_G_BRIGHT_LIMIT",
    "DESI_LRG_NORTH", "DESI_LRG_SOUTH", "DESI_MASKBITS_REJECT", "DESI_ZFIBERTOT_BRIGHT_LIMIT",
    "NORTH_RELEASES", "SEED_COLUMNS", "SELECTION_NAMES", "SOUTH_RELEASES", "VARIANT_KEYS",
    "DesiLrgColourCuts", "Selection", "SelectionError", "SharedColumns", "UnknownReleaseError",
    "dereddened_flux",
    "desi_lrg", "desi_lrg_colours", "desi_lrg_quality", "get_selection", "get_selections",
    "is_south", "magnitude", "photsys_from_release", "seed_lrg", "selection_variant",
    "selections_of",
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
    #: The built-in selection it is (itself) or varies (a ``[selections]`` variant).
    base: str = ""
    #: The object-quality requirements applied before the colour cuts (None: none).
    quality_mask: Optional[Mapping[str, Any]] = None

    def definition(self) -> dict[str, Any]:
        """What it is, as the manifest lists it: name, base, description, and parameters
        (thresholds and choices, the quality mask included)."""
        return {"name": self.name, "base": self.base or self.name,
                "description": self.description,
                "parameters": {**self.parameters, "quality_mask": self.quality_mask}}

    def __call__(self, catalogue: Mapping[str, Any]) -> np.ndarray:
        names = _names(catalogue)
        missing = [c for c in self.columns if c not in names]
        if missing:
            raise KeyError(f"selection {self.name!r} needs column(s) {', '.join(missing)}")
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            return np.asarray(self.function(catalogue), dtype=bool)


class SharedColumns(dict):
    """A catalogue's columns (``{name: array}``) with room for what selections compute alike:
    several selections called on it compute each shared step once (the seed's magnitudes for
    every seed variant; the DESI fluxes, quality mask and magnitudes for both hemispheres).
    What is shared depends on the columns alone, never on a selection's thresholds."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shared: dict[str, Any] = {}


def _shared(cat: Mapping[str, Any], key: str, compute: Callable[[], Any]) -> Any:
    """``compute()``, once per :class:`SharedColumns` catalogue (every time on others)."""
    store = getattr(cat, "shared", None)
    if store is None:
        return compute()
    if key not in store:
        store[key] = compute()
    return store[key]


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
    z, r_z, z_w1 = _shared(cat, "seed_colours", lambda: _seed_colours(cat))
    return (z < lrg_z_mag_max) & (r_z > lrg_min_r_minus_z) & (z_w1 > lrg_min_z_minus_w1)


def _seed_colours(cat: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dereddened z, r - z and z - W1 (float64 AB magnitudes; NaN where a flux is not)."""
    def mag(band: str) -> np.ndarray:
        flux = dereddened_flux(_column(cat, f"FLUX_{band}").astype(np.float64),
                               _column(cat, f"MW_TRANSMISSION_{band}").astype(np.float64))
        return magnitude(flux)

    r, z, w1 = mag("R"), mag("Z"), mag("W1")
    return z, r - z, z - w1


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


def _desi_magnitudes(fluxes: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The magnitudes and colours :func:`desi_lrg_colours` compares, in float32."""
    def mag(band: str) -> np.ndarray:
        # NaN stays NaN through clip, and every comparison with NaN is false.
        return np.float32(AB_ZEROPOINT) - np.float32(2.5) * np.log10(
            np.clip(fluxes[band], np.float32(DESI_FLUX_FLOOR), None))

    g, r, z, w1, zfiber = mag("g"), mag("r"), mag("z"), mag("w1"), mag("zfiber")
    r_w1 = r - w1
    return {"w1": w1, "zfiber": zfiber, "g_w1": g - w1, "r_w1": r_w1,
            "nonstellar": z - w1 > DESI_NONSTELLAR_SLOPE * (r - z) - DESI_NONSTELLAR_OFFSET}


def desi_lrg_colours(fluxes: Mapping[str, np.ndarray], cuts: DesiLrgColourCuts,
                     magnitudes: Optional[Mapping[str, np.ndarray]] = None) -> np.ndarray:
    """desitarget's ``isLRG_colors`` on dereddened fluxes (clipped at 1e-7 nanomaggies)."""
    m = magnitudes if magnitudes is not None else _desi_magnitudes(fluxes)
    w1, r_w1 = m["w1"], m["r_w1"]
    lrg = m["nonstellar"].copy()                                             # non-stellar
    lrg &= m["zfiber"] < cuts.zfiber_max                                     # faint limit
    lrg &= (m["g_w1"] > cuts.lowz_g_w1_min) | (r_w1 > cuts.lowz_r_w1_min)    # low-z
    lrg &= (((r_w1 > (w1 - cuts.sliding_w1_pivot) * cuts.sliding_slope)     # sliding cut
             & (r_w1 > w1 - cuts.sliding_w1_offset))
            | (r_w1 > cuts.sliding_r_w1_override))
    return lrg


def desi_lrg(cat: Mapping[str, Any], south: Any = True,
             south_cuts: DesiLrgColourCuts = DESI_LRG_SOUTH,
             north_cuts: DesiLrgColourCuts = DESI_LRG_NORTH) -> np.ndarray:
    """DESI main-survey LRGs. ``south`` is a bool or a per-object bool array; the colour-cut
    constants are DESI's unless given."""
    fluxes = _shared(cat, "desi_fluxes", lambda: _desi_fluxes(cat))
    quality = _shared(cat, "desi_quality", lambda: desi_lrg_quality(cat, fluxes))
    magnitudes = _shared(cat, "desi_magnitudes", lambda: _desi_magnitudes(fluxes))
    south = np.asarray(south, dtype=bool)
    if south.ndim == 0:
        cuts = south_cuts if south else north_cuts
        return quality & desi_lrg_colours(fluxes, cuts, magnitudes)
    return quality & np.where(south, desi_lrg_colours(fluxes, south_cuts, magnitudes),
                              desi_lrg_colours(fluxes, north_cuts, magnitudes))


def is_south(cat: Mapping[str, Any], unknown_release_photsys: str = "") -> np.ndarray:
    """Per-object south flag: from PHOTSYS when present, else from RELEASE."""
    if "PHOTSYS" in _names(cat):
        photsys = np.char.strip(np.asarray(cat["PHOTSYS"]).astype(str))
        return photsys == "S"
    return photsys_from_release(_column(cat, "RELEASE"), unknown_release_photsys) == "S"


# --- the registry ----------------------------------------------------------------------------

SELECTION_NAMES = ("seed", "desi-lrg", "desi-lrg-south", "desi-lrg-north")

SEED_THRESHOLDS = ("lrg_z_mag_max", "lrg_min_r_minus_z", "lrg_min_z_minus_w1")
DESI_COLOUR_THRESHOLDS = tuple(f.name for f in dataclasses.fields(DesiLrgColourCuts))
#: What a ``[selections]`` variant of each built-in selection may override (besides
#: ``description``, which says what the variant is).
VARIANT_KEYS: dict[str, tuple[str, ...]] = {
    "seed": SEED_THRESHOLDS,
    "desi-lrg-south": DESI_COLOUR_THRESHOLDS,
    "desi-lrg-north": DESI_COLOUR_THRESHOLDS,
    "desi-lrg": ("unknown_release_photsys",),
}

#: desitarget's ``notinLRG_mask``, as the manifest records it (:func:`desi_lrg_quality`).
DESI_QUALITY_MASK: dict[str, Any] = {
    "positive_flux_ivar": ["R", "Z", "W1"],
    "positive_dereddened_flux": ["r", "z", "zfiber", "W1"],
    "gaia_phot_g_mean_mag": f"0 (no Gaia match) or > {DESI_GAIA_G_BRIGHT_LIMIT:g}",
    "zfibertot_bright_limit_mag": DESI_ZFIBERTOT_BRIGHT_LIMIT,
    "nobs_positive": ["G", "R", "Z"],
    "maskbits_reject": DESI_MASKBITS_REJECT,
}


def _seed(cuts: CutsConfig, name: str = "seed") -> Selection:
    thresholds = {"lrg_z_mag_max": cuts.lrg_z_mag_max,
                  "lrg_min_r_minus_z": cuts.lrg_min_r_minus_z,
                  "lrg_min_z_minus_w1": cuts.lrg_min_z_minus_w1}
    bad = {k: v for k, v in thresholds.items() if not np.isfinite(v)}
    if bad:
        raise SelectionError(f"seed thresholds must be finite numbers, got {bad}")
    return Selection(
        name, SEED_COLUMNS, lambda cat: seed_lrg(cat, **thresholds),
        description="dereddened z < {lrg_z_mag_max}, r - z > {lrg_min_r_minus_z}, "
                    "z - W1 > {lrg_min_z_minus_w1}".format(**thresholds),
        parameters=thresholds, base="seed")


def _desi_hemisphere(name: str, south: bool, constants: DesiLrgColourCuts,
                     label: str = "") -> Selection:
    cut = {"south_cuts": constants} if south else {"north_cuts": constants}
    return Selection(
        label or name, DESI_COLUMNS, lambda cat: desi_lrg(cat, south=south, **cut),
        description=f"DESI main-survey LRGs, {'south (DECam)' if south else 'north'} cuts",
        parameters={"photsys": "S" if south else "N", **vars(constants)},
        base=name, quality_mask=DESI_QUALITY_MASK)


def _desi_per_object(unknown: str, name: str = "desi-lrg") -> Selection:
    if unknown not in ("", "S", "N"):
        raise SelectionError(
            f"cuts.unknown_release_photsys must be '', 'S' or 'N', got {unknown!r}")
    return Selection(
        name, (*DESI_COLUMNS, "RELEASE"),
        lambda cat: desi_lrg(cat, south=is_south(cat, unknown)),
        optional_columns=("PHOTSYS",),
        description="DESI main-survey LRGs, south or north per object (PHOTSYS or RELEASE)",
        parameters={"unknown_release_photsys": unknown}, base="desi-lrg",
        quality_mask=DESI_QUALITY_MASK)


def _builtin(name: str, cuts: CutsConfig) -> Selection:
    if name == "seed":
        return _seed(cuts)
    if name in ("desi-lrg-south", "desi-lrg-north"):
        south = name.endswith("south")
        return _desi_hemisphere(name, south, DESI_LRG_SOUTH if south else DESI_LRG_NORTH)
    return _desi_per_object(cuts.unknown_release_photsys)


def selection_variant(name: str, table: Mapping[str, Any],
                      cuts: Optional[CutsConfig] = None) -> Selection:
    """The ``[selections]`` variant ``name = {base = "<built-in>", <threshold> = value}``: the
    built-in selection (with ``cuts``' thresholds) with some overridden. An unknown base or
    key, a value of the wrong kind, or a built-in's name raises ConfigError naming it."""
    if cuts is None:
        from halo_lrg.config import load_config

        cuts = load_config().cuts
    where = f"selections.{name}"
    if name in SELECTION_NAMES:
        raise ConfigError(f"{where}: {name!r} is a built-in selection; give the variant "
                          "another name")
    table = dict(table)
    base = table.pop("base", None)
    description = table.pop("description", None)
    if base not in VARIANT_KEYS:
        raise ConfigError(f"{where}: unknown base {base!r} (a variant starts from a built-in "
                          f"selection: {', '.join(SELECTION_NAMES)})")
    if description is not None and not isinstance(description, str):
        raise ConfigError(f"{where}.description: expected a string, got {description!r}")
    allowed = VARIANT_KEYS[base]
    for key, value in table.items():
        if key not in allowed:
            raise ConfigError(f"{where}: unknown key {key!r} for base {base!r} (known: "
                              f"{', '.join(('description', *allowed))})")
        numeric = key != "unknown_release_photsys"
        if numeric and (isinstance(value, (bool, str)) or not math.isfinite(value)):
            raise ConfigError(f"{where}.{key}: expected a finite number, got {value!r}")
        if not numeric and value not in ("", "S", "N"):
            raise ConfigError(f"{where}.{key}: expected '', 'S' or 'N', got {value!r}")
    if base == "seed":
        built = _seed(dataclasses.replace(
            cuts, **{k: float(v) for k, v in table.items()}), name)
    elif base == "desi-lrg":
        built = _desi_per_object(table.get("unknown_release_photsys",
                                           cuts.unknown_release_photsys), name)
    else:
        south = base.endswith("south")
        constants = dataclasses.replace(DESI_LRG_SOUTH if south else DESI_LRG_NORTH,
                                        **{k: float(v) for k, v in table.items()})
        built = _desi_hemisphere(base, south, constants, label=name)
    changed = ", ".join(f"{k} = {v}" for k, v in table.items())
    summary = description if description is not None else (
        f"{built.description} ({base}{' with ' + changed if changed else ''})")
    return dataclasses.replace(built, name=name, base=base, description=summary)


def get_selection(name: str, cuts: Optional[CutsConfig] = None,
                  variants: Optional[Mapping[str, Mapping[str, Any]]] = None) -> Selection:
    """The selection called ``name``: built-in, with thresholds from ``cuts``, or one of
    ``variants`` (the ``[selections]`` tables); both default to the configuration's."""
    if cuts is None:
        from halo_lrg.config import load_config

        config = load_config()
        cuts = config.cuts
        variants = config.selections if variants is None else variants
    variants = variants or {}
    if name in SELECTION_NAMES:
        return _builtin(name, cuts)
    if name in variants:
        return selection_variant(name, variants[name], cuts)
    if "," in name:
        raise SelectionError(f"{name!r} names several selections: use get_selections")
    known = [*SELECTION_NAMES, *sorted(v for v in variants if v not in SELECTION_NAMES)]
    raise SelectionError(f"unknown selection {name!r}; choose one of: {', '.join(known)}")


def get_selections(names: Union[str, Sequence[str]], cuts: Optional[CutsConfig] = None,
                   variants: Optional[Mapping[str, Mapping[str, Any]]] = None
                   ) -> tuple[Selection, ...]:
    """The selections named (a comma-separated string or a sequence), in order, for counting
    them in one read. Every variant in ``variants`` is checked, used or not, so a mistake in
    one is named now rather than when it is first asked for."""
    if cuts is None:
        from halo_lrg.config import load_config

        config = load_config()
        cuts = config.cuts
        variants = config.selections if variants is None else variants
    variants = variants or {}
    items = names.split(",") if isinstance(names, str) else list(names)
    wanted = [str(n).strip() for n in items]
    if not wanted or not all(wanted):
        raise SelectionError(f"expected one or more selection names, got {names!r}")
    for name in wanted:
        if wanted.count(name) > 1:
            raise SelectionError(f"selection {name!r} is named twice")
    for name, table in variants.items():
        selection_variant(name, table, cuts)
    return tuple(get_selection(name, cuts, variants) for name in wanted)


def selections_of(config: Config) -> tuple[Selection, ...]:
    """The selections a run counts: ``cuts.selection`` with the ``[selections]`` variants."""
    return get_selections(config.cuts.selection, config.cuts, config.selections)
