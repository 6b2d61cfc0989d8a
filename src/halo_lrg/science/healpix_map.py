"""HEALPix maps: per-pixel tables (NESTED) and the files healpy, hpgeom and pandas read.

A map is a table with one row per pixel that holds something, sorted by pixel, and its
``nside`` (:class:`HealpixMap`; the ordering is always NESTED, DESI's convention). A counts
map is ``pixel, ra, dec, n_objects`` then one column per selection (``lrg_count`` for a run
of one; the selections' names for several), and, once joined to an effective-area map from
randoms (:func:`halo_lrg.science.area.pixel_area_map`), ``area_eff_deg2`` and per selection
a density over it (``lrg_density_eff``, ``<name>_density_eff``; NaN where no random point
survived). ``ra, dec`` are the pixel centres.

Files (written by :func:`halo_lrg.count.pixels.write_map`, read by :func:`read_map`):

* **FITS**: a partial-sky HEALPix map as the HEALPix FITS convention and healpy define it:
  a BINTABLE whose header says ``PIXTYPE='HEALPIX'``, ``ORDERING='NESTED'``, ``NSIDE``,
  ``INDXSCHM='EXPLICIT'``, ``OBJECT='PARTIAL'``, ``COORDSYS='C'`` (equatorial), with
  ``FIRSTPIX``/``LASTPIX`` the first and last pixel stored and ``OBS_NPIX`` their number;
  the first column is ``PIXEL`` (int64), the others the table's columns, names as in the
  CSV, with units. ``healpy.read_map(path, field=..., partial=True, nest=True)`` returns a
  full-sky array (field 0 is ``ra``: name a column as a tuple, ``field=("lrg_count",)``);
  ``astropy.table.Table.read`` and ``fitsio.read`` read the table.
* **CSV**: the same columns, after one comment line
  ``# HEALPix NSIDE=256 ORDERING=NESTED COORDSYS=C``: ``pandas.read_csv(path,
  comment="#")`` reads it.

This module says what a map file holds (:func:`map_header`, :func:`map_units`,
:func:`fits_frame`, :func:`csv_comment`); the bytes come from the project's one table writer
(:func:`halo_lrg.io.tables.table_bytes`), which the science layer may not import
(docs/architecture.md): ``count.pixels.map_bytes`` joins the two.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import pandas as pd

from halo_lrg.science.healpix import check_nside, nest_to_radec, npix, pixel_area

ORDERING = "NESTED"
#: Equatorial (RA, Dec), as HEALPix headers spell it.
COORDSYS = "C"
EXTNAME = "HEALPIX"
#: The columns every map written here starts with; the FITS file's index column.
PIXEL, CENTRE = "pixel", ("ra", "dec")
FITS_PIXEL = "PIXEL"
OBJECTS = "n_objects"
#: A run of one (unnamed) selection counts into this column, as the per-brick CSV does.
LRG_COUNT = "lrg_count"
AREA_EFF = "area_eff_deg2"
DENSITY_EFF_SUFFIX = "_density_eff"
_UNITS = {"ra": "deg", "dec": "deg", AREA_EFF: "deg2", "area_eff_err_deg2": "deg2"}
_CSV_HEADER = re.compile(r"NSIDE\s*=\s*(\S+).*?ORDERING\s*=\s*(\w+)", re.IGNORECASE)


class MapError(ValueError):
    """A map that cannot be used, or a file that is not one; the message names the file (or
    table) and the problem."""


def density_eff_column(count_column: str) -> str:
    """The density-over-effective-area column of a count column: ``lrg_count`` ->
    ``lrg_density_eff``, ``<name>`` -> ``<name>_density_eff``."""
    if count_column == LRG_COUNT:
        return "lrg" + DENSITY_EFF_SUFFIX
    return f"{count_column}{DENSITY_EFF_SUFFIX}"


@dataclass(frozen=True, eq=False)
class HealpixMap:
    """One row per pixel (``pixel`` int64 first, distinct, sorted) at ``nside``, NESTED."""

    nside: int
    table: pd.DataFrame

    def __post_init__(self) -> None:
        object.__setattr__(self, "nside", check_nside(self.nside))
        if PIXEL not in self.table.columns:
            raise MapError("a HEALPix map needs a pixel column")
        pixel = self.table[PIXEL]
        if not pd.api.types.is_integer_dtype(pixel.dtype):
            raise MapError(f"pixel must be whole numbers, got dtype {pixel.dtype}")
        values = pixel.to_numpy()
        total = npix(self.nside)
        if values.size and (values.min() < 0 or values.max() >= total):
            raise MapError(f"pixel must be within [0, {total}) at nside {self.nside}, got "
                           f"{values.min()}..{values.max()}")
        if values.size > 1 and not (np.diff(values) > 0).all():
            raise MapError("pixel must be sorted, each pixel once")

    @property
    def ordering(self) -> str:
        return ORDERING

    @property
    def pixel_area_deg2(self) -> float:
        """The area of every pixel of the map (HEALPix pixels are equal-area)."""
        return pixel_area(self.nside)

    @property
    def selections(self) -> list[str]:
        """The count columns after ``n_objects``: one per selection (``lrg_count`` for one
        unnamed); empty for an objects-only or area map."""
        columns = [str(c) for c in self.table.columns]
        if OBJECTS not in columns:
            return []
        found = []
        for column in columns[columns.index(OBJECTS) + 1:]:
            if column == AREA_EFF or column.endswith(DENSITY_EFF_SUFFIX) or \
                    not pd.api.types.is_integer_dtype(self.table[column].dtype):
                break
            found.append(column)
        return found

    @property
    def has_effective_area(self) -> bool:
        return AREA_EFF in self.table.columns


def _centres(nside: int, pixel: np.ndarray) -> dict[str, np.ndarray]:
    ra, dec = nest_to_radec(pixel, nside)
    return {PIXEL: pixel, "ra": ra, "dec": dec}


def counts_map(nside: int, pixel: Any, n_objects: Any, counts: Any,
               names: Optional[Sequence[str]] = None,
               area: Optional[HealpixMap] = None) -> HealpixMap:
    """The map of per-pixel totals (:class:`halo_lrg.count.pixels.PixelCounts`: ``pixel``,
    ``n_objects``, ``counts`` of shape (selections, pixels)). ``names`` name the selections
    (default: ``lrg_count`` for one, none for zero; required for several). With ``area``
    (an effective-area map at the same nside), :func:`with_effective_area` is applied."""
    pixel = np.asarray(pixel)
    counts = np.asarray(counts)
    if counts.ndim != 2 or counts.shape[1:] != pixel.shape or np.shape(n_objects) != \
            pixel.shape:
        raise MapError(f"pixel {pixel.shape}, n_objects {np.shape(n_objects)} and counts "
                       f"{counts.shape} disagree (counts: selections x pixels)")
    k = counts.shape[0]
    if names is None:
        if k > 1:
            raise MapError(f"{k} selections need names")
        names = [LRG_COUNT] * k
    names = [str(n) for n in names]
    if len(names) != k:
        raise MapError(f"{len(names)} name(s) for {k} selection(s)")
    clash = sorted(set(names) & {PIXEL, *CENTRE, OBJECTS, AREA_EFF})
    if clash or len(set(names)) != k:
        raise MapError(f"selection names must be distinct and not a map column, got "
                       f"{', '.join(names)}")
    order = np.argsort(pixel, kind="stable")
    columns = _centres(nside, pixel.astype(np.int64)[order])
    columns[OBJECTS] = np.asarray(n_objects, dtype=np.int64)[order]
    for name, row in zip(names, counts):
        columns[name] = row.astype(np.int64)[order]
    hmap = HealpixMap(nside, pd.DataFrame(columns))
    return hmap if area is None else with_effective_area(hmap, area)


def with_effective_area(counts: HealpixMap, area: HealpixMap) -> HealpixMap:
    """``counts`` with ``area_eff_deg2`` (joined on pixel from ``area``, a map with that
    column at the same nside) and, per selection, its count over that area. A pixel absent
    from ``area`` gets NaN for both (no randoms say how much of it was seen); a pixel with
    no effective area (every random masked) a NaN density."""
    if area.nside != counts.nside:
        raise MapError(f"the area map is at nside {area.nside}, the counts at "
                       f"{counts.nside}: make both at one nside")
    if AREA_EFF not in area.table.columns:
        raise MapError(f"the area map has no {AREA_EFF} column")
    table = counts.table.drop(columns=[c for c in counts.table.columns
                                       if c == AREA_EFF or str(c).endswith(
                                           DENSITY_EFF_SUFFIX)])
    lookup = pd.Series(area.table[AREA_EFF].to_numpy(dtype=np.float64),
                       index=area.table[PIXEL].to_numpy())
    eff = lookup.reindex(table[PIXEL].to_numpy()).to_numpy()
    table[AREA_EFF] = eff
    selections = HealpixMap(counts.nside, table).selections
    with np.errstate(divide="ignore", invalid="ignore"):
        for name in selections:
            table[density_eff_column(name)] = np.where(
                eff > 0, table[name].to_numpy() / eff, np.nan)
    return HealpixMap(counts.nside, table)


# --- files -------------------------------------------------------------------------------

def map_header(hmap: HealpixMap) -> dict[str, tuple[Any, str]]:
    """The FITS cards, ``{keyword: (value, comment)}``, that make a BINTABLE a partial-sky
    HEALPix map (the form :func:`halo_lrg.io.tables.table_bytes` takes)."""
    pixel = hmap.table[PIXEL].to_numpy()
    first, last = (int(pixel[0]), int(pixel[-1])) if pixel.size else (0, -1)
    return {
        "PIXTYPE": ("HEALPIX", "HEALPIX pixelisation"),
        "ORDERING": (ORDERING, "Pixel ordering scheme"),
        "NSIDE": (hmap.nside, "Resolution parameter of HEALPIX"),
        "COORDSYS": (COORDSYS, "Celestial (equatorial): RA, Dec"),
        "INDXSCHM": ("EXPLICIT", "Indexing: the pixels listed in PIXEL"),
        "OBJECT": ("PARTIAL", "Sky coverage: the pixels listed"),
        "GRAIN": (1, "One pixel index per row"),
        "FIRSTPIX": (first, "First pixel stored (0 based)"),
        "LASTPIX": (last, "Last pixel stored (0 based)"),
        "OBS_NPIX": (int(pixel.size), "Pixels stored"),
    }


def map_units(hmap: HealpixMap) -> dict[str, str]:
    """Units (FITS TUNITn) of the map's columns that have one."""
    units = {c: u for c, u in _UNITS.items() if c in hmap.table.columns}
    units.update({str(c): "deg-2" for c in hmap.table.columns
                  if str(c).endswith(DENSITY_EFF_SUFFIX)})
    return units


