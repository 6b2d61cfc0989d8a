"""The Spark job and its public API: sweep URIs → tasks (a file each, or as planned) →
LRGs per brick.

Use it from a notebook with a SparkSession of your own; nothing here changes the session::

    from halo_lrg.spark.job import count_lrgs
    counts = count_lrgs(spark, ["sweep-150p000-155p005.fits", ...], selection="desi-lrg")
    counts.orderBy("brickname").show()

Several selections are counted in the same read of each file: ``selection="seed,desi-lrg"``
(or a list) gives ``brickname, n_objects, seed, desi-lrg``, one column of LRGs per selection.

Each task counts one whole file (``mapInPandas`` over ``spark.range(n, numPartitions=n)``,
which gives exactly one file index per partition) and returns its per-brick partials plus one
status row; :func:`count_lrgs` sums the partials with ``groupBy(brickname)``. The run layer
may instead hand :func:`lrg_partials` a plan (:mod:`halo_lrg.spark.plan`): a task then reads
several small files one after another, or one row range (a *piece*) of a big file, and
returns the same rows per piece (its status row says ``part``: ``k/n``). With
``run.healpix_nside`` every piece's rows also hold its counts per HEALPix pixel. The run layer
(:mod:`halo_lrg.spark.run`) collects the same partials instead and merges them on the driver,
which it measured cheaper on small clusters (see :func:`collect_partials`); the sums are equal.

A task never raises for a bad file in :func:`lrg_partials`: the failure becomes its status row,
and a file's counts appear only once the whole file was read, so no count includes part of a
file. :func:`count_lrgs` raises for a bad file unless ``on_error="skip"``.

North/south (``run.resolve``): unless it is ``off``, each task also reports which photometric
systems its file holds and, per brick, what desitarget's resolution would drop; whether to
drop it is decided once every file has reported (``auto``: when both systems appear), by the
run's driver (:mod:`halo_lrg.spark.run`) or, in :func:`count_lrgs`, in the same Spark plan.
Deciding after the job keeps it one read per file whatever the index says: a sweep's
photometric system is in its rows (PHOTSYS, else RELEASE), not in its name or header.

Durable partials (the run layer asks for them with ``partials_uri`` and a :class:`FileTask`
per file): as soon as a file is counted, its task stores the per-brick partial under
``<output>/_partials/<key>.json`` (:func:`partial_record`), keyed by what would make a
recount differ (:func:`file_task`). The same key always gets the same bytes, so a retried or
speculative attempt rewrites an identical file. Checksums: a task computes the SHA-256 of
every download as it arrives and, given an expected one, of a local file too, and fails the
file on a mismatch before its counts are used.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import re
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

import numpy as np
import pandas as pd

from halo_lrg import __version__
from halo_lrg.config import Config, load_config
from halo_lrg.count import SweepCount, count_sweep_file
from halo_lrg.fits.layout import RowSlice
from halo_lrg.fits.reader import SweepError
from halo_lrg.io.fetch import (
    InputHash,
    InputIdentity,
    SourceError,
    input_name,
    local_copy,
    verify_sha256,
)
from halo_lrg.io.uri import REMOTE_SCHEMES, scheme_of
from halo_lrg.science.cuts import selections_of
from halo_lrg.science.footprint import Footprint
from halo_lrg.spark import tuning
from halo_lrg.spark.plan import Piece

log = logging.getLogger(__name__)

#: What a task returns for each file (or part of a file) it reads: one row per brick
#: (``brickname``, ``lrg_count``; the status fields null or 0), then one status row
#: (``brickname`` null; ``uri`` and the rest set; ``sha256`` when the bytes were hashed;
#: ``partial``: ``saved``, ``not saved: <why>``, or null when none was asked for; ``part``:
#: ``k/n`` for the k-th of n row ranges of a split file, null for a whole file).
PARTIAL_SCHEMA = (
    "brickname string, lrg_count long, uri string, status string, rows long, objects long, "
    "lrg long, seconds double, error string, sha256 string, partial string, part string"
)
STATUS_FIELDS = ["uri", "status", "rows", "objects", "lrg", "seconds", "error", "sha256",
                 "partial", "part"]
COUNT_SCHEMA = "brickname string, lrg_count long"
#: The format of ``_partials/<key>.json``; part of every key, so a new format never reads
#: an old file.
PARTIAL_FORMAT = "halo-lrg-partial/1"
#: ``run.resolve``: north/south resolution when both systems appear, always, or never.
RESOLVE_MODES = ("auto", "on", "off")


@dataclass(frozen=True)
class PartialLayout:
    """The columns of a job's partials: :data:`PARTIAL_SCHEMA`'s for one selection without
    north/south resolution, else these appended (``extended``):

    * ``n_objects``; ``lrg_count_1`` ... ``lrg_count_<k-1>``: objects, and LRGs of the 2nd...
      selection (``lrg_count`` is the first's);
    * with resolution tallied: ``dropped_objects``, ``dropped_lrg_count_0`` ...: what
      resolution would drop; ``photsys``: the file's systems (on its status row);
    * with HEALPix counts (``nside``): ``pixel``, the NESTED pixel of a pixel row.

    On a brick row they are the brick's counts; on a pixel row (``brickname`` null, ``pixel``
    set) the pixel's; on the status row (``uri`` set) the file's totals."""

    selections: tuple[str, ...] = ()
    tallied: bool = False
    nside: int = 0

    @property
    def width(self) -> int:
        return max(1, len(self.selections))

    @property
    def extended(self) -> bool:
        return self.width > 1 or self.tallied or bool(self.nside)

    def lrg_columns(self) -> list[str]:
        return ["lrg_count", *(f"lrg_count_{j}" for j in range(1, self.width))]

    def dropped_columns(self) -> list[str]:
        return (["dropped_objects", *(f"dropped_lrg_count_{j}" for j in range(self.width))]
                if self.tallied else [])

    def count_columns(self) -> list[str]:
        """The per-brick counts, summed over files."""
        if not self.extended:
            return ["lrg_count"]
        return ["lrg_count", "n_objects", *self.lrg_columns()[1:], *self.dropped_columns()]

    def schema(self) -> str:
        if not self.extended:
            return PARTIAL_SCHEMA
        extra = ["n_objects", *self.lrg_columns()[1:], *self.dropped_columns()]
        return ", ".join([PARTIAL_SCHEMA, *(f"{c} long" for c in extra),
                          *(["photsys string"] if self.tallied else []),
                          *(["pixel long"] if self.nside else [])])


def partial_layout(config: Config) -> PartialLayout:
    """The layout of the partials a job with ``config`` returns."""
    return PartialLayout(tuple(s.name for s in selections_of(config)),
                         config.run.resolve != "off", config.run.healpix_nside)


def optional_text(value: Any) -> Optional[str]:
    """A collected string column's value: None for null (NaN or None)."""
    return None if value is None or (isinstance(value, float) and np.isnan(value)) \
        else str(value)


