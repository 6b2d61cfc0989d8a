"""Writing a run's result: ``<output>/lrg_counts_per_brick/part-00000.csv`` and
``<output>/manifest.json``.

The CSV is built on the driver from the aggregated counts (at most 662,174 bricks, ~10 MB)
and written in one piece, so it is either whole or absent: a rerun replaces it, a failed run
removes the stale one and leaves a manifest that says what went wrong.
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


def counts_csv_bytes(counts: pd.DataFrame) -> bytes:
    """``brickname,lrg_count`` rows sorted by brickname; the same bytes for the same counts."""
    ordered = counts.sort_values("brickname", kind="mergesort")
    lines = [",".join(COUNTS_HEADER)]
    lines += [f"{name},{int(n)}" for name, n in zip(ordered["brickname"], ordered["lrg_count"])]
    return ("\n".join(lines) + "\n").encode("ascii")


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=2, sort_keys=False) + "\n").encode("utf-8")


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
        """Replace ``<output>/<name>`` atomically (write aside, then rename)."""
        os.makedirs(self.root, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=self.root)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, os.path.join(self.root, name))

    def remove_file(self, name: str) -> None:
        path = os.path.join(self.root, name)
        if os.path.exists(path):
            os.remove(path)

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        self.write_file(MANIFEST_FILE, manifest_bytes(manifest))


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
