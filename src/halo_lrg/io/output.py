"""Writing a run's result: ``<output>/lrg_counts_per_brick/part-00000.csv``,
``<output>/manifest.json`` and the ``_SUCCESS`` marker.

The CSV is built on the driver from the aggregated counts (at most 662,174 bricks, ~10 MB)
and written in one piece, so it is either whole or absent. Publishing removes ``_SUCCESS``
first and writes it last, after the manifest (which carries the CSV's SHA-256): a reader that
finds ``_SUCCESS`` has a CSV and manifest from the same run (:func:`check_complete`). A failed
run never touches the previous result: it writes ``_last_failure.json`` beside it.

:meth:`OutputLocation.publish` does all of this as one step that a failure cannot leave
half done: locally every new file is written and synced beside the result before anything is
replaced, so a full disk fails the run with the previous result as it was; on S3 (one PUT per
object, no rename) a failure of the first replacing PUT puts the previous ``_SUCCESS`` back
once the CSV is checked against its manifest. Every failure is an :class:`OutputError` of one
line naming the object and the cause (``No space left on device``), never an ``OSError``.

``_partials/<key>.json`` holds one counted file's per-brick partial each, written by its task
as the file completes (:func:`partial_bytes`: the same record gives the same bytes, so a
retried or speculative task rewrites the same file; locally through a temp name and a rename,
on S3 in one PUT). Runs resume from them; nothing ever deletes them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from typing import Any, Callable, Optional

import pandas as pd

from halo_lrg.config import Config
from halo_lrg.io.uri import S3_SCHEMES, local_path, scheme_of, split_s3_uri

COUNTS_DIR = "lrg_counts_per_brick"
COUNTS_FILE = "part-00000.csv"
MANIFEST_FILE = "manifest.json"
COUNTS_HEADER = ("brickname", "lrg_count")
#: The wide table of several selections: brickname, this, then one column per selection.
WIDE_OBJECTS = "n_objects"
DENSITY_FILE = "lrg_density.csv"
#: A running job's progress (files, rows, LRGs, bytes, ETA), rewritten every ~30 s.
PROGRESS_FILE = "_progress.json"
#: Written last by a run that published a result (the Hadoop/Spark convention).
SUCCESS_FILE = "_SUCCESS"
#: A failed run's manifest, beside the previous result, which it leaves as it was.
FAILURE_FILE = "_last_failure.json"
WRITE_CHECK_FILE = "_halo_lrg_write_check"
#: One file per counted input, named by its key (input identity + selection + version).
PARTIALS_DIR = "_partials"
PARTIAL_SUFFIX = ".json"


def counts_csv_bytes(counts: pd.DataFrame) -> bytes:
    """``brickname,lrg_count`` rows sorted by brickname; the same bytes for the same counts.

    Several selections counted in one run (``counts`` without ``lrg_count``, with
    ``n_objects``): the wide table ``brickname,n_objects,<selection>,...``, every object of
    the brick then its LRGs under each selection, in ``counts``' column order."""
    ordered = counts.sort_values("brickname", kind="mergesort")
    if "lrg_count" in counts.columns or WIDE_OBJECTS not in counts.columns:
        lines = [",".join(COUNTS_HEADER)]
        lines += [f"{name},{int(n)}"
                  for name, n in zip(ordered["brickname"], ordered["lrg_count"])]
        return ("\n".join(lines) + "\n").encode("ascii")
    header = ["brickname", WIDE_OBJECTS,
              *(str(c) for c in counts.columns if c not in ("brickname", WIDE_OBJECTS))]
    columns = [ordered["brickname"].astype(str).tolist(),
               *(ordered[c].to_numpy().astype("int64").tolist() for c in header[1:])]
    lines = [",".join(header)]
    lines += [",".join(map(str, row)) for row in zip(*columns)]
    return ("\n".join(lines) + "\n").encode("ascii")


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=2, sort_keys=False) + "\n").encode("utf-8")