@dataclass
class FileResult:
    uri: str
    status: str  # ok | failed | cancelled
    rows: int = 0
    objects: int = 0
    lrg: int = 0
    seconds: float = 0.0
    error: Optional[str] = None
    bytes: Optional[int] = None
    #: SHA-256 of the bytes counted (downloads always; local files when one was expected).
    sha256: Optional[str] = None
    #: What the checksum list says (None: no list, or the file is not in it).
    sha256_expected: Optional[str] = None
    #: Taken from a stored partial: not read in this run.
    reused: bool = False
    #: saved | reused | "not saved: <why>" | None (no partial asked for, or not counted)
    partial: Optional[str] = None
    #: LRGs of each selection, by name, when several were counted (``lrg``: the first's).
    lrg_by_selection: Optional[dict[str, int]] = None
    #: The photometric systems of the file's objects ("", "N", "S", "NS"; "?" for objects
    #: with neither PHOTSYS nor RELEASE); None when north/south was not looked at.
    photsys: Optional[str] = None
    #: What north/south resolution drops from this file: objects, and LRGs per selection.
    dropped_objects: int = 0
    dropped_lrg: Optional[list[int]] = None
    #: Resolution was applied: ``objects``, ``lrg`` and ``lrg_by_selection`` are after it.
    resolved: bool = False
    #: The result of one row range of a split file: ``k/n`` (None: of the whole file).
    part: Optional[str] = None
    #: How many row ranges the file was read in (merged by :func:`merge_parts`).
    parts: int = 1

    @classmethod
    def from_row(cls, row: dict[str, Any], size: Optional[int],
                 expected: Optional[str] = None,
                 layout: Optional[PartialLayout] = None) -> FileResult:
        """From a collected status row (numpy scalars, NaN for a missing error)."""
        result = cls(str(row["uri"]), str(row["status"]), int(row["rows"]),
                     int(row["objects"]), int(row["lrg"]), float(row["seconds"]),
                     optional_text(row.get("error")), size, optional_text(row.get("sha256")),
                     expected, False, optional_text(row.get("partial")),
                     part=optional_text(row.get("part")))
        if layout is not None and result.status == "ok":
            # A status row has the layout's columns; a progress entry (to_dict) its keys.
            if layout.width > 1:
                totals = [result.lrg, *(int(row.get(c, 0)) for c in layout.lrg_columns()[1:])]
                result.lrg_by_selection = dict(row.get("lrg_by_selection") or
                                               zip(layout.selections, totals))
            if layout.tallied:
                result.photsys = optional_text(row.get("photsys"))
                dropped = [int(row.get(c, 0)) for c in layout.dropped_columns()]
                result.dropped_objects, result.dropped_lrg = dropped[0], dropped[1:]
        return result

    def with_resolution(self) -> FileResult:
        """This file's result once north/south resolution is applied to it."""
        if self.status != "ok" or self.photsys is None:
            return self
        lost = list(self.dropped_lrg or [0] * max(1, len(self.lrg_by_selection or {})))
        by_selection = None if self.lrg_by_selection is None else {
            name: n - d for (name, n), d in zip(self.lrg_by_selection.items(), lost)}
        return dataclasses.replace(self, objects=self.objects - self.dropped_objects,
                                   lrg=self.lrg - lost[0], lrg_by_selection=by_selection,
                                   resolved=True)

    @property
    def sha256_verified(self) -> bool:
        return self.sha256 is not None and self.sha256 == self.sha256_expected

    def to_dict(self) -> dict[str, Any]:
        out = {"uri": self.uri, "status": self.status, "rows": self.rows,
               "objects": self.objects, "lrg": self.lrg, "seconds": round(self.seconds, 3),
               "bytes": self.bytes, "error": self.error, "sha256": self.sha256,
               "sha256_expected": self.sha256_expected,
               "sha256_verified": self.sha256_verified, "reused": self.reused,
               "partial": self.partial}
        if self.lrg_by_selection is not None:
            out["lrg_by_selection"] = dict(self.lrg_by_selection)
        if self.part is not None:
            out["part"] = self.part
        if self.parts > 1:
            out["parts"] = self.parts
        if self.photsys is not None:
            out["photsys"] = self.photsys
            if self.resolved:  # objects and lrg above are after resolution
                out["dropped_by_resolution"] = {"objects": self.dropped_objects,
                                                "lrg": list(self.dropped_lrg or [])}
        return out