def fits_frame(hmap: HealpixMap) -> pd.DataFrame:
    """The table as a FITS map stores it: ``PIXEL`` (int64) first, as healpy names the
    index column, the other columns as they are (numbers only)."""
    for column in hmap.table.columns:
        if hmap.table[column].dtype.kind not in "iubf":
            raise MapError(f"column {column} ({hmap.table[column].dtype}) is not a number: "
                           "a FITS map holds numbers")
    frame = hmap.table.rename(columns={PIXEL: FITS_PIXEL})
    frame[FITS_PIXEL] = frame[FITS_PIXEL].astype(np.int64)
    return frame


def csv_comment(hmap: HealpixMap) -> str:
    """The line a map CSV starts with: what the columns cannot say (nside, ordering)."""
    return f"# HEALPix NSIDE={hmap.nside} ORDERING={ORDERING} COORDSYS={COORDSYS}\n"


def map_format(path: Union[str, Path]) -> str:
    """``fits`` or ``csv`` from a file name (``.fits``/``.fit``; ``.csv``), else MapError."""
    name = str(path).lower()
    if name.endswith((".fits", ".fit")):
        return "fits"
    if name.endswith(".csv"):
        return "csv"
    raise MapError(f"{path}: cannot tell the map format from the name (use .fits or .csv)")


