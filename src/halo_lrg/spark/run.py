"""A run: index → the Spark job → CSV + manifest, with progress and fail-fast.

Driver                                   Executors (a task per planned task, spark.job)
-------------------------------------    ------------------------------------------------
read index, drop duplicates, footprint
order largest first; plan pieces (big
files split in row ranges) and tasks
(small files packed), spark.plan;
task indices in the JVM, one per
partition (range)                     →  per piece: fetch → read chunks → cuts → per-brick
                                          (and per-pixel) partials plus one status row;
                                          never raises
report progress from an accumulator   ←  progress accumulator (uri, status, rows, lrg, s)
collect the partials (Arrow, one
stage) → merge per brick on the driver →
CSV + manifest through OutputLocation

Each task's partials are already one row per brick of its file (~400 for a DR10 sweep), so
the sum across files is a small merge of what the driver receives anyway: it happens there,
not in a Spark shuffle (see :func:`halo_lrg.spark.job.collect_partials`); the public
:func:`halo_lrg.spark.job.count_lrgs` does the same sum with ``groupBy``.

With ``on_error=fail`` the driver cancels the job as soon as one file fails.

Durable runs: each task stores its file's partial under ``<output>/_partials/`` as the file
completes (:mod:`halo_lrg.spark.job`). A run resumes by default (``run.resume``): files whose
partial matches (same input identity, selection, footprint, version) are not read at all;
their partials are loaded here and merged with the new ones, and the manifest marks them
``"reused": true``. ``retry_failed`` reruns only what the previous run recorded as failed
(or never reached) and refuses to recount anything else. With a checksum list
(``run.checksums``) every input's SHA-256 is checked by its task.

Several selections (``cuts.selection = "seed,desi-lrg"``) are counted in the same read of each
file; the CSV is then wide, ``brickname,n_objects,<selection>...``, one column per selection
(one selection keeps ``brickname,lrg_count``).

North/south (``run.resolve``): each task reports its file's photometric systems and what
desitarget's resolution would drop from each brick; this driver decides once every file has
reported (``auto``: when both systems appear among the run's files) and subtracts it. The
alternative, learning the systems before the job, would need the index to say them (sweep
folder names are a convention, not a guarantee, and a sweep's header does not say) or a
second read of every file; deciding after the job costs a few extra columns per brick.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import pandas as pd

from halo_lrg import __version__
from halo_lrg.config import Config
from halo_lrg.io.fetch import (
    ChecksumList,
    InputIdentity,
    SourceError,
    file_identities,
    read_checksums,
    read_text,
    with_resolved_endpoint,
)
from halo_lrg.io.output import (
    DENSITY_FILE,
    FAILURE_FILE,
    MANIFEST_FILE,
    PARTIALS_DIR,
    PROGRESS_FILE,
    OutputError,
    counts_csv_bytes,
    join_uri,
    manifest_bytes,
    output_location,
    partial_name,
)
from halo_lrg.science.cuts import selections_of
from halo_lrg.science.footprint import Footprint
from halo_lrg.spark import tuning
from halo_lrg.spark.job import (
    RESOLVE_MODES,
    AccumulatorWatcher,
    FileResult,
    FileTask,
    PartialLayout,
    collect_partials,
    file_task,
    list_accumulator,
    lrg_partials,
    merge_parts,
    optional_text,
    part_label,
    partial_layout,
    piece_key,
    piece_task,
    read_partial,
    sum_counts,
)
from halo_lrg.spark.plan import pack_pieces, split_files
from halo_lrg.survey.index import (
    IndexLinesError,
    IndexSelection,
    order_largest_first,
    select_inputs,
)

log = logging.getLogger(__name__)

ON_ERROR_CHOICES = ("fail", "skip")


class RunFailed(Exception):
    """The run did not produce a result; the message is one line naming the file and cause."""


@dataclass(frozen=True)
class JobSpec:
    """Everything a run needs; built by the CLI (or the spark-submit job) from flags + config."""

    index_uri: str
    output_uri: str
    config: Config
    footprint: Optional[Footprint] = None
    #: Also write <output>/lrg_density.csv (centres, areas, LRGs per deg²).
    with_density: bool = False
    #: Recount only the files the previous run at the output recorded as failed (or never
    #: reached); every other file must have a matching partial to reuse.
    retry_failed: bool = False

    def __post_init__(self) -> None:
        if self.config.run.on_error not in ON_ERROR_CHOICES:
            raise ValueError(f"on_error must be one of {ON_ERROR_CHOICES}, "
                             f"got {self.config.run.on_error!r}")
        if self.retry_failed and not self.config.run.resume:
            raise ValueError("retrying the failed files reuses the others' partials: it "
                             "cannot be combined with run.resume = false (--no-resume)")
        if self.config.run.resolve not in RESOLVE_MODES:
            raise ValueError(f"run.resolve must be one of {', '.join(RESOLVE_MODES)}, got "
                             f"{self.config.run.resolve!r}")
        selections_of(self.config)  # fail early on a bad name or [selections] table


@dataclass
class RunResult:
    files: list[FileResult]
    bricks: int
    seconds: float
    counts_uri: Optional[str]
    manifest_uri: str
    density_uri: Optional[str] = None
    inputs: IndexSelection = field(repr=False, default=None)  # type: ignore[assignment]
    worker_tuning: Optional[tuning.Decision] = None
    #: complete | partial (files skipped under on_error=skip) | failed
    state: str = "running"
    #: Spark's own failure (a lost executor, a killed worker), apart from files' failures.
    spark_error: Optional[str] = None
    #: The selections counted, in order.
    selections: tuple[str, ...] = ()
    #: North/south: the mode, whether resolution applied and why, the systems seen.
    north_south: Optional[dict[str, Any]] = None
    #: How the files were read: pieces (files, or row ranges of split ones) and tasks.
    plan: Optional[dict[str, Any]] = None
    #: The HEALPix map's CSV (``run.healpix_nside``), once published.
    healpix_uri: Optional[str] = None

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def lrg(self) -> int:
        return sum(f.lrg for f in self.files if f.status == "ok")

    @property
    def lrg_by_selection(self) -> dict[str, int]:
        """LRGs of each selection over the files counted."""
        totals = dict.fromkeys(self.selections, 0)
        for f in self.files:
            if f.status == "ok":
                values = f.lrg_by_selection or dict(zip(self.selections[:1], [f.lrg]))
                for name, n in values.items():
                    totals[name] = totals.get(name, 0) + n
        return totals

    @property
    def failed(self) -> list[FileResult]:
        return [f for f in self.files if f.status == "failed"]

    @property
    def reused(self) -> list[FileResult]:
        return [f for f in self.files if f.reused]


# --- driver side --------------------------------------------------------------------------------

class _ProgressMonitor(AccumulatorWatcher):
    """Prints a line per finished file (or row range of a split file: a *piece*, named by
    :func:`~halo_lrg.spark.job.piece_key`) as tasks report; cancels the job on the first
    failure when ``on_error=fail``; every ``report_interval`` seconds hands a snapshot of the
    run's progress to ``report`` (the run writes it to ``<output>/_progress.json``).
    ``pieces``: the run's pieces, by key: (the file's URI, the piece's bytes)."""

    def __init__(self, spark: Any, accumulator: Any,
                 pieces: dict[str, tuple[str, Optional[int]]],
                 group: str, fail_fast: bool, interval: float, emit: Callable[[str], None],
                 report: Optional[Callable[[dict[str, Any]], None]] = None,
                 report_interval: float = 30.0) -> None:
        super().__init__("halo-lrg-progress", spark, accumulator, group, fail_fast, interval,
                         emit)
        self.sizes = {key: size for key, (_uri, size) in pieces.items()}
        self.keys_of: dict[str, list[str]] = {}  # a file's pieces
        for key, (uri, _size) in pieces.items():
            self.keys_of.setdefault(uri, []).append(key)
        self.total = len(pieces)
        self.report, self.report_interval = report, report_interval
        #: Files taken from stored partials: done before the job starts, not timed by it.
        self.reused: set[str] = set()
        self.started = time.perf_counter()
        self._reported = self.started

    def key(self, entry: dict[str, Any]) -> str:
        return piece_key(entry["uri"], entry.get("part"))

    def line(self, entry: dict[str, Any]) -> str:
        elapsed = time.perf_counter() - self.started
        if entry["status"] == "ok":
            detail = (f"ok  {entry['rows']:>10,} rows {entry['lrg']:>8,} LRGs "
                      f"{entry['seconds']:7.1f} s")
        else:
            detail = f"FAILED {entry['error']}"
        part = f" (rows part {entry['part']})" if entry.get("part") else ""
        return (f"[{len(self.seen):>{len(str(self.total))}}/{self.total}] "
                f"{elapsed:7.1f}s  {_short(entry['uri'])}{part}  {detail}")

    def failed(self, entry: dict[str, Any]) -> bool:
        return entry["status"] == "failed"

    def add_reused(self, results: list[FileResult]) -> None:
        """Files whose stored partials were loaded: done, without a progress line each."""
        for result in results:
            key = piece_key(result.uri, result.part)
            self.seen[key] = result.to_dict()
            self.reused.add(key)

    def snapshot(self, state: str = "running") -> dict[str, Any]:
        """Files (pieces, when files are split) done/failed/total, rows, LRGs, bytes, elapsed
        and an ETA from the bytes counted in this run (reused files took no time)."""
        done = list(self.seen.values())
        ok = [e for e in done if e["status"] == "ok"]
        # A file is done when each of its pieces is, or one failed.
        statuses = [[self.seen.get(k, {}).get("status") for k in keys]
                    for keys in self.keys_of.values()]
        files_done = [s for s in statuses if None not in s or "failed" in s]
        failed = sum("failed" in s for s in files_done)
        reused = sum(all(k in self.reused for k in keys) for keys in self.keys_of.values())
        pieces = {"pieces_total": self.total, "pieces_done": len(done)} \
            if self.total != len(self.keys_of) else {}
        elapsed = time.perf_counter() - self.started
        bytes_done = sum(self.sizes.get(key) or 0 for key in self.seen)
        bytes_reused = sum(self.sizes.get(key) or 0 for key in self.reused)
        bytes_total = sum(size or 0 for size in self.sizes.values())
        eta = None
        counted = bytes_done - bytes_reused
        if state == "running" and counted > 0 and bytes_done < bytes_total:
            eta = round(elapsed * (bytes_total - bytes_done) / counted, 1)
        return {"state": state, "files_total": len(self.keys_of), "files_done": len(files_done),
                "files_ok": len(files_done) - failed, "files_failed": failed,
                "files_reused": reused,
                "rows": sum(int(e["rows"]) for e in ok), "lrg": sum(int(e["lrg"]) for e in ok),
                "bytes_done": bytes_done, "bytes_total": bytes_total,
                "elapsed_seconds": round(elapsed, 1), "eta_seconds": eta, **pieces,
                "updated_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    def between_polls(self) -> None:
        if self.report is not None and \
                time.perf_counter() - self._reported >= self.report_interval:
            self._reported = time.perf_counter()
            self.report(self.snapshot())


def _progress_writer(output: Any) -> Callable[[dict[str, Any]], None]:
    """Writes snapshots to ``<output>/_progress.json``; a failed write is logged once and
    never stops the run (the result, not the progress file, is what must not be lost)."""
    warned = []

    def write(snapshot: dict[str, Any]) -> None:
        try:
            output.write_file(PROGRESS_FILE, manifest_bytes(snapshot))
        except (OutputError, OSError) as exc:
            if not warned:
                warned.append(exc)
                log.warning("cannot write %s (%s); the run goes on",
                            output.uri_of(PROGRESS_FILE), exc)

    return write


def _short(uri: str) -> str:
    return uri.rsplit("/", 1)[-1] or uri


def plan_files(spec: JobSpec) -> tuple[IndexSelection, list[InputIdentity]]:
    """The files to read (after duplicates, footprint and cap), largest first, with what
    each is (size, ETag or modification time)."""
    try:
        text = read_text(spec.index_uri, spec.config)
    except SourceError as exc:
        raise RunFailed(f"cannot read the index {exc}") from None
    try:
        inputs = select_inputs(text, spec.footprint, spec.config.run.max_sweeps,
                               index=spec.index_uri)
    except IndexLinesError as exc:
        raise RunFailed(str(exc)) from None
    identities = file_identities(inputs.uris, spec.config)
    order = order_largest_first(inputs.uris, [i.size for i in identities])
    inputs.uris = [inputs.uris[i] for i in order]
    return inputs, [identities[i] for i in order]


def plan_inputs(spec: JobSpec) -> tuple[IndexSelection, list[Optional[int]]]:
    """The files to read (after duplicates, footprint and cap), largest first, with sizes."""
    inputs, identities = plan_files(spec)
    return inputs, [i.size for i in identities]


def load_checksums(spec: JobSpec) -> Optional[ChecksumList]:
    """The run's checksum list (``run.checksums``), None without one."""
    location = spec.config.run.checksums
    if not location:
        return None
    try:
        listed = read_checksums(location, spec.config)
    except SourceError as exc:
        raise RunFailed(f"cannot read the checksum list {exc}") from None
    if not len(listed):
        raise RunFailed(f"{location}: the checksum list has no entries")
    return listed


def load_partials(output: Any, uris: list[str], tasks: list[FileTask],
                  sizes: list[Optional[int]], config: Config,
                  layout: Optional[PartialLayout] = None, keys: Optional[list[str]] = None
                  ) -> dict[str, tuple[FileResult, pd.DataFrame]]:
    """The stored partials matching this run's files (or pieces of files: ``tasks`` from
    :func:`~halo_lrg.spark.job.piece_task`, ``keys`` from
    :func:`~halo_lrg.spark.job.piece_key`), by key (default: by URI): one listing of
    ``<output>/_partials/``, then only the matching files are read. A partial that does not
    say what its key promises is ignored (with a warning) and its file counted again."""
    keys = keys or list(uris)
    wanted = {partial_name(t.partial_key).split("/", 1)[1]: i
              for i, t in enumerate(tasks) if t.partial_key}
    if not wanted:
        return {}
    try:
        present = [n for n in output.list_names(PARTIALS_DIR) if n in wanted]
    except (OutputError, OSError) as exc:
        log.warning("cannot list %s (%s): every file is counted",
                    output.uri_of(PARTIALS_DIR), exc)
        return {}

    def load(name: str) -> Optional[tuple[FileResult, pd.DataFrame]]:
        index = wanted[name]
        try:
            data = output.read_file(f"{PARTIALS_DIR}/{name}")
        except (FileNotFoundError, OutputError, OSError):
            return None
        return read_partial(data, tasks[index], uris[index], sizes[index], layout)

    workers = max(1, min(config.remote.head_concurrency, len(present)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        loaded = list(pool.map(load, present))
    reused = {}
    for name, partial in zip(present, loaded):
        key = keys[wanted[name]]
        if partial is None:
            log.warning("%s: stored partial %s is unreadable or not this file's; counting "
                        "it again", key, output.uri_of(f"{PARTIALS_DIR}/{name}"))
        else:
            reused[key] = partial
    return reused


def previous_record(output: Any) -> Optional[tuple[str, dict[str, Any]]]:
    """The previous run's record at ``output``: ``_last_failure.json`` when the last run
    failed (publishing removes it), else ``manifest.json``; None when there is neither."""
    for name in (FAILURE_FILE, MANIFEST_FILE):
        try:
            data = output.read_file(name)
        except FileNotFoundError:
            continue
        except (OutputError, OSError) as exc:
            raise RunFailed(f"cannot read {output.uri_of(name)}: {exc}") from None
        try:
            record = json.loads(data)
            if not isinstance(record.get("files"), list):
                raise ValueError("no files")
        except (ValueError, AttributeError):
            raise RunFailed(f"{output.uri_of(name)}: not a halo-lrg run record") from None
        return output.uri_of(name), record
    return None


def files_to_retry(output: Any, uris: list[str],
                   reused: dict[str, tuple[FileResult, pd.DataFrame]]) -> list[str]:
    """``--retry-failed``: the files to count, those the previous run recorded as failed or
    never reached (cancelled) that have no matching partial. Refused (:class:`RunFailed`)
    when there is no previous run, or when another file would have to be counted (its input
    changed, it is new to the index, or its partial is gone): a plain resume counts those."""
    found = previous_record(output)
    if found is None:
        raise RunFailed(f"--retry-failed: no previous run at {output.uri} "
                        f"(neither {FAILURE_FILE} nor {MANIFEST_FILE})")
    where, record = found
    failed = {str(f.get("uri")) for f in record["files"]
              if f.get("status") in ("failed", "cancelled")}
    others = [uri for uri in uris if uri not in reused and uri not in failed]
    if others:
        more = f" (and {len(others) - 1} more)" if len(others) > 1 else ""
        raise RunFailed(f"--retry-failed: {others[0]}{more} did not fail in the previous run "
                        f"({where}) but has no matching partial to reuse (changed, new to "
                        "the index, or its partial was removed); run without --retry-failed "
                        "to count it")
    return [uri for uri in uris if uri not in reused]


def merge_counts(frames: list[pd.DataFrame], columns: Optional[list[str]] = None
                 ) -> pd.DataFrame:
    """``brickname`` and ``columns`` (default ``lrg_count``) summed per brick over several
    partial tables, by name."""
    columns = columns or ["lrg_count"]
    frames = [f[["brickname", *columns]] for f in frames if len(f)]
    if not frames:
        return pd.DataFrame({"brickname": pd.Series([], dtype=object),
                             **{c: pd.Series([], dtype="int64") for c in columns}})
    merged = (pd.concat(frames, ignore_index=True)
              .groupby("brickname", as_index=False, sort=True)[columns].sum())
    merged[columns] = merged[columns].astype("int64")
    return merged


def decide_north_south(mode: str, files: list[FileResult]) -> dict[str, Any]:
    """Whether north/south resolution applies to this run, and why: ``auto`` when both
    photometric systems appear among the files counted; ``on``/``off`` as asked. Files
    whose objects have neither PHOTSYS nor RELEASE ("?") are listed: never resolved."""
    looked = [f for f in files if f.status == "ok" and f.photsys is not None]
    count = {system: sum(system in f.photsys for f in looked)  # type: ignore[operator]
             for system in "NS"}
    seen = [system for system in "NS" if count[system]]
    unknown = [f.uri for f in looked if "?" in f.photsys]  # type: ignore[operator]
    where = ", ".join(f"{s} in {count[s]} file(s)" for s in seen) or "no objects"
    if mode == "off":
        applied, reason = False, ("run.resolve = off (--no-resolve): every object counted "
                                  "whatever its photometric system (systems not read)")
    elif mode == "on":
        applied, reason = True, f"run.resolve = on (--resolve): applied ({where})"
    elif len(seen) == 2:
        applied, reason = True, f"run.resolve = auto: both photometric systems appear ({where})"
    elif seen:
        applied, reason = False, (f"run.resolve = auto: only one photometric system appears "
                                  f"({where}): nothing to resolve")
    else:
        applied, reason = False, "run.resolve = auto: no object of a known system was counted"
    return {"mode": mode, "applied": applied, "reason": reason,
            "systems": seen if mode != "off" else None,
            "files": count if mode != "off" else None, "unresolved_files": unknown}


def merge_pixels(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    """``pixel`` and ``columns`` summed per HEALPix pixel over partial tables' pixel rows."""
    rows = [f.loc[f["pixel"].notna(), ["pixel", *columns]] for f in frames
            if "pixel" in f.columns and len(f)]
    if not rows:
        return pd.DataFrame({"pixel": pd.Series([], dtype="int64"),
                             **{c: pd.Series([], dtype="int64") for c in columns}})
    return sum_counts(pd.concat(rows, ignore_index=True), "pixel", columns)


def final_counts(merged: pd.DataFrame, layout: PartialLayout, applied: bool,
                 key: str = "brickname") -> pd.DataFrame:
    """The run's counts from the merged partials: ``brickname, lrg_count`` for one selection,
    ``brickname, n_objects, <selection>...`` for several; with resolution applied, what it
    drops subtracted and bricks left without objects removed. ``key="pixel"``: the same per
    HEALPix pixel (always with ``n_objects``)."""
    if not layout.extended:
        return merged[["brickname", "lrg_count"]]
    lrg = layout.lrg_columns()
    objects = merged["n_objects"].to_numpy()
    values = [merged[c].to_numpy() for c in lrg]
    if applied and layout.tallied:
        dropped = [merged[c].to_numpy() for c in layout.dropped_columns()]
        objects = objects - dropped[0]
        values = [v - d for v, d in zip(values, dropped[1:])]
    keep = objects > 0
    names = merged[key].to_numpy()[keep]
    if key == "pixel":
        return pd.DataFrame({"pixel": names, "n_objects": objects[keep],
                             **{name: v[keep] for name, v in zip(layout.lrg_columns(), values)}})
    if layout.width == 1:
        return pd.DataFrame({"brickname": names, "lrg_count": values[0][keep]})
    return pd.DataFrame({"brickname": names, "n_objects": objects[keep],
                         **{name: v[keep] for name, v in zip(layout.selections, values)}})


def build_manifest(spec: JobSpec, result: RunResult) -> dict[str, Any]:
    selections = selections_of(spec.config)
    if len(selections) == 1:
        selection = {"name": selections[0].name, "description": selections[0].description,
                     "parameters": dict(selections[0].parameters)}
    else:  # each one's definition under "selections"
        selection = {"name": ",".join(s.name for s in selections),
                     "description": f"{len(selections)} selections counted in one read of "
                                    "each file, one CSV column each (see selections)",
                     "parameters": {}}
    ok = [f for f in result.files if f.status == "ok"]
    inputs = result.inputs
    several = {"selections": [s.definition() for s in selections]} \
        if len(selections) > 1 else {}
    by_selection = {"lrg_by_selection": result.lrg_by_selection} if several else {}
    return {
        "halo_lrg_version": __version__,
        "state": result.state,  # complete | partial (files skipped) | failed
        "index": spec.index_uri,
        "output": spec.output_uri,
        "counts_csv": result.counts_uri,
        "density_csv": result.density_uri,
        # Every file the run published (the CSVs, and FITS/Parquet per output.formats):
        # name, uri, table, format, bytes, sha256; filled when publishing, none on failure.
        "outputs": [],
        "selection": selection,
        **several,
        "footprint": spec.footprint.to_dict() if spec.footprint else None,
        # North/south resolution: the mode, whether it applied and why, the systems seen.
        "north_south": result.north_south or {"mode": spec.config.run.resolve,
                                              "applied": None, "reason": "not decided: no "
                                              "file was counted"},
        "worker_tuning": result.worker_tuning.to_dict() if result.worker_tuning else None,
        # Files split in row ranges and packed into tasks (run.split_bytes, run.pack_bytes).
        "tasks": result.plan,
        "spark_error": result.spark_error,
        "on_error": spec.config.run.on_error,
        # resume (reuse matching partials) | retry-failed | off (--no-resume)
        "resume": ("retry-failed" if spec.retry_failed
                   else "resume" if spec.config.run.resume else "off"),
        "partials": join_uri(spec.output_uri, PARTIALS_DIR),
        "checksums": spec.config.run.checksums or None,
        # Everything the run was configured with, so a cluster run can be checked against
        # what was asked (credentials never enter the configuration).
        "config": spec.config.to_dict(),
        "totals": {
            "files": len(result.files), "files_ok": len(ok),
            "files_failed": len(result.failed),
            "files_cancelled": sum(f.status == "cancelled" for f in result.files),
            "files_reused": len(result.reused),
            "files_sha256_verified": sum(f.sha256_verified for f in result.files),
            "rows": sum(f.rows for f in ok), "objects": sum(f.objects for f in ok),
            "lrg": sum(f.lrg for f in ok), **by_selection, "bricks": result.bricks,
            "seconds": round(result.seconds, 3),
        },
        "dropped": {
            "duplicates": inputs.duplicates if inputs else [],
            "outside_footprint": inputs.outside_footprint if inputs else [],
            "beyond_max_sweeps": inputs.capped if inputs else [],
        },
        "files": [f.to_dict() for f in result.files],
    }


def run_job(spark: Any, spec: JobSpec, emit: Callable[[str], None] = print) -> RunResult:
    """Run the whole job on ``spark`` and write the result under ``spec.output_uri``.

    ``emit`` hears one progress line per finished file; everything else the run has to say
    goes through ``logging`` (logger ``halo_lrg.spark.run``).

    The result's ``state`` is ``complete`` (every file counted) or ``partial`` (files skipped
    under ``on_error=skip``, listed in the manifest). When the run cannot produce a result it
    raises :class:`RunFailed` (one line) after writing ``_last_failure.json``, and leaves the
    previous result at the output as it was. With ``run.resume`` files whose stored partial
    matches are not read (see the module's doc); ``spec.retry_failed`` refuses, without
    recording a failure, when anything but the previous run's failures would be counted.
    """
    started = time.perf_counter()
    # Tasks run in other processes: make the S3 endpoint explicit in what they receive.
    config = with_resolved_endpoint(spec.config)
    spec = dataclasses.replace(spec, config=config)
    try:
        output = output_location(spec.output_uri, config)
        output.check_writable()
    except OutputError as exc:
        raise RunFailed(f"cannot write the result: {exc}") from None
    empty = RunResult([], 0, 0.0, None, output.manifest_uri)
    try:
        inputs, identities = plan_files(spec)
        empty.inputs = inputs
        checksums = load_checksums(spec)
    except RunFailed as failure:
        _record_failure(output, spec, empty, str(failure))
        raise
    for uri in inputs.duplicates:
        log.warning("duplicate index entry dropped: %s", uri)
    for uri in inputs.unparsed_names:
        log.warning("%s: not a standard sweep name; kept, filtered by coordinates", uri)
    if inputs.outside_footprint:
        log.info("%d sweep(s) outside the footprint skipped", len(inputs.outside_footprint))
    if inputs.capped:
        log.info("--max-sweeps %d: %d sweep(s) left out", config.run.max_sweeps,
                 len(inputs.capped))
    if not inputs.uris:
        message = (f"{spec.index_uri}: no sweep files to read "
                   "(the index is empty or everything was filtered out)")
        _record_failure(output, spec, empty, message)
        raise RunFailed(message)
    sizes = [identity.size for identity in identities]
    try:
        expected = [checksums.expected(uri) if checksums else None for uri in inputs.uris]
    except SourceError as exc:
        _record_failure(output, spec, empty, str(exc))
        raise RunFailed(str(exc)) from None
    if checksums is not None:
        unlisted = [uri for uri, sha in zip(inputs.uris, expected) if sha is None]
        for uri in unlisted:
            log.warning("%s: not in the checksum list %s; counted unverified", uri,
                        checksums.source)
        log.info("checksums: %d of %d file(s) listed in %s", len(inputs.uris) - len(unlisted),
                 len(inputs.uris), checksums.source)
    tasks = [file_task(identity, sha, config, spec.footprint)
             for identity, sha in zip(identities, expected)]
    layout = partial_layout(config)
    # Files above run.split_bytes are read in row ranges by several tasks, each range its own
    # piece with its own partial; a file whose checksum is to be verified is read whole (a
    # range's bytes are not the file's).
    pieces = split_files(sizes, config.run.split_bytes, [sha is None for sha in expected])
    keys = [piece_key(inputs.uris[p.file], part_label(p.rows)) for p in pieces]
    piece_of = dict(zip(keys, pieces))
    keys_of: dict[str, list[str]] = {}
    for piece, key in zip(pieces, keys):
        keys_of.setdefault(inputs.uris[piece.file], []).append(key)

    reused = load_partials(output, [inputs.uris[p.file] for p in pieces],
                           [piece_task(tasks[p.file], p.rows) for p in pieces],
                           [p.bytes for p in pieces], config, layout, keys) \
        if config.run.resume else {}
    if config.run.resolve == "on":  # a file of unknown system fails under --resolve: recount
        reused = {key: r for key, r in reused.items() if "?" not in (r[0].photsys or "")}
    whole_reused = {uri for uri, piece_keys in keys_of.items()
                    if all(key in reused for key in piece_keys)}
    if spec.retry_failed:
        retry = files_to_retry(output, inputs.uris, whole_reused)  # refuses without a record
        log.info("--retry-failed: counting %d file(s) that failed before; %d reused",
                 len(retry), len(whole_reused))
    elif reused:
        log.info("resuming: %d of %d file(s) reused from %s (not read again)",
                 len(whole_reused), len(inputs.uris), output.uri_of(PARTIALS_DIR))
    sc = spark.sparkContext
    # Small pieces are packed into tasks (Spark's cost per task is fixed), at least two
    # tasks a core kept where the pieces allow it.
    plan = pack_pieces([p for p, key in zip(pieces, keys) if key not in reused],
                       config.run.pack_bytes, max(1, sc.defaultParallelism))
    todo = sum(len(task) for task in plan)
    log.info("counting LRGs (%s) in %d file(s) on %s: %d piece(s) in %d task(s)",
             config.cuts.selection, len({p.file for task in plan for p in task}), sc.master,
             todo, len(plan))

    progress = list_accumulator(spark)
    tune = tuning.decide(config.run.tune_python_workers, sc.master)
    if tune.requested and todo:
        log.info("Python worker tuning: %s", tune.reason)
    group = f"halo-lrg-{uuid.uuid4().hex[:12]}"
    report = _progress_writer(output)
    monitor = _ProgressMonitor(spark, progress,
                               {key: (inputs.uris[p.file], p.bytes)
                                for p, key in zip(pieces, keys)}, group,
                               config.run.on_error == "fail", config.run.progress_interval, emit,
                               report, config.run.progress_file_seconds)
    monitor.add_reused([status for status, _frame in reused.values()])
    report(monitor.snapshot())
    statuses: list[dict[str, Any]] = []
    counts: Optional[pd.DataFrame] = merge_counts([], layout.count_columns())
    pixels: Optional[pd.DataFrame] = None
    crashed: Optional[BaseException] = None
    if plan:
        partials = lrg_partials(spark, inputs.uris, footprint=spec.footprint, config=config,
                                progress=progress, tune_workers=tune.apply, file_tasks=tasks,
                                partials_uri=spec.output_uri, tasks=plan)
        sc.setJobGroup(group, "halo-lrg: count LRGs per brick", interruptOnCancel=True)
        monitor.start()
        counts = None
        try:
            statuses, counts, pixels = collect_partials(partials, layout)
        except Exception as exc:  # cancelled by the monitor, or Spark itself failed
            crashed = exc
        finally:
            monitor.stop()
            sc.setLocalProperty("spark.jobGroup.id", None)

    by_key = {piece_key(str(r["uri"]), optional_text(r.get("part"))): r for r in statuses}
    results = []
    for uri, size, sha in zip(inputs.uris, sizes, expected):
        parts = []
        for piece, key in ((piece_of[k], k) for k in keys_of[uri]):
            if key in reused:
                parts.append(reused[key][0])
                continue
            # The job's own status row, else what the progress accumulator heard before a
            # cancel.
            row = by_key.get(key) or monitor.seen.get(key)
            if row is not None:
                parts.append(FileResult.from_row(row, piece.bytes, sha, layout))
            else:
                parts.append(FileResult(uri, "cancelled", bytes=piece.bytes,
                                        sha256_expected=sha, part=part_label(piece.rows),
                                        error="not read: the run stopped first"))
        results.append(merge_parts(parts, size))
    north_south = decide_north_south(config.run.resolve, results)
    if north_south["applied"]:
        results = [r.with_resolution() for r in results]
        if north_south["unresolved_files"]:
            log.warning("north/south resolution applied, but %d file(s) have objects with "
                        "neither PHOTSYS nor RELEASE, kept as they are (first: %s)",
                        len(north_south["unresolved_files"]),
                        north_south["unresolved_files"][0])
    if counts is not None:
        if layout.nside:
            pixels = final_counts(
                merge_pixels([*([pixels] if pixels is not None else []),
                              *(frame for _status, frame in reused.values())],
                             layout.count_columns()),
                layout, bool(north_south["applied"]), key="pixel")
        counts = final_counts(
            merge_counts([counts, *(frame for _status, frame in reused.values())],
                         layout.count_columns()),
            layout, bool(north_south["applied"]))
    result = RunResult(results, bricks=0 if counts is None else len(counts),
                       seconds=time.perf_counter() - started, counts_uri=None,
                       manifest_uri=output.manifest_uri, inputs=inputs,
                       worker_tuning=tune, selections=layout.selections,
                       north_south=north_south,
                       plan={"split_bytes": config.run.split_bytes,
                             "pack_bytes": config.run.pack_bytes,
                             "pieces": len(pieces), "pieces_reused": len(reused),
                             "tasks": len(plan),
                             "files_split": sum(len(k) > 1 for k in keys_of.values())})
    failures = result.failed
    message = None
    if crashed is not None and monitor.first_failure is None:
        # Not our cancel: Spark failed (a lost executor, a killed worker). Say so, whatever
        # files were skipped before it.
        first = str(crashed).strip().splitlines()
        result.spark_error = first[0] if first else type(crashed).__name__
        message = f"Spark job failed: {result.spark_error}"
    elif failures and (config.run.on_error == "fail" or len(failures) == len(results)):
        more = f" (and {len(failures) - 1} more; see {output.uri_of(FAILURE_FILE)})" \
            if len(failures) > 1 else ""
        every = "every file failed; first: " if len(failures) == len(results) > 1 else ""
        message = f"{every}{failures[0].error}{more}"
    if message is not None or counts is None:
        message = message or "the job returned no counts"
        report(monitor.snapshot("failed"))
        _record_failure(output, spec, result, message)
        raise RunFailed(message)
    result.state = "partial" if failures else "complete"
    try:
        _publish(output, spec, result, counts, pixels)
    except OutputError as exc:
        result.counts_uri = result.density_uri = None
        message = f"cannot write the result: {exc}"
        _record_failure(output, spec, result, message)
        raise RunFailed(message) from None
    report(monitor.snapshot(result.state))
    return result


def _record_failure(output: Any, spec: JobSpec, result: RunResult, message: str) -> None:
    """A run that produced no result: its manifest goes to ``_last_failure.json``, and the
    previous result (CSV, manifest, ``_SUCCESS``) stays as it was."""
    result.state = "failed"
    manifest = {**build_manifest(spec, result), "error": message}
    try:
        output.write_file(FAILURE_FILE, manifest_bytes(manifest))
    except (OutputError, OSError) as exc:
        log.warning("cannot record the failure at %s (%s)", output.uri_of(FAILURE_FILE), exc)
    result.manifest_uri = output.uri_of(FAILURE_FILE)


def _table_header(spec: JobSpec, result: RunResult) -> dict[str, Any]:
    """Provenance of the run's FITS and Parquet tables (:func:`halo_lrg.io.tables.table_bytes`
    writes each item as a card, and as Parquet metadata): version, UTC date, state, index,
    each selection with its thresholds (``sel<i>``, ``sel<i>_<threshold>``, numbered so a
    long variant name never makes a keyword too long), north/south, footprint, and the data
    release only when every input's path says it (``.../dr10/south/sweep/10.1/...``), else
    the index's path; otherwise no release item (never a guess)."""
    import re

    selections = selections_of(spec.config)
    header: dict[str, Any] = {
        "halo_lrg_version": (__version__, "halo-lrg, which counted and wrote this table"),
        "date": (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()),
                 "UTC time the run published this table"),
        "state": (result.state, "complete, or partial: files skipped (see manifest.json)"),
        "index": (spec.index_uri, "the index of sweep files read"),
        "selection": (",".join(s.name for s in selections), "LRG selection(s) counted"),
    }
    for i, selection in enumerate(selections, 1):
        definition = selection.definition()
        header[f"sel{i}"] = (selection.name, selection.description)
        header[f"sel{i}_base"] = (definition["base"], "the built-in selection it is or varies")
        for key, value in definition["parameters"].items():
            header[f"sel{i}_{key}"] = value
    north_south = result.north_south or {}  # short keys: plain FITS keywords
    header["resolve"] = (north_south.get("mode", spec.config.run.resolve),
                         "north/south resolution asked: auto | on | off")
    header["resolved"] = (bool(north_south.get("applied")),
                          "DESI's north/south resolution applied")
    header["nsreason"] = (north_south.get("reason", ""), "why it was or was not")
    if spec.footprint is not None:
        header["footprint"] = (spec.footprint.to_dict(), "sky box the inputs were cut to")
    pattern = re.compile(r"/(dr\d+)/(north|south)/sweep/(\d[\d.]*)/", re.IGNORECASE)
    for uris in (result.inputs.uris if result.inputs else [], [spec.index_uri]):
        found = [pattern.search(uri) for uri in uris]
        if uris and all(found):
            said = list(zip(*(m.groups() for m in found if m)))
            for key, values, comment in zip(
                    ("release", "release_region", "sweep_version"), said,
                    ("data release, from the inputs' paths", "north and/or south",
                     "sweep version")):
                header[key] = (",".join(sorted({v.lower() for v in values})), comment)
            break
    return header


#: The run's HEALPix map: ``lrg_healpix.csv`` (NSIDE in its first line, and in the FITS
#: header); one name whatever the nside, so a map of an earlier run never sits beside a new one.
HEALPIX_STEM = "lrg_healpix"


def _healpix_files(spec: JobSpec, pixels: Optional[pd.DataFrame], formats: tuple[str, ...],
                   header: dict[str, Any]) -> dict[str, Optional[bytes]]:
    """The map's bytes in each format (None: remove a stale one). The FITS map is written
    whatever ``formats`` says: it is the file healpy and hpgeom users read."""
    from halo_lrg.count.pixels import map_bytes
    from halo_lrg.io.tables import TABLE_FORMATS, table_bytes
    from halo_lrg.science.healpix_map import counts_map, map_units

    files: dict[str, Optional[bytes]] = dict.fromkeys(TABLE_FORMATS)
    nside = spec.config.run.healpix_nside
    if pixels is None or not nside:
        return files
    names = [s.name for s in selections_of(spec.config)]
    lrg = [c for c in pixels.columns if c not in ("pixel", "n_objects")]  # one a selection
    hmap = counts_map(nside, pixels["pixel"].to_numpy(), pixels["n_objects"].to_numpy(),
                      pixels[lrg].to_numpy().T, None if len(names) == 1 else names)
    files["csv"] = map_bytes(hmap, "csv")
    files["fits"] = map_bytes(hmap, "fits", header)
    if "parquet" in formats:
        files["parquet"] = table_bytes(hmap.table, "parquet", units=map_units(hmap),
                                       header={**header, "nside": nside, "ordering": "NESTED"})
    return files


def _publish(output: Any, spec: JobSpec, result: RunResult, counts: pd.DataFrame,
             pixels: Optional[pd.DataFrame] = None) -> None:
    """Replace the previous result with this complete one (:meth:`OutputLocation.publish`):
    the CSV, the optional density table, with ``pixels`` (``run.healpix_nside``) the HEALPix
    map ``lrg_healpix.csv`` (and ``.fits``, a partial-sky map healpy reads: the FITS copy is
    always written, ``.parquet`` when asked), the same tables in each extra format of
    ``output.formats`` (``lrg_counts_per_brick.fits``, ``lrg_density.parquet``... with units
    and :func:`_table_header`'s provenance; formats not asked this time are removed, so no
    stale table sits beside a new CSV), the manifest (the CSV's SHA-256, and every file
    written with its SHA-256 under ``outputs``), ``_SUCCESS`` last; a reader that finds it
    sees one run's files. A failure (a full disk, a PUT refused) is an OutputError and leaves
    the previous result as it was (see ``publish``)."""
    import io

    from halo_lrg.io.output import COUNTS_DIR, COUNTS_FILE
    from halo_lrg.io.tables import (
        TABLE_FORMATS,
        column_units,
        parse_formats,
        table_bytes,
        table_suffix,
    )

    csv = counts_csv_bytes(counts)
    result.counts_uri = output.counts_uri
    formats = parse_formats(spec.config.output.formats)
    # The other formats hold exactly what the CSV says: its rows, order and values (parsed
    # back only when another format is asked: a CSV-only run writes no other table).
    frame = None
    if set(formats) - {"csv"}:
        frame = pd.read_csv(io.BytesIO(csv), dtype={"brickname": str})
        frame = frame.astype({c: "int64" for c in frame.columns if c != "brickname"})
    tables: dict[str, tuple[str, Optional[pd.DataFrame]]] = {
        "counts": (COUNTS_DIR, frame), "density": (DENSITY_FILE.rsplit(".", 1)[0], None)}
    density = None  # None removes a stale one from an earlier run: it would mislead
    if spec.with_density:
        from halo_lrg.science.density import density_table

        table = density_table(counts)
        density = table_bytes(table, "csv")
        tables["density"] = (tables["density"][0], table)
        result.density_uri = output.uri_of(DENSITY_FILE)
    files: dict[str, Optional[bytes]] = {DENSITY_FILE: density}
    written = [(f"{COUNTS_DIR}/{COUNTS_FILE}", "counts", "csv", csv),
               (DENSITY_FILE, "density", "csv", density)]
    header = _table_header(spec, result)
    for fmt in (f for f in TABLE_FORMATS if f != "csv"):
        for name, (stem, table_frame) in tables.items():
            data = None
            if fmt in formats and table_frame is not None:
                data = table_bytes(table_frame, fmt, units=column_units(table_frame.columns),
                                   header=header, extname=name.upper())
            files[stem + table_suffix(fmt)] = data
            written.append((stem + table_suffix(fmt), name, fmt, data))
    for fmt, data in _healpix_files(spec, pixels, formats, header).items():
        name = f"{HEALPIX_STEM}{table_suffix(fmt)}"
        files[name] = data
        written.append((name, "healpix", fmt, data))
        if data is not None and fmt == "csv":
            result.healpix_uri = output.uri_of(name)
    outputs = [{"name": name, "uri": output.uri_of(name), "table": table_name, "format": fmt,
                "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
               for name, table_name, fmt, data in written if data is not None]
    manifest = {**build_manifest(spec, result), "outputs": outputs,
                "counts_sha256": hashlib.sha256(csv).hexdigest()}
    output.publish(csv, manifest_bytes(manifest), files)


def summary_lines(result: RunResult) -> list[str]:
    ok = [f for f in result.files if f.status == "ok"]
    if len(result.selections) > 1:
        lrg = ", ".join(f"{name} {n:,}" for name, n in result.lrg_by_selection.items())
    else:
        lrg = f"{result.lrg:,}"
    lines = [
        f"files: {len(ok)} ok, {len(result.failed)} failed of {len(result.files)}",
        f"rows: {sum(f.rows for f in ok):,}   LRGs: {lrg}   bricks: {result.bricks:,}"
        f"   time: {result.seconds:.1f} s",
        f"counts:   {result.counts_uri}",
        *([f"density:  {result.density_uri}"] if result.density_uri else []),
        *([f"healpix:  {result.healpix_uri}"] if result.healpix_uri else []),
        f"manifest: {result.manifest_uri}",
    ]
    if result.north_south is not None:
        applied = "resolved" if result.north_south["applied"] else "not resolved"
        lines.insert(2, f"north/south: {applied}: {result.north_south['reason']}")
    if result.reused:
        lines.insert(1, f"reused: {len(result.reused)} file(s) from stored partials "
                        "(not read; --no-resume counts everything)")
    lines += [f"skipped (failed): {f.error}" for f in result.failed]
    return lines
