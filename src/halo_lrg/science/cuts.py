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
import functools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple, Optional, Union

import numpy as np

from halo_lrg.config import Config, ConfigError, CutsConfig

__all__ = [
    "AB_ZEROPOINT", "DESI_COLUMNS", "DESI_FLUX_FLOOR", "DESI_GAIA_G_BRIGHT_LIMIT",
    "DESI_LRG_NORTH", "DESI_LRG_SOUTH", "DESI_MASKBITS_REJECT", "DESI_SPARSE_COLUMNS",
    "DESI_ZFIBERTOT_BRIGHT_LIMIT",
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
    #: Columns it reads only at the rows its cheaper cuts leave (a few in a hundred in a
    #: sweep): a chunk read lazily decodes just those rows of them.
    sparse_columns: tuple[str, ...] = ()

    def definition(self) -> dict[str, Any]:
        """What it is, as the manifest lists it: name, base, description, and parameters
        (thresholds and choices, the quality mask included)."""
        return {"name": self.name, "base": self.base or self.name,
                "description": self.description,
                "parameters": {**self.parameters, "quality_mask": self.quality_mask}}

    def __call__(self, catalogue: Mapping[str, Any]) -> np.ndarray:
        names = _names(catalogue)
        if not names.issuperset(self.columns):
            missing = [c for c in self.columns if c not in names]
            raise KeyError(f"selection {self.name!r} needs column(s) {', '.join(missing)}")
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            return np.asarray(self.function(catalogue), dtype=bool)


class SharedColumns(Mapping[str, Any]):
    """A catalogue's columns (any catalogue a selection takes) with room for what selections
    compute alike: several selections called on it compute each shared step once (the seed's
    magnitudes for every seed variant; DESI's magnitudes, and the rows each DESI selection
    keeps, found for both hemispheres at once). What is shared depends on the columns alone,
    never on a selection's thresholds. Columns are read from the catalogue as they are asked
    for (a :class:`~halo_lrg.fits.layout.RecordColumns` chunk decodes no column nobody
    reads, and some only at the rows asked for: :meth:`columns_rows`)."""

    def __init__(self, catalogue: Any) -> None:
        self.catalogue = catalogue
        self.shared: dict[str, Any] = {}
        self.names = frozenset(_names(catalogue))  # checked by each selection called on it

    def __getitem__(self, name: str) -> Any:
        return self.catalogue[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def columns_rows(self, names: Sequence[str], rows: np.ndarray) -> dict[str, np.ndarray]:
        """Columns ``names`` at ``rows`` (indices) only."""
        return _columns_rows(self.catalogue, names, rows)


def _shared(cat: Mapping[str, Any], key: str, compute: Callable[[], Any]) -> Any:
    """``compute()``, once per :class:`SharedColumns` catalogue (every time on others)."""
    store = getattr(cat, "shared", None)
    if store is None:
        return compute()
    if key not in store:
        store[key] = compute()
    return store[key]


def _columns_rows(cat: Mapping[str, Any], names: Sequence[str], rows: np.ndarray
                  ) -> dict[str, np.ndarray]:
    """Columns ``names`` at ``rows`` (indices): decoding only those rows when the catalogue
    can (a chunk read lazily), else the columns indexed."""
    columns_rows = getattr(cat, "columns_rows", None)
    if columns_rows is not None:
        return columns_rows(names, rows)
    return {name: _column(cat, name)[rows] for name in names}


def _names(catalogue: Mapping[str, Any]) -> Union[set[str], frozenset[str]]:
    if isinstance(catalogue, SharedColumns):
        return catalogue.names
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
#: What DESI's selection reads only at the rows its cheaper cuts leave (a few in a hundred
#: of a sweep's; :class:`_DesiStages`): z and the fibre where the sliding cut passes, g and
#: the rest of the quality mask where the non-stellar cut and faint limit pass too.
_DESI_STEP2_COLUMNS = ("FLUX_Z", "MW_TRANSMISSION_Z", "FIBERFLUX_Z")
_DESI_STEP3_COLUMNS = (
    "FLUX_G", "MW_TRANSMISSION_G", "FLUX_IVAR_R", "FLUX_IVAR_Z", "FLUX_IVAR_W1",
    "FIBERTOTFLUX_Z", "GAIA_PHOT_G_MEAN_MAG", "NOBS_G", "NOBS_R", "NOBS_Z", "MASKBITS",
)
DESI_SPARSE_COLUMNS = (*_DESI_STEP2_COLUMNS, *_DESI_STEP3_COLUMNS)


def _f32(values: Any) -> np.ndarray:
    # float32 throughout, as desitarget computes on the catalogue's own type.
    return np.asarray(values).astype(np.float32, copy=False)


def _desi_fluxes(cat: Mapping[str, Any]) -> dict[str, np.ndarray]:
    def col(name: str) -> np.ndarray:
        return _f32(_column(cat, name))

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
    return _desi_positive(f) & _desi_quality_columns(cat, f["zfibertot"])


def _desi_positive(fluxes: Mapping[str, np.ndarray]) -> np.ndarray:
    """The quality mask's dereddened fluxes: r, z, zfiber and W1 positive."""
    return _all_positive([fluxes[band] for band in ("r", "z", "zfiber", "w1")])


def _all_positive(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """Per element, every array's value > 0: their minimum is (NaN, the minimum of anything
    with NaN, is not), one comparison instead of one per array."""
    smallest = arrays[0]
    for more in arrays[1:]:
        smallest = np.minimum(smallest, more)
    return smallest > 0


def _desi_quality_columns(cat: Mapping[str, Any], zfibertot: np.ndarray) -> np.ndarray:
    """The rest of the quality mask: ivars, Gaia, fibre total flux, NOBS, MASKBITS."""
    ok = _all_positive([_column(cat, name) for name in _DESI_POSITIVE_IVARS])
    ok &= _all_positive([_column(cat, name) for name in _DESI_POSITIVE_NOBS])
    gaia_g = _column(cat, "GAIA_PHOT_G_MEAN_MAG")
    ok &= (gaia_g == 0) | (gaia_g > DESI_GAIA_G_BRIGHT_LIMIT)
    ok &= zfibertot < _F32_ZFIBERTOT_LIMIT
    ok &= (_column(cat, "MASKBITS").astype(np.int64) & DESI_MASKBITS_REJECT) == 0
    return ok


_DESI_POSITIVE_IVARS = ("FLUX_IVAR_R", "FLUX_IVAR_Z", "FLUX_IVAR_W1")
_DESI_POSITIVE_NOBS = ("NOBS_G", "NOBS_R", "NOBS_Z")
# The float32 constants of desitarget's arithmetic, made once (not at every call).
_F32_ZFIBERTOT_LIMIT = np.float32(10 ** (-0.4 * (DESI_ZFIBERTOT_BRIGHT_LIMIT - AB_ZEROPOINT)))
_F32_ZEROPOINT, _F32_TWO_AND_A_HALF = np.float32(AB_ZEROPOINT), np.float32(2.5)
_F32_FLUX_FLOOR = np.float32(DESI_FLUX_FLOOR)


def _desi_magnitude(flux: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
    """desitarget's ``22.5 - 2.5 log10(flux.clip(1e-7))`` in float32, in ``out`` (which may
    be ``flux``) or a new array.

    ``maximum`` is ``clip`` with no upper bound (NaN stays NaN in both, and every comparison
    with NaN is false); each step writes into the same array."""
    magnitude = np.maximum(flux, _F32_FLUX_FLOOR, out=out)
    np.log10(magnitude, out=magnitude)
    np.multiply(_F32_TWO_AND_A_HALF, magnitude, out=magnitude)
    return np.subtract(_F32_ZEROPOINT, magnitude, out=magnitude)


def _desi_magnitudes(fluxes: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The magnitudes and colours :func:`desi_lrg_colours` compares, in float32."""
    r, z, w1, zfiber, g = (_desi_magnitude(fluxes[band])
                           for band in ("r", "z", "w1", "zfiber", "g"))
    return {"w1": w1, "zfiber": zfiber, "r_w1": r - w1, "g_w1": g - w1,
            "nonstellar": _desi_nonstellar(r, z, w1)}


def _desi_nonstellar(r: np.ndarray, z: np.ndarray, w1: np.ndarray) -> np.ndarray:
    """The non-stellar cut (no selection's threshold enters it)."""
    return z - w1 > DESI_NONSTELLAR_SLOPE * (r - z) - DESI_NONSTELLAR_OFFSET


def desi_lrg_colours(fluxes: Mapping[str, np.ndarray], cuts: DesiLrgColourCuts,
                     magnitudes: Optional[Mapping[str, np.ndarray]] = None) -> np.ndarray:
    """desitarget's ``isLRG_colors`` on dereddened fluxes (clipped at 1e-7 nanomaggies)."""
    m = magnitudes if magnitudes is not None else _desi_magnitudes(fluxes)
    return (m["nonstellar"] & (m["zfiber"] < cuts.zfiber_max)                  # faint limit
            & _sliding_cut(m["r_w1"], m["w1"], cuts) & _lowz_cut(m, cuts))


def _sliding_cut(r_w1: np.ndarray, w1: np.ndarray,
                 cuts: Union[DesiLrgColourCuts, _CutColumns]) -> np.ndarray:
    return (((r_w1 > (w1 - cuts.sliding_w1_pivot) * cuts.sliding_slope)
             & (r_w1 > w1 - cuts.sliding_w1_offset))
            | (r_w1 > cuts.sliding_r_w1_override))


def _lowz_cut(m: Mapping[str, np.ndarray], cuts: Union[DesiLrgColourCuts, _CutColumns]
              ) -> np.ndarray:
    return (m["g_w1"] > cuts.lowz_g_w1_min) | (m["r_w1"] > cuts.lowz_r_w1_min)


class _CutColumns(NamedTuple):
    """Several selections' :class:`DesiLrgColourCuts`, each threshold a float32 column
    (selections, 1): one numpy call then evaluates a cut for all of them, its rows the
    selections'. float32 is what each Python-float threshold becomes in a comparison with
    (or arithmetic on) float32 magnitudes, so every answer is the one-selection answer."""

    zfiber_max: np.ndarray
    lowz_g_w1_min: np.ndarray
    lowz_r_w1_min: np.ndarray
    sliding_slope: np.ndarray
    sliding_w1_pivot: np.ndarray
    sliding_w1_offset: np.ndarray
    sliding_r_w1_override: np.ndarray

    @staticmethod
    @functools.lru_cache(maxsize=64)
    def of(cuts: tuple[DesiLrgColourCuts, ...]) -> _CutColumns:
        return _CutColumns(*(np.array([getattr(c, name) for c in cuts], np.float32)[:, None]
                             for name in _CutColumns._fields))


class _DesiStages:
    """DESI selections of one catalogue, in three steps, each on the rows the one before
    leaves (of a sweep's objects, a few in a hundred pass the first):

    1. every row: r and W1 magnitudes, for a test every row a selection's sliding cut keeps
       passes (the most selective cut on the columns the seed selection reads too);
    2. the rows passing it: z and fibre magnitudes, for the non-stellar cut, the faint limit,
       the sliding cut and the quality mask's positive fluxes;
    3. the rows passing those: g (the low-z cut) and the rest of the quality mask.

    The columns steps 2 and 3 read are decoded at those rows only when the catalogue can (a
    lazily read chunk: :attr:`Selection.sparse_columns`). Elementwise float32 arithmetic
    gives a row the same value whichever rows it is computed with, so each answer is the one
    computed on every row (the differential test against desitarget holds either way); a
    row a step leaves out fails a cut of every selection it is done for. Several
    selections are done at once (their thresholds as :class:`_CutColumns`): the DESI
    selections of one :class:`SharedColumns` find DESI's own two hemispheres with the first
    of them (``prepare``). A chunk is a few thousand rows: the number of numpy calls counts
    more than their sizes.
    """

    def __init__(self, cat: Mapping[str, Any]) -> None:
        # ``cat`` is not kept: it holds this (SharedColumns.shared), and a reference cycle
        # would keep each chunk's arrays alive until the garbage collector runs.
        self.shape = np.shape(_column(cat, "FLUX_R"))
        self.size = math.prod(self.shape)
        #: Step 1, every row: dereddened r and W1 fluxes, their magnitudes, r - W1.
        self.fluxes = np.empty((2, self.size), np.float32)
        for k, (flux, mw) in enumerate((("FLUX_R", "MW_TRANSMISSION_R"),
                                        ("FLUX_W1", "MW_TRANSMISSION_W1"))):
            np.divide(_f32(_column(cat, flux)).reshape(-1), _f32(_column(cat, mw)).reshape(-1),
                      out=self.fluxes[k])
        self.magnitudes = _desi_magnitude(self.fluxes)
        self.r_w1 = self.magnitudes[0] - self.magnitudes[1]
        #: The rows each selection (by its cuts) keeps, ascending.
        self.found: dict[DesiLrgColourCuts, np.ndarray] = {}

    def selected(self, cat: Mapping[str, Any], cuts: Sequence[DesiLrgColourCuts],
                 prepare: Sequence[DesiLrgColourCuts] = ()) -> list[np.ndarray]:
        """The rows each of ``cuts``' selections keeps (indices), found with ``prepare``'s
        if not yet; ``cat`` is the catalogue this was made for."""
        found = self.found
        todo = [c for c in dict.fromkeys((*cuts, *prepare)) if c not in found]
        if todo:
            found.update(zip(todo, self._find(cat, todo)))
        return [found[c] for c in cuts]

    def _find(self, cat: Mapping[str, Any], todo: Sequence[DesiLrgColourCuts]
              ) -> list[np.ndarray]:
        cuts = _CutColumns.of(tuple(todo))
        # Step 1: a sliding cut implies r - W1 > W1 - offset or r - W1 > override, so with
        # the largest offset and the smallest override of the selections' (float32 rounding
        # is monotonic: no row any of them keeps fails it), one test for all of them.
        r_w1, w1 = self.r_w1, self.magnitudes[1]
        offset = np.float32(max(c.sliding_w1_offset for c in todo))
        override = np.float32(min(c.sliding_r_w1_override for c in todo))
        rows = ((r_w1 > w1 - offset) | (r_w1 > override)).nonzero()[0]
        got = _columns_rows(cat, _DESI_STEP2_COLUMNS, rows)                 # step 2
        fluxes = np.empty((2, rows.size), np.float32)  # dereddened z, fibre
        mw_z = _f32(got["MW_TRANSMISSION_Z"])
        np.divide(_f32(got["FLUX_Z"]), mw_z, out=fluxes[0])
        np.divide(_f32(got["FIBERFLUX_Z"]), mw_z, out=fluxes[1])
        r_flux, w1_flux = self.fluxes.take(rows, axis=1)
        keep = _all_positive([r_flux, fluxes[0], fluxes[1], w1_flux])
        z, zfiber = _desi_magnitude(fluxes, out=fluxes)
        r, w1 = self.magnitudes.take(rows, axis=1)
        keep &= _desi_nonstellar(r, z, w1)
        keep = keep & (zfiber < cuts.zfiber_max) & _sliding_cut(r_w1[rows], w1, cuts)
        some = _any_row(keep).nonzero()[0]
        rows = rows[some]                                                   # step 3
        got = _columns_rows(cat, _DESI_STEP3_COLUMNS, rows)
        quality = _desi_quality_columns(got, _f32(got["FIBERTOTFLUX_Z"]))
        g = _f32(got["FLUX_G"]) / _f32(got["MW_TRANSMISSION_G"])
        colours = {"g_w1": _desi_magnitude(g, out=g) - w1[some], "r_w1": self.r_w1[rows]}
        kept = keep[:, some] & quality & _lowz_cut(colours, cuts)
        return [rows[k] for k in kept]


def _any_row(masks: np.ndarray) -> np.ndarray:
    """Per column of a (selections, rows) mask: any selection's."""
    some = masks[0]
    for more in masks[1:]:
        some = some | more
    return some


def desi_lrg(cat: Mapping[str, Any], south: Any = True,
             south_cuts: DesiLrgColourCuts = DESI_LRG_SOUTH,
             north_cuts: DesiLrgColourCuts = DESI_LRG_NORTH) -> np.ndarray:
    """DESI main-survey LRGs. ``south`` is a bool or a per-object bool array; the colour-cut
    constants are DESI's unless given."""
    south = np.asarray(south, dtype=bool)
    stages = _shared(cat, "desi_stages", lambda: _DesiStages(cat))
    # Several selections share this catalogue: DESI's own two hemispheres are likely among
    # them, so they are found together rather than one after the other.
    prepare = (DESI_LRG_SOUTH, DESI_LRG_NORTH) if isinstance(cat, SharedColumns) else ()
    if south.ndim == 0:
        found = stages.selected(cat, [south_cuts if south else north_cuts], prepare)[0]
    else:
        if south.size != stages.size:
            raise ValueError(f"south has {south.size} values for {stages.size} objects")
        in_south, in_north = stages.selected(cat, [south_cuts, north_cuts], prepare)
        south = south.reshape(-1)
        found = np.concatenate([in_south[south[in_south]], in_north[~south[in_north]]])
    selected = np.zeros(stages.size, bool)
    selected[found] = True
    return selected.reshape(stages.shape)


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
        base=name, quality_mask=DESI_QUALITY_MASK,
        sparse_columns=DESI_SPARSE_COLUMNS)


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
        quality_mask=DESI_QUALITY_MASK,
        sparse_columns=DESI_SPARSE_COLUMNS)


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
