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
@click.option("--region", "survey_region", default="south", show_default=True,
              metavar="south|north|north,south|both",
              help="The photometric region(s): DR10 is south only; DR9 has north (BASS/MzLS) "
                   "and south (DECam). Several (north,south or both) make one combined "
                   "index of both folders' sweeps; `halo-lrg run` then resolves north/south "
                   "as DESI does (run.resolve = auto).")
@click.option("--base-url", "base_urls", multiple=True, metavar="[REGION=]URL",
              help="The sweep folder to list [default: the release's public folder, "
                   "config index.*_url]. Listed files get URLs under it. With several "
                   "regions, one per region: --base-url north=URL --base-url south=URL.")
@click.option("--listing", "listings", multiple=True, metavar="[REGION=]FILE",
              help="A saved copy of the folder's HTML listing (path, s3:// or URL) instead "
                   "of fetching it from --base-url; with several regions one per region, "
                   "as --base-url.")
@click.option("--output", required=True, metavar="FILE|s3://...",
              help="Where to write the index (one URL a line).")
@click.option("--checksums-out", default=None, metavar="FILE|s3://...",
              help="Where to save the folder's SHA-256 list when it publishes one [default: "
                   "beside --output, under the list's own name]. With several regions: "
                   "where to save the combined list [default: beside --output, as "
                   "<release>_north_south_sweep_<version>.sha256sum].")
@click.option("--no-checksums", is_flag=True,
              help="Do not look for the folder's SHA-256 list.")
@click.option("--aws-region", default=None, help="AWS region for s3:// reads and writes.")
@click.pass_context
def index_command(ctx: click.Context, ra_min: Optional[float], ra_max: Optional[float],
                  dec_min: Optional[float], dec_max: Optional[float], release: str,
                  survey_region: str, base_urls: tuple[str, ...], listings: tuple[str, ...],
                  output: str, checksums_out: Optional[str], no_checksums: bool,
                  aws_region: Optional[str]) -> None:
    """Write the URLs of the sweeps whose box meets a footprint.

    The names come from the release's directory listing, so only boxes that have a file are
    listed. The folder's SHA-256 list (legacysurvey_<release>_<region>_sweep_<version>.sha256sum,
    looked for beside the listing) is saved beside the index: pass it to
    `halo-lrg run --checksums` and every input's bytes are checked. DR9's north and south
    folders hold files of the same names with different bytes: with several regions the
    folders' lists are combined into one whose paths carry each folder
    (north/sweep/9.0/<name>), and run matches each input by the longest path suffix.

    \b
    Example:
      halo-lrg index --ra-min 150 --ra-max 160 --dec-min 0 --dec-max 5 --output sweeps.txt
      halo-lrg run --index sweeps.txt --output out/ --ra-min 150 --ra-max 160 \\
                   --dec-min 0 --dec-max 5
      halo-lrg index --release dr9 --region both --ra-min 150 --ra-max 160 \\
                     --dec-min 30 --dec-max 35 --output dr9.txt    # north + south
    """
    from halo_lrg.io.fetch import SourceError, read_text, write_bytes
    from halo_lrg.survey.listing import (
        checksum_list_names,
        index_lines,
        parse_regions,
        per_region,
        release_url,
        sweep_names_in_listing,
    )

    config = override(get_config(ctx), remote={"region": aws_region})
    footprint = make_footprint(ra_min, ra_max, dec_min, dec_max)
    try:
        regions = parse_regions(survey_region)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--region'") from None
    try:
        given_bases = per_region(base_urls, regions, "--base-url")
        given_listings = per_region(listings, regions, "--listing")
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    bases = {}
    for region in regions:
        try:
            bases[region] = given_bases.get(region) or release_url(config.index, release,
                                                                   region)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--release/--region") from None
    found = {}  # region -> (listing html, names, index lines)
    try:
        for region in regions:
            source = given_listings.get(region) or bases[region]
            html = read_text(source, config)
            names = sweep_names_in_listing(html)
            if not names:
                raise click.ClickException(f"{source}: no sweep files in this listing")
            found[region] = (html, names, index_lines(names, bases[region], footprint))
        lines = [line for _html, _names, region_lines in found.values()
                 for line in region_lines]
        write_bytes(output, "".join(f"{line}\n" for line in lines).encode(), config)
    except SourceError as exc:
        raise click.ClickException(str(exc)) from None
    listed = sum(len(names) for _html, names, _lines in found.values())
    per = "" if len(regions) == 1 else " (" + ", ".join(
        f"{region} {len(found[region][2])}" for region in regions) + ")"
    click.echo(f"{len(lines)} of {listed} sweep(s) meet the footprint{per} -> {output}")
    if len(regions) > 1:
        click.echo("both photometric systems: `halo-lrg run` keeps each object from the one "
                   "DESI keeps where it lies (north/south resolution, run.resolve = auto)")
    if no_checksums:
        return
    wheres = {}
    for region in regions:
        base = bases[region]
        wheres[region] = given_listings.get(region) or (base if base.endswith("/")
                                                        else base + "/")
    if len(regions) == 1:
        (region,) = regions
        _save_checksums(wheres[region], checksum_list_names(found[region][0], release, region,
                                                            bases[region]),
                        lines, output, checksums_out, config)
    else:
        _save_combined_checksums(release, regions, bases, wheres, found, lines, output,
                                 checksums_out, config)


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


