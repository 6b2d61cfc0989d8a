"""Rank sky regions by LRG density: bricks grouped into square cells of D degrees."""

from __future__ import annotations

import numpy as np
import pandas as pd

from halo_lrg.science.density import DENSITY_COLUMNS

REGION_COLUMNS = ["cell_ra_min", "cell_ra_max", "cell_dec_min", "cell_dec_max", "ra", "dec",
                  "n_bricks", "area_deg2", "lrg_count", "lrg_density"]


def rank_regions(density: pd.DataFrame, cell_deg: float, top: int,
                 min_area: float = 0.0) -> pd.DataFrame:
    """The ``top`` densest cells with at least ``min_area`` deg² of bricks.

    A brick belongs to the cell holding its centre. A cell's density is its LRGs over its
    bricks' area (the area-weighted mean of brick densities); numeric QA columns carried by
    the density table are averaged per cell as ``mean_<column>``.
    """
    if not cell_deg > 0:
        raise ValueError(f"cell size must be positive, got {cell_deg}")
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    frame = density.copy()
    frame["_i"] = np.floor(np.mod(frame["ra"], 360.0) / cell_deg).astype(np.int64)
    frame["_j"] = np.floor((frame["dec"] + 90.0) / cell_deg).astype(np.int64)
    qa = [c for c in frame.columns if c not in DENSITY_COLUMNS and not c.startswith("_")
          and pd.api.types.is_numeric_dtype(frame[c])]
    grouped = frame.groupby(["_i", "_j"], sort=True)
    cells = grouped.agg(n_bricks=("brickname", "size"), area_deg2=("area_deg2", "sum"),
                        lrg_count=("lrg_count", "sum"))
    for column in qa:
        cells[f"mean_{column}"] = grouped[column].mean()
    cells = cells.reset_index()
    cells["lrg_density"] = cells["lrg_count"] / cells["area_deg2"]
    cells["cell_ra_min"] = cells["_i"] * cell_deg
    cells["cell_ra_max"] = np.minimum(cells["cell_ra_min"] + cell_deg, 360.0)
    cells["cell_dec_min"] = cells["_j"] * cell_deg - 90.0
    cells["cell_dec_max"] = np.minimum(cells["cell_dec_min"] + cell_deg, 90.0)
    cells["ra"] = (cells["cell_ra_min"] + cells["cell_ra_max"]) / 2
    cells["dec"] = (cells["cell_dec_min"] + cells["cell_dec_max"]) / 2
    cells = cells[cells["area_deg2"] >= min_area]
    cells = cells.sort_values(["lrg_density", "_i", "_j"], ascending=[False, True, True])
    columns = REGION_COLUMNS + [f"mean_{c}" for c in qa]
    return cells[columns].head(top).reset_index(drop=True)


def format_regions_table(regions: pd.DataFrame) -> str:
    """An aligned table for the terminal."""
    if regions.empty:
        return "no cell meets the criteria"
    shown = pd.DataFrame({
        "rank": np.arange(1, len(regions) + 1),
        "RA range": [f"{a:g}-{b:g}" for a, b in zip(regions["cell_ra_min"],
                                                      regions["cell_ra_max"])],
        "Dec range": [f"{a:g}-{b:g}" for a, b in zip(regions["cell_dec_min"],
                                                       regions["cell_dec_max"])],
        "bricks": regions["n_bricks"],
        "area deg²": regions["area_deg2"].map("{:.3f}".format),
        "LRGs": regions["lrg_count"],
        "LRG/deg²": regions["lrg_density"].map("{:.1f}".format),
    })
    for column in regions.columns:
        if column.startswith("mean_"):
            shown[column] = regions[column].map("{:.4g}".format)
    return shown.to_string(index=False)
