"""``halo-lrg density``, ``regions`` and ``plot``: from counts to densities, regions and maps."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from halo_lrg.cli.options import CONTEXT_SETTINGS, get_config, override
from halo_lrg.science.bricks import UnknownBrickError
from halo_lrg.science.density import TableError


def _fail(exc: Exception, path: Optional[Path] = None) -> click.ClickException:
    prefix = f"{path}: " if path is not None and str(path) not in str(exc) else ""
    return click.ClickException(f"{prefix}{exc}")


@click.command("density", context_settings=CONTEXT_SETTINGS)
@click.argument("counts", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Where to write the density CSV.")
@click.option("--bricks", "qa_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="A per-brick table (FITS or CSV with BRICKNAME), e.g. the "
              "survey's brick summary with depths and EBV, merged on brickname.")
def density_command(counts: Path, output: Path, qa_path: Optional[Path]) -> None:
    """Add brick centres, exact areas and LRG density (per deg²) to a counts CSV.

    \b
    Writes: brickname, ra, dec, area_deg2, lrg_count, lrg_density [, QA columns...]
    Example:
      halo-lrg density out/lrg_counts_per_brick/part-00000.csv --output density.csv
    """
    from halo_lrg.science.density import density_table, read_counts_csv, read_qa_table

    try:
        qa = read_qa_table(qa_path) if qa_path else None
        table = density_table(read_counts_csv(counts), qa)
    except TableError as exc:
        raise _fail(exc) from None
    except UnknownBrickError as exc:
        raise _fail(exc, counts) from None
    output.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(output, index=False, float_format="%.10g")
    click.echo(f"{len(table):,} bricks, {int(table['lrg_count'].sum()):,} LRGs over "
               f"{table['area_deg2'].sum():,.3f} deg² -> {output}")


@click.command("regions", context_settings=CONTEXT_SETTINGS)
@click.argument("density", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--cell-deg", type=float, default=None, help="Cell size in degrees [5].")
@click.option("--top", type=click.IntRange(min=1), default=None, help="Cells to list [10].")
@click.option("--min-area", type=click.FloatRange(min=0), default=None,
              help="Skip cells with less brick area than this, in deg² [0].")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the ranked cells as CSV.")
@click.pass_context
def regions_command(ctx: click.Context, density: Path, cell_deg: Optional[float],
                    top: Optional[int], min_area: Optional[float],
                    output: Optional[Path]) -> None:
    """Rank D-degree sky cells by LRG density (LRGs over brick area in the cell).

    \b
    Example:
      halo-lrg regions density.csv --cell-deg 2 --top 5 --min-area 1.0
    """
    import pandas as pd

    from halo_lrg.science.regions import format_regions_table, rank_regions

    cfg = override(get_config(ctx), science={"cell_deg": cell_deg, "top": top,
                                             "min_area": min_area}).science
    try:
        table = pd.read_csv(density, dtype={"brickname": str})
        missing = {"brickname", "ra", "dec", "area_deg2", "lrg_count"} - set(table.columns)
        if missing:
            raise TableError(f"{density}: not a density table (missing "
                             f"{', '.join(sorted(missing))}; make one with `halo-lrg density`)")
        regions = rank_regions(table, cfg.cell_deg, cfg.top, cfg.min_area)
    except FileNotFoundError:
        raise click.ClickException(f"{density}: no such file") from None
    except (TableError, ValueError) as exc:
        raise _fail(exc, density) from None
    click.echo(format_regions_table(regions))
    if output is not None:
        regions.to_csv(output, index=False, float_format="%.10g")
        click.echo(f"-> {output}")


@click.command("plot", context_settings=CONTEXT_SETTINGS)
@click.argument("density", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="PNG (or PDF/SVG by extension) for the sky map.")
@click.option("--histogram", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also draw a histogram of brick densities to this file.")
@click.pass_context
def plot_command(ctx: click.Context, density: Path, output: Path,
                 histogram: Optional[Path]) -> None:
    """Draw a sky map of LRG density per brick (RA increasing to the left).

    Needs matplotlib: pip install 'halo-lrg[plot]'.

    \b
    Example:
      halo-lrg plot density.csv --output map.png --histogram hist.png
    """
    import pandas as pd

    from halo_lrg.science.plot import MissingExtraError, plot_density_map

    cfg = get_config(ctx).science
    try:
        table = pd.read_csv(density, dtype={"brickname": str})
        path = plot_density_map(table, output, histogram, dpi=cfg.map_dpi,
                                figsize=(cfg.map_width_in, cfg.map_height_in))
    except FileNotFoundError:
        raise click.ClickException(f"{density}: no such file") from None
    except MissingExtraError as exc:
        raise click.ClickException(str(exc)) from None
    except (KeyError, ValueError) as exc:
        raise _fail(exc, density) from None
    click.echo(f"map -> {path}" + (f", histogram -> {histogram}" if histogram else ""))