def read_map(path: Union[str, Path]) -> HealpixMap:
    """A map written by :func:`halo_lrg.count.pixels.write_map` (FITS or CSV), or any
    partial-sky NESTED HEALPix FITS map (first column the pixel index, as healpy writes
    them; ``ra, dec`` are added when absent). MapError naming the file when it is not one."""
    fmt = map_format(path)
    try:
        nside, table = _read_fits(path) if fmt == "fits" else _read_csv(path)
    except FileNotFoundError:
        raise MapError(f"{path}: no such file") from None
    if PIXEL not in table.columns:
        raise MapError(f"{path}: no pixel column: not a HEALPix map written by halo-lrg")
    pixel = table[PIXEL]
    if pixel.isna().any() or not pd.api.types.is_integer_dtype(pixel.dtype):
        raise MapError(f"{path}: pixel must be whole numbers")
    table = table.sort_values(PIXEL, kind="stable").reset_index(drop=True)
    if table[PIXEL].duplicated().any():
        raise MapError(f"{path}: a pixel is listed twice")
    if not set(CENTRE) <= set(table.columns):
        centres = _centres(nside, table[PIXEL].to_numpy().astype(np.int64))
        table.insert(1, "ra", centres["ra"])
        table.insert(2, "dec", centres["dec"])
    try:
        return HealpixMap(nside, table)
    except (MapError, ValueError) as exc:
        raise MapError(f"{path}: {exc}") from None


