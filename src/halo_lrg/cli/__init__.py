"""The ``halo-lrg`` command line: a click group and one module per command family.

The commands are thin: they turn flags into configuration, call the library, and decide what
to print. Each command module imports only :mod:`halo_lrg.cli.options` from here.
"""

from __future__ import annotations

import sys
from typing import Optional

import click

from halo_lrg import __version__
from halo_lrg.cli.emr import fetch_command, status_command, submit_command
from halo_lrg.cli.options import CONTEXT_SETTINGS, show_library_messages
from halo_lrg.cli.run import run_command
from halo_lrg.cli.science import area_command, density_command, plot_command, regions_command
from halo_lrg.cli.survey import index_command
from halo_lrg.cli.synth import synth_command

__all__ = ["main"]


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="halo-lrg")
@click.option("--config", "config_file", metavar="FILE|URI",
              help="A TOML file overriding conf/halo-lrg.toml (any subset of its keys): a "
              "path, s3:// or https://. Also HALO_LRG_CONFIG.")
@click.option("-v", "--verbose", is_flag=True, help="Also print the library's debug messages.")
@click.pass_context
def main(ctx: click.Context, config_file: Optional[str], verbose: bool) -> None:
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
    show_library_messages(verbose)


for _command in (run_command, synth_command, index_command, density_command, regions_command,
                 plot_command, area_command, submit_command, status_command, fetch_command):
    main.add_command(_command)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
