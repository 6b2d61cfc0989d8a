"""The Spark job and its public API: sweep URIs → one task per file → LRGs per brick.

Use it from a notebook with a SparkSession of your own; nothing here changes the session::

    from halo_lrg.spark.job import count_lrgs
    counts = count_lrgs(spark, ["sweep-150p000-155p005.fits", ...], selection="desi-lrg")
    counts.orderBy("brickname").show()

Each task counts one whole file (``mapInPandas`` over ``spark.range(n, numPartitions=n)``,
which gives exactly one file index per partition) and returns its per-brick partials plus one
status row; :func:`count_lrgs` sums the partials with ``groupBy(brickname)``. The run layer
(:mod:`halo_lrg.spark.run`) collects the same partials instead and merges them on the driver,
which it measured cheaper on small clusters (see :func:`collect_partials`); the sums are equal.

A task never raises for a bad file in :func:`lrg_partials`: the failure becomes its status row,
and a file's counts appear only once the whole file was read, so no count includes part of a
file. :func:`count_lrgs` raises for a bad file unless ``on_error="skip"``.

Durable partials (the run layer asks for them with ``partials_uri`` and a :class:`FileTask`
per file): as soon as a file is counted, its task stores the per-brick partial under
``<output>/_partials/<key>.json`` (:func:`partial_record`), keyed by what would make a
recount differ (:func:`file_task`). The same key always gets the same bytes, so a retried or
speculative attempt rewrites an identical file. Checksums: a task computes the SHA-256 of
every download as it arrives and, given an expected one, of a local file too, and fails the
file on a mismatch before its counts are used.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import pandas as pd

from halo_lrg import __version__
from halo_lrg.config import Config, load_config
from halo_lrg.count import SweepCount, count_sweep_file
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
from halo_lrg.science.cuts import get_selection
from halo_lrg.science.footprint import Footprint
from halo_lrg.spark import tuning

log = logging.getLogger(__name__)

#: What a task returns for its file: one row per brick (``brickname``, ``lrg_count``; the
#: status fields null or 0), then one status row (``brickname`` null; ``uri`` and the rest
#: set; ``sha256`` when the bytes were hashed; ``partial``: ``saved``, ``not saved: <why>``,
#: or null when none was asked for).
PARTIAL_SCHEMA = (
    "brickname string, lrg_count long, uri string, status string, rows long, objects long, "
    "lrg long, seconds double, error string, sha256 string, partial string"
)
STATUS_FIELDS = ["uri", "status", "rows", "objects", "lrg", "seconds", "error", "sha256",
                 "partial"]
COUNT_SCHEMA = "brickname string, lrg_count long"
#: The format of ``_partials/<key>.json``; part of every key, so a new format never reads
#: an old file.
PARTIAL_FORMAT = "halo-lrg-partial/1"


def _text(value: Any) -> Optional[str]:
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

    @classmethod
    def from_row(cls, row: dict[str, Any], size: Optional[int],
                 expected: Optional[str] = None) -> FileResult:
        """From a collected status row (numpy scalars, NaN for a missing error)."""
        return cls(str(row["uri"]), str(row["status"]), int(row["rows"]), int(row["objects"]),
                   int(row["lrg"]), float(row["seconds"]), _text(row.get("error")), size,
                   _text(row.get("sha256")), expected, False, _text(row.get("partial")))

    @property
    def sha256_verified(self) -> bool:
        return self.sha256 is not None and self.sha256 == self.sha256_expected

    def to_dict(self) -> dict[str, Any]:
        return {"uri": self.uri, "status": self.status, "rows": self.rows,
                "objects": self.objects, "lrg": self.lrg, "seconds": round(self.seconds, 3),
                "bytes": self.bytes, "error": self.error, "sha256": self.sha256,
                "sha256_expected": self.sha256_expected,
                "sha256_verified": self.sha256_verified, "reused": self.reused,
                "partial": self.partial}


def count_one_file(uri: str, config: Config, footprint: Optional[Footprint],
                   expected_sha256: Optional[str] = None
                   ) -> tuple[Optional[SweepCount], FileResult]:
    """Count one file end to end (fetch, read, cut, count). Never raises: a failure is a
    ``FileResult`` with status ``failed`` and an error naming the URI and the cause.

    Downloads are hashed (SHA-256) as they arrive; a local file is read whole for its hash
    only when ``expected_sha256`` is given (hashing costs more than counting it). A hash that
    differs from ``expected_sha256`` fails the file, naming both values."""
    started = time.perf_counter()
    selection = get_selection(config.cuts.selection, config.cuts)
    remote = scheme_of(uri) in REMOTE_SCHEMES
    hasher = InputHash() if remote or expected_sha256 is not None else None
    sha256 = None
    try:
        if remote and config.remote.stream_remote:
            from halo_lrg.count.streaming import stream_count

            # Counted while it arrives; a mismatch found at the end discards the counts.
            result = stream_count(uri, config, selection, footprint, hasher=hasher)
            sha256 = verify_sha256(uri, hasher, expected_sha256)  # type: ignore[arg-type]
        else:
            with local_copy(uri, config, hasher) as path:
                if hasher is not None:  # before counting: bad bytes are never counted
                    sha256 = verify_sha256(uri, hasher, expected_sha256)
                result = count_sweep_file(path, selection, config.read.chunk_rows,
                                          config.read.fast_path, footprint)
    except (SweepError, SourceError) as exc:
        return None, FileResult(uri, "failed", seconds=time.perf_counter() - started,
                                error=f"{uri}: {exc.cause}", sha256_expected=expected_sha256)
    except Exception as exc:  # anything else is still this file's failure, named as such
        return None, FileResult(uri, "failed", seconds=time.perf_counter() - started,
                                error=f"{uri}: {type(exc).__name__}: {exc}",
                                sha256_expected=expected_sha256)
    return result, FileResult(uri, "ok", result.rows, result.objects, result.lrg,
                              time.perf_counter() - started, sha256=sha256,
                              sha256_expected=expected_sha256)


# --- durable partials ---------------------------------------------------------------------------

@dataclass(frozen=True)
class FileTask:
    """What a task needs for one file besides its URI: the SHA-256 its checksum list gives,
    and where its partial goes (``partial_key``; ``partial_header``: what the key is made of,
    stored in the partial so that a reader can check it)."""

    expected_sha256: Optional[str] = None
    partial_key: Optional[str] = None
    partial_header: Optional[dict[str, Any]] = None


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def file_task(identity: InputIdentity, expected_sha256: Optional[str], config: Config,
              footprint: Optional[Footprint]) -> FileTask:
    """The file's task, with a partial key when the input's identity is known.

    The key covers everything that could make a recount differ: the input (URI, size, ETag
    or modification time, and the listed SHA-256 when there is one), the selection (name and
    parameters), the footprint, the halo-lrg version and the partial format. An input whose
    size or validators cannot be known gets no key: it is always recounted."""
    if not identity.known:
        return FileTask(expected_sha256)
    selection = get_selection(config.cuts.selection, config.cuts)
    header = {
        "format": PARTIAL_FORMAT,
        "halo_lrg_version": __version__,
        "input": {**identity.to_dict(), "sha256": expected_sha256},
        "selection": {"name": selection.name, "parameters": dict(selection.parameters)},
        "footprint": footprint.to_dict() if footprint is not None else None,
    }
    # Through JSON and back: the header a task stores and a reader compares are the same
    # plain values (tuples become lists).
    header = json.loads(json.dumps(header, sort_keys=True))
    digest = hashlib.sha256(json.dumps(header, sort_keys=True, separators=(",", ":"))
                            .encode("utf-8")).hexdigest()
    name = _UNSAFE.sub("_", input_name(identity.uri))[:80] or "input"
    return FileTask(expected_sha256, f"{name}-{digest[:40]}", header)


def partial_record(task: FileTask, counts: SweepCount, status: FileResult) -> dict[str, Any]:
    """A counted file's partial: the key and what it is made of, the file's totals and SHA-256,
    and its bricks (sorted). Nothing in it depends on the attempt (no times), so every
    attempt writes the same bytes."""
    return {
        **(task.partial_header or {}),
        "key": task.partial_key,
        "result": {"rows": status.rows, "objects": status.objects, "lrg": status.lrg,
                   "sha256": status.sha256, "sha256_verified": status.sha256_verified},
        "bricks": {"brickname": [str(n) for n in counts.brickname.tolist()],
                   "objects": [int(n) for n in counts.n_objects.tolist()],
                   "lrg_count": [int(n) for n in counts.lrg_count.tolist()]},
    }


def read_partial(data: bytes, task: FileTask, uri: str, size: Optional[int]
                 ) -> Optional[tuple[FileResult, pd.DataFrame]]:
    """A stored partial as (the file's result, its ``brickname, lrg_count`` rows), or None
    when it is not the partial ``task`` asks for (a different header, or unreadable)."""
    try:
        record = json.loads(data)
        header = {k: record[k] for k in (task.partial_header or {})}
        if header != task.partial_header or record.get("key") != task.partial_key:
            return None
        result, bricks = record["result"], record["bricks"]
        names, counts = list(bricks["brickname"]), list(bricks["lrg_count"])
        if len(names) != len(counts):
            return None
        status = FileResult(uri, "ok", int(result["rows"]), int(result["objects"]),
                            int(result["lrg"]), 0.0, None, size, result.get("sha256"),
                            task.expected_sha256, True, "reused")
    except (ValueError, KeyError, TypeError):
        return None
    frame = pd.DataFrame({"brickname": pd.Series(names, dtype=object),
                          "lrg_count": pd.Series(counts, dtype="int64")})
    return status, frame


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


def _partials_frame(uri: str, counts: Optional[SweepCount], status: FileResult
                    ) -> pd.DataFrame:
    """The task's rows for one file: a row per brick, then the file's status row.

    Built from preallocated numpy columns, not Python lists: every task pays for this frame
    (~0.2 ms this way, ~1.4 ms from lists, for 400 bricks)."""
    n = 0 if counts is None else counts.brickname.size

    def column(dtype: Any, last: Any, bricks: Any = None) -> Any:
        """n brick values (``bricks``, else null or 0), then the status row's ``last``."""
        values = np.full(n + 1, None, object) if dtype is object else np.zeros(n + 1, dtype)
        if bricks is not None:
            values[:n] = bricks
        values[n] = last
        return values

    return pd.DataFrame({
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
    }, copy=False)


def _count_partition(batches: Iterator[pd.DataFrame], uris: Sequence[str], config: Config,
                     footprint: Optional[Footprint], progress: Any, tune_workers: bool,
                     raise_failures: bool, file_tasks: Optional[Sequence[FileTask]] = None,
                     partials_uri: Optional[str] = None) -> Iterator[pd.DataFrame]:
    if tune_workers:
        # Once per worker process, for its later tasks; preloaded modules get frozen too.
        tuning.install(preload=("fitsio", "halo_lrg.count.streaming"))
    for batch in batches:
        for index in batch["id"]:
            uri = uris[int(index)]
            task = file_tasks[int(index)] if file_tasks else FileTask()
            bricks, status = count_one_file(uri, config, footprint, task.expected_sha256)
            if raise_failures and status.status != "ok":
                raise FileFailed(status.error or uri)
            if bricks is not None and partials_uri and task.partial_key:
                # Durable before the file is reported: a driver killed from here on finds it.
                status.partial = _store_partial(partials_uri, config, task, bricks, status)
            if progress is not None:
                progress.add([status.to_dict()])
            yield _partials_frame(uri, bricks, status)


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


def lrg_partials(spark: Any, uris: Sequence[str], selection: Optional[str] = None, *,
                 footprint: Optional[Footprint] = None, config: Optional[Config] = None,
                 progress: Any = None, tune_workers: bool = False,
                 raise_failures: bool = False, file_tasks: Optional[Sequence[FileTask]] = None,
                 partials_uri: Optional[str] = None) -> Any:
    """One task per file, each returning its per-brick partials and a status row
    (``PARTIAL_SCHEMA``): a lazy DataFrame; nothing runs until an action.

    ``selection`` overrides ``config.cuts.selection`` (config: the packaged defaults, see
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
    return files_frame(spark, len(uris)).mapInPandas(
        functools.partial(_count_partition, uris=list(uris), config=config,
                          footprint=footprint, progress=progress, tune_workers=tune_workers,
                          raise_failures=raise_failures,
                          file_tasks=list(file_tasks) if file_tasks is not None else None,
                          partials_uri=partials_uri),
        schema=PARTIAL_SCHEMA,
    )


def count_lrgs(spark: Any, uris: Sequence[str], selection: Optional[str] = None, *,
               footprint: Optional[Footprint] = None, config: Optional[Config] = None,
               on_error: Optional[str] = None) -> Any:
    """LRGs per brick summed over ``uris``: a DataFrame ``brickname string, lrg_count long``
    (one row per brick with an object in the inputs; unordered, as Spark results are).

    The session is the caller's and is left as it was. A file that cannot be counted fails
    the Spark job with its name and cause, unless ``on_error="skip"`` (or
    ``config.run.on_error``), which leaves it out; :func:`lrg_partials` shows every file's
    status. ``uris``: local paths, ``file://``, ``s3://`` or ``http(s)://``; for S3 or HTTP
    inputs the executors need network access and (S3) credentials.
    """
    from pyspark.sql import functions as F

    config = _effective_config(config, selection)
    skip = (on_error or config.run.on_error) == "skip"
    partials = lrg_partials(spark, uris, footprint=footprint, config=config,
                            raise_failures=not skip)
    return (partials.where(F.col("brickname").isNotNull())
            .groupBy("brickname")
            .agg(F.sum("lrg_count").cast("long").alias("lrg_count")))


def _effective_config(config: Optional[Config], selection: Optional[str]) -> Config:
    config = config or load_config()
    if selection is not None:
        config = config.replace(cuts={"selection": selection})
    get_selection(config.cuts.selection, config.cuts)  # an unknown name fails here, not in tasks
    return config


def collect_partials(partials: Any) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """Run the job (one stage, one task per file) and merge its partials on the driver:
    per-file statuses, and LRG counts per brick summed across files, sorted by name.

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
    is_status = merged["brickname"].isna()
    statuses = merged.loc[is_status, STATUS_FIELDS].to_dict("records")
    counts = (merged.loc[~is_status, ["brickname", "lrg_count"]]
              .groupby("brickname", as_index=False, sort=True)["lrg_count"].sum())
    counts["lrg_count"] = counts["lrg_count"].astype("int64")
    return statuses, counts
