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
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Union

import numpy as np
import pandas as pd

from halo_lrg.science.density import TableError, read_csv_table

#: Randoms per deg² in each DR10 randoms file.
RANDOMS_DENSITY = 2500.0
AREA_COLUMNS = ["brickname", "n_randoms", "n_kept", "area_eff_deg2"]
#: What :func:`add_effective_area` adds to a density table.
EFFECTIVE_COLUMNS = ["area_eff_deg2", "lrg_density_eff"]


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


def merge_randoms_counts(tables: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Per-file ``brickname, n_randoms, n_kept`` tables summed per brick, sorted by name."""
    frames = [t[["brickname", "n_randoms", "n_kept"]] for t in tables]
    if not frames:
        return pd.DataFrame({"brickname": pd.Series([], dtype=str),
                             "n_randoms": pd.Series([], dtype="int64"),
                             "n_kept": pd.Series([], dtype="int64")})
    merged = pd.concat(frames, ignore_index=True)
    merged["brickname"] = merged["brickname"].astype(str).str.strip()
    summed = merged.groupby("brickname", sort=True, as_index=False)[["n_randoms",
                                                                     "n_kept"]].sum()
    return summed.astype({"n_randoms": "int64", "n_kept": "int64"})


def area_table(counts: pd.DataFrame, n_files: int,
               density: float = RANDOMS_DENSITY) -> pd.DataFrame:
    """``brickname, n_randoms, n_kept, area_eff_deg2`` from randoms counts summed over
    ``n_files`` files (:func:`merge_randoms_counts`)."""
    out = merge_randoms_counts([counts])
    out["area_eff_deg2"] = effective_area(out["n_kept"].to_numpy(), n_files, density)
    return out[AREA_COLUMNS]


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
