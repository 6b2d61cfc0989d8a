"""Randoms counted on Spark: effective areas per brick and per HEALPix pixel
(``halo-lrg area``).

A survey's random catalogues are few and huge (DR10: 20 files of tens of millions of rows,
GBs each), so one task per file would leave most cores idle behind the largest. The driver
plans *pieces* as the LRG run does (:mod:`halo_lrg.spark.plan`): a file larger than
``area.split_bytes`` becomes near-equal row ranges, each read by its own task fetching only
its bytes (locally, S3 ranged GETs, HTTP ``Range``: :func:`halo_lrg.count.streaming.
remote_chunks`, every part pinned to the version the driver saw), and small pieces are packed
several to a task (``area.pack_bytes``). One Spark task per planned task
(``spark.range(n, numPartitions=n)`` then ``mapInPandas``), largest pieces first.

Each piece is counted by :func:`halo_lrg.count.randoms.count_randoms` and returned as rows of
:data:`AREA_PARTIAL_SCHEMA`: one per brick, one per pixel (with ``nside``), then one status
row. A task never raises for a bad piece: its status row carries the error, and its counts
are not returned, so no sum includes part of a piece. The driver collects the rows (one
stage), sums them per brick and per pixel across pieces and files, and fails the whole count
(:class:`AreaFailed`, one line naming the file, the part and the cause) if any piece failed:
the caller writes nothing then. A progress thread prints a line per piece as tasks report
through an accumulator (executors' logging is not visible here) and cancels the job at the
first failure.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np
import pandas as pd

from halo_lrg.config import Config
from halo_lrg.count.randoms import (
    RANDOMS_COLUMNS,
    RESOLVE_COLUMNS,
    RandomsCounts,
    check_mask_bits,
    count_randoms,
)
from halo_lrg.count.streaming import remote_chunks
from halo_lrg.fits.reader import SweepError
from halo_lrg.io.fetch import InputIdentity, SourceError, file_identities, input_name
from halo_lrg.io.uri import is_s3
from halo_lrg.science.area import (
    area_table,
    merge_pixel_randoms,
    merge_randoms_counts,
    pixel_area_map,
)
from halo_lrg.science.healpix import check_nside
from halo_lrg.science.healpix_map import HealpixMap
from halo_lrg.spark.job import AccumulatorWatcher, list_accumulator, part_label
from halo_lrg.spark.plan import Piece, pack_pieces, split_files

log = logging.getLogger(__name__)

#: What a task returns for each piece it reads. ``kind`` says what a row is:
#: ``brick`` (``brickname``, ``n_randoms``, ``n_kept``), ``pixel`` (``pixel``, the same two
#: counts; ``pixel`` is -1 on other rows), then one ``status`` row (``n_randoms``,
#: ``n_kept``: the piece's totals; ``bricks``: how many bricks it touched; ``seconds``;
#: ``error``: null when it was counted).
#: ``uri`` and ``part`` (``k/n`` for the k-th of n row ranges, null for a whole file) are on
#: every row; ``piece``: the piece's number in the plan (index order, from 0).
AREA_PARTIAL_SCHEMA = (
    "kind string, brickname string, pixel long, n_randoms long, n_kept long, uri string, "
    "part string, piece long, bricks long, seconds double, error string"
)


class AreaFailed(Exception):
    """The randoms could not all be counted; the message is one line naming the file (and
    the row range) and the cause."""


@dataclass(frozen=True)
class PieceStatus:
    """How one piece went: ``number`` its place in the plan (index order, from 1) of
    ``total``; ``rows`` the randoms read, ``kept`` those passing the cuts; ``error`` None
    when it was counted."""

    uri: str
    part: Optional[str]
    number: int
    total: int
    rows: int = 0
    kept: int = 0
    bricks: int = 0
    seconds: float = 0.0
    error: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def line(self) -> str:
        """The progress line: ``[k/N] randoms-1-0.fits (rows part 2/4)  …``."""
        width = len(str(self.total))
        part = f" (rows part {self.part})" if self.part else ""
        head = f"[{self.number:>{width}}/{self.total}] {input_name(self.uri)}{part}  "
        if not self.ok:
            return f"{head}FAILED {self.error}"
        share = self.kept / self.rows if self.rows else 0.0
        return (f"{head}{self.rows:,} randoms, {self.kept:,} kept ({share:.1%}), "
                f"{self.bricks:,} bricks, {self.seconds:.1f} s")


@dataclass
class AreaCounts:
    """Randoms summed over every piece of ``uris``: ``bricks`` (``brickname, n_randoms,
    n_kept``, sorted by name) and, with ``nside``, ``pixels`` (``pixel, n_randoms,
    n_kept``, NESTED, sorted); ``pieces``: each piece's status in plan order; ``tasks``:
    how many Spark tasks read them."""

    uris: list[str]
    pieces: list[PieceStatus]
    bricks: pd.DataFrame
    pixels: Optional[pd.DataFrame]
    nside: Optional[int]
    tasks: int
    seconds: float

    @property
    def files_split(self) -> int:
        """Files read in more than one row range."""
        return len({p.uri for p in self.pieces if p.part is not None})

    def area_table(self, density: float) -> pd.DataFrame:
        """``brickname, n_randoms, n_kept, area_eff_deg2`` at ``density`` randoms per deg²
        per file (:func:`halo_lrg.science.area.area_table`)."""
        return area_table(self.bricks, len(self.uris), density)

    def pixel_map(self, density: float) -> Optional[HealpixMap]:
        """The per-pixel effective-area map (:func:`halo_lrg.science.area.pixel_area_map`),
        None without ``nside``."""
        if self.pixels is None or self.nside is None:
            return None
        return pixel_area_map(self.pixels, self.nside, len(self.uris), density)


# --- the tasks ----------------------------------------------------------------------------------

def _count_piece(piece: Piece, number: int, uris: Sequence[str],
                 identities: Sequence[InputIdentity], config: Config, mask_bits: int,
                 nside: Optional[int]) -> tuple[Optional[RandomsCounts], dict[str, Any]]:
    """Count one piece; never raises: a failure is the status's ``error``, naming the
    file, the part and the cause in one line."""
    uri = uris[piece.file]
    part = part_label(piece.rows)
    rows = None if piece.rows.whole else piece.rows
    started = time.perf_counter()
    status: dict[str, Any] = {"uri": uri, "part": part, "piece": number, "n_randoms": 0,
                              "n_kept": 0, "bricks": 0, "seconds": 0.0, "error": None}
    where = f"{uri} (rows part {part})" if part else uri
    columns = RANDOMS_COLUMNS + (RESOLVE_COLUMNS if nside is not None else ())
    try:
        with remote_chunks(uri, config, columns, (), config.read.chunk_rows, rows=rows,
                           expect=identities[piece.file]) as table:
            counted = count_randoms(table, mask_bits, config.read.chunk_rows,
                                    config.read.fast_path, rows=rows, nside=nside)
    except (SweepError, SourceError) as exc:
        status.update(error=f"{where}: {exc.cause}",
                      seconds=time.perf_counter() - started)
        return None, status
    except Exception as exc:  # anything else is still this piece's failure, named as such
        first = (str(exc).strip().splitlines() or [""])[0]
        status.update(error=f"{where}: {type(exc).__name__}: {first}",
                      seconds=time.perf_counter() - started)
        return None, status
    status.update(n_randoms=int(counted.bricks.n_total.sum()),
                  n_kept=int(counted.bricks.n_kept.sum()),
                  bricks=int(counted.bricks.brickname.size),
                  seconds=time.perf_counter() - started)
    return counted, status


def _piece_frame(counted: Optional[RandomsCounts], status: dict[str, Any]) -> pd.DataFrame:
    """A piece's rows in :data:`AREA_PARTIAL_SCHEMA`: its bricks, its pixels, its status."""
    bricks = counted.bricks if counted is not None else None
    pixels = counted.pixels if counted is not None else None
    nb = 0 if bricks is None else bricks.brickname.size
    npx = 0 if pixels is None else pixels.pixel.size
    n = nb + npx + 1

    def column(dtype: Any, fill: Any) -> np.ndarray:
        return np.full(n, fill, dtype)

    kind = column(object, "status")
    brickname = column(object, None)
    # -1 off pixel rows, not null: a nullable long comes back to pandas as float64, which
    # cannot hold every pixel number of a fine nside.
    pixel = column(np.int64, -1)
    n_randoms, n_kept = column(np.int64, 0), column(np.int64, 0)
    if bricks is not None:
        kind[:nb] = "brick"
        brickname[:nb] = bricks.brickname
        n_randoms[:nb], n_kept[:nb] = bricks.n_total, bricks.n_kept
    if pixels is not None:
        kind[nb:nb + npx] = "pixel"
        pixel[nb:nb + npx] = pixels.pixel
        n_randoms[nb:nb + npx], n_kept[nb:nb + npx] = pixels.n_total, pixels.n_kept
    n_randoms[-1], n_kept[-1] = status["n_randoms"], status["n_kept"]
    return pd.DataFrame({
        "kind": kind, "brickname": brickname,
        "pixel": pixel,
        "n_randoms": n_randoms, "n_kept": n_kept,
        "uri": column(object, status["uri"]), "part": column(object, status["part"]),
        "piece": column(np.int64, status["piece"]),
        "bricks": column(np.int64, status["bricks"]),
        "seconds": column(np.float64, status["seconds"]),
        "error": column(object, status["error"]),
    }, copy=False)


