"""Sky maps of LRG density per brick and per HEALPix pixel (matplotlib, an optional extra:
halo-lrg[plot])."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from halo_lrg.science.healpix_map import HealpixMap


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


# --- HEALPix maps --------------------------------------------------------------------------

#: Automatic zoom: a map whose pixels fit in a window at most this wide in RA and this tall in
#: Dec (degrees) is drawn on RA/Dec axes around them; a wider one as a whole-sky Mollweide,
#: where such a patch would be a few dots.
ZOOM_MAX_SPAN_DEG = 90.0
#: Where the Mollweide map is centred: RA 180° puts the seam at RA 0/360 (the map's edges),
#: RA growing from 0 at the right edge to 360 at the left, as astronomers draw the sky.
MOLLWEIDE_RA_CENTRE = 180.0


def healpix_values(hmap: HealpixMap, selection: Optional[str] = None
                   ) -> tuple[np.ndarray, str, Optional[str]]:
    """What a map plot shows, one value per row of ``hmap.table`` (NaN: not drawn), its
    colourbar label and the count column it comes from (None for an area map): a
    selection's density over the effective area when the map has one (``lrg_density_eff``,
    ``<name>_density_eff``), else its count over the pixel area; ``selection`` names one
    (default the first; ``n_objects`` for all objects). A map of effective area alone shows
    the fraction of each pixel seen."""
    from halo_lrg.science.healpix_map import AREA_EFF, OBJECTS, MapError, density_eff_column

    table = hmap.table
    names = hmap.selections
    if selection is not None and selection not in [*names, OBJECTS]:
        have = ", ".join([*names, OBJECTS] if OBJECTS in table.columns else names) or "none"
        raise MapError(f"no selection {selection!r} in the map (columns to plot: {have})")
    column = selection or (names[0] if names else OBJECTS)
    if column not in table.columns:
        if AREA_EFF not in table.columns:
            raise MapError("nothing to plot: the map has no counts and no effective area")
        return (table[AREA_EFF].to_numpy(dtype=np.float64) / hmap.pixel_area_deg2,
                "effective fraction of the pixel", None)
    counts = table[column].to_numpy(dtype=np.float64)
    noun = {OBJECTS: "object", "lrg_count": "LRG"}.get(column, column)
    label = f"{noun} density [deg$^{{-2}}$]"
    if hmap.has_effective_area:
        density = density_eff_column(column)
        if density in table.columns:
            return table[density].to_numpy(dtype=np.float64), label, column
        eff = table[AREA_EFF].to_numpy(dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(eff > 0, counts / eff, np.nan), label, column
    return counts / hmap.pixel_area_deg2, label, column


def _colour_limits(values: np.ndarray) -> tuple[float, float]:
    """The 2nd-98th percentile (one outlier must not wash the map out), widened by 10% when
    that is a single value."""
    low, high = np.percentile(values, [2, 98]) if values.size > 1 else (values[0], values[0])
    if high <= low:
        low, high = low * 0.9, high * 1.1 + 1e-9
    return float(low), float(high)


def _sample(pixel: np.ndarray, values: np.ndarray, nside: int, ra: np.ndarray,
            dec: np.ndarray) -> np.ndarray:
    """The map's value at each (ra, dec) (NaN outside its pixels): every image cell looks
    up the pixel it lies in, so the poles and the RA seam need no special case."""
    from halo_lrg.science.healpix import radec_to_nest

    cells = radec_to_nest(ra, dec, nside)
    slot = np.minimum(np.searchsorted(pixel, cells), pixel.size - 1)
    return np.where(pixel[slot] == cells, values[slot], np.nan)


def _circular_window(ra: np.ndarray) -> tuple[float, float]:
    """The shortest RA interval [low, high] (high may exceed 360) holding every ``ra``: it
    starts after the widest empty gap, so data across RA 0/360 give e.g. [355, 365]."""
    ra = np.unique(np.mod(ra, 360.0))
    gaps = np.diff(np.r_[ra, ra[0] + 360.0])
    widest = int(np.argmax(gaps))
    low = ra[(widest + 1) % ra.size]
    return float(low), float(low + 360.0 - gaps[widest])


def _zoom_window(hmap: HealpixMap, pixel: np.ndarray) -> tuple[float, float, float, float]:
    """RA and Dec limits around ``pixel``'s centres, 1.5 pixel sizes wide of them (a
    pixel's corners lie within ~0.7 of a size from its centre); all RA near a pole."""
    from halo_lrg.science.healpix import nest_to_radec

    ra, dec = nest_to_radec(pixel, hmap.nside)
    pad = 1.5 * math.sqrt(hmap.pixel_area_deg2)
    dec_low, dec_high = max(dec.min() - pad, -90.0), min(dec.max() + pad, 90.0)
    ra_low, ra_high = _circular_window(ra)
    widest = max(abs(dec_low), abs(dec_high))
    ra_pad = pad / max(math.cos(math.radians(min(widest, 89.0))), 1e-3)
    if ra_high - ra_low + 2 * ra_pad >= 360.0 or widest >= 89.0:  # around a pole: all RA
        return 0.0, 360.0, dec_low, dec_high
    return ra_low - ra_pad, ra_high + ra_pad, dec_low, dec_high


