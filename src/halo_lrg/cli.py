"""The ``halo-lrg`` command line: thin wrappers over the package's modules."""

from __future__ import annotations

import sys
from typing import Any, Optional

import click

from halo_lrg import __version__
from halo_lrg.config import Config, ConfigError, load_config
from halo_lrg.cuts import SELECTION_NAMES

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def get_config(ctx: click.Context) -> Config:
    """The configuration loaded by the top-level group (defaults + file + environment)."""
    root = ctx.find_root()
    if root.obj is None:
        root.obj = {}
    if "config" not in root.obj:
        try:
            root.obj["config"] = load_config(root.params.get("config_file"))
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
    return root.obj["config"]


def override(config: Config, **sections: dict[str, Any]) -> Config:
    try:
        return config.replace(**sections)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="halo-lrg")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              envvar="HALO_LRG_CONFIG", help="A TOML file overriding conf/halo-lrg.toml "
              "(any subset of its keys). Also HALO_LRG_CONFIG.")
@click.pass_context
def main(ctx: click.Context, config_file: Optional[str]) -> None:
    """Count luminous red galaxies (LRGs) per sky brick across Legacy Surveys SWEEP files.

    \b
    Quick start:
      halo-lrg synth sample/ --files 2 --rows 20000        # generate DR10-schema sweeps
      halo-lrg run --index sample/index.txt --output out/  # count LRGs per brick (Spark)
      cat out/lrg_counts_per_brick/part-00000.csv

    Settings come from conf/halo-lrg.toml, a --config file, HALO_LRG_<SECTION>__<KEY>
    environment variables, then flags, each overriding the one before.
    """
    ctx.ensure_object(dict)


def footprint_options(function: Any) -> Any:
    """--ra-min/--ra-max/--dec-min/--dec-max, shared by every command that filters the sky."""
    for name, help_text in reversed([
        ("--ra-min", "Footprint: lowest RA in degrees (a footprint with ra-min > ra-max wraps "
                     "through RA 0)."),
        ("--ra-max", "Footprint: RA upper bound in degrees (exclusive)."),
        ("--dec-min", "Footprint: lowest Dec in degrees."),
        ("--dec-max", "Footprint: Dec upper bound in degrees (exclusive)."),
    ]):
        function = click.option(name, type=float, default=None, help=help_text)(function)
    return function


def make_footprint(ra_min: Optional[float], ra_max: Optional[float], dec_min: Optional[float],
                   dec_max: Optional[float]) -> Any:
    from halo_lrg.footprint import Footprint

    try:
        return Footprint.from_bounds(ra_min, ra_max, dec_min, dec_max)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="footprint") from None


@click.command("run", context_settings=CONTEXT_SETTINGS)
@click.option("--index", "index_uri", required=True, metavar="INDEX",
              help="Text file listing sweep files, one per line: local paths, file://, "
                   "s3:// or http(s):// (the index itself may be any of these too). "
                   "Blank lines and # comments are ignored; duplicates dropped with a warning.")
@click.option("--output", "output_uri", required=True, metavar="DIR",
              help="Output directory or s3://bucket/prefix: gets "
                   "lrg_counts_per_brick/part-00000.csv and manifest.json (replaced on rerun).")
@click.option("--selection", type=click.Choice(SELECTION_NAMES), default=None,
              help="LRG selection [default from config: seed].")
@click.option("--on-error", type=click.Choice(["fail", "skip"]), default=None,
              help="fail: stop at the first unusable file (default); skip: record it in the "
                   "manifest and count the rest.")
@click.option("--master", default=None, metavar="URL",
              help="Spark master [default: spark-submit's, else config run.master = local[*]].")
@click.option("--max-sweeps", type=click.IntRange(min=0), default=None, metavar="N",
              help="Read at most N files (after footprint filtering): for smoke tests. 0 = all.")
@click.option("--z-mag-max", type=float, default=None, help="seed: dereddened z < this [20.4].")
@click.option("--min-r-minus-z", type=float, default=None, help="seed: r - z > this [0.4].")
@click.option("--min-z-minus-w1", type=float, default=None, help="seed: z - W1 > this [0.8].")
@click.option("--chunk-rows", type=click.IntRange(min=1), default=None,
              help="Rows read per chunk [config read.chunk_rows]. A task holds ~700 "
                   "bytes a row of it (the 505-byte read buffer and column copies): small "
                   "enough that a node's tasks share its L3 cache.")
@click.option("--region", default=None, metavar="AWS_REGION",
              help="AWS region for s3:// inputs and output [config remote.region; "
                   "default: the AWS SDK's chain].")
@click.option("--with-density", is_flag=True,
              help="Also write DIR/lrg_density.csv: brick centre, exact area, LRGs per deg².")
@footprint_options
@click.pass_context
def run_command(ctx: click.Context, index_uri: str, output_uri: str, selection: Optional[str],
                on_error: Optional[str], master: Optional[str], max_sweeps: Optional[int],
                z_mag_max: Optional[float], min_r_minus_z: Optional[float],
                min_z_minus_w1: Optional[float], chunk_rows: Optional[int],
                region: Optional[str], with_density: bool, ra_min: Optional[float],
                ra_max: Optional[float], dec_min: Optional[float],
                dec_max: Optional[float]) -> None:
    """Count LRGs per brick in every sweep of INDEX with Spark; write CSV + manifest.

    \b
    Example:
      halo-lrg run --index sweeps.txt --output out/ --selection desi-lrg --on-error skip

    \b
    Output:
      DIR/lrg_counts_per_brick/part-00000.csv   brickname,lrg_count (sorted; every brick
                                                with an object, zero counts included)
      DIR/manifest.json                         version, selection, one entry per input
    """
    from halo_lrg.pipeline import JobSpec, RunFailed, run_job, summary_lines
    from halo_lrg.spark import SparkSetupError, get_spark

    config = override(
        get_config(ctx),
        cuts={"selection": selection, "lrg_z_mag_max": z_mag_max,
              "lrg_min_r_minus_z": min_r_minus_z, "lrg_min_z_minus_w1": min_z_minus_w1},
        run={"on_error": on_error, "max_sweeps": max_sweeps},
        read={"chunk_rows": chunk_rows},
        remote={"region": region},
    )
    try:
        spec = JobSpec(index_uri, output_uri, config,
                       make_footprint(ra_min, ra_max, dec_min, dec_max), with_density)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None

    def emit(line: str) -> None:
        click.echo(line, err=line.startswith("warning"))

    try:
        spark = get_spark(config.run, master)
        result = run_job(spark, spec, emit=emit)
    except (RunFailed, SparkSetupError) as exc:
        raise click.ClickException(str(exc)) from None
    for line in summary_lines(result):
        click.echo(line)


main.add_command(run_command)


def _register_commands() -> None:
    """Commands living in their own modules, so each stays small."""
    from halo_lrg.emr_cli import fetch_command, status_command, submit_command
    from halo_lrg.remote_cli import index_command
    from halo_lrg.science_cli import density_command, plot_command, regions_command
    from halo_lrg.synth_cli import synth_command

    for command in (synth_command, index_command, density_command, regions_command,
                    plot_command, submit_command, status_command, fetch_command):
        main.add_command(command)


_register_commands()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