def _count_partition(batches: Iterator[pd.DataFrame], uris: Sequence[str],
                     identities: Sequence[InputIdentity], tasks: Sequence[Sequence[Piece]],
                     numbers: dict[Piece, int], config: Config, mask_bits: int,
                     nside: Optional[int], progress: Any) -> Iterator[pd.DataFrame]:
    for batch in batches:
        for index in batch["id"]:
            for piece in tasks[int(index)]:
                counted, status = _count_piece(piece, numbers[piece], uris, identities,
                                               config, mask_bits, nside)
                if progress is not None:
                    progress.add([status])
                yield _piece_frame(counted, status)


# --- the driver ---------------------------------------------------------------------------------

class _Progress(AccumulatorWatcher):
    """A line per piece as it finishes (once, however often a retried task reports it); at
    the first failure, cancels the job group."""

    def __init__(self, spark: Any, accumulator: Any, total: int, group: str,
                 interval: float, emit: Optional[Callable[[str], None]]) -> None:
        super().__init__("halo-lrg-area-progress", spark, accumulator, group, True,
                         max(0.05, interval), emit)
        self.total = total

    def key(self, entry: dict[str, Any]) -> int:
        return int(entry["piece"])

    def kept(self, entry: dict[str, Any]) -> PieceStatus:
        return _status(entry, self.total)

    def line(self, status: PieceStatus) -> str:
        return status.line()

    def failed(self, status: PieceStatus) -> bool:
        return not status.ok