def part_label(rows: Optional[RowSlice]) -> Optional[str]:
    """``k/n`` for the k-th (from 1) of n row ranges of a file; None for a whole file."""
    return None if rows is None or rows.whole else f"{rows.part + 1}/{rows.parts}"


def piece_key(uri: str, part: Optional[str]) -> str:
    """What names one piece of a run: the URI, with ``#k/n`` for a row range."""
    return uri if part is None else f"{uri}#{part}"


def merge_parts(parts: Sequence[FileResult], size: Optional[int] = None) -> FileResult:
    """One file's result from the results of its row ranges (in any order): ok when every
    part is, with the sums; else the first failed (or cancelled) part's status and error."""
    first = parts[0]
    if len(parts) == 1 and first.part is None:
        return first
    bad = [p for p in parts if p.status != "ok"]
    worst = next((p for p in bad if p.status == "failed"), bad[0] if bad else None)
    if worst is not None:
        return dataclasses.replace(worst, part=None, parts=len(parts), bytes=size,
                                   seconds=sum(p.seconds for p in parts),
                                   reused=all(p.reused for p in parts))
    by_selection = None
    if first.lrg_by_selection is not None:
        by_selection = {name: sum((p.lrg_by_selection or {}).get(name, 0) for p in parts)
                        for name in first.lrg_by_selection}
    systems = {c for p in parts for c in (p.photsys or "")}
    dropped_lrg = None if first.dropped_lrg is None else \
        [sum(values) for values in zip(*(p.dropped_lrg or [] for p in parts))]
    saved = [p.partial for p in parts]
    return dataclasses.replace(
        first, rows=sum(p.rows for p in parts), objects=sum(p.objects for p in parts),
        lrg=sum(p.lrg for p in parts), seconds=sum(p.seconds for p in parts), bytes=size,
        reused=all(p.reused for p in parts),
        partial=next((x for x in saved if x and x.startswith("not saved")), saved[0]),
        lrg_by_selection=by_selection,
        photsys=None if first.photsys is None else "".join(sorted(systems)),
        dropped_objects=sum(p.dropped_objects for p in parts), dropped_lrg=dropped_lrg,
        part=None, parts=len(parts))


def count_one_file(uri: str, config: Config, footprint: Optional[Footprint],
                   expected_sha256: Optional[str] = None, rows: Optional[RowSlice] = None,
                   expect: Optional[InputIdentity] = None
                   ) -> tuple[Optional[SweepCount], FileResult]:
    """Count one file (``rows``: one row range of it) end to end (fetch, read, cut, count).
    Never raises: a failure is a ``FileResult`` with status ``failed`` and an error naming
    the URI and the cause.

    Downloads are hashed (SHA-256) as they arrive; a local file is read whole for its hash
    only when ``expected_sha256`` is given (hashing costs more than counting it). A hash that
    differs from ``expected_sha256`` fails the file, naming both values. A row range of a
    file is never hashed (its bytes are not the file's): the run does not split a file whose
    checksum it must verify, and a part given ``expected_sha256`` is refused. ``expect``:
    what the run saw of the file when it planned; a remote row range of a file that has
    changed since is refused (the ranges of one file all read one version)."""
    started = time.perf_counter()
    selections = selections_of(config)
    resolve = config.run.resolve != "off"
    remote = scheme_of(uri) in REMOTE_SCHEMES
    part = part_label(rows)
    if part is not None and expected_sha256 is not None:
        raise ValueError(f"{uri}: a row range ({rows}) cannot be checked against the file's "
                         "SHA-256; read the file whole")
    hasher = InputHash() if part is None and (remote or expected_sha256 is not None) else None
    sha256 = None
    try:
        if remote and config.remote.stream_remote:
            from halo_lrg.count.streaming import stream_count

            # Counted while it arrives; a mismatch found at the end discards the counts.
            result = stream_count(uri, config, selections, footprint, hasher=hasher,
                                  resolve=resolve, rows=rows,
                                  expect=expect if part is not None else None,
                                  nside=config.run.healpix_nside or None)
            if hasher is not None:
                sha256 = verify_sha256(uri, hasher, expected_sha256)
        else:
            with local_copy(uri, config, hasher) as path:
                if hasher is not None:  # before counting: bad bytes are never counted
                    sha256 = verify_sha256(uri, hasher, expected_sha256)
                result = count_sweep_file(
                    path, selections, config.read.chunk_rows, config.read.fast_path, footprint,
                    resolve=resolve, unknown_release_photsys=config.cuts.unknown_release_photsys,
                    rows=rows, nside=config.run.healpix_nside or None)
    except (SweepError, SourceError) as exc:
        return None, FileResult(uri, "failed", seconds=time.perf_counter() - started,
                                error=f"{uri}: {exc.cause}", sha256_expected=expected_sha256,
                                part=part)
    except Exception as exc:  # anything else is still this file's failure, named as such
        return None, FileResult(uri, "failed", seconds=time.perf_counter() - started,
                                error=f"{uri}: {type(exc).__name__}: {exc}",
                                sha256_expected=expected_sha256, part=part)
    if config.run.resolve == "on" and "?" in (result.photsys or ""):
        return None, FileResult(uri, "failed", seconds=time.perf_counter() - started,
                                error=f"{uri}: north/south resolution is on (--resolve) but "
                                      "the file has neither PHOTSYS nor RELEASE, so its "
                                      "objects' photometric system is unknown",
                                sha256=sha256, sha256_expected=expected_sha256, part=part)
    return result, FileResult(uri, "ok", result.rows, result.objects, result.lrg,
                              time.perf_counter() - started, sha256=sha256,
                              sha256_expected=expected_sha256, part=part,
                              **_file_extras(result))


