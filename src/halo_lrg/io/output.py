"""Writing a run's result: ``<output>/lrg_counts_per_brick/part-00000.csv``,
``<output>/manifest.json`` and the ``_SUCCESS`` marker.

The CSV is built on the driver from the aggregated counts (at most 662,174 bricks, ~10 MB)
and written in one piece, so it is either whole or absent. Publishing removes ``_SUCCESS``
first and writes it last, after the manifest (which carries the CSV's SHA-256): a reader that
finds ``_SUCCESS`` has a CSV and manifest from the same run (:func:`check_complete`). A failed
run never touches the previous result: it writes ``_last_failure.json`` beside it.

``_partials/<key>.json`` holds one counted file's per-brick partial each, written by its task
as the file completes (:func:`partial_bytes`: the same record gives the same bytes, so a
retried or speculative task rewrites the same file; locally through a temp name and a rename,
on S3 in one PUT). Runs resume from them; nothing ever deletes them.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any, Callable

import pandas as pd

from halo_lrg.config import Config
from halo_lrg.io.uri import S3_SCHEMES, local_path, scheme_of, split_s3_uri

COUNTS_DIR = "lrg_counts_per_brick"
COUNTS_FILE = "part-00000.csv"
MANIFEST_FILE = "manifest.json"
COUNTS_HEADER = ("brickname", "lrg_count")
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
    """``brickname,lrg_count`` rows sorted by brickname; the same bytes for the same counts."""
    ordered = counts.sort_values("brickname", kind="mergesort")
    lines = [",".join(COUNTS_HEADER)]
    lines += [f"{name},{int(n)}" for name, n in zip(ordered["brickname"], ordered["lrg_count"])]
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

    def replace_counts(self, csv: bytes) -> None:
        """Atomically swap in a new ``lrg_counts_per_brick/`` holding exactly one CSV."""
        os.makedirs(self.root, exist_ok=True)
        final = os.path.join(self.root, COUNTS_DIR)
        staging = tempfile.mkdtemp(prefix=f".{COUNTS_DIR}.", dir=self.root)
        with open(os.path.join(staging, COUNTS_FILE), "wb") as fh:
            fh.write(csv)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(staging, 0o755)
        retired = None
        if os.path.exists(final):
            retired = tempfile.mkdtemp(prefix=f".{COUNTS_DIR}.old.", dir=self.root)
            os.rmdir(retired)
            os.rename(final, retired)
        os.rename(staging, final)
        if retired:
            shutil.rmtree(retired, ignore_errors=True)

    def remove_counts(self) -> None:
        shutil.rmtree(os.path.join(self.root, COUNTS_DIR), ignore_errors=True)

    def write_file(self, name: str, data: bytes) -> None:
        """Replace ``<output>/<name>`` (``name`` may have a directory: ``_partials/k.json``)
        atomically: written under a temp name beside it, synced, then renamed over it."""
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
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise

    def list_names(self, directory: str) -> list[str]:
        """Names of the files in ``<output>/<directory>`` (not temp files), sorted; empty
        when it does not exist."""
        try:
            names = os.listdir(os.path.join(self.root, *directory.split("/")))
        except FileNotFoundError:
            return []
        return sorted(n for n in names if not n.startswith("."))

    def remove_file(self, name: str) -> None:
        path = os.path.join(self.root, name)
        if os.path.exists(path):
            os.remove(path)

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        self.write_file(MANIFEST_FILE, manifest_bytes(manifest))

    def check_writable(self) -> None:
        """Write and delete a marker: an unwritable output fails before any file is read,
        not after hours of counting."""
        if os.path.exists(self.root) and not os.path.isdir(self.root):
            raise OutputError(f"{self.uri}: exists and is not a directory")
        try:
            os.makedirs(self.root, exist_ok=True)
            self.write_file(WRITE_CHECK_FILE, b"")
            self.remove_file(WRITE_CHECK_FILE)
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
        from halo_lrg.io import s3 as s3_source

        prefix = join_uri(self.uri, COUNTS_DIR) + "/"
        remote = self.config.remote
        self._do(lambda: s3_source.delete_prefix(prefix, remote), prefix)
        self._do(lambda: s3_source.put_bytes(self.counts_uri, csv, remote, "text/csv"),
                 self.counts_uri)

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
    import hashlib

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


class IncompleteResult(OutputError):
    """There is no complete result at an output location; the message says why."""
