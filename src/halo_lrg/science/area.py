"""Effective area per brick from randoms, and densities over it.

A brick's geometric area (:mod:`halo_lrg.science.bricks`) counts sky the survey never saw or
masked out: around bright stars, large galaxies and clusters (MASKBITS 1, 12, 13 for DESI
LRGs) and where a band has no exposure. Randoms measure what is left: each randoms file
scatters ``density`` points per deg² over the sky (2,500 in DR10), so

    area_eff = n_kept / (density x n_files)

where ``n_kept`` counts the brick's points passing the same footprint cuts as the galaxies
(:func:`halo_lrg.count.randoms.count_randoms_per_brick`), summed over ``n_files`` files. Its
Poisson error is sqrt(n_kept) / (density x n_files): ~2.5% for a full 0.0625 deg² brick with
one file, ~0.6% with all 20 DR10 files. ``lrg_density_eff = lrg_count / area_eff`` is then
the density of the selected sample per unmasked deg², flat where the geometric one dips at
holes and edges.

The same per HEALPix pixel (NESTED, as DESI's pixweight maps at nside 256):
:func:`pixel_area_map` turns randoms counted per pixel
(:func:`halo_lrg.count.randoms.count_randoms`, ``nside=``) into a map of
``area_eff_deg2`` and its Poisson error, which
:func:`halo_lrg.science.healpix_map.with_effective_area` joins to a counts map.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Union

import numpy as np
import pandas as pd

from halo_lrg.science.density import TableError, read_csv_table
from halo_lrg.science.healpix import nest_to_radec
from halo_lrg.science.healpix_map import AREA_EFF, HealpixMap

#: Randoms per deg² in each DR10 randoms file.
RANDOMS_DENSITY = 2500.0
AREA_COLUMNS = ["brickname", "n_randoms", "n_kept", "area_eff_deg2"]
#: What :func:`add_effective_area` adds to a density table.
EFFECTIVE_COLUMNS = ["area_eff_deg2", "lrg_density_eff"]
#: A per-pixel area map's columns (:func:`pixel_area_map`).
PIXEL_AREA_COLUMNS = ["pixel", "ra", "dec", "n_randoms", "n_kept", AREA_EFF,
                      "area_eff_err_deg2"]


def _check(n_files: int, density: float) -> None:
    if isinstance(n_files, bool) or int(n_files) != n_files or n_files < 1:
        raise ValueError(f"n_files must be a positive integer, got {n_files!r}")
    if not (np.isfinite(density) and density > 0):
        raise ValueError(f"density must be a positive number of randoms per deg², got "
                         f"{density!r}")


def effective_area(n_kept: Any, n_files: int, density: float = RANDOMS_DENSITY) -> Any:
    """Effective area in deg²: ``n_kept / (density x n_files)`` (scalar or array)."""
    _check(n_files, density)
    return np.asarray(n_kept, dtype=np.float64) / (density * n_files) if np.ndim(n_kept) \
        else float(n_kept) / (density * n_files)


def effective_area_error(n_kept: Any, n_files: int, density: float = RANDOMS_DENSITY) -> Any:
    """Poisson 1σ of :func:`effective_area`: ``sqrt(n_kept) / (density x n_files)``."""
    _check(n_files, density)
    return np.sqrt(np.asarray(n_kept, dtype=np.float64)) / (density * n_files)


def _sum_randoms(tables: Iterable[pd.DataFrame], key: str, dtype: str) -> pd.DataFrame:
    """``key, n_randoms, n_kept`` tables summed per key, sorted by it."""
    frames = [t[[key, "n_randoms", "n_kept"]] for t in tables]
    if not frames:
        return pd.DataFrame({key: pd.Series([], dtype=dtype),
                             "n_randoms": pd.Series([], dtype="int64"),
                             "n_kept": pd.Series([], dtype="int64")})
    merged = pd.concat(frames, ignore_index=True)
    if key == "brickname":
        merged["brickname"] = merged["brickname"].astype(str).str.strip()
    summed = merged.groupby(key, sort=True, as_index=False)[["n_randoms", "n_kept"]].sum()
    return summed.astype({"n_randoms": "int64", "n_kept": "int64"})


def merge_randoms_counts(tables: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Per-file ``brickname, n_randoms, n_kept`` tables summed per brick, sorted by name."""
    return _sum_randoms(tables, "brickname", str)