def _file_extras(counts: SweepCount) -> dict[str, Any]:
    """A counted file's per-selection totals and north/south report, for its FileResult."""
    extras: dict[str, Any] = {}
    if len(counts.selections) > 1:
        extras["lrg_by_selection"] = dict(zip(counts.selections, counts.lrg_by_selection))
    if counts.photsys is not None:
        extras["photsys"] = counts.photsys
        extras["dropped_objects"] = int(counts.dropped_objects.sum())  # type: ignore[union-attr]
        extras["dropped_lrg"] = [int(n) for n in
                                 counts.dropped_counts.sum(axis=1)]  # type: ignore[union-attr]
    return extras


# --- durable partials ---------------------------------------------------------------------------

@dataclass(frozen=True)
class FileTask:
    """What a task needs for one file besides its URI: the SHA-256 its checksum list gives,
    and where its partial goes (``partial_key``; ``partial_header``: what the key is made of,
    stored in the partial so that a reader can check it)."""

    expected_sha256: Optional[str] = None
    partial_key: Optional[str] = None
    partial_header: Optional[dict[str, Any]] = None
    #: What the run saw of the file when it planned (size, ETag or mtime): a row range read
    #: later by another task is refused if the file has changed since, so that the ranges of
    #: one file all read one version.
    identity: Optional[InputIdentity] = None


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def file_task(identity: InputIdentity, expected_sha256: Optional[str], config: Config,
              footprint: Optional[Footprint]) -> FileTask:
    """The file's task, with a partial key when the input's identity is known.

    The key covers everything that could make a recount differ: the input (URI, size, ETag
    or modification time, and the listed SHA-256 when there is one), the selection (name and
    parameters; with several, every selection's whole definition, in order), the footprint,
    whether north/south was tallied (and how an unknown RELEASE is taken), the halo-lrg
    version and the partial format. An input whose size or validators cannot be known gets
    no key: it is always recounted."""
    if not identity.known:
        return FileTask(expected_sha256, identity=identity)
    selections = selections_of(config)
    header: dict[str, Any] = {
        "format": PARTIAL_FORMAT,
        "halo_lrg_version": __version__,
        "input": {**identity.to_dict(), "sha256": expected_sha256},
    }
    if len(selections) == 1:
        header["selection"] = {"name": selections[0].name,
                               "parameters": dict(selections[0].parameters)}
    else:
        header["selections"] = [s.definition() for s in selections]
    header["footprint"] = footprint.to_dict() if footprint is not None else None
    if config.run.resolve != "off":  # "auto" and "on" tally the same: one partial serves both
        header["north_south"] = {"unknown_release_photsys": config.cuts.unknown_release_photsys}
    if config.run.healpix_nside:
        header["healpix"] = {"nside": config.run.healpix_nside, "ordering": "NESTED"}
    # Through JSON and back: the header a task stores and a reader compares are the same
    # plain values (tuples become lists).
    header = json.loads(json.dumps(header, sort_keys=True))
    digest = hashlib.sha256(json.dumps(header, sort_keys=True, separators=(",", ":"))
                            .encode("utf-8")).hexdigest()
    name = _UNSAFE.sub("_", input_name(identity.uri))[:80] or "input"
    return FileTask(expected_sha256, f"{name}-{digest[:40]}", header, identity)


def piece_task(task: FileTask, rows: RowSlice) -> FileTask:
    """The task of one row range of a file: its own partial, keyed by the file's key and the
    range (the ranges of a file follow from its size and ``run.split_bytes`` alone, so a rerun
    with the same settings finds every range it stored)."""
    if rows.whole or task.partial_key is None:
        return task
    header = {**(task.partial_header or {}), "rows": {"part": rows.part, "parts": rows.parts}}
    return FileTask(task.expected_sha256,
                    f"{task.partial_key}-part{rows.part + 1}of{rows.parts}", header,
                    task.identity)


def _ints(values: Any) -> list[int]:
    return [int(n) for n in np.asarray(values).tolist()]


def partial_record(task: FileTask, counts: SweepCount, status: FileResult) -> dict[str, Any]:
    """A counted file's partial: the key and what it is made of, the file's totals and SHA-256,
    and its bricks (sorted): objects and LRGs, with several selections ``lrg_counts`` (one
    list per selection, in order), with north/south tallied the file's ``photsys`` and what
    resolution would drop per brick. Nothing in it depends on the attempt (no times), so
    every attempt writes the same bytes."""
    result = {"rows": status.rows, "objects": status.objects, "lrg": status.lrg,
              "sha256": status.sha256, "sha256_verified": status.sha256_verified}
    bricks: dict[str, Any] = {"brickname": [str(n) for n in counts.brickname.tolist()],
                              "objects": _ints(counts.n_objects),
                              "lrg_count": _ints(counts.lrg_count)}
    if len(counts.selections) > 1:
        bricks["selections"] = list(counts.selections)
        bricks["lrg_counts"] = [_ints(row) for row in counts.counts_by_selection]
    if counts.photsys is not None and counts.dropped_counts is not None:
        result["photsys"] = counts.photsys
        bricks["dropped_objects"] = _ints(counts.dropped_objects)
        bricks["dropped_lrg_counts"] = [_ints(row) for row in counts.dropped_counts]
    pixels: dict[str, Any] = {}
    if counts.pixels is not None:  # the same counts per HEALPix pixel
        pixels = {"pixel": _ints(counts.pixels.pixel), "objects": _ints(counts.pixels.n_objects),
                  "lrg_counts": [_ints(row) for row in counts.pixels.counts]}
        if counts.dropped_pixels is not None:
            pixels["dropped_objects"] = _ints(counts.dropped_pixels.n_objects)
            pixels["dropped_lrg_counts"] = [_ints(row) for row in counts.dropped_pixels.counts]
    return {**(task.partial_header or {}), "key": task.partial_key, "result": result,
            "bricks": bricks, **({"pixels": pixels} if pixels else {})}


