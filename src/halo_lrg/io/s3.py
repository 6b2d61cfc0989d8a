"""S3 (and S3-compatible stores) through boto3: credentials from the standard chain, region and
endpoint from config or the AWS environment, concurrent ranged GETs for downloads.

:class:`PinnedObject` is an object pinned to the ETag of one HEAD, read by ranged GETs with
``IfMatch``: the whole object (:func:`fetch_parts`, :func:`download`) or any byte range of it
(``PinnedObject(uri, remote).fetch(dest, first, last, progress)``: a task reading a part of a
file's rows), through the one ranged-download engine (:mod:`halo_lrg.io.ranged`)."""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any, Callable, Optional

from halo_lrg.config import RemoteConfig
from halo_lrg.io.ranged import (
    Part,
    PinnedSource,
    Writer,
    pwrite_all,  # noqa: F401 - still importable from here, where it was first defined
    split_parts,
)
from halo_lrg.io.retry import TransientError, with_retries
from halo_lrg.io.uri import S3URIError, split_s3_uri

PERMANENT_CODES = {"NoSuchKey", "NoSuchBucket", "AccessDenied", "AllAccessDisabled",
                   "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "404",
                   "InvalidBucketName", "ExpiredToken", "InvalidObjectState"}


class S3Error(Exception):
    """A permanent S3 failure (missing key, no access, bad credentials). Its message is the
    cause; callers name the URI."""


class ObjectChangedError(S3Error):
    """The object was replaced while its parts were being fetched: what is on disk would mix
    two versions, so nothing is kept. Not retried here: the caller decides to start over."""

    def __init__(self, etag: str) -> None:
        super().__init__(f"the object changed during download (ETag was {etag}); "
                         "nothing was kept")
        self.etag = etag


def endpoint_url(remote: RemoteConfig, env: Optional[dict] = None) -> Optional[str]:
    """The endpoint as the AWS SDKs resolve it: config, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL."""
    env = os.environ if env is None else env
    return (remote.s3_endpoint_url or env.get("AWS_ENDPOINT_URL_S3")
            or env.get("AWS_ENDPOINT_URL") or None)


_CLIENTS: dict[tuple, Any] = {}


def client(remote: RemoteConfig) -> Any:
    """A cached boto3 S3 client for these settings (one per process: executors reuse it)."""
    key = (remote.profile, remote.region, endpoint_url(remote), remote.connect_timeout_seconds,
           remote.read_timeout_seconds, remote.max_attempts)
    if key not in _CLIENTS:
        import boto3
        from botocore.config import Config as BotoConfig

        session = boto3.session.Session(profile_name=remote.profile or None)
        _CLIENTS[key] = session.client(
            "s3", region_name=remote.region or None, endpoint_url=endpoint_url(remote),
            config=BotoConfig(connect_timeout=remote.connect_timeout_seconds,
                              read_timeout=remote.read_timeout_seconds,
                              # our own retry loop wraps whole operations; botocore's
                              # standard mode retries throttling inside each call.
                              retries={"max_attempts": 2, "mode": "standard"},
                              max_pool_connections=max(10, remote.s3_max_concurrency)))
    return _CLIENTS[key]


