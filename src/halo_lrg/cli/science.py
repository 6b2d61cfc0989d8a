"""``halo-lrg density``, ``regions``, ``plot`` and ``area``: from counts to densities, regions
and maps, and from randoms to effective areas."""

from __future__ import annotations

import time
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
@click.option("--area", "area_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="An effective-area CSV from `halo-lrg area`: adds "
              "area_eff_deg2 and lrg_density_eff (LRGs per unmasked deg²).")
@click.option("--selection", default=None, metavar="NAME",
              help="From a counts CSV of several selections, write this one's table in the "
                   "one-selection layout (lrg_count = its column, n_objects last), as "
                   "`regions` and `plot` read it.")
def density_command(counts: Path, output: Path, qa_path: Optional[Path],
                    area_path: Optional[Path], selection: Optional[str]) -> None:
    """Add brick centres, exact areas and LRG density (per deg²) to a counts CSV.

    \b
    Writes: brickname, ra, dec, area_deg2, lrg_count, lrg_density
            [, area_eff_deg2, lrg_density_eff] [, QA columns...]
    From a run of several selections (brickname,n_objects,<selection>,...):
            brickname, ra, dec, area_deg2 [, area_eff_deg2], n_objects, object_density,
            then per selection <name>, <name>_density [, <name>_density_eff]
            (n_objects: every object of the brick, a coverage signal)
    Example:
      halo-lrg density out/lrg_counts_per_brick/part-00000.csv --output density.csv
      halo-lrg density counts.csv --area area.csv --output density.csv
      halo-lrg density wide.csv --selection desi-lrg --output desi-density.csv
    """
    from halo_lrg.science.density import (
        density_table,
        one_selection,
        read_counts_csv,
        read_qa_table,
        selection_columns,
    )

    try:
        qa = read_qa_table(qa_path) if qa_path else None
        area = None
        if area_path is not None:
            from halo_lrg.science.area import read_area_csv

            area = read_area_csv(area_path)
        frame = read_counts_csv(counts)
        if selection is not None:
            frame = one_selection(frame, selection)
        table = density_table(frame, qa, area)
    except TableError as exc:
        raise _fail(exc) from None
    except UnknownBrickError as exc:
        raise _fail(exc, counts) from None
    output.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(output, index=False, float_format="%.10g")
    several = selection_columns(frame)
    lrg = (", ".join(f"{name} {int(table[name].sum()):,}" for name in several) if several
           else f"{int(table['lrg_count'].sum()):,}")
    click.echo(f"{len(table):,} bricks, {lrg} LRGs over "
               f"{table['area_deg2'].sum():,.3f} deg² -> {output}")
    if area is not None:
        eff = table["area_eff_deg2"]
        unknown = int(eff.isna().sum())
        click.echo(f"effective area {eff.sum():,.3f} deg²"
                   + (f"; {unknown:,} brick(s) absent from {area_path}: "
                      f"{'effective densities' if several else 'lrg_density_eff'} left empty"
                      if unknown else ""))


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


@click.command("area", context_settings=CONTEXT_SETTINGS)
@click.option("--randoms", "index", required=True, metavar="INDEX",
              help="A text file listing randoms files (paths or file://, s3://, http(s):// "
              "URIs), one a line: e.g. randoms.txt from `halo-lrg synth --randoms`.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Where to write the area CSV.")
@click.option("--mask-bits", type=click.IntRange(0, 2**31 - 1), default=12290,
              show_default=True, help="Drop randoms with any of these MASKBITS set (12290 = "
              "bits 1, 12, 13: BRIGHT, GALAXY, CLUSTER, the DESI LRG mask; 0 keeps all).")
@click.option("--density", type=click.FloatRange(min=0, min_open=True), default=2500.0,
              show_default=True, help="Randoms per deg² in each file (DR10: 2500).")
@click.pass_context
def area_command(ctx: click.Context, index: str, output: Path, mask_bits: int,
                 density: float) -> None:
    """Effective area per brick from randoms files, counted here (no Spark).

    A random point counts when NOBS_G, NOBS_R and NOBS_Z are all > 0 and MASKBITS has none
    of --mask-bits; area_eff_deg2 = n_kept / (density x files).

    \b
    Writes: brickname, n_randoms, n_kept, area_eff_deg2
    Example:
      halo-lrg area --randoms sample/randoms.txt --output area.csv
      halo-lrg density counts.csv --area area.csv --output density.csv
    """
    from halo_lrg.count.randoms import count_randoms_per_brick
    from halo_lrg.fits.reader import SweepError
    from halo_lrg.io.fetch import SourceError, input_name, local_copy, read_text
    from halo_lrg.science.area import area_table, merge_randoms_counts
    from halo_lrg.survey.index import parse_index

    cfg = get_config(ctx)
    try:
        uris, duplicates = parse_index(read_text(index, cfg))
    except SourceError as exc:
        raise click.ClickException(f"cannot read the randoms index {exc}") from None
    if not uris:
        raise click.ClickException(f"{index}: lists no randoms file")
    if duplicates:
        click.echo(f"warning: {len(duplicates)} duplicate line(s) in {index} skipped", err=True)
    tables = []
    for k, uri in enumerate(uris, 1):
        started = time.perf_counter()
        try:
            with local_copy(uri, cfg) as path:
                counted = count_randoms_per_brick(path, mask_bits, cfg.read.chunk_rows,
                                                  cfg.read.fast_path)
        except SourceError as exc:
            raise click.ClickException(str(exc)) from None
        except SweepError as exc:  # name the input, not a download's temp path
            raise click.ClickException(f"{uri}: {exc.cause}") from None
        total, kept = int(counted.n_total.sum()), int(counted.n_kept.sum())
        click.echo(f"[{k}/{len(uris)}] {input_name(uri)}  {total:,} randoms, {kept:,} kept "
                   f"({kept / total if total else 0:.1%}), {len(counted.brickname):,} bricks, "
                   f"{time.perf_counter() - started:.1f} s")
        tables.append(counted.frame())
    table = area_table(merge_randoms_counts(tables), len(uris), density)
    output.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(output, index=False, float_format="%.10g")
    click.echo(f"{len(table):,} bricks, effective area {table['area_eff_deg2'].sum():,.3f} deg² "
               f"from {len(uris)} file(s) at {density:g} per deg² (mask bits {mask_bits}) "
               f"-> {output}")