def partial_name(key: str) -> str:
    """``_partials/<key>.json``, relative to the output."""
    return f"{PARTIALS_DIR}/{key}{PARTIAL_SUFFIX}"


def partial_bytes(record: dict[str, Any]) -> bytes:
    """A partial's bytes: canonical JSON (sorted keys, no spaces), so the same record is
    always the same bytes."""
    return (json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=False)
            + "\n").encode("utf-8")


def join_uri(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts])


class OutputLocation:
    """A run's output directory: a local path or ``file://`` URI (see :class:`S3Output`)."""

    def __init__(self, uri: str, config: Config) -> None:
        self.uri = uri
        self.config = config
        self.root = local_path(uri)

    @property
    def counts_uri(self) -> str:
        return join_uri(self.uri, COUNTS_DIR, COUNTS_FILE)

    @property
    def manifest_uri(self) -> str:
        return join_uri(self.uri, MANIFEST_FILE)

    def uri_of(self, name: str) -> str:
        return join_uri(self.uri, name)

    def _failed(self, exc: OSError, uri: str) -> OutputError:
        """An OSError of a local write as the one-line error a run reports."""
        return OutputError(f"{uri}: {exc.strerror or exc}")

    def _stage_counts(self, csv: bytes) -> str:
        """A hidden directory beside ``lrg_counts_per_brick/`` holding the new CSV, synced
        (removed again if that fails)."""
        staging = tempfile.mkdtemp(prefix=f".{COUNTS_DIR}.", dir=self.root)
        try:
            with open(os.path.join(staging, COUNTS_FILE), "wb") as fh:
                fh.write(csv)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(staging, 0o755)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return staging

    def _swap_counts(self, staging: str) -> None:
        """Renames only (no new blocks): the staged directory becomes
        ``lrg_counts_per_brick/``, then the old one is removed."""
        final = os.path.join(self.root, COUNTS_DIR)
        retired = None
        if os.path.exists(final):
            retired = tempfile.mkdtemp(prefix=f".{COUNTS_DIR}.old.", dir=self.root)
            os.rmdir(retired)
            os.rename(final, retired)
        os.rename(staging, final)
        if retired:
            shutil.rmtree(retired, ignore_errors=True)

    def _stage_file(self, name: str, data: bytes) -> tuple[str, str]:
        """``(temp, final)``: ``data`` written and synced under a hidden temp name beside
        ``<output>/<name>`` (removed again if that fails)."""
        path = os.path.join(self.root, *name.split("/"))
        directory = os.path.dirname(path)
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=directory)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o644)
        except BaseException:
            _remove_quietly(tmp)
            raise
        return tmp, path

    def _write(self, name: str, data: bytes) -> None:
        tmp, path = self._stage_file(name, data)
        try:
            os.replace(tmp, path)
        except BaseException:
            _remove_quietly(tmp)
            raise

    def _remove(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(self.root, *name.split("/")))

    def replace_counts(self, csv: bytes) -> None:
        """Atomically swap in a new ``lrg_counts_per_brick/`` holding exactly one CSV; when
        the CSV cannot be written (:class:`OutputError`) the old directory stays."""
        try:
            os.makedirs(self.root, exist_ok=True)
            staging = self._stage_counts(csv)
        except OSError as exc:
            raise self._failed(exc, self.counts_uri) from None
        try:
            self._swap_counts(staging)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise self._failed(exc, self.counts_uri) from None

    def remove_counts(self) -> None:
        shutil.rmtree(os.path.join(self.root, COUNTS_DIR), ignore_errors=True)

    def write_file(self, name: str, data: bytes) -> None:
        """Replace ``<output>/<name>`` (``name`` may have a directory: ``_partials/k.json``)
        atomically: written under a temp name beside it, synced, then renamed over it. An
        OSError (a full disk) is an :class:`OutputError` naming the file, and the old file
        stays."""
        try:
            self._write(name, data)
        except OSError as exc:
            raise self._failed(exc, self.uri_of(name)) from None

    def publish(self, csv: bytes, manifest: bytes,
                files: Optional[Mapping[str, Optional[bytes]]] = None) -> None:
        """Replace the previous result with a new complete one: the CSV, ``files`` (name →
        bytes; ``None`` removes the file, e.g. a stale ``lrg_density.csv``), the manifest,
        then ``_SUCCESS``; ``_last_failure.json`` is removed.

        Every new file, ``_SUCCESS`` included, is first written and synced under a hidden
        name beside the result: a failure there (a full disk) leaves the previous result
        (CSV, manifest, ``_SUCCESS``) exactly as it was and raises :class:`OutputError`
        naming the file and the cause. Only then is ``_SUCCESS`` removed and the new files
        renamed into place, ``_SUCCESS`` last: renames and removals need no free space.
        """
        files = dict(files or {})
        staging: Optional[str] = None
        staged: list[tuple[str, str]] = []
        writing = self.counts_uri
        try:
            os.makedirs(self.root, exist_ok=True)
            staging = self._stage_counts(csv)
            for name, data in [*((n, d) for n, d in files.items() if d is not None),
                               (MANIFEST_FILE, manifest), (SUCCESS_FILE, b"")]:
                writing = self.uri_of(name)
                staged.append(self._stage_file(name, data))
        except OSError as exc:
            _discard(staging, staged)
            raise OutputError(f"{writing}: {exc.strerror or exc} (nothing replaced: the "
                              "previous result, if any, is untouched)") from None
        *others, (success_tmp, success_path) = staged
        try:
            self._remove(SUCCESS_FILE)
            self._swap_counts(staging)
            staging = None
            for name in [n for n, d in files.items() if d is None]:
                self._remove(name)
            for tmp, path in others:  # extra files, then the manifest
                os.replace(tmp, path)
            self._remove(FAILURE_FILE)  # an earlier failure is not this result's story
            os.replace(success_tmp, success_path)
        except OSError as exc:
            _discard(staging, staged)
            raise OutputError(f"{self.uri}: publishing the result failed "
                              f"({exc.strerror or exc}); no complete result there now "
                              f"({SUCCESS_FILE} missing)") from None

    def list_names(self, directory: str) -> list[str]:
        """Names of the files in ``<output>/<directory>`` (not temp files), sorted; empty
        when it does not exist."""
        try:
            names = os.listdir(os.path.join(self.root, *directory.split("/")))
        except FileNotFoundError:
            return []
        return sorted(n for n in names if not n.startswith("."))

    def remove_file(self, name: str) -> None:
        try:
            self._remove(name)
        except OSError as exc:
            raise self._failed(exc, self.uri_of(name)) from None

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        self.write_file(MANIFEST_FILE, manifest_bytes(manifest))

    def check_writable(self) -> None:
        """Write and delete a marker: an unwritable output fails before any file is read,
        not after hours of counting."""
        if os.path.exists(self.root) and not os.path.isdir(self.root):
            raise OutputError(f"{self.uri}: exists and is not a directory")
        try:
            os.makedirs(self.root, exist_ok=True)
            self._write(WRITE_CHECK_FILE, b"")
            self._remove(WRITE_CHECK_FILE)
        except OSError as exc:
            raise OutputError(f"{self.uri}: not writable ({exc.strerror or exc})") from None

    def read_file(self, name: str) -> bytes:
        """``<output>/<name>``; FileNotFoundError when absent."""
        with open(os.path.join(self.root, name), "rb") as fh:
            return fh.read()


