"""The sweep index: a text file of sweep URIs, one a line.

Read at planning time, before any task starts: a UTF-8 byte-order mark is dropped, blank lines
and ``#`` comments are skipped, and every other line must be one URI a run can read (a path,
``file://``, ``s3://bucket/key``, ``http(s)://host/...``). Bad lines are refused together, in
one line naming the index and each line number (:class:`IndexLinesError`). Two lines naming
the same input (``A``, ``./A``, ``file://`` + absolute ``A``; ``s3://`` and ``s3a://``) are one
input: the first is kept, the others reported as duplicates. Local paths are compared by
``os.path.abspath`` (``normpath``), never by resolving symlinks: two names of one file through
a link stay two inputs, as they are two names.
"""

from __future__ import annotations

import logging
import os
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional
from urllib.parse import urlparse

from halo_lrg.io.uri import (
    REMOTE_SCHEMES,
    S3_SCHEMES,
    S3URIError,
    local_path,
    scheme_of,
    split_s3_uri,
)
from halo_lrg.science.footprint import Footprint

log = logging.getLogger(__name__)

BOM = "\ufeff"
#: Bad lines shown in a refusal; the rest are counted.
SHOWN_PROBLEMS = 3
_DEFAULT_PORTS = {"http": 80, "https": 443}


class IndexLinesError(ValueError):
    """Lines of an index that name no readable input. ``str(err)`` is one line:
    ``sweeps.txt line 3: s3://bucket: no object key; line 9: ...; and 4 more bad lines``."""

    def __init__(self, index: str, problems: Sequence[tuple[int, str, str]]) -> None:
        self.index = index
        self.problems = list(problems)  # (line number, entry, cause)
        shown = "; ".join(f"line {number}: {_shown(entry)}: {cause}"
                          for number, entry, cause in self.problems[:SHOWN_PROBLEMS])
        more = len(self.problems) - SHOWN_PROBLEMS
        tail = f"; and {more} more bad line{'s' if more > 1 else ''}" if more > 0 else ""
        super().__init__(f"{index} {shown}{tail}")

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return type(self), (self.index, self.problems)


def _shown(entry: str) -> str:
    """An entry as a message can hold it: on one line, control characters escaped."""
    return entry if entry.isprintable() else entry.encode("unicode_escape").decode("ascii")


@dataclass
class IndexSelection:
    """What a run will read, and why the rest was left out."""

    uris: list[str]
    duplicates: list[str] = field(default_factory=list)
    outside_footprint: list[str] = field(default_factory=list)
    unparsed_names: list[str] = field(default_factory=list)
    capped: list[str] = field(default_factory=list)


def entry_problem(entry: str) -> Optional[str]:
    """Why ``entry`` (one stripped index line) names no input a run can read; None if it
    does."""
    control = [ch for ch in entry if unicodedata.category(ch) == "Cc" and ch != "\t"]
    if control:
        return f"holds a control character (U+{ord(control[0]):04X})"
    if any(ch.isspace() for ch in entry):
        return ("holds a space inside the URI: one URI a line, comments on their own "
                "# lines (a file name with a space: a file:// URI with %20)")
    try:
        scheme = scheme_of(entry)
        parsed = urlparse(entry)
        parsed.port  # noqa: B018 (a port that is not a number raises here)
    except ValueError as exc:  # an unclosed IPv6 bracket, a port that is no number
        return f"not a URI ({exc})"
    if scheme == "file":
        if entry.lower().startswith("file:") and parsed.netloc not in ("", "localhost"):
            return (f"a file:// URI names the host {parsed.netloc!r}: write file:///<absolute "
                    "path> (three slashes) or a plain path")
        if not local_path(entry):
            return "no path"
        return None
    if scheme not in REMOTE_SCHEMES:
        return f"unsupported URI scheme {scheme!r} (use a path, file://, s3:// or http(s)://)"
    if scheme in S3_SCHEMES:
        try:
            split_s3_uri(entry, require_key=True)
        except S3URIError as exc:
            return exc.cause
        return None
    if not parsed.hostname:
        return "no host"
    return None


def input_key(entry: str) -> tuple[str, ...]:
    """What ``entry`` (a valid index line) reads, for telling duplicates apart: a local file
    by its absolute, normalised path (symlinks not resolved); an S3 object by bucket and key
    whatever the ``s3``/``s3a``/``s3n`` spelling; an HTTP(S) URL with its scheme and host in
    lower case and the default port dropped."""
    scheme = scheme_of(entry)
    if scheme == "file":
        return ("file", os.path.abspath(local_path(entry)))
    if scheme in S3_SCHEMES:
        return ("s3", *split_s3_uri(entry, require_key=True))
    parsed = urlparse(entry)
    host = (parsed.hostname or "").lower()
    port = parsed.port
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    return (scheme, host, parsed.path or "/", parsed.params, parsed.query)


def parse_index(text: str, index: str = "index") -> tuple[list[str], list[str]]:
    """URIs in file order, and the duplicates dropped (each as written).

    A byte-order mark opening the text (or a line) is dropped; blank lines and ``#``
    comments are ignored; surrounding whitespace is stripped. Raises
    :class:`IndexLinesError` (naming ``index``) when any line names no readable input,
    listing the first few.
    """
    entries: list[tuple[int, str]] = []
    problems = []
    # Lines as an editor numbers them: "\n", "\r\n" or "\r" ends one; any other control
    # character (a form feed, a NUL) is part of its line, and refused there.
    for number, raw in enumerate(re.split(r"\r\n|\r|\n", text), start=1):
        line = raw.lstrip(BOM).strip(" \t")  # a BOM opens the file (or a file pasted in)
        if not line or line.startswith("#"):
            continue
        problem = entry_problem(line)
        if problem:
            problems.append((number, line, problem))
        else:
            entries.append((number, line))
    if problems:
        raise IndexLinesError(index, problems)
    seen: dict[tuple[str, ...], str] = {}
    duplicates = []
    for _number, entry in entries:
        key = input_key(entry)
        if key in seen:
            duplicates.append(entry)
        else:
            seen[key] = entry
    return list(seen.values()), duplicates


def select_inputs(
    text: str,
    footprint: Optional[Footprint] = None,
    max_sweeps: int = 0,
    index: str = "index",
) -> IndexSelection:
    """Parse an index (:func:`parse_index`: bad lines raise :class:`IndexLinesError` naming
    ``index``), drop duplicates and sweeps whose box misses ``footprint``, then cap.

    A name that does not parse as a sweep box is kept (its objects are still filtered by
    coordinates) and reported in ``unparsed_names``.
    """
    uris, duplicates = parse_index(text, index)
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
