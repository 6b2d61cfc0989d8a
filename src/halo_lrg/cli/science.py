"""``halo-lrg density``, ``regions``, ``plot`` and ``area``: from counts to densities, regions
and maps, and from randoms to effective areas."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import click

from halo_lrg import __version__
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
@click.option("--format", "formats", default=None, metavar="FMT[,FMT...]",
              help="Table formats, comma-separated: csv (OUTPUT as given), fits and parquet "
                   "(OUTPUT's stem + .fits/.parquet: the same table with units as TUNITn / "
                   "field metadata and provenance: version, date, the input files, the "
                   "selection) [config output.formats = csv].")
@click.pass_context
def density_command(ctx: click.Context, counts: Path, output: Path, qa_path: Optional[Path],
                    area_path: Optional[Path], selection: Optional[str],
                    formats: Optional[str]) -> None:
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
      halo-lrg density counts.csv --output density.csv --format csv,fits,parquet
    """
    from halo_lrg.io.tables import parse_formats
    from halo_lrg.science.density import (
        density_table,
        one_selection,
        read_counts_csv,
        read_qa_table,
        selection_columns,
    )

    try:
        chosen = parse_formats(formats if formats is not None
                               else get_config(ctx).output.formats)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--format'") from None
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
    paths = _density_files(output, chosen, table, {
        "halo_lrg_version": (__version__, "halo-lrg, which wrote this table"),
        "date": (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()), "UTC time written"),
        "counts": (str(counts), "the counts table read"),
        **({"area": (str(area_path), "effective areas from randoms")} if area_path else {}),
        **({"bricks": (str(qa_path), "per-brick QA table merged")} if qa_path else {}),
        **({"selection": (selection, "the selection taken from a wide table")}
           if selection else {})})
    several = selection_columns(frame)
    lrg = (", ".join(f"{name} {int(table[name].sum()):,}" for name in several) if several
           else f"{int(table['lrg_count'].sum()):,}")
    click.echo(f"{len(table):,} bricks, {lrg} LRGs over "
               f"{table['area_deg2'].sum():,.3f} deg² -> {', '.join(map(str, paths))}")
    if area is not None:
        eff = table["area_eff_deg2"]
        unknown = int(eff.isna().sum())
        click.echo(f"effective area {eff.sum():,.3f} deg²"
                   + (f"; {unknown:,} brick(s) absent from {area_path}: "
                      f"{'effective densities' if several else 'lrg_density_eff'} left empty"
                      if unknown else ""))