def merge_pixel_randoms(tables: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Per-file ``pixel, n_randoms, n_kept`` tables (one nside) summed per pixel, sorted."""
    return _sum_randoms(tables, "pixel", "int64")


def area_table(counts: pd.DataFrame, n_files: int,
               density: float = RANDOMS_DENSITY) -> pd.DataFrame:
    """``brickname, n_randoms, n_kept, area_eff_deg2`` from randoms counts summed over
    ``n_files`` files (:func:`merge_randoms_counts`)."""
    out = merge_randoms_counts([counts])
    out["area_eff_deg2"] = effective_area(out["n_kept"].to_numpy(), n_files, density)
    return out[AREA_COLUMNS]


def pixel_area_map(counts: pd.DataFrame, nside: int, n_files: int,
                   density: float = RANDOMS_DENSITY) -> HealpixMap:
    """The effective area of each NESTED pixel at ``nside`` from randoms counted per pixel
    (``pixel, n_randoms, n_kept`` summed over ``n_files`` files: :func:`merge_pixel_randoms`):
    ``pixel, ra, dec, n_randoms, n_kept, area_eff_deg2, area_eff_err_deg2`` (the Poisson
    1σ), one row per pixel any random point fell in."""
    summed = merge_pixel_randoms([counts])
    pixel = summed["pixel"].to_numpy(dtype=np.int64)
    ra, dec = nest_to_radec(pixel, nside)
    kept = summed["n_kept"].to_numpy()
    table = pd.DataFrame({"pixel": pixel, "ra": ra, "dec": dec,
                          "n_randoms": summed["n_randoms"].to_numpy(), "n_kept": kept,
                          AREA_EFF: effective_area(kept, n_files, density),
                          "area_eff_err_deg2": effective_area_error(kept, n_files, density)})
    return HealpixMap(nside, table[PIXEL_AREA_COLUMNS])


def read_area_csv(path: Union[str, Path]) -> pd.DataFrame:
    """A ``brickname,…,area_eff_deg2`` CSV as written by ``halo-lrg area``: the names
    stripped, the area finite and not negative, each brick once."""
    frame = read_csv_table(path)
    missing = [c for c in ("brickname", "area_eff_deg2") if c not in frame.columns]
    if missing:
        raise TableError(f"{path}: not an area table (no {', '.join(missing)} column; make "
                         "one with `halo-lrg area`)")
    frame["brickname"] = frame["brickname"].astype(str).str.strip()
    area = pd.to_numeric(frame["area_eff_deg2"], errors="coerce")
    if not (np.isfinite(area) & (area >= 0)).all():
        raise TableError(f"{path}: area_eff_deg2 must be finite numbers ≥ 0")
    if frame["brickname"].duplicated().any():
        raise TableError(f"{path}: a brickname repeats, so the join would be ambiguous")
    frame["area_eff_deg2"] = area.astype(np.float64)
    return frame


def add_effective_area(density: pd.DataFrame, area: pd.DataFrame) -> pd.DataFrame:
    """``density`` with ``area_eff_deg2`` (from ``area``, joined on brickname) and
    ``lrg_density_eff = lrg_count / area_eff_deg2`` inserted after ``lrg_density``.

    A brick absent from ``area`` gets NaN for both (no randoms say how much of it was seen);
    a brick with no effective area (every random masked) gets ``lrg_density_eff`` NaN.
    """
    if "area_eff_deg2" not in area.columns or "brickname" not in area.columns:
        raise TableError("the area table needs brickname and area_eff_deg2 columns")
    names = area["brickname"].astype(str).str.strip()
    if names.duplicated().any():
        raise TableError("the area table repeats a brickname, so the join would be ambiguous")
    lookup = pd.Series(area["area_eff_deg2"].to_numpy(dtype=np.float64), index=names.to_numpy())
    out = density.drop(columns=[c for c in EFFECTIVE_COLUMNS if c in density.columns])
    eff = lookup.reindex(out["brickname"].astype(str).to_numpy()).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        per_eff = np.where(eff > 0, out["lrg_count"].to_numpy() / eff, np.nan)
    at = list(out.columns).index("lrg_density") + 1 if "lrg_density" in out.columns \
        else len(out.columns)
    out.insert(at, "area_eff_deg2", eff)
    out.insert(at + 1, "lrg_density_eff", per_eff)
    return out
