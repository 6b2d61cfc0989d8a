"""``halo-lrg index``: write the sweep URLs covering a footprint."""

from __future__ import annotations

from typing import Any, Optional

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
@click.option("--checksums-out", default=None, metavar="FILE|s3://...",
              help="Where to save the folder's SHA-256 list when it publishes one [default: "
                   "beside --output, under the list's own name].")
@click.option("--no-checksums", is_flag=True,
              help="Do not look for the folder's SHA-256 list.")
@click.option("--aws-region", default=None, help="AWS region for s3:// reads and writes.")
@click.pass_context
def index_command(ctx: click.Context, ra_min: Optional[float], ra_max: Optional[float],
                  dec_min: Optional[float], dec_max: Optional[float], release: str,
                  survey_region: str, base_url: Optional[str], listing: Optional[str],
                  output: str, checksums_out: Optional[str], no_checksums: bool,
                  aws_region: Optional[str]) -> None:
    """Write the URLs of the sweeps whose box meets a footprint.

    The names come from the release's directory listing, so only boxes that have a file are
    listed. The folder's SHA-256 list (legacysurvey_<release>_<region>_sweep_<version>.sha256sum,
    looked for beside the listing) is saved beside the index: pass it to
    `halo-lrg run --checksums` and every input's bytes are checked.

    \b
    Example:
      halo-lrg index --ra-min 150 --ra-max 160 --dec-min 0 --dec-max 5 --output sweeps.txt
      halo-lrg run --index sweeps.txt --output out/ --ra-min 150 --ra-max 160 \\
                   --dec-min 0 --dec-max 5
    """
    from halo_lrg.io.fetch import SourceError, read_text, write_bytes
    from halo_lrg.survey.listing import (
        checksum_list_names,
        index_lines,
        release_url,
        sweep_names_in_listing,
    )

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
    if not no_checksums:
        where = listing or (base if base.endswith("/") else base + "/")
        _save_checksums(where, checksum_list_names(html, release, survey_region, base),
                        lines, output, checksums_out, config)


def _beside(location: str, name: str) -> str:
    """``name`` in the folder holding ``location`` (a path, file://, s3:// or http(s)://;
    a location ending in / is the folder itself)."""
    import os
    from urllib.parse import urljoin

    from halo_lrg.io.uri import local_path, scheme_of

    scheme = scheme_of(location)
    if scheme == "file":
        path = local_path(location)
        folder = path if location.endswith("/") else os.path.dirname(os.path.abspath(path))
        return os.path.join(folder, name)
    if scheme in ("http", "https"):
        return urljoin(location, name)
    return location.rsplit("/", 1)[0] + "/" + name


def _save_checksums(where: str, candidates: list[str], lines: list[str], output: str,
                    checksums_out: Optional[str], config: Any) -> None:
    """Fetch the first SHA-256 list found beside the listing and save it as published; say
    how many of the index's sweeps it lists. A missing list is said, not an error."""
    from halo_lrg.io.fetch import ChecksumList, SourceError, input_name, read_bytes, write_bytes

    for name in candidates:
        source = _beside(where, name)
        try:
            data = read_bytes(source, config)
        except SourceError as exc:
            absent = not exc.transient and any(
                word in exc.cause for word in ("404", "no such file", "NoSuchKey"))
            if not absent:
                click.echo(f"warning: cannot fetch the checksum list {exc}", err=True)
            continue
        try:
            listed = ChecksumList.parse(data.decode("utf-8"), source)
        except (UnicodeDecodeError, ValueError) as exc:
            click.echo(f"warning: {source}: not a SHA-256 list, not saved ({exc})", err=True)
            continue
        dest = checksums_out or _beside(output, name)
        try:
            write_bytes(dest, data, config)
        except SourceError as exc:
            raise click.ClickException(f"cannot save the checksum list: {exc}") from None
        covered = sum(input_name(line) in listed.by_name for line in lines)
        click.echo(f"checksums: {source} -> {dest} ({covered} of {len(lines)} indexed "
                   f"sweep(s) listed); check them with: halo-lrg run --checksums {dest}")
        return
    looked = ", ".join(_beside(where, n) for n in candidates) or "no name known for it"
    click.echo(f"no checksum list found beside the listing ({looked})")