def _density_files(output: Path, formats: tuple[str, ...], table: Any,
                   header: dict[str, Any]) -> list[Path]:
    """Write the density table in each format: the CSV to ``output`` as given (as always),
    the others to its stem + suffix (and the CSV too when ``output`` ends in the suffix of
    another format asked for, so no file is written twice). The paths written."""
    from halo_lrg.io.tables import column_units, table_bytes, table_suffix

    others = {table_suffix(f) for f in formats if f != "csv"}
    paths = []
    for fmt in formats:
        path = output if fmt == "csv" and output.suffix.lower() not in others \
            else output.with_suffix(table_suffix(fmt))
        data = table_bytes(table, fmt, units=column_units(table.columns), header=header,
                           extname="DENSITY")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths.append(path)
    return paths


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
@click.argument("density", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="PNG (or PDF/SVG by extension) for the sky map.")
@click.option("--histogram", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also draw a histogram of brick (or pixel) densities to this file.")
@click.option("--healpix", "healpix_map", type=click.Path(dir_okay=False, path_type=Path),
              default=None, metavar="MAP",
              help="Draw a HEALPix map (FITS or CSV, NESTED, as `run --healpix-nside` "
                   "writes it) instead of a brick density table.")
@click.option("--area", "area_map", type=click.Path(dir_okay=False, path_type=Path),
              default=None, metavar="AREA_MAP",
              help="With --healpix: the effective area per pixel (`area --healpix-nside`, "
                   "the same nside), so the map shows LRGs per deg² of effective area.")
@click.option("--zoom/--mollweide", "zoom", default=None,
              help="With --healpix: an RA/Dec plot around the data, or the whole sky in a "
                   "Mollweide projection [zoomed when the data fit in 90° x 90°].")
@click.option("--selection", default=None, metavar="NAME",
              help="With --healpix: the selection to draw from a map of several (default "
                   "the first; n_objects for all objects).")
@click.pass_context
def plot_command(ctx: click.Context, density: Optional[Path], output: Path,
                 histogram: Optional[Path], healpix_map: Optional[Path],
                 area_map: Optional[Path], zoom: Optional[bool],
                 selection: Optional[str]) -> None:
    """Draw a sky map of LRG density per brick, or per HEALPix pixel with --healpix (RA
    increasing to the left).

    A HEALPix map is drawn over its effective area when it has one (lrg_density_eff), else
    as counts per pixel area.

    Needs matplotlib: pip install 'halo-lrg[plot]'.

    \b
    Example:
      halo-lrg plot density.csv --output map.png --histogram hist.png
      halo-lrg plot --healpix out/lrg_healpix.fits --output sky.png --mollweide
      halo-lrg plot --healpix out/lrg_healpix.csv --area area_healpix256.csv --output eff.png
    """
    from halo_lrg.science.plot import MissingExtraError

    if (density is None) == (healpix_map is None):
        raise click.UsageError("give a density table (DENSITY) or a map (--healpix MAP), "
                               "one of the two")
    if healpix_map is None and (zoom is not None or selection is not None or area_map):
        raise click.UsageError("--zoom, --mollweide, --selection and --area apply to "
                               "--healpix maps")
    cfg = get_config(ctx).science
    source = healpix_map if healpix_map is not None else density
    figure = {"dpi": cfg.map_dpi, "figsize": (cfg.map_width_in, cfg.map_height_in)}
    try:
        if healpix_map is not None:
            from halo_lrg.science.healpix_map import read_map, with_effective_area
            from halo_lrg.science.plot import plot_healpix_map

            hmap = read_map(healpix_map)
            if area_map is not None:
                source = area_map
                hmap = with_effective_area(hmap, read_map(area_map))
            path = plot_healpix_map(hmap, output, histogram, selection, zoom, **figure)
        else:
            import pandas as pd

            from halo_lrg.science.plot import plot_density_map

            table = pd.read_csv(density, dtype={"brickname": str})
            path = plot_density_map(table, output, histogram, **figure)
    except FileNotFoundError:
        raise click.ClickException(f"{source}: no such file") from None
    except MissingExtraError as exc:
        raise click.ClickException(str(exc)) from None
    except (KeyError, ValueError) as exc:
        raise _fail(exc, source) from None
    click.echo(f"map -> {path}" + (f", histogram -> {histogram}" if histogram else ""))


@click.command("area", context_settings=CONTEXT_SETTINGS)
@click.option("--randoms", "index", required=True, metavar="INDEX",
              help="A text file listing randoms files (paths or file://, s3://, http(s):// "
              "URIs), one a line: e.g. randoms.txt from `halo-lrg synth --randoms`.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Where to write the area CSV (always written; other formats beside it).")
@click.option("--mask-bits", type=click.IntRange(0, 2**31 - 1), default=None,
              help="Drop randoms with any of these MASKBITS set (12290 = bits 1, 12, 13: "
              "BRIGHT, GALAXY, CLUSTER, the DESI LRG mask; 0 keeps all) [config "
              "area.mask_bits = 12290].")
@click.option("--density", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Randoms per deg² in each file (DR10: 2500) [config area.density].")
@click.option("--healpix-nside", "nside", type=int, default=None, metavar="N",
              help="Also the effective area per NESTED HEALPix pixel at nside N (a power of "
              "two; DESI's maps use 256), from the same read of the randoms: OUTPUT's stem + "
              "_healpix<N>.csv (and .fits, a map healpy reads, / .parquet with --format).")
@click.option("--split-bytes", type=click.IntRange(min=0), default=None, metavar="BYTES",
              help="Read a randoms file larger than this in row ranges of about this size, "
              "each by its own Spark task fetching only its bytes (0: one task per file) "
              "[config area.split_bytes = 268435456].")
@click.option("--format", "formats", default=None, metavar="FMT[,FMT...]",
              help="Table formats, comma-separated: csv, fits, parquet (OUTPUT's stem + "
              ".fits/.parquet: the same table with units and provenance) [config "
              "output.formats = csv]. The CSV is always written.")
@click.option("--master", default=None, metavar="URL",
              help="Spark master [default: spark-submit's, else config run.master = local[*]].")
@click.pass_context
def area_command(ctx: click.Context, index: str, output: Path, mask_bits: Optional[int],
                 density: Optional[float], nside: Optional[int], split_bytes: Optional[int],
                 formats: Optional[str], master: Optional[str]) -> None:
    """Effective area per brick (and per HEALPix pixel) from the survey's randoms, on Spark.

    Randoms files scatter DENSITY points per deg² over the sky (DR10 randoms-1-<k>.fits:
    2,500), each with the survey's coverage and masks at its position. A point is kept when
    NOBS_G, NOBS_R and NOBS_Z are all > 0 and MASKBITS has none of --mask-bits, so a brick's

    \b
      area_eff_deg2 = n_kept / (density x files)

    is the part of it the selection can see (its Poisson error: sqrt(n_kept) / (density x
    files)); `halo-lrg density --area` divides LRG counts by it.

    Randoms files are tens of millions of rows each: a file larger than --split-bytes is
    read in row ranges by several tasks at once, each fetching only its range (locally,
    S3 ranged GETs, HTTP Range), pinned to the version first seen; small files are read
    several to a task. A line per piece is printed as it finishes. A file (or range) that
    cannot be read fails the command, naming it; nothing is written then.

    \b
    Writes: brickname, n_randoms, n_kept, area_eff_deg2
            with --healpix-nside N, OUTPUT's stem + _healpix<N>.csv: pixel, ra, dec,
            n_randoms, n_kept, area_eff_deg2, area_eff_err_deg2
    Example:
      halo-lrg area --randoms sample/randoms.txt --output area.csv
      halo-lrg area --randoms dr10-randoms.txt --output area.csv --healpix-nside 256 \\
          --split-bytes 134217728 --format csv,fits --master 'local[8]'
      halo-lrg density counts.csv --area area.csv --output density.csv
    """
    from halo_lrg.cli.options import show_library_messages
    from halo_lrg.io.fetch import SourceError, read_text
    from halo_lrg.io.tables import parse_formats
    from halo_lrg.science.healpix import check_nside
    from halo_lrg.spark.area import AreaFailed, count_randoms_spark
    from halo_lrg.spark.session import SparkSetupError, get_spark
    from halo_lrg.survey.index import IndexLinesError, parse_index

    cfg = override(get_config(ctx), area={"mask_bits": mask_bits, "density": density,
                                          "split_bytes": split_bytes})
    try:
        chosen = parse_formats(formats if formats is not None else cfg.output.formats)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--format'") from None
    if nside is not None:
        try:
            check_nside(nside)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="'--healpix-nside'") from None
    try:
        uris, duplicates = parse_index(read_text(index, cfg), index)
    except SourceError as exc:
        raise click.ClickException(f"cannot read the randoms index {exc}") from None
    except IndexLinesError as exc:
        raise click.ClickException(str(exc)) from None
    if not uris:
        raise click.ClickException(f"{index}: lists no randoms file")
    if duplicates:
        click.echo(f"warning: {len(duplicates)} duplicate line(s) in {index} skipped", err=True)

    show_library_messages()  # also when spark-submit runs this command without the group
    area = cfg.area
    try:
        spark = get_spark(cfg.run, master)
        counts = count_randoms_spark(spark, uris, config=cfg, nside=nside,
                                     progress=click.echo)
    except (AreaFailed, SparkSetupError) as exc:
        raise click.ClickException(str(exc)) from None
    table = counts.area_table(area.density)
    hmap = counts.pixel_map(area.density)
    header = {
        "halo_lrg_version": (__version__, "halo-lrg, which wrote this table"),
        "date": (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()), "UTC time written"),
        "randoms": (index, "the index of randoms files read"),
        "nfiles": (len(uris), "randoms files counted"),
        "density": (area.density, "randoms per deg2 in each file"),
        "maskbits": (area.mask_bits, "MASKBITS rejected (and NOBS_G/R/Z > 0 kept)"),
    }
    paths = _area_files(output, chosen, table, hmap, header)
    split = f"; {counts.files_split} split in row ranges" if counts.files_split else ""
    click.echo(f"{len(counts.pieces)} piece(s) in {counts.tasks} task(s){split}, "
               f"{counts.seconds:.1f} s")
    click.echo(f"{len(table):,} bricks, effective area {table['area_eff_deg2'].sum():,.3f} deg² "
               f"from {len(uris)} file(s) at {area.density:g} per deg² (mask bits "
               f"{area.mask_bits}) -> {', '.join(map(str, paths['bricks']))}")
    if hmap is not None:
        click.echo(f"{len(hmap.table):,} pixels at nside {hmap.nside}, effective area "
                   f"{hmap.table['area_eff_deg2'].sum():,.3f} deg² -> "
                   f"{', '.join(map(str, paths['pixels']))}")