class S3Output(OutputLocation):
    """``s3://bucket/prefix``: each file is one PUT, so it is whole or absent."""

    def __init__(self, uri: str, config: Config) -> None:
        split_s3_uri(uri)  # a clear error for a malformed URI, before any work
        self.uri = uri.rstrip("/")
        self.config = config

    def _do(self, action: Callable[[], Any], uri: str) -> Any:
        from halo_lrg.io.retry import TransientError
        from halo_lrg.io.s3 import S3Error

        try:
            return action()
        except (S3Error, TransientError) as exc:
            raise OutputError(f"{uri}: {exc}") from None

    def replace_counts(self, csv: bytes) -> None:
        """PUT the CSV over the old one (a failed PUT leaves the old one), then delete
        anything else under ``lrg_counts_per_brick/``."""
        from halo_lrg.io import s3 as s3_source

        self._do(lambda: s3_source.put_bytes(self.counts_uri, csv, self.config.remote,
                                             "text/csv"), self.counts_uri)
        for name in self.list_names(COUNTS_DIR):
            if name != COUNTS_FILE:
                self.remove_file(f"{COUNTS_DIR}/{name}")

    def publish(self, csv: bytes, manifest: bytes,
                files: Optional[Mapping[str, Optional[bytes]]] = None) -> None:
        """:meth:`OutputLocation.publish` in PUTs (S3 has no rename): remove ``_SUCCESS``,
        PUT the CSV, ``files`` (``None`` deletes), the manifest, delete
        ``_last_failure.json``, PUT ``_SUCCESS``. Each PUT is whole or absent and retried
        (:mod:`halo_lrg.io.retry`).

        When the CSV's PUT fails for good nothing was replaced: ``_SUCCESS`` is put back if
        the stored CSV is still the one the stored manifest describes (checked, so a PUT that
        took effect after all is never covered up), and the previous result stands. A
        failure after that leaves no ``_SUCCESS`` (readers see no complete result, never a
        mixed one), and the message says so."""
        had_success = self._exists(SUCCESS_FILE)
        self.remove_file(SUCCESS_FILE)
        try:
            self.replace_counts(csv)
        except OutputError as exc:
            if had_success and _csv_matches_manifest(self):
                try:
                    self.write_file(SUCCESS_FILE, b"")
                except OutputError as again:
                    raise OutputError(f"{exc}; the previous result is whole but its "
                                      f"{SUCCESS_FILE} could not be put back ({again})"
                                      ) from None
                raise OutputError(f"{exc} (nothing replaced: the previous result is "
                                  "untouched)") from None
            raise
        try:
            for name, data in (files or {}).items():
                if data is None:
                    self.remove_file(name)
                else:
                    self.write_file(name, data)
            self.write_file(MANIFEST_FILE, manifest)
            self.remove_file(FAILURE_FILE)
            self.write_file(SUCCESS_FILE, b"")
        except OutputError as exc:
            raise OutputError(f"{exc}; {self.uri} has no complete result now "
                              f"({SUCCESS_FILE} missing)") from None

    def _exists(self, name: str) -> bool:
        try:
            self.read_file(name)
        except FileNotFoundError:
            return False
        return True

    def remove_counts(self) -> None:
        from halo_lrg.io import s3 as s3_source

        prefix = join_uri(self.uri, COUNTS_DIR) + "/"
        self._do(lambda: s3_source.delete_prefix(prefix, self.config.remote), prefix)

    def write_file(self, name: str, data: bytes) -> None:
        from halo_lrg.io import s3 as s3_source

        uri = self.uri_of(name)
        self._do(lambda: s3_source.put_bytes(uri, data, self.config.remote), uri)

    def remove_file(self, name: str) -> None:
        from halo_lrg.io import s3 as s3_source

        uri = self.uri_of(name)
        self._do(lambda: s3_source.delete(uri, self.config.remote), uri)

    def list_names(self, directory: str) -> list[str]:
        """Object names right under ``<output>/<directory>/``, sorted."""
        from halo_lrg.io import s3 as s3_source
        from halo_lrg.io.retry import TransientError, with_retries

        prefix_uri = join_uri(self.uri, directory) + "/"
        bucket, prefix = split_s3_uri(prefix_uri)
        remote = self.config.remote

        def attempt() -> list[str]:
            from botocore.exceptions import BotoCoreError, ClientError

            try:
                pages = s3_source.client(remote).get_paginator("list_objects_v2").paginate(
                    Bucket=bucket, Prefix=prefix, Delimiter="/")
                return sorted(item["Key"][len(prefix):] for page in pages
                              for item in page.get("Contents", []))
            except ClientError as exc:
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
                if status >= 500 or status == 429:
                    raise TransientError(str(exc)) from None
                raise OutputError(f"{prefix_uri}: cannot list ({exc})") from None
            except BotoCoreError as exc:
                raise TransientError(f"{type(exc).__name__}: {exc}") from None

        try:
            return with_retries(attempt, remote, prefix_uri)
        except TransientError as exc:
            raise OutputError(f"{prefix_uri}: cannot list ({exc})") from None

    def check_writable(self) -> None:
        """Put and delete a marker: no write or no delete permission shows now."""
        self.write_file(WRITE_CHECK_FILE, b"")
        self.remove_file(WRITE_CHECK_FILE)

    def read_file(self, name: str) -> bytes:
        from halo_lrg.io import s3 as s3_source

        uri = self.uri_of(name)
        try:
            return s3_source.read_bytes(uri, self.config.remote)
        except s3_source.S3Error as exc:
            if "NoSuchKey" in str(exc) or "404" in str(exc):
                raise FileNotFoundError(uri) from None
            raise OutputError(f"{uri}: {exc}") from None