def _find_checksums(where: str, candidates: list[str], config: Any
                    ) -> Optional[tuple[str, str, bytes, Any]]:
    """The first SHA-256 list of ``candidates`` found beside ``where``: (its name, its
    location, its bytes, the parsed list); None when none is there. A missing list is not
    an error; one that cannot be fetched or parsed is warned about, and the next tried."""
    from halo_lrg.io.fetch import ChecksumList, SourceError, read_bytes

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
        return name, source, data, listed
    return None


def _covered(listed: Any, lines: list[str]) -> str:
    """How many of the index's sweeps ``listed`` names unambiguously, as a phrase."""
    hits = [len({digest for _path, digest in listed.candidates(line)}) for line in lines]
    ambiguous = sum(n > 1 for n in hits)
    return (f"{sum(n == 1 for n in hits)} of {len(lines)} indexed sweep(s) listed"
            + (f", {ambiguous} ambiguous" if ambiguous else ""))


def _write_list(dest: str, data: bytes, config: Any) -> None:
    from halo_lrg.io.fetch import SourceError, write_bytes

    try:
        write_bytes(dest, data, config)
    except SourceError as exc:
        raise click.ClickException(f"cannot save the checksum list: {exc}") from None


def _save_checksums(where: str, candidates: list[str], lines: list[str], output: str,
                    checksums_out: Optional[str], config: Any) -> None:
    """Fetch the first SHA-256 list found beside the listing and save it as published; say
    how many of the index's sweeps it lists. A missing list is said, not an error."""
    found = _find_checksums(where, candidates, config)
    if found is None:
        looked = ", ".join(_beside(where, n) for n in candidates) or "no name known for it"
        click.echo(f"no checksum list found beside the listing ({looked})")
        return
    name, source, data, listed = found
    dest = checksums_out or _beside(output, name)
    _write_list(dest, data, config)
    click.echo(f"checksums: {source} -> {dest} ({_covered(listed, lines)}); check them "
               f"with: halo-lrg run --checksums {dest}")


def _save_combined_checksums(release: str, regions: list[str], bases: dict[str, str],
                             wheres: dict[str, str], found: dict[str, Any], lines: list[str],
                             output: str, checksums_out: Optional[str], config: Any) -> None:
    """Several regions: each folder's list, found as :func:`_save_checksums` finds one,
    combined into one list whose paths carry the region's folder (``north/sweep/9.0/<name>``;
    the folders share file names), saved beside the index under
    :func:`~halo_lrg.survey.listing.combined_checksum_list_name` (or ``checksums_out``).
    A region without a list is said; its sweeps are then counted unverified."""
    from halo_lrg.survey.listing import (
        checksum_list_names,
        combine_checksums,
        combined_checksum_list_name,
        region_folders,
    )

    lists, sources = {}, []
    for region in regions:
        candidates = checksum_list_names(found[region][0], release, region, bases[region])
        listed = _find_checksums(wheres[region], candidates, config)
        if listed is None:
            looked = (", ".join(_beside(wheres[region], n) for n in candidates)
                      or "no name known for it")
            click.echo(f"no checksum list found beside the {region} listing ({looked})")
            continue
        sources.append(listed[1])
        lists[region] = listed[3]
    if not lists:
        return
    dest = checksums_out or _beside(output, combined_checksum_list_name(release, regions,
                                                                        bases))
    folders = region_folders(bases)
    combined = combine_checksums(lists, folders, dest)
    _write_list(dest, combined.text().encode(), config)
    example = next(iter(folders.values()))
    click.echo(f"checksums: {' + '.join(sources)} -> {dest} (combined: each path carries its "
               f"folder, e.g. {example}/<name>; {_covered(combined, lines)}); check them "
               f"with: halo-lrg run --checksums {dest}")
