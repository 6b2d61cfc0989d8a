"""``halo-lrg run``: count LRGs per brick in every sweep of an index, with Spark."""

from __future__ import annotations

from typing import Any, Optional

import click

from halo_lrg.cli.options import (
    CONTEXT_SETTINGS,
    apply_science_options,
    get_config,
    load_user_config,
    override,
    science_options,
    show_library_messages,
)

#: Exit status of a run that counted every readable file but skipped others.
EXIT_PARTIAL = 3


@click.command("run", context_settings=CONTEXT_SETTINGS)
@click.option("--index", "index_uri", required=True, metavar="INDEX",
              help="Text file listing sweep files, one per line: local paths, file://, "
                   "s3:// or http(s):// (the index itself may be any of these too). "
                   "Blank lines and # comments are ignored; duplicates dropped with a warning.")
@click.option("--output", "output_uri", required=True, metavar="DIR",
              help="Output directory or s3://bucket/prefix: gets "
                   "lrg_counts_per_brick/part-00000.csv and manifest.json (replaced on rerun).")
@click.option("--master", default=None, metavar="URL",
              help="Spark master [default: spark-submit's, else config run.master = local[*]].")
@click.option("--region", default=None, metavar="AWS_REGION",
              help="AWS region for s3:// inputs and output [config remote.region; "
                   "default: the AWS SDK's chain].")
@click.option("--with-density", is_flag=True,
              help="Also write DIR/lrg_density.csv: brick centre, exact area, LRGs per deg².")
@click.option("--resume/--no-resume", default=None,
              help="Reuse the stored partials of files already counted into DIR (same input, "
                   "selection, footprint and version): they are not read again [default: "
                   "config run.resume = true]. --no-resume counts every file.")
@click.option("--retry-failed", is_flag=True,
              help="Count only the files the previous run into DIR failed (or never reached), "
                   "reusing every other file's partial; refused if anything else would need "
                   "counting.")
@click.option("--checksums", default=None, metavar="FILE|URL",
              help="A sha256sum list ('<sha256>  <path>' lines; an input matches the "
                   "longest listed path it ends with, so bare names work and a combined "
                   "north+south list tells same-named files apart), e.g. the one `halo-lrg "
                   "index` saves: each input's SHA-256 is checked as it is read; a mismatch "
                   "fails that file [config run.checksums].")
@click.option("--format", "formats", default=None, metavar="FMT[,FMT...]",
              callback=lambda _ctx, _param, value: _formats(value),
              help="Table formats: csv, fits, parquet, comma-separated [config output.formats "
                   "= csv]. The CSV is always written; fits adds DIR/lrg_counts_per_brick.fits "
                   "(a BINTABLE with TUNITn units and provenance cards: version, selections "
                   "and thresholds, index, north/south, date, release when the paths say it), "
                   "parquet DIR/lrg_counts_per_brick.parquet (the same provenance as JSON "
                   "schema metadata 'halo_lrg', units as field metadata); with --with-density "
                   "also DIR/lrg_density.fits/.parquet. Formats not asked are removed.")
@click.option("--config", "config_file", default=None, metavar="FILE|URI",
              help="A TOML file (path, s3:// or https://) overriding the defaults; wins over "
                   "halo-lrg --config. What `halo-lrg submit` passes to the cluster.")
@science_options
@click.pass_context
def run_command(ctx: click.Context, index_uri: str, output_uri: str, master: Optional[str],
                region: Optional[str], with_density: bool, resume: Optional[bool],
                retry_failed: bool, checksums: Optional[str],
                formats: Optional[str], config_file: Optional[str], **science: Any) -> None:
    """Count LRGs per brick in every sweep of INDEX with Spark; write CSV + manifest.

    \b
    Example:
      halo-lrg run --index sweeps.txt --output out/ --selection desi-lrg --on-error skip
      halo-lrg run --index sweeps.txt --output out/ --selection seed,desi-lrg,z20p2

    \b
    Output:
      DIR/lrg_counts_per_brick/part-00000.csv   brickname,lrg_count (sorted; every brick
                                                with an object, zero counts included)
                                                several selections (--selection a,b,...):
                                                brickname,n_objects,a,b,... (n_objects:
                                                every object of the brick; then LRGs per
                                                selection, in the order given)
      DIR/manifest.json                         state, version, configuration, selection
                                                (with several, each one's definition under
                                                selections), north_south (resolved or not,
                                                and why), one entry per input (status,
                                                rows, error)
      DIR/lrg_counts_per_brick.fits|.parquet    --format fits,parquet: the same table
                                                with units and provenance (and
                                                DIR/lrg_density.fits|.parquet)
      DIR/_SUCCESS                              written last: the files above belong together
      DIR/_last_failure.json                    a failed run's manifest; the previous
                                                result is left as it was
      DIR/_progress.json                        progress while it runs (every ~30 s)
      DIR/_partials/<key>.json                  each counted file's partial, stored as it
                                                completes: a rerun resumes from them

    \b
    Resuming:
      halo-lrg run ... --output DIR                 reads only files without a partial
      halo-lrg run ... --output DIR --retry-failed  only the previous run's failures
      halo-lrg run ... --output DIR --no-resume     every file again

    \b
    Exit status:
      0  every file counted
      3  counted, but files were skipped (--on-error skip; listed in the manifest)
      1  no result (a bad file or a SHA-256 mismatch under --on-error fail, every file
         failed, Spark failed, the index, checksum list or output unusable, --retry-failed
         refused); the previous result is untouched
      2  usage error
    """
    from halo_lrg.spark.run import JobSpec, RunFailed, run_job, summary_lines
    from halo_lrg.spark.session import SparkSetupError, get_spark

    if retry_failed and resume is False:
        raise click.UsageError("--retry-failed reuses the other files' partials: it cannot "
                               "be combined with --no-resume")
    config, footprint = apply_science_options(
        load_user_config(config_file) if config_file else get_config(ctx), **science)
    config = override(config, run={"resume": True if retry_failed else resume,
                                   "checksums": checksums},
                      remote={"region": region}, output={"formats": formats})
    try:
        spec = JobSpec(index_uri, output_uri, config, footprint, with_density,
                       retry_failed=retry_failed)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None

    show_library_messages()  # also when spark-submit runs this command without the group
    try:
        spark = get_spark(config.run, master)
        result = run_job(spark, spec, emit=click.echo)
    except (RunFailed, SparkSetupError) as exc:
        raise click.ClickException(str(exc)) from None
    for line in summary_lines(result):
        click.echo(line)
    for line in _other_formats(config, output_uri, result.density_uri is not None):
        click.echo(line)
    if result.state == "partial":
        ctx.exit(EXIT_PARTIAL)


def _formats(value: Optional[str]) -> Optional[str]:
    """``--format``: the names checked and normalised (``"csv,fits"``), None when not given."""
    from halo_lrg.io.tables import parse_formats

    if value is None:
        return None
    try:
        return ",".join(parse_formats(value))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _other_formats(config: Any, output_uri: str, density: bool) -> list[str]:
    """Summary lines for the tables written in formats other than CSV."""
    from halo_lrg.io.output import COUNTS_DIR, DENSITY_FILE, join_uri
    from halo_lrg.io.tables import parse_formats, table_suffix

    lines = []
    for fmt in (f for f in parse_formats(config.output.formats) if f != "csv"):
        stems = [COUNTS_DIR, *([DENSITY_FILE.rsplit(".", 1)[0]] if density else [])]
        uris = ", ".join(join_uri(output_uri, stem + table_suffix(fmt)) for stem in stems)
        lines.append(f"{fmt + ':':<9} {uris}")
    return lines
