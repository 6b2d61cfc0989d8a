"""``halo-lrg index``: write the sweep URLs covering a footprint."""

from __future__ import annotations

from typing import Optional

import click

from halo_lrg.cli.options import (
    CONTEXT_SETTINGS,
    footprint_options,
    get_config,
    make_footprint,
    override,
)


@click.command("index", context_settings=CONTEXT_SETTINGS)
@footprint_options
@click.option("--release", type=click.Choice(["dr10", "dr9"]), default="dr10", show_default=True)
@click.option("--region", "survey_region", type=click.Choice(["south", "north"]),
              default="south", show_default=True, help="DR10 is south only.")
@click.option("--base-url", default=None, metavar="URL",
              help="The sweep folder to list [default: the release's public folder, "
                   "config index.*_url]. Listed files get URLs under it.")
@click.option("--listing", default=None, metavar="FILE",
              help="A saved copy of the folder's HTML listing (path, s3:// or URL) instead "
                   "of fetching it from --base-url.")
@click.option("--output", required=True, metavar="FILE|s3://...",
              help="Where to write the index (one URL a line).")
@click.option("--aws-region", default=None, help="AWS region for s3:// reads and writes.")
@click.pass_context
def index_command(ctx: click.Context, ra_min: Optional[float], ra_max: Optional[float],
                  dec_min: Optional[float], dec_max: Optional[float], release: str,
                  survey_region: str, base_url: Optional[str], listing: Optional[str],
                  output: str, aws_region: Optional[str]) -> None:
    """Write the URLs of the sweeps whose box meets a footprint.

    The names come from the release's directory listing, so only boxes that have a file are
    listed.

    \b
    Example:
      halo-lrg index --ra-min 150 --ra-max 160 --dec-min 0 --dec-max 5 --output sweeps.txt
      halo-lrg run --index sweeps.txt --output out/ --ra-min 150 --ra-max 160 \\
                   --dec-min 0 --dec-max 5
    """
    from halo_lrg.io.fetch import SourceError, read_text, write_bytes
    from halo_lrg.survey.listing import index_lines, release_url, sweep_names_in_listing

    config = override(get_config(ctx), remote={"region": aws_region})
    footprint = make_footprint(ra_min, ra_max, dec_min, dec_max)
    try:
        base = base_url or release_url(config.index, release, survey_region)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--release/--region") from None
    try:
        html = read_text(listing or base, config)
        names = sweep_names_in_listing(html)
        if not names:
            raise click.ClickException(f"{listing or base}: no sweep files in this listing")
        lines = index_lines(names, base, footprint)
        write_bytes(output, "".join(f"{line}\n" for line in lines).encode(), config)
    except SourceError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{len(lines)} of {len(names)} sweep(s) meet the footprint -> {output}")
