"""Sweep names from a release's directory listing, for building an index of a footprint.

Only boxes that have a file are listed by the server, so an index built from its listing
never points at a box the survey skipped. Side files (``-pz``, ``-lc``, ``-ex``) are not sweeps.

DR9 images the north twice (BASS/MzLS in ``dr9/north``, DECam in ``dr9/south``): an index of
both regions (:func:`parse_regions`: ``north,south`` or ``both``) lists each folder's sweeps
of the footprint, and a run over it resolves north/south as DESI does
(``run.resolve``).

Each sweep folder also publishes a SHA-256 list of its files
(``legacysurvey_dr10_south_sweep_10.1.sha256sum``: ``<hex>  <name>`` lines):
:func:`checksum_list_names` says what to look for beside a listing. The two DR9 folders list
the same names with different contents, so an index of both gets one combined list whose
paths carry each folder (:func:`combine_checksums`: ``north/sweep/9.0/<name>``), which
:class:`~halo_lrg.io.fetch.ChecksumList` matches by path suffix.
"""

from __future__ import annotations

import re
from typing import Optional
from urllib.parse import unquote, urljoin, urlparse

from halo_lrg.config import IndexConfig
from halo_lrg.io.fetch import ChecksumList, path_segments
from halo_lrg.science.footprint import Footprint
from halo_lrg.survey.names import parse_sweep_name

_HREF = re.compile(r"""href\s*=\s*["']?([^"'\s>]+)""", re.IGNORECASE)
RELEASES = {("dr10", "south"): "dr10_south_url", ("dr9", "south"): "dr9_south_url",
            ("dr9", "north"): "dr9_north_url"}


#: The survey's photometric regions, in the order a combined index lists them.
REGIONS = ("north", "south")


def parse_regions(text: str) -> list[str]:
    """``south``, ``north``, ``north,south`` (any order) or ``both``, as a list of regions
    in the order given (``both``: north then south); ValueError naming a stranger."""
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    regions: list[str] = []
    for name in names:
        for region in (REGIONS if name == "both" else (name,)):
            if region not in REGIONS:
                raise ValueError(f"unknown region {name!r} (north, south, north,south or "
                                 "both)")
            if region not in regions:
                regions.append(region)
    if not regions:
        raise ValueError("no region given (north, south, north,south or both)")
    return regions


def per_region(values: tuple[str, ...], regions: list[str], option: str) -> dict[str, str]:
    """``--listing``/``--base-url`` values by region: ``REGION=VALUE`` each, or one plain
    ``VALUE`` when there is one region; ValueError saying what is wrong."""
    found: dict[str, str] = {}
    for value in values:
        region, sep, rest = value.partition("=")
        if sep and region.strip().lower() in REGIONS:
            region = region.strip().lower()
            if region not in regions:
                raise ValueError(f"{option} {value}: {region} is not among the regions "
                                 f"({','.join(regions)})")
        elif len(regions) == 1:
            region, rest = regions[0], value
        else:
            raise ValueError(f"{option} {value}: with several regions say which one it is "
                             f"for: {option} {regions[0]}=...")
        if region in found:
            raise ValueError(f"{option} given twice for {region}")
        found[region] = rest
    return found


def release_url(index: IndexConfig, release: str, region: str) -> str:
    key = RELEASES.get((release, region))
    if key is None:
        known = ", ".join(f"{r}/{g}" for r, g in RELEASES)
        raise ValueError(f"no sweeps for {release}/{region} (known: {known})")
    return getattr(index, key)


def sweep_names_in_listing(html: str) -> list[str]:
    """Standard sweep file names linked from an HTML directory listing, sorted, unique."""
    names = set()
    for href in _HREF.findall(html):
        name = href.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        if parse_sweep_name(name) is not None:
            names.add(name)
    return sorted(names)


_VERSION = re.compile(r"^\d+(\.\d+)*$")
CHECKSUM_SUFFIX = ".sha256sum"


def checksum_list_name(release: str, region: str, base_url: str) -> Optional[str]:
    """The name the survey gives a sweep folder's SHA-256 list,
    ``legacysurvey_<release>_<region>_sweep_<version>.sha256sum`` (the version is the
    folder's last path segment, e.g. ``10.1``); None when the folder has no version."""
    version = _folder_version(base_url)
    if not version:
        return None
    return f"legacysurvey_{release}_{region}_sweep_{version}{CHECKSUM_SUFFIX}"


def _folder_version(base_url: str) -> str:
    """A sweep folder's version, its last path segment (``10.1``); "" when that is not one."""
    segments = [s for s in unquote(urlparse(base_url).path).split("/") if s]
    version = segments[-1] if segments else ""
    return version if _VERSION.match(version) else ""


def checksum_list_names(html: str, release: str, region: str, base_url: str) -> list[str]:
    """The SHA-256 list(s) to look for beside a listing: those it links
    (``*.sha256sum``; the release's own name first), else the release's conventional name
    (:func:`checksum_list_name`); empty when neither is known."""
    expected = checksum_list_name(release, region, base_url)
    linked = set()
    for href in _HREF.findall(html):
        name = unquote(href.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1])
        if name.endswith(CHECKSUM_SUFFIX):
            linked.add(name)
    if linked:
        return sorted(linked, key=lambda n: (n != expected, n))
    return [expected] if expected else []


def region_folders(bases: dict[str, str]) -> dict[str, str]:
    """Each region's sweep folder relative to the deepest folder all of them share, e.g.
    ``{"north": "north/sweep/9.0", "south": "south/sweep/9.0"}`` for DR9's two: the part of
    a path that tells the regions' same-named files apart (at least the last segment of
    each, so it is never empty)."""
    segments = {region: path_segments(base) for region, base in bases.items()}
    shared = 0
    if segments:
        shortest = min(len(s) for s in segments.values())
        while shared < shortest - 1 and len({s[shared] for s in segments.values()}) == 1:
            shared += 1
    return {region: "/".join(s[shared:]) for region, s in segments.items()}


def combined_checksum_list_name(release: str, regions: list[str],
                                bases: dict[str, str]) -> str:
    """The name of the list ``index`` combines from several regions' lists,
    ``<release>_<region>_<region>_sweep[_<version>].sha256sum`` (the version when every
    folder has the same one); not ``legacysurvey_...``: the survey publishes no such file."""
    versions = {_folder_version(bases[region]) for region in regions}
    version = f"_{versions.pop()}" if len(versions) == 1 and "" not in versions else ""
    return f"{release}_{'_'.join(regions)}_sweep{version}{CHECKSUM_SUFFIX}"


def combine_checksums(lists: dict[str, ChecksumList], folders: dict[str, str],
                      source: str) -> ChecksumList:
    """One list of several regions' lists, each path prefixed with its region's folder
    (:func:`region_folders`), so same-named files of different folders stay apart; a path
    already given as a URL is kept as it is."""
    combined = ChecksumList(source)
    for region, listed in lists.items():
        for path, digest in listed.entries:
            combined.add(path if "://" in path else f"{folders[region]}/{path}", digest)
    return combined


def index_lines(names: list[str], base_url: str, footprint: Optional[Footprint]) -> list[str]:
    """URLs of the sweeps whose box meets the footprint (all of them without one)."""
    base = base_url if base_url.endswith("/") else base_url + "/"
    out = []
    for name in names:
        box = parse_sweep_name(name)
        if box is None:
            continue
        if footprint is None or footprint.overlaps(box.ra_min, box.ra_max, box.dec_min,
                                                   box.dec_max):
            out.append(urljoin(base, name))
    return out