def _status(entry: Any, total: int) -> PieceStatus:
    """A piece's status from its accumulator entry or collected status row."""
    def text(value: Any) -> Optional[str]:
        return None if value is None or (isinstance(value, float) and np.isnan(value)) \
            else str(value)

    return PieceStatus(str(entry["uri"]), text(entry["part"]), int(entry["piece"]) + 1, total,
                       int(entry["n_randoms"]), int(entry["n_kept"]), int(entry["bricks"]),
                       float(entry["seconds"]), text(entry["error"]))


def plan_pieces(sizes: Sequence[Optional[int]], split_bytes: int, pack_bytes: int,
                cores: int) -> tuple[list[Piece], list[tuple[Piece, ...]]]:
    """The pieces of files of ``sizes`` in index order, and the tasks reading them: the
    largest pieces first (the longest tasks start first, so the last wave is short; pieces
    of unknown size last), small ones packed (:func:`halo_lrg.spark.plan.pack_pieces`)."""
    pieces = split_files(sizes, split_bytes)
    ordered = sorted(pieces, key=lambda p: (p.bytes is None, -(p.bytes or 0), p.file,
                                            p.rows.part))
    return pieces, pack_pieces(ordered, pack_bytes, max(1, cores))


def count_randoms_spark(spark: Any, uris: Sequence[str], *, config: Config,
                        mask_bits: Optional[int] = None, nside: Optional[int] = None,
                        identities: Optional[Sequence[InputIdentity]] = None,
                        progress: Optional[Callable[[str], None]] = None) -> AreaCounts:
    """Randoms of ``uris`` (local paths, ``file://``, ``s3://``, ``http(s)://``) counted per
    brick, and per NESTED pixel at ``nside`` when given, by Spark tasks on ``spark`` (left
    as it was), summed over every file.

    ``mask_bits`` (default ``config.area.mask_bits``): a point counts as kept when NOBS_G/R/Z
    > 0 and MASKBITS has none of these. Files larger than ``config.area.split_bytes`` are
    read in row ranges, small pieces packed up to ``config.area.pack_bytes`` a task.
    ``identities`` (:func:`halo_lrg.io.fetch.file_identities`, looked up when not given):
    each file's size and validator, which every row range of it must still match.
    ``progress`` hears a line per piece as it finishes. Raises :class:`AreaFailed` (one
    line, the first failed piece's file, part and cause) if any piece fails; ValueError for
    bad arguments."""
    from halo_lrg.io.fetch import with_resolved_endpoint

    uris = list(uris)
    if not uris:
        raise ValueError("no randoms file to count")
    mask_bits = check_mask_bits(config.area.mask_bits if mask_bits is None else mask_bits)
    nside = None if nside is None else check_nside(nside)
    started = time.perf_counter()
    if any(is_s3(u) for u in uris):  # tasks in other processes: make the endpoint explicit
        config = with_resolved_endpoint(config)
    identities = list(identities) if identities is not None else file_identities(uris, config)
    if len(identities) != len(uris):
        raise ValueError(f"{len(identities)} identities for {len(uris)} files")
    sc = spark.sparkContext
    pieces, tasks = plan_pieces([i.size for i in identities], config.area.split_bytes,
                                config.area.pack_bytes, sc.defaultParallelism)
    numbers = {piece: k for k, piece in enumerate(pieces)}
    log.info("counting randoms in %d file(s) on %s: %d piece(s) in %d task(s)%s",
             len(uris), sc.master, len(pieces), len(tasks),
             f", per pixel at nside {nside}" if nside else "")
    accumulator = list_accumulator(spark)
    frame = spark.range(len(tasks), numPartitions=len(tasks)).mapInPandas(
        functools.partial(_count_partition, uris=uris, identities=identities, tasks=tasks,
                          numbers=numbers, config=config, mask_bits=mask_bits, nside=nside,
                          progress=accumulator),
        schema=AREA_PARTIAL_SCHEMA)
    group = f"halo-lrg-area-{uuid.uuid4().hex[:12]}"
    monitor = _Progress(spark, accumulator, len(pieces), group, config.run.progress_interval,
                        progress)
    sc.setJobGroup(group, "halo-lrg: count randoms per brick", interruptOnCancel=True)
    monitor.start()
    crashed: Optional[BaseException] = None
    rows: Optional[pd.DataFrame] = None
    try:
        rows = frame.toPandas()
    except Exception as exc:  # cancelled at a failure, or Spark itself failed
        crashed = exc
    finally:
        monitor.stop()
        sc.setLocalProperty("spark.jobGroup.id", None)
    if rows is not None:
        for entry in rows[rows["kind"] == "status"].to_dict("records"):
            monitor.note(entry)  # pieces the accumulator had not yet told
    failed = [s for s in monitor.seen.values() if not s.ok]
    if failed:
        first = monitor.first_failure or min(failed, key=lambda s: s.number)
        more = f" (and {len(failed) - 1} more failed piece(s))" if len(failed) > 1 else ""
        raise AreaFailed(f"{first.error}{more}")
    if crashed is not None or rows is None:
        lines = str(crashed).strip().splitlines()
        raise AreaFailed(f"Spark job failed: {lines[0] if lines else type(crashed).__name__}")
    missing = len(pieces) - len(monitor.seen)
    if missing:  # never expected: every piece returns a status row
        raise AreaFailed(f"{missing} piece(s) of the randoms returned no status")
    bricks = rows[rows["kind"] == "brick"]
    bricks = merge_randoms_counts([bricks.astype({"n_randoms": "int64", "n_kept": "int64"})])
    pixels = None
    if nside is not None:
        found = rows[rows["kind"] == "pixel"]
        pixels = merge_pixel_randoms([found.astype({"pixel": "int64", "n_randoms": "int64",
                                                    "n_kept": "int64"})])
    statuses = [monitor.seen[k] for k in range(len(pieces))]
    return AreaCounts(uris, statuses, bricks.reset_index(drop=True),
                      None if pixels is None else pixels.reset_index(drop=True), nside,
                      len(tasks), time.perf_counter() - started)