def _is_small(hmap: HealpixMap, pixel: np.ndarray) -> bool:
    ra_low, ra_high, dec_low, dec_high = _zoom_window(hmap, pixel)
    return ra_high - ra_low <= ZOOM_MAX_SPAN_DEG and dec_high - dec_low <= ZOOM_MAX_SPAN_DEG


def healpix_figure(hmap: HealpixMap, selection: Optional[str] = None,
                   zoom: Optional[bool] = None, title: Optional[str] = None, dpi: int = 150,
                   figsize: tuple[float, float] = (10.0, 6.0),
                   ra_centre: float = MOLLWEIDE_RA_CENTRE) -> Any:
    """A matplotlib Figure of the map (:func:`healpix_values`): a Mollweide projection of
    the sky with RA increasing to the left, or with ``zoom`` an RA/Dec plot around the
    data (default: zoomed when the data fit in :data:`ZOOM_MAX_SPAN_DEG`). Pixels are
    rasterised: each image cell takes the value of the HEALPix pixel it lies in, exact at
    the poles and across RA 0/360. The caller closes the figure."""
    plt = _pyplot()
    values, label, column = healpix_values(hmap, selection)
    shown = np.isfinite(values)
    if not shown.any():
        raise ValueError("nothing to plot: no pixel of the map has a value")
    pixel = hmap.table["pixel"].to_numpy(dtype=np.int64)[shown]
    values = values[shown]
    if zoom is None:
        zoom = _is_small(hmap, pixel)
    low, high = _colour_limits(values)
    fig = plt.figure(figsize=figsize, dpi=dpi)
    width, height = int(figsize[0] * dpi), int(figsize[1] * dpi)
    style = {"cmap": "viridis", "vmin": low, "vmax": high, "interpolation": "nearest",
             "origin": "lower"}
    if zoom:
        ax = fig.add_subplot()
        ra1, ra2, dec1, dec2 = _zoom_window(hmap, pixel)
        ra = ra2 - (np.arange(width) + 0.5) * (ra2 - ra1) / width  # left to right: RA falls
        dec = dec1 + (np.arange(height) + 0.5) * (dec2 - dec1) / height
        grid_ra, grid_dec = np.meshgrid(ra, dec)
        image = ax.imshow(_sample(pixel, values, hmap.nside, grid_ra, grid_dec),
                          extent=(ra2, ra1, dec1, dec2), aspect="auto", **style)
        ax.set_xlim(ra2, ra1)
        ax.set_ylim(dec1, dec2)
        ax.set_aspect(1.0 / max(math.cos(math.radians(np.clip((dec1 + dec2) / 2, -80, 80))),
                                0.2))
        ax.xaxis.set_major_formatter(lambda x, _pos: f"{x % 360:g}")
        ax.set_xlabel("RA [deg]")
        ax.set_ylabel("Dec [deg]")
    else:
        ax = fig.add_subplot(projection="mollweide")
        # Image cells in axes fractions (2:1, as the ellipse) -> longitude, latitude; cells
        # outside the ellipse come back beyond ±π or NaN and stay empty.
        cols, rows = width, max(width // 2, 1)
        u, v = np.meshgrid((np.arange(cols) + 0.5) / cols, (np.arange(rows) + 0.5) / rows)
        to_data = ax.transAxes + ax.transData.inverted()  # composed now: no stale layout
        lon, lat = to_data.transform(np.column_stack([u.ravel(), v.ravel()])).T
        inside = np.isfinite(lon) & np.isfinite(lat) & (np.abs(lon) <= math.pi) & \
            (np.abs(lat) <= math.pi / 2)
        cells = np.full(lon.size, np.nan)
        cells[inside] = _sample(pixel, values, hmap.nside,
                                np.mod(ra_centre - np.degrees(lon[inside]), 360.0),
                                np.clip(np.degrees(lat[inside]), -90.0, 90.0))
        image = ax.imshow(cells.reshape(rows, cols), extent=(0, 1, 0, 1),
                          transform=ax.transAxes, **style)
        ticks = np.arange(-150, 151, 30)
        ax.set_xticks(np.radians(ticks))
        ax.set_xticklabels([f"{(ra_centre - t) % 360:g}°" for t in ticks], fontsize=8)
        ax.set_xlabel("RA")
        ax.set_ylabel("Dec")
    ax.grid(alpha=0.3)
    if title is None:
        title = f"{label.split(' [')[0]} per HEALPix pixel (nside {hmap.nside}, NESTED)\n" \
                f"{_healpix_summary(hmap, shown, column)}"
    ax.set_title(title, fontsize=10, pad=6 if zoom else 18)  # clear of the 75° label
    colourbar = fig.colorbar(image, ax=ax, shrink=0.7 if zoom else 0.6,
                             orientation="vertical" if zoom else "horizontal", pad=0.08)
    colourbar.set_label(label)
    return fig


def _healpix_summary(hmap: HealpixMap, shown: np.ndarray, column: Optional[str]) -> str:
    from halo_lrg.science.healpix_map import AREA_EFF, OBJECTS

    table = hmap.table[shown]
    effective = AREA_EFF in table.columns
    area = float(table[AREA_EFF].sum()) if effective else len(table) * hmap.pixel_area_deg2
    kind = "effective area" if effective else "pixel area"
    if column is None:
        return f"{len(table):,} pixels, {area:,.2f} deg² of {kind}"
    total = int(table[column].sum())
    what = {OBJECTS: "objects", "lrg_count": "LRGs"}.get(column, column)
    return (f"{len(table):,} pixels, {total:,} {what} over {area:,.2f} deg² of {kind} "
            f"(mean {total / area if area else 0:,.0f} per deg²)")


def plot_healpix_map(hmap: HealpixMap, output: Union[str, Path],
                     histogram: Optional[Union[str, Path]] = None,
                     selection: Optional[str] = None, zoom: Optional[bool] = None,
                     title: Optional[str] = None, dpi: int = 150,
                     figsize: tuple[float, float] = (10.0, 6.0)) -> Path:
    """Draw :func:`healpix_figure` to ``output`` (PNG, or PDF/SVG by extension) and,
    optionally, a histogram of the pixels' values to ``histogram``."""
    plt = _pyplot()
    fig = healpix_figure(hmap, selection, zoom, title, dpi, figsize)
    output = Path(output)
    try:
        fig.savefig(output, dpi=dpi)
    finally:
        plt.close(fig)
    if histogram is not None:
        values, label, _column = healpix_values(hmap, selection)
        values = values[np.isfinite(values)]
        fig, hx = plt.subplots(figsize=(6, 4), dpi=dpi)
        hx.hist(values, bins=min(50, max(5, values.size // 5)), color="#3b6ea8")
        hx.axvline(float(np.median(values)), color="k", ls="--", label="median")
        hx.set_xlabel(label)
        hx.set_ylabel(f"pixels (nside {hmap.nside})")
        hx.legend()
        fig.tight_layout()
        fig.savefig(histogram, dpi=dpi)
        plt.close(fig)
    return output
