"""The sweep index: a text file of sweep URIs, one a line."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional

from halo_lrg.science.footprint import Footprint

log = logging.getLogger(__name__)


@dataclass
class IndexSelection:
    """What a run will read, and why the rest was left out."""

    uris: list[str]
    duplicates: list[str] = field(default_factory=list)
    outside_footprint: list[str] = field(default_factory=list)
    unparsed_names: list[str] = field(default_factory=list)
    capped: list[str] = field(default_factory=list)


def parse_index(text: str) -> tuple[list[str], list[str]]:
    """URIs in file order, and the duplicates dropped. Blank lines and ``#`` comments are
    ignored; surrounding whitespace is stripped."""
    seen: dict[str, None] = {}
    duplicates = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line in seen:
            duplicates.append(line)
        else:
            seen[line] = None
    return list(seen), duplicates


def select_inputs(
    text: str,
    footprint: Optional[Footprint] = None,
    max_sweeps: int = 0,
) -> IndexSelection:
    """Parse an index, drop duplicates and sweeps whose box misses ``footprint``, then cap.

    A name that does not parse as a sweep box is kept (its objects are still filtered by
    coordinates) and reported in ``unparsed_names``.
    """
    uris, duplicates = parse_index(text)
    selection = IndexSelection([], duplicates=duplicates)
    for uri in uris:
        if footprint is not None:
            from halo_lrg.survey.names import parse_sweep_name

            box = parse_sweep_name(uri)
            if box is None:
                selection.unparsed_names.append(uri)
            elif not footprint.overlaps(box.ra_min, box.ra_max, box.dec_min, box.dec_max):
                selection.outside_footprint.append(uri)
                continue
        selection.uris.append(uri)
    if max_sweeps and len(selection.uris) > max_sweeps:
        selection.capped = selection.uris[max_sweeps:]
        selection.uris = selection.uris[:max_sweeps]
    return selection


def order_largest_first(uris: Sequence[str], sizes: Sequence[Optional[int]]) -> list[int]:
    """Indices of ``uris`` with the largest known sizes first (unknown sizes last, in order):
    the longest tasks start first so the last wave is short."""
    return sorted(range(len(uris)), key=lambda i: (sizes[i] is None, -(sizes[i] or 0), i))
