"""Sweep names from a release's directory listing, for building an index of a footprint.

Only boxes that have a file are listed by the server, so an index built from its listing
never points at a box the survey skipped. Side files (``-pz``, ``-lc``, ``-ex``) are not sweeps.

Each sweep folder also publishes a SHA-256 list of its files
(``legacysurvey_dr10_south_sweep_10.1.sha256sum``: ``<hex>  <name>`` lines):
:func:`checksum_list_names` says what to look for beside a listing.
"""

from __future__ import annotations

import re
from typing import Optional
from urllib.parse import unquote, urljoin, urlparse

from halo_lrg.config import IndexConfig
from halo_lrg.science.footprint import Footprint
from halo_lrg.survey.names import parse_sweep_name

_HREF = re.compile(r"""href\s*=\s*["']?([^"'\s>]+)""", re.IGNORECASE)
RELEASES = {("dr10", "south"): "dr10_south_url", ("dr9", "south"): "dr9_south_url",
            ("dr9", "north"): "dr9_north_url"}


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
    segments = [s for s in unquote(urlparse(base_url).path).split("/") if s]
    version = segments[-1] if segments else ""
    if not _VERSION.match(version):
        return None
    return f"legacysurvey_{release}_{region}_sweep_{version}{CHECKSUM_SUFFIX}"


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
