"""Where sweep files and indexes come from: local paths, ``file://``, ``s3://``, ``http(s)://``.

Every input goes through :func:`local_copy` (a local path for the duration of a ``with``
block: remote files are downloaded to a private temp directory, verified, and deleted when
the block ends, even when reading fails) or :func:`read_text`, so the pipeline never cares
where bytes live. Errors are :class:`SourceError` naming the URI, never a temp path.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Optional
from urllib.parse import urlparse

from halo_lrg.config import Config
from halo_lrg.io.retry import TransientError
from halo_lrg.io.uri import (
    REMOTE_SCHEMES,
    is_s3,
    local_path,
    scheme_of,
    split_s3_uri,
)
from halo_lrg.io.workdir import task_workdir

TEMP_PREFIX = "halo-lrg-"


class SourceError(Exception):
    """An input cannot be fetched. ``str(err)`` names the URI and the cause."""

    def __init__(self, uri: str, cause: str, transient: bool = False) -> None:
        super().__init__(f"{uri}: {cause}")
        self.uri = uri
        self.cause = cause
        self.transient = transient


def check_uri(uri: str) -> None:
    """Refuse a URI no source can read, before any work starts."""
    scheme = scheme_of(uri)
    if scheme != "file" and scheme not in REMOTE_SCHEMES:
        raise SourceError(uri, f"unsupported URI scheme {scheme!r} "
                               "(use a path, file://, s3:// or http(s)://)")
    if is_s3(uri):
        try:
            split_s3_uri(uri)
        except ValueError as exc:
            raise SourceError(uri, str(exc).split(": ", 1)[-1]) from None


@contextmanager
def _translated(uri: str) -> Iterator[None]:
    """Turn every fetch failure into a SourceError naming the URI."""
    from halo_lrg.io.http import PermanentHTTPError
    from halo_lrg.io.s3 import S3Error

    try:
        yield
    except TransientError as exc:
        raise SourceError(uri, str(exc), transient=True) from None
    except (PermanentHTTPError, S3Error) as exc:
        raise SourceError(uri, str(exc)) from None
    except OSError as exc:  # local disk full, temp dir missing...
        raise SourceError(uri, f"cannot store the download ({exc})") from None


def _download(uri: str, dest: str, config: Config) -> None:
    from halo_lrg.io import http as http_source
    from halo_lrg.io import s3 as s3_source

    with _translated(uri):
        if is_s3(uri):
            s3_source.download(uri, dest, config.remote)
        else:
            http_source.download(uri, dest, config.remote)


@contextmanager
def local_copy(uri: str, config: Config) -> Iterator[str]:
    """A local path holding ``uri``'s bytes for the duration of the ``with`` block."""
    check_uri(uri)
    if scheme_of(uri) == "file":
        path = local_path(uri)
        if not os.path.exists(path):
            raise SourceError(uri, "no such file")
        yield path
        return
    with task_workdir(config.remote.tmp_dir) as workdir:
        dest = os.path.join(workdir, download_name(uri))
        _download(uri, dest, config)
        yield dest


def download_name(uri: str) -> str:
    """The file name a download is staged under (the URI's last path segment)."""
    return os.path.basename(urlparse(uri).path) or "download"


def read_bytes(uri: str, config: Config) -> bytes:
    check_uri(uri)
    scheme = scheme_of(uri)
    if scheme == "file":
        try:
            with open(local_path(uri), "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            raise SourceError(uri, "no such file") from None
        except OSError as exc:
            raise SourceError(uri, f"cannot read ({exc.strerror or exc})") from None
    from halo_lrg.io import http as http_source
    from halo_lrg.io import s3 as s3_source

    with _translated(uri):
        if is_s3(uri):
            return s3_source.read_bytes(uri, config.remote)
        return http_source.read_bytes(uri, config.remote)


def read_text(uri: str, config: Config) -> str:
    """The whole text of a small file (an index, a directory listing)."""
    data = read_bytes(uri, config)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SourceError(uri, "not UTF-8 text") from None


def write_bytes(uri: str, data: bytes, config: Config) -> None:
    """Write a small file (an index) to a local path or S3."""
    check_uri(uri)
    if is_s3(uri):
        from halo_lrg.io import s3 as s3_source

        with _translated(uri):
            s3_source.put_bytes(uri, data, config.remote)
        return
    if scheme_of(uri) != "file":
        raise SourceError(uri, "can only write to a local path or s3://")
    path = local_path(uri)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)


def file_size(uri: str, config: Config) -> Optional[int]:
    """Size in bytes if it can be known (stat, HEAD), else None: never raises."""
    try:
        if scheme_of(uri) == "file":
            return os.path.getsize(local_path(uri))
        from halo_lrg.io import http as http_source
        from halo_lrg.io import s3 as s3_source

        if is_s3(uri):
            return int(s3_source.head(uri, config.remote)["ContentLength"])
        if scheme_of(uri) in ("http", "https"):
            return http_source.content_length(uri, config.remote)
    except Exception:  # a missing file is reported by its task, with the reason
        return None
    return None


def file_sizes(uris: Sequence[str], config: Config) -> list[Optional[int]]:
    """Sizes of many inputs, remote ones looked up concurrently."""
    if all(scheme_of(u) == "file" for u in uris):
        return [file_size(u, config) for u in uris]
    with ThreadPoolExecutor(max_workers=max(1, config.remote.head_concurrency)) as pool:
        return list(pool.map(lambda u: file_size(u, config), uris))


def with_resolved_endpoint(config: Config) -> Config:
    """The config with the S3 endpoint made explicit, for tasks in other processes whose
    environment may differ from the driver's (AWS_ENDPOINT_URL[_S3] honoured as the SDKs
    do)."""
    from halo_lrg.io.s3 import endpoint_url

    endpoint = endpoint_url(config.remote)
    if endpoint and endpoint != config.remote.s3_endpoint_url:
        return config.replace(remote={"s3_endpoint_url": endpoint})
    return config