def _area_files(output: Path, formats: tuple[str, ...], table: Any, hmap: Any,
                header: dict[str, Any]) -> dict[str, list[Path]]:
    """Write the area table (the CSV to ``output`` as given, always; each other format to its
    stem + suffix, the CSV moved to ``.csv`` when ``output`` ends in another asked format's
    suffix) and, with a map, ``<stem>_healpix<N>`` in the same formats. Every file's bytes
    are made before the first is written. The paths written, by table."""
    from halo_lrg.count.pixels import map_bytes
    from halo_lrg.io.tables import column_units, table_bytes, table_suffix
    from halo_lrg.science.healpix_map import map_header, map_units

    others = {table_suffix(f) for f in formats if f != "csv"}
    csv_path = output if output.suffix.lower() not in others else output.with_suffix(".csv")
    chosen = ("csv", *(f for f in formats if f != "csv"))
    files: dict[str, list[tuple[Path, bytes]]] = {"bricks": [], "pixels": []}
    for fmt in chosen:
        path = csv_path if fmt == "csv" else output.with_suffix(table_suffix(fmt))
        files["bricks"].append((path, table_bytes(
            table, fmt, units=column_units(table.columns), header=header, extname="AREA")))
    if hmap is not None:
        stem = output.with_name(f"{output.stem}_healpix{hmap.nside}")
        for fmt in chosen:
            path = stem.with_suffix(table_suffix(fmt))
            data = map_bytes(hmap, fmt, header) if fmt in ("csv", "fits") else table_bytes(
                hmap.table, fmt, units=map_units(hmap), header={**map_header(hmap), **header})
            files["pixels"].append((path, data))
    for written in files.values():
        for path, data in written:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    return {name: [path for path, _data in written] for name, written in files.items()}