def _nside(value: Any, path: Union[str, Path]) -> int:
    try:
        return check_nside(int(str(value).strip()))
    except ValueError as exc:
        raise MapError(f"{path}: NSIDE {value!r} is not usable ({exc})") from None


def _check_ordering(ordering: Any, path: Union[str, Path]) -> None:
    ordering = str(ordering).strip().upper()
    if ordering not in ("NESTED", "NEST"):
        raise MapError(f"{path}: ORDERING is {ordering or 'not given'}: halo-lrg reads NESTED "
                       "maps only (convert with healpy.reorder(m, r2n=True))")


def _read_csv(path: Union[str, Path]) -> tuple[int, pd.DataFrame]:
    with open(path, encoding="utf-8") as fh:
        first = fh.readline()
    found = _CSV_HEADER.search(first) if first.startswith("#") else None
    if found is None:
        raise MapError(f"{path}: the first line must be '# HEALPix NSIDE=<n> ORDERING=NESTED' "
                       "(a map CSV written by halo-lrg)")
    nside = _nside(found.group(1), path)
    _check_ordering(found.group(2), path)
    try:
        table = pd.read_csv(path, comment="#")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise MapError(f"{path}: not a CSV table ({exc})") from None
    return nside, table


def _read_fits(path: Union[str, Path]) -> tuple[int, pd.DataFrame]:
    import fitsio

    try:
        with fitsio.FITS(str(path)) as fits:
            hdu = next((h for h in fits[1:] if h.get_exttype() == "BINARY_TBL"
                        and str(h.read_header().get("PIXTYPE", "")).strip() == "HEALPIX"),
                       None)
            if hdu is None:
                raise MapError(f"{path}: no binary table with PIXTYPE = 'HEALPIX'")
            header = hdu.read_header()
            data = hdu.read()
    except OSError as exc:
        if not Path(path).exists():
            raise FileNotFoundError(path) from None
        raise MapError(f"{path}: not a FITS file ({str(exc).splitlines()[0]})") from None
    if "NSIDE" not in header:
        raise MapError(f"{path}: no NSIDE in the map's header")
    nside = _nside(header["NSIDE"], path)
    _check_ordering(header.get("ORDERING", ""), path)
    scheme = str(header.get("INDXSCHM", "EXPLICIT")).strip().upper()
    if scheme != "EXPLICIT":
        raise MapError(f"{path}: INDXSCHM is {scheme}: halo-lrg reads partial-sky maps "
                       "(INDXSCHM = 'EXPLICIT', the pixel index in the first column)")
    columns = {}
    for k, name in enumerate(data.dtype.names):
        values = data[name]
        if values.ndim != 1:
            raise MapError(f"{path}: column {name} is a vector; a map has one value per "
                           "pixel and column")
        values = values.astype(values.dtype.newbyteorder("="))
        columns[PIXEL if k == 0 else name] = values.astype(np.int64) if k == 0 and \
            values.dtype.kind in "iu" else values
    return nside, pd.DataFrame(columns)