def read_partial(data: bytes, task: FileTask, uri: str, size: Optional[int],
                 layout: Optional[PartialLayout] = None
                 ) -> Optional[tuple[FileResult, pd.DataFrame]]:
    """A stored partial as (the file's result, its per-brick rows: ``brickname`` and
    ``layout``'s count columns, by default ``lrg_count``), or None when it is not the partial
    ``task`` asks for (a different header, or unreadable)."""
    layout = layout or PartialLayout()
    try:
        record = json.loads(data)
        header = {k: record[k] for k in (task.partial_header or {})}
        if header != task.partial_header or record.get("key") != task.partial_key:
            return None
        result, bricks = record["result"], record["bricks"]
        names = list(bricks["brickname"])
        if layout.width > 1 and bricks.get("selections") != list(layout.selections):
            return None
        bricks = {**bricks, "lrg_counts": bricks.get("lrg_counts", [bricks["lrg_count"]])}
        columns, lrg_counts, dropped = _stored_counts(bricks, len(names), layout)
        if layout.nside:  # then pixel rows: no brick name, a pixel
            stored = record["pixels"]
            pixel = _ints(stored["pixel"])
            more, _, _ = _stored_counts(stored, len(pixel), layout)
            columns = {c: columns[c] + more[c] for c in columns}
            names += [None] * len(pixel)
            columns["pixel"] = [None] * (len(names) - len(pixel)) + pixel
        rows = record.get("rows")
        status = FileResult(uri, "ok", int(result["rows"]), int(result["objects"]),
                            int(result["lrg"]), 0.0, None, size, result.get("sha256"),
                            task.expected_sha256, True, "reused",
                            part=None if rows is None else f"{rows['part'] + 1}/{rows['parts']}")
        if layout.width > 1:
            status.lrg_by_selection = dict(zip(layout.selections,
                                               (int(sum(v)) for v in lrg_counts)))
        if layout.tallied:
            status.photsys = result.get("photsys")
            status.dropped_objects = int(sum(dropped[0]))
            status.dropped_lrg = [int(sum(v)) for v in dropped[1:]]
    except (ValueError, KeyError, TypeError):
        return None
    frame = pd.DataFrame({"brickname": pd.Series(names, dtype=object),
                          **{c: pd.Series(columns[c], dtype="int64")
                             for c in layout.count_columns()},
                          **({"pixel": pd.Series(columns["pixel"], dtype=object)}
                             if layout.nside else {})})
    return status, frame


def _stored_counts(group: dict[str, Any], n: int, layout: PartialLayout
                   ) -> tuple[dict[str, list[int]], list[Any], list[Any]]:
    """The count columns of a partial's ``bricks`` or ``pixels`` (n rows), with its LRG
    counts per selection and what resolution drops; ValueError when they are not n long."""
    lrg_counts = group["lrg_counts"]
    if len(lrg_counts) != layout.width:
        raise ValueError("selections differ")
    columns = {"lrg_count": _ints(lrg_counts[0]), "n_objects": _ints(group["objects"])}
    for name, values in zip(layout.lrg_columns()[1:], lrg_counts[1:]):
        columns[name] = _ints(values)
    dropped = [group.get("dropped_objects", [0] * n),
               *group.get("dropped_lrg_counts", [[0] * n] * layout.width)]
    for name, values in zip(layout.dropped_columns(), dropped):
        columns[name] = _ints(values)
    if any(len(v) != n for v in columns.values()):
        raise ValueError("columns of different lengths")
    return columns, lrg_counts, dropped


def _store_partial(partials_uri: str, config: Config, task: FileTask, counts: SweepCount,
                   status: FileResult) -> str:
    """Write the file's partial; ``saved``, or ``not saved: <why>`` (the count stands: only
    a later resume loses it)."""
    from halo_lrg.io.output import output_location, partial_bytes, partial_name

    name = partial_name(str(task.partial_key))
    try:
        output_location(partials_uri, config).write_file(
            name, partial_bytes(partial_record(task, counts, status)))
    except Exception as exc:
        log.warning("%s: partial not saved at %s/%s (%s)", status.uri, partials_uri, name, exc)
        return f"not saved: {type(exc).__name__}: {exc}"
    return "saved"