class OutputError(Exception):
    """The result could not be written; the message names the location."""


def output_location(uri: str, config: Config) -> OutputLocation:
    """Where a run writes: a local directory or an S3 prefix."""
    scheme = scheme_of(uri)
    if scheme == "file":
        return OutputLocation(uri, config)
    if scheme in S3_SCHEMES:
        try:
            return S3Output(uri, config)
        except ValueError as exc:
            raise OutputError(str(exc)) from None
    raise OutputError(f"{uri}: unsupported output location (use a local path or s3://)")


def check_complete(output: OutputLocation) -> dict[str, Any]:
    """The manifest of the complete result at ``output``; :class:`IncompleteResult` naming
    what is wrong when there is none (no ``_SUCCESS``, or a CSV the manifest does not
    describe)."""
    try:
        output.read_file(SUCCESS_FILE)
    except FileNotFoundError:
        raise IncompleteResult(f"{output.uri}: no complete result ({SUCCESS_FILE} missing: "
                               "the run failed, is running, or was interrupted while "
                               "publishing; see manifest.json / _last_failure.json)") from None
    manifest = json.loads(output.read_file(MANIFEST_FILE))
    csv = output.read_file(f"{COUNTS_DIR}/{COUNTS_FILE}")
    if manifest.get("counts_sha256") != hashlib.sha256(csv).hexdigest():
        raise IncompleteResult(f"{output.uri}: the CSV is not the one its manifest describes")
    return manifest


def _csv_matches_manifest(output: OutputLocation) -> bool:
    """Is the stored CSV the one the stored manifest describes (its ``counts_sha256``)?
    False when either is missing or unreadable."""
    try:
        manifest = json.loads(output.read_file(MANIFEST_FILE))
        csv = output.read_file(f"{COUNTS_DIR}/{COUNTS_FILE}")
    except (FileNotFoundError, OutputError, ValueError):
        return False
    return isinstance(manifest, dict) and \
        manifest.get("counts_sha256") == hashlib.sha256(csv).hexdigest()


def _discard(staging: Optional[str], staged: list[tuple[str, str]]) -> None:
    """Remove what a failed publish staged: nothing of it may look like a result."""
    if staging is not None:
        shutil.rmtree(staging, ignore_errors=True)
    for tmp, _path in staged:
        _remove_quietly(tmp)


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)


class IncompleteResult(OutputError):
    """There is no complete result at an output location; the message says why."""
