"""A sky map of LRG density per brick (matplotlib, an optional extra: halo-lrg[plot])."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import numpy as np
import pandas as pd


class MissingExtraError(RuntimeError):
    """An optional dependency is not installed; the message says how to install it."""


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise MissingExtraError("plotting needs matplotlib: pip install 'halo-lrg[plot]'"
                                ) from None
    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    return plt


def _effective(density: pd.DataFrame) -> bool:
    """Plot densities over the effective area when the table has them (`density --area`)."""
    return "lrg_density_eff" in density.columns and density["lrg_density_eff"].notna().any()


def _title(density: pd.DataFrame) -> str:
    effective = _effective(density)
    area = density["area_eff_deg2" if effective else "area_deg2"].sum()
    lrg = int(density["lrg_count"].sum())
    kind = "effective area" if effective else "brick area"
    return (f"{len(density):,} bricks, {lrg:,} LRGs over {area:,.2f} deg² of {kind} "
            f"(mean {lrg / area if area else 0:,.0f} per deg²)")


def plot_density_map(density: pd.DataFrame, output: Union[str, Path],
                     histogram: Optional[Union[str, Path]] = None,
                     title: Optional[str] = None, dpi: int = 150,
                     figsize: tuple[float, float] = (10.0, 6.0)) -> Path:
    """Draw each brick as its RA/Dec rectangle coloured by LRG density; RA increases to the
    left, as on the sky. Optionally a histogram of brick densities to a second file.

    The density is over each brick's effective area (``lrg_density_eff``, from the survey's
    randoms) when the table has it, else over the full brick area (``lrg_density``), which
    reads low wherever a brick is partly masked or unobserved; the title says which."""
    from halo_lrg.science.bricks import brick_table

    plt = _pyplot()
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Rectangle

    if density.empty:
        raise ValueError("nothing to plot: the density table has no rows")
    bricks = brick_table(density["brickname"].to_numpy())
    fig, ax = plt.subplots(figsize=figsize, dpi=dpi)
    patches = [Rectangle((r1, d1), r2 - r1, d2 - d1) for r1, r2, d1, d2 in
               zip(bricks["ra1"], bricks["ra2"], bricks["dec1"], bricks["dec2"])]
    effective = _effective(density)
    if effective:  # bricks the randoms found no area for have nothing to show
        density = density[density["lrg_density_eff"].notna()]
        bricks = brick_table(density["brickname"].to_numpy())
        patches = [Rectangle((r1, d1), r2 - r1, d2 - d1) for r1, r2, d1, d2 in
                   zip(bricks["ra1"], bricks["ra2"], bricks["dec1"], bricks["dec2"])]
    values = density["lrg_density_eff" if effective else "lrg_density"].to_numpy()
    collection = PatchCollection(patches, cmap="viridis", linewidths=0)
    collection.set_array(values)
    collection.set_clim(*np.nanpercentile(values, [2, 98]) if len(values) > 1 else
                        (values[0] * 0.9, values[0] * 1.1 + 1e-9))
    ax.add_collection(collection)
    pad = 0.02 * max(bricks["ra2"].max() - bricks["ra1"].min(),
                     bricks["dec2"].max() - bricks["dec1"].min())
    ax.set_xlim(bricks["ra2"].max() + pad, bricks["ra1"].min() - pad)  # RA grows leftwards
    ax.set_ylim(bricks["dec1"].min() - pad, bricks["dec2"].max() + pad)
    ax.set_aspect(1.0 / max(np.cos(np.radians(np.clip(bricks["dec"].mean(), -80, 80))), 0.2))
    ax.set_xlabel("RA [deg]")
    ax.set_ylabel("Dec [deg]")
    kind = " (over effective area)" if effective else ""
    ax.set_title(title or f"LRG density per brick{kind}\n{_title(density)}", fontsize=10)
    colourbar = fig.colorbar(collection, ax=ax, shrink=0.85)
    colourbar.set_label("LRG density [deg$^{-2}$]")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    output = Path(output)
    fig.savefig(output, dpi=dpi)
    plt.close(fig)
    if histogram is not None:
        fig, hx = plt.subplots(figsize=(6, 4), dpi=dpi)
        hx.hist(values, bins=min(50, max(5, len(values) // 5)), color="#3b6ea8")
        area = density["area_eff_deg2" if effective else "area_deg2"].sum()
        hx.axvline(density["lrg_count"].sum() / area, color="k", ls="--",
                   label="area-weighted mean")
        hx.set_xlabel("LRG density [deg$^{-2}$]")
        hx.set_ylabel("bricks")
        hx.legend()
        hx.set_title(_title(density), fontsize=9)
        fig.tight_layout()
        fig.savefig(histogram, dpi=dpi)
        plt.close(fig)
    return output