def _partials_frame(uri: str, counts: Optional[SweepCount], status: FileResult,
                    layout: Optional[PartialLayout] = None) -> pd.DataFrame:
    """The task's rows for one file: a row per brick, then the file's status row, in the
    columns of ``layout`` (default: :data:`PARTIAL_SCHEMA`'s).

    Built from preallocated numpy columns, not Python lists: every task pays for this frame
    (~0.2 ms this way, ~1.4 ms from lists, for 400 bricks). With HEALPix counts, the pixel
    rows come after the bricks (``brickname`` null, ``pixel`` set)."""
    layout = layout or PartialLayout()
    pixels = None if counts is None or not layout.nside else counts.pixels
    if pixels is not None:  # brick rows, then pixel rows: one set of count columns
        counts = _with_pixel_rows(counts, pixels)
    n = 0 if counts is None else counts.brickname.size

    def column(dtype: Any, last: Any, bricks: Any = None) -> Any:
        """n brick values (``bricks``, else null or 0), then the status row's ``last``."""
        values = np.full(n + 1, None, object) if dtype is object else np.zeros(n + 1, dtype)
        if bricks is not None:
            values[:n] = bricks
        values[n] = last
        return values

    frame = {
        "brickname": column(object, None, None if counts is None else counts.brickname),
        "lrg_count": column(np.int64, 0, None if counts is None else counts.lrg_count),
        "uri": column(object, uri),
        "status": column(object, status.status),
        "rows": column(np.int64, status.rows),
        "objects": column(np.int64, status.objects),
        "lrg": column(np.int64, status.lrg),
        "seconds": column(np.float64, status.seconds),
        "error": column(object, status.error),
        "sha256": column(object, status.sha256),
        "partial": column(object, status.partial),
        "part": column(object, status.part),
    }
    if layout.extended:
        frame["n_objects"] = column(np.int64, status.objects,
                                    None if counts is None else counts.n_objects)
        by_selection = None if counts is None else counts.counts_by_selection
        totals = list((status.lrg_by_selection or {}).values())
        for j, name in enumerate(layout.lrg_columns()[1:], start=1):
            frame[name] = column(np.int64, totals[j] if j < len(totals) else 0,
                                 None if by_selection is None else by_selection[j])
        if layout.tallied:
            dropped = [] if counts is None or counts.dropped_counts is None else \
                [counts.dropped_objects, *counts.dropped_counts]
            lost = [status.dropped_objects, *(status.dropped_lrg or [0] * layout.width)]
            for j, name in enumerate(layout.dropped_columns()):
                frame[name] = column(np.int64, lost[j], dropped[j] if dropped else None)
            frame["photsys"] = column(object, status.photsys)
        if layout.nside:
            pixel = np.full(n + 1, None, object)
            if pixels is not None:
                pixel[n - pixels.pixel.size:n] = pixels.pixel
            frame["pixel"] = pixel
    return pd.DataFrame(frame, copy=False)


def _with_pixel_rows(counts: SweepCount, pixels: Any) -> SweepCount:
    """``counts`` with its pixels' counts appended to the bricks' (names None): the rows a
    task returns, the same columns for both."""
    none = np.full(pixels.pixel.size, None, object)
    joined = {
        "brickname": np.concatenate([counts.brickname.astype(object), none]),
        "n_objects": np.concatenate([counts.n_objects, pixels.n_objects]),
        "lrg_count": np.concatenate([counts.lrg_count, pixels.counts[0]]),
        "lrg_counts": np.concatenate([counts.counts_by_selection, pixels.counts], axis=1),
    }
    if counts.dropped_counts is not None and counts.dropped_pixels is not None:
        dropped = counts.dropped_pixels
        joined["dropped_objects"] = np.concatenate([counts.dropped_objects, dropped.n_objects])
        joined["dropped_counts"] = np.concatenate([counts.dropped_counts, dropped.counts],
                                                  axis=1)
    return dataclasses.replace(counts, **joined)


def _count_partition(batches: Iterator[pd.DataFrame], uris: Sequence[str], config: Config,
                     footprint: Optional[Footprint], progress: Any, tune_workers: bool,
                     raise_failures: bool, file_tasks: Optional[Sequence[FileTask]] = None,
                     partials_uri: Optional[str] = None,
                     layout: Optional[PartialLayout] = None,
                     tasks: Optional[Sequence[Sequence[Piece]]] = None
                     ) -> Iterator[pd.DataFrame]:
    if tune_workers:
        # Once per worker process, for its later tasks; preloaded modules get frozen too.
        tuning.install(preload=("fitsio", "halo_lrg.count.streaming"))
    for batch in batches:
        for index in batch["id"]:
            pieces = tasks[int(index)] if tasks is not None else (Piece(int(index)),)
            for piece in pieces:
                yield _count_piece(piece, uris, config, footprint, progress, raise_failures,
                                   file_tasks, partials_uri, layout)


def _count_piece(piece: Piece, uris: Sequence[str], config: Config,
                 footprint: Optional[Footprint], progress: Any, raise_failures: bool,
                 file_tasks: Optional[Sequence[FileTask]], partials_uri: Optional[str],
                 layout: Optional[PartialLayout]) -> pd.DataFrame:
    """One piece of a task: count it, store its partial, report it; its rows."""
    uri = uris[piece.file]
    task = piece_task(file_tasks[piece.file] if file_tasks else FileTask(), piece.rows)
    bricks, status = count_one_file(uri, config, footprint, task.expected_sha256,
                                    piece.rows, task.identity)
    if raise_failures and status.status != "ok":
        raise FileFailed(status.error or uri)
    if bricks is not None and partials_uri and task.partial_key:
        # Durable before the file is reported: a driver killed from here on finds it.
        status.partial = _store_partial(partials_uri, config, task, bricks, status)
    if progress is not None:
        progress.add([status.to_dict()])
    return _partials_frame(uri, bricks, status, layout)


def list_accumulator(spark: Any) -> Any:
    """A Spark accumulator of lists that tasks ``add([...])`` to and the driver reads as they
    finish: how tasks report progress (the driver polls ``.value``)."""
    from pyspark.accumulators import AccumulatorParam

    class ListParam(AccumulatorParam):
        def zero(self, value: list) -> list:
            return []

        def addInPlace(self, a: list, b: list) -> list:
            a.extend(b)
            return a

    return spark.sparkContext.accumulator([], ListParam())


