"""One parser for every location halo-lrg reads or writes: local paths, ``file://``,
``s3://`` (and ``s3a://``/``s3n://``), ``http(s)://``."""

from __future__ import annotations

import os
from collections.abc import Iterable
from urllib.parse import unquote, urlparse

REMOTE_SCHEMES = ("s3", "s3a", "s3n", "http", "https")
S3_SCHEMES = ("s3", "s3a", "s3n")


def scheme_of(uri: str) -> str:
    """``'file'`` for local paths and file:// URIs, else the URI's scheme."""
    parsed = urlparse(uri)
    if len(parsed.scheme) <= 1:  # '' or a Windows drive letter
        return "file"
    return parsed.scheme.lower()


def is_s3(uri: str) -> bool:
    return scheme_of(uri) in S3_SCHEMES


def http_hosts(uris: Iterable[str]) -> list[str]:
    """The hosts of the http(s) URIs among ``uris``, sorted, once each."""
    return sorted({urlparse(uri).hostname or "" for uri in uris
                   if scheme_of(uri) in ("http", "https")})


def local_path(uri: str) -> str:
    """The filesystem path of a local path or ``file://`` URI."""
    if scheme_of(uri) != "file":
        raise ValueError(f"{uri}: not a local path")
    if uri.startswith("file:"):
        return unquote(urlparse(uri).path)
    return os.path.expanduser(uri)


class S3URIError(ValueError):
    """A malformed S3 URI: ``str(err)`` is ``"<uri>: <cause>"``; ``cause`` alone for callers
    that name the URI themselves."""

    def __init__(self, uri: str, cause: str) -> None:
        super().__init__(f"{uri}: {cause}")
        self.uri, self.cause = uri, cause


def split_s3_uri(uri: str, require_key: bool = False) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key); a clear ValueError (:class:`S3URIError`) for
    anything else. ``require_key`` refuses a bare bucket (``s3://bucket``, ``s3://bucket/``),
    for operations on one object."""
    parsed = urlparse(uri)
    if parsed.scheme not in S3_SCHEMES or not parsed.netloc:
        raise S3URIError(uri, "not an S3 URI (expected s3://bucket/key)")
    if len(parsed.netloc) < 3:
        raise S3URIError(uri, "bucket names have at least 3 characters")
    key = parsed.path.lstrip("/")
    if require_key and not key:
        raise S3URIError(uri, "no object key")
    return parsed.netloc, key
