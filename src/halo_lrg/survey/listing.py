"""Sweep names from a release's directory listing, for building an index of a footprint.

Only boxes that have a file are listed by the server, so an index built from its listing
never points at a box the survey skipped. Side files (``-pz``, ``-lc``, ``-ex``) are not sweeps.
"""

from __future__ import annotations

import re
from typing import Optional
from urllib.parse import urljoin

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