class AccumulatorWatcher(threading.Thread):
    """On the driver, polls a :func:`list_accumulator` every ``interval`` seconds while the
    job runs, and hears each task's report once (:meth:`note`; a retried task reports again,
    under the same :meth:`key`): it emits the report's line and, with ``fail_fast``, cancels
    the job group at the first failure. :meth:`stop` polls a last time. Subclasses say what a
    report is keyed by, what is kept of it, its line, and whether it is a failure."""

    def __init__(self, name: str, spark: Any, accumulator: Any, group: str, fail_fast: bool,
                 interval: float, emit: Optional[Callable[[str], None]]) -> None:
        super().__init__(name=name, daemon=True)
        self.spark, self.accumulator, self.group = spark, accumulator, group
        self.fail_fast, self.interval, self.emit = fail_fast, interval, emit
        self.seen: dict[Any, Any] = {}
        self.first_failure: Any = None
        self._finished = threading.Event()

    def key(self, entry: dict[str, Any]) -> Any:
        raise NotImplementedError

    def kept(self, entry: dict[str, Any]) -> Any:
        """What :attr:`seen` keeps of a report (default: the report)."""
        return entry

    def line(self, kept: Any) -> str:
        raise NotImplementedError

    def failed(self, kept: Any) -> bool:
        raise NotImplementedError

    def note(self, entry: dict[str, Any]) -> None:
        key = self.key(entry)
        if key in self.seen:
            return
        kept = self.seen[key] = self.kept(entry)
        if self.emit is not None:
            self.emit(self.line(kept))
        if self.failed(kept) and self.fail_fast and self.first_failure is None:
            self.first_failure = kept
            self.spark.sparkContext.cancelJobGroup(self.group)

    def poll(self) -> None:
        for entry in list(self.accumulator.value):
            self.note(entry)

    def between_polls(self) -> None:
        """Called after each poll while the job runs."""

    def run(self) -> None:
        while not self._finished.wait(self.interval):
            self.poll()
            self.between_polls()

    def stop(self) -> None:
        self._finished.set()
        self.join()
        self.poll()


class FileFailed(RuntimeError):
    """A file could not be counted (raised in the task by :func:`count_lrgs` unless
    ``on_error="skip"``); the message names the file and the cause."""


def files_frame(spark: Any, count: int) -> Any:
    """A DataFrame of file indices 0..count-1, exactly one per partition, in order.

    ``spark.range(n, numPartitions=n)`` gives exactly one row per partition (``repartition``
    does not) and stays in the JVM: building it from a Python RDD costs every task a Python
    round trip (~0.1-0.3 s each, measured). Tasks look their URI up by index, so with the
    inputs sorted largest first the longest tasks start first and the last wave is short.
    """
    return spark.range(count, numPartitions=max(1, count))


def lrg_partials(spark: Any, uris: Sequence[str],
                 selection: Union[str, Sequence[str], None] = None, *,
                 footprint: Optional[Footprint] = None, config: Optional[Config] = None,
                 progress: Any = None, tune_workers: bool = False,
                 raise_failures: bool = False, file_tasks: Optional[Sequence[FileTask]] = None,
                 partials_uri: Optional[str] = None,
                 tasks: Optional[Sequence[Sequence[Piece]]] = None) -> Any:
    """One task per file (or per entry of ``tasks``: pieces of files, packed or split by
    :mod:`halo_lrg.spark.plan`), each returning per file or piece its per-brick partials and
    a status row
    (``PARTIAL_SCHEMA``, extended as :func:`partial_layout` says for several selections or
    north/south tallied): a lazy DataFrame; nothing runs until an action.

    ``selection`` (one name, a comma-separated string or a list) overrides
    ``config.cuts.selection`` (config: the packaged defaults, see
    :func:`halo_lrg.config.load_config`). ``progress``: a Spark accumulator of lists that hears
    each file's status as it finishes. ``tune_workers``: apply :mod:`halo_lrg.spark.tuning` in
    the Python workers (the caller decides whether it applies; see
    :func:`halo_lrg.spark.tuning.supported`). ``file_tasks`` (one per URI; :func:`file_task`)
    give each file its expected SHA-256 and partial key; with ``partials_uri`` (an output
    location: local or ``s3://``, written with ``config``'s settings) each counted file's
    partial is stored there as it completes.
    """
    config = _effective_config(config, selection)
    if file_tasks is not None and len(file_tasks) != len(uris):
        raise ValueError(f"{len(file_tasks)} file tasks for {len(uris)} files")
    layout = partial_layout(config)
    if tasks is not None:
        tasks = [tuple(task) for task in tasks]
        covered = sorted((p.file, p.rows.part, p.rows.parts) for task in tasks for p in task)
        if any(not 0 <= f < len(uris) for f, _k, _n in covered) or \
                len(set(covered)) != len(covered):
            raise ValueError("tasks must name each piece of the files once")
    return files_frame(spark, len(uris) if tasks is None else len(tasks)).mapInPandas(
        functools.partial(_count_partition, uris=list(uris), config=config,
                          footprint=footprint, progress=progress, tune_workers=tune_workers,
                          raise_failures=raise_failures,
                          file_tasks=list(file_tasks) if file_tasks is not None else None,
                          partials_uri=partials_uri, layout=layout, tasks=tasks),
        schema=layout.schema(),
    )