def _classify(exc: BaseException, uri: str) -> BaseException:
    """Map boto/botocore errors to S3Error (permanent) or TransientError."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        NoCredentialsError,
        PartialCredentialsError,
        ProfileNotFound,
    )

    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return S3Error("no AWS credentials found (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                       "AWS_PROFILE, or run where an instance role is available)")
    if isinstance(exc, ProfileNotFound):
        return S3Error(str(exc))
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = f"{code or status}: {error.get('Message') or 'request failed'}"
        if code in PERMANENT_CODES or (status is not None and 400 <= status < 500
                                       and status not in (408, 429)):
            return S3Error(message)
        return TransientError(message)
    if isinstance(exc, BotoCoreError):
        return TransientError(f"{type(exc).__name__}: {exc}")
    return exc


def _call(uri: str, remote: RemoteConfig, operation: Any, what: str = "") -> Any:
    def attempt() -> Any:
        try:
            return operation()
        except Exception as exc:
            mapped = _classify(exc, uri)
            if mapped is exc:
                raise
            raise mapped from None

    return with_retries(attempt, remote, what or uri)


def _object(uri: str) -> tuple[str, str]:
    """(bucket, key) of a URI naming one object; S3Error (never retried) if it names none."""
    try:
        return split_s3_uri(uri, require_key=True)
    except S3URIError as exc:
        raise S3Error(exc.cause) from None


def _head(uri: str, remote: RemoteConfig, s3: Optional[Any] = None) -> dict:
    bucket, key = _object(uri)
    return _call(uri, remote, lambda: (s3 or client(remote)).head_object(Bucket=bucket, Key=key))


def head(uri: str, remote: RemoteConfig) -> dict:
    return _head(uri, remote)


def download(uri: str, dest: str, remote: RemoteConfig, *, s3: Optional[Any] = None,
             hasher: Optional[Any] = None) -> int:
    """Download to ``dest`` with concurrent ranged GETs pinned to the object's ETag (see
    :func:`fetch_parts`); verify the size and, for a single-part upload, the MD5 ETag.
    ``dest`` is removed on failure. ``s3`` replaces the cached client (tests); ``hasher``:
    see :func:`fetch_parts`."""

    class Final(Exception):  # a part already spent its retries: don't retry the whole
        def __init__(self, error: BaseException) -> None:
            super().__init__(str(error))
            self.error = error

    def fetch() -> int:
        try:
            size, etag = fetch_parts(uri, dest, remote, lambda _n: None, s3=s3,
                                     hasher=hasher)
        except TransientError as exc:
            raise Final(exc) from None
        etag = etag.strip('"')
        if remote.verify_etag and etag and "-" not in etag:
            digest = hashlib.md5(usedforsecurity=False)
            with open(dest, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 22), b""):
                    digest.update(block)
            if digest.hexdigest() != etag:
                raise TransientError("downloaded bytes do not match the object's ETag")
        return size

    try:
        try:
            return with_retries(fetch, remote, uri)
        except Final as wrapped:
            raise wrapped.error from None
    except BaseException:
        if os.path.exists(dest):
            os.remove(dest)
        raise


def read_bytes(uri: str, remote: RemoteConfig) -> bytes:
    bucket, key = _object(uri)
    return _call(uri, remote,
                 lambda: client(remote).get_object(Bucket=bucket, Key=key)["Body"].read())


def put_bytes(uri: str, data: bytes, remote: RemoteConfig, content_type: str = "") -> None:
    bucket, key = _object(uri)
    extra = {"ContentType": content_type} if content_type else {}
    _call(uri, remote, lambda: client(remote).put_object(Bucket=bucket, Key=key, Body=data,
                                                         **extra))


def delete_prefix(uri: str, remote: RemoteConfig) -> int:
    """Delete every object under ``uri`` (a prefix); returns how many."""
    bucket, prefix = split_s3_uri(uri)
    s3 = client(remote)
    deleted = 0
    for page in _call(uri, remote, lambda: list(s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix))):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            _call(uri, remote, lambda k=keys: s3.delete_objects(Bucket=bucket,
                                                                Delete={"Objects": k}))
            deleted += len(keys)
    return deleted


def delete(uri: str, remote: RemoteConfig) -> None:
    bucket, key = _object(uri)
    _call(uri, remote, lambda: client(remote).delete_object(Bucket=bucket, Key=key))


# --- ranged, concurrent, ETag-pinned downloads --------------------------------------------------

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)$")


def _precondition_failed(exc: BaseException) -> bool:
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return False
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in ("PreconditionFailed", "412") or status == 412


class PinnedObject(PinnedSource):
    """An S3 object pinned to the ETag of one HEAD, read by ranged GETs
    (:class:`halo_lrg.io.ranged.PinnedSource`): ``s3`` (a client) replaces the cached one
    (tests).

    Every GET carries ``IfMatch`` on that ETag, so an object replaced since answers 412:
    :class:`ObjectChangedError` (also raised if a store that ignores If-Match returns another
    ETag or total size). Parts are ``remote.s3_part_bytes``, ``remote.s3_max_concurrency`` at a
    time; a failed part is fetched again whole."""

    def __init__(self, uri: str, remote: RemoteConfig, s3: Optional[Any] = None) -> None:
        super().__init__()
        self.uri, self.remote, self._s3 = uri, remote, s3
        self.bucket, self.key = _object(uri)
        meta = _head(uri, remote, s3)
        self.size = int(meta["ContentLength"])
        self.etag = str(meta.get("ETag") or "")
        modified = meta.get("LastModified")  # as io.fetch.file_identity spells it
        self.modified = modified.isoformat() if modified is not None else ""
        self.concurrency = remote.s3_max_concurrency

    def plan(self, first: int, last: int) -> list[Part]:
        return split_parts(last - first + 1, self.remote.s3_part_bytes, origin=first)

    def get(self, first: int, last: int, sink: Callable[[Any], None]) -> None:
        bare_etag = self.etag.strip('"')
        pinned = {"IfMatch": self.etag} if self.etag else {}
        try:
            try:
                response = (self._s3 or client(self.remote)).get_object(
                    Bucket=self.bucket, Key=self.key, Range=f"bytes={first}-{last}", **pinned)
            except Exception as exc:
                if self.etag and _precondition_failed(exc):
                    raise ObjectChangedError(bare_etag) from None
                raise
            got = str(response.get("ETag") or "").strip('"')
            if bare_etag and got and got != bare_etag:  # a store that ignored If-Match
                raise ObjectChangedError(bare_etag)
            content_range = response.get("ContentRange")
            if content_range:
                match = _CONTENT_RANGE.match(str(content_range).strip())
                if match and match.group(3) not in ("*", str(self.size)):
                    raise ObjectChangedError(bare_etag or "unknown")
                if not match or (int(match.group(1)), int(match.group(2))) != (first, last):
                    raise TransientError(f"asked for bytes {first}-{last}, got "
                                         f"Content-Range {content_range!r}")
            sink(response["Body"].read())  # a short body: the engine's "short part"
        except Exception as exc:
            mapped = _classify(exc, self.uri)
            if mapped is exc:
                raise
            raise mapped from None


def fetch_parts(uri: str, dest: str, remote: RemoteConfig, progress: Callable[[int], None], *,
                s3: Optional[Any] = None, write: Writer = os.pwrite,
                hasher: Optional[Any] = None) -> tuple[int, str]:
    """What :func:`download_parts_in_order` does, returning ``(size, etag)``; ``s3`` (a client)
    and ``write`` (an ``os.pwrite``) are seams for tests.

    One HEAD gives the size and ETag; every part (``remote.s3_part_bytes``,
    ``remote.s3_max_concurrency`` at a time) is a ranged GET with ``IfMatch`` on that ETag
    (:class:`PinnedObject`), so an object replaced mid-download answers 412 and the download
    stops with :class:`ObjectChangedError`. The parts, writes, progress, hashing and
    stop-on-failure are :func:`halo_lrg.io.ranged.fetch_ranges`'s: each part must return
    exactly its range and every byte of it must be written before it counts (a failed part is
    fetched again whole); ``progress(n)`` hears the contiguous prefix of finished parts,
    ``progress(size)`` only once every part is whole; ``hasher`` (``reset()``,
    ``update(bytes)``, e.g. :class:`halo_lrg.io.fetch.InputHash`) hears the file's bytes in
    order, all of them before ``progress(size)``. On any failure the other parts stop and
    ``dest`` is removed.
    """
    source = PinnedObject(uri, remote, s3)
    source.fetch(dest, 0, source.size - 1, progress, hasher=hasher, write=write)
    return source.size, source.etag


def download_parts_in_order(uri: str, dest: str, remote: RemoteConfig,
                            progress: Any, hasher: Optional[Any] = None) -> int:
    """Download with concurrent ranged GETs written at their offsets, reporting the length
    of the contiguous prefix on disk as parts complete (``progress(n)``), so a reader can
    follow the file from its start while later parts are still in flight. Every part is
    pinned to the ETag of one HEAD (:func:`fetch_parts`); ``dest`` is removed on failure.
    ``hasher``: see :func:`fetch_parts`."""
    return fetch_parts(uri, dest, remote, progress, hasher=hasher)[0]
