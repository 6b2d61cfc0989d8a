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
@click.option("--resolve/--no-resolve", "resolve", default=None,
              help="North/south resolution as DESI does it (desitarget's targets.resolve): "
                   "where BASS/MzLS and DECam overlap keep each object only from the system "
                   "DESI keeps there [default: config run.resolve = auto: when both systems "
                   "appear among the inputs (PHOTSYS, else RELEASE)]. --resolve: always; "
                   "--no-resolve: never (RA, DEC, PHOTSYS/RELEASE then not read). The "
                   "manifest's north_south says which applied and why.")
@click.option("--retry-failed", is_flag=True,
              help="Count only the files the previous run into DIR failed (or never reached), "
                   "reusing every other file's partial; refused if anything else would need "
                   "counting.")
@click.option("--checksums", default=None, metavar="FILE|URL",
              help="A sha256sum list ('<sha256>  <file name>' lines, matched by base name), "
                   "e.g. the one `halo-lrg index` saves: each input's SHA-256 is checked as "
                   "it is read; a mismatch fails that file [config run.checksums].")
@click.option("--config", "config_file", default=None, metavar="FILE|URI",
              help="A TOML file (path, s3:// or https://) overriding the defaults; wins over "
                   "halo-lrg --config. What `halo-lrg submit` passes to the cluster.")
@science_options
@click.pass_context
def run_command(ctx: click.Context, index_uri: str, output_uri: str, master: Optional[str],
                region: Optional[str], with_density: bool, resume: Optional[bool],
                resolve: Optional[bool], retry_failed: bool, checksums: Optional[str],
                config_file: Optional[str], **science: Any) -> None:
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
      DIR/_SUCCESS                              written last: the two above belong together
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
                                   "checksums": checksums,
                                   "resolve": None if resolve is None
                                   else ("on" if resolve else "off")},
                      remote={"region": region})
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
    if result.state == "partial":
        ctx.exit(EXIT_PARTIAL)