def count_lrgs(spark: Any, uris: Sequence[str],
               selection: Union[str, Sequence[str], None] = None, *,
               footprint: Optional[Footprint] = None, config: Optional[Config] = None,
               on_error: Optional[str] = None, resolve: Optional[str] = None) -> Any:
    """LRGs per brick summed over ``uris``: a DataFrame ``brickname string, lrg_count long``
    (one row per brick with an object in the inputs; unordered, as Spark results are).

    ``selection``: one name (default ``config.cuts.selection``), or several (a comma-separated
    string or a list; names from ``config``'s ``[selections]`` too), counted in one read of
    each file: the DataFrame is then ``brickname, n_objects, <selection>...`` (all long), one
    column of LRGs per selection named as it is, ``n_objects`` every object of the brick.

    ``resolve`` (default ``config.run.resolve``): north/south resolution as desitarget's
    ``targets.resolve`` (``auto``: when both photometric systems appear in the inputs,
    decided in the same plan after every file is read; ``on``; ``off``). A brick whose
    every object resolution drops is left out.

    The session is the caller's and is left as it was. A file that cannot be counted fails
    the Spark job with its name and cause, unless ``on_error="skip"`` (or
    ``config.run.on_error``), which leaves it out; :func:`lrg_partials` shows every file's
    status. ``uris``: local paths, ``file://``, ``s3://`` or ``http(s)://``; for S3 or HTTP
    inputs the executors need network access and (S3) credentials.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    config = _effective_config(config, selection, resolve)
    skip = (on_error or config.run.on_error) == "skip"
    layout = partial_layout(config)
    partials = lrg_partials(spark, uris, footprint=footprint, config=config,
                            raise_failures=not skip)
    if not layout.extended:
        return (partials.where(F.col("brickname").isNotNull())
                .groupBy("brickname")
                .agg(F.sum("lrg_count").cast("long").alias("lrg_count")))
    sums = [F.sum(c).alias(c) for c in layout.count_columns()]
    if layout.tallied:  # the files' systems, from their status rows (one group, null name)
        ok = F.col("status") == "ok"
        sums += [F.max(F.when(ok & F.col("photsys").contains(system), 1).otherwise(0))
                 .alias(f"_has_{system}") for system in "NS"]
    grouped = partials.groupBy("brickname").agg(*sums)
    lrg = layout.lrg_columns()
    if layout.tallied:
        if config.run.resolve == "on":
            applies = F.lit(True)
        else:
            # Every row sees the whole input's systems: one window over the aggregated
            # bricks (~1 row per brick), so the files are still read once.
            everything = Window.partitionBy(F.lit(0))
            applies = (F.max("_has_N").over(everything)
                       + F.max("_has_S").over(everything)) == 2
        dropped = layout.dropped_columns()

        def after(column: str, lost: str) -> Any:
            return F.when(applies, F.col(column) - F.col(lost)).otherwise(F.col(column))

        grouped = grouped.select(
            "brickname", after("n_objects", dropped[0]).alias("n_objects"),
            *(after(c, d).alias(c) for c, d in zip(lrg, dropped[1:])))
    counts = grouped.where(F.col("brickname").isNotNull() & (F.col("n_objects") > 0))
    if layout.width == 1:
        return counts.select("brickname", F.col("lrg_count").cast("long").alias("lrg_count"))
    return counts.select("brickname", F.col("n_objects").cast("long").alias("n_objects"),
                         *(F.col(c).cast("long").alias(name)
                           for c, name in zip(lrg, layout.selections)))


def _effective_config(config: Optional[Config], selection: Union[str, Sequence[str], None],
                      resolve: Optional[str] = None) -> Config:
    config = config or load_config()
    if selection is not None:
        config = config.replace(cuts={"selection": selection if isinstance(selection, str)
                                      else list(selection)})
    if resolve is not None:
        config = config.replace(run={"resolve": resolve})
    if config.run.resolve not in RESOLVE_MODES:
        raise ValueError(f"run.resolve must be one of {', '.join(RESOLVE_MODES)}, got "
                         f"{config.run.resolve!r}")
    selections_of(config)  # an unknown name fails here, not in tasks
    return config


def collect_partials(partials: Any, layout: Optional[PartialLayout] = None
                     ) -> tuple[list[dict[str, Any]], pd.DataFrame, Optional[pd.DataFrame]]:
    """Run the job (one stage) and merge its partials on the driver: per-file (or piece)
    statuses, LRG counts per brick summed across files, sorted by name (the count columns of
    ``layout``, by default ``lrg_count``), and with HEALPix counts (``layout.nside``) the same
    per pixel (else None).

    Why not ``groupBy(brickname).sum()`` in Spark: a task's partials are already one row per
    brick of its file, so a Spark aggregation only moves this small merge from the driver,
    which receives its result anyway, into a reduce task. Its cost is paid in every map
    task: a partial aggregation, a shuffle write and a larger plan to deserialize, ~12 ms of
    JVM CPU a task against ~6 ms for this collect (tasks returning 400 rows, local[2];
    ``make bench`` measures both).
    What reaches the driver is the same size either way (a brick rarely spans two sweeps):
    ~0.6M rows for all of DR10 south.
    """
    with warnings.catch_warnings():
        # A job cancelled on the first bad file makes toPandas warn with a Java stack trace;
        # the run reports that file in one line instead.
        warnings.simplefilter("ignore", UserWarning)
        merged = partials.toPandas()
    layout = layout or PartialLayout()
    is_status = merged["uri"].notna()
    extra = [c for c in merged.columns
             if c not in STATUS_FIELDS and c not in ("brickname", "pixel")] \
        if layout.extended else []
    statuses = merged.loc[is_status, STATUS_FIELDS + extra].to_dict("records")
    columns = layout.count_columns()
    counts = sum_counts(merged.loc[merged["brickname"].notna()], "brickname", columns)
    pixels = sum_counts(merged.loc[merged["pixel"].notna()], "pixel", columns) \
        if layout.nside else None
    return statuses, counts, pixels


def sum_counts(rows: pd.DataFrame, key: str, columns: list[str]) -> pd.DataFrame:
    """``key`` (``brickname`` or ``pixel``) and ``columns`` summed per key, sorted by it."""
    counts = (rows[[key, *columns]].groupby(key, as_index=False, sort=True)[columns].sum())
    counts[columns] = counts[columns].astype("int64")
    if key == "pixel":
        counts[key] = counts[key].astype("int64")
    return counts
