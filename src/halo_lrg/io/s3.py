"""S3 (and S3-compatible stores) through boto3: credentials from the standard chain, region and
endpoint from config or the AWS environment, concurrent ranged GETs for downloads."""

from __future__ import annotations

import hashlib
import os
from typing import Any, Optional

from halo_lrg.config import RemoteConfig
from halo_lrg.io.retry import TransientError, with_retries
from halo_lrg.io.uri import split_s3_uri

PERMANENT_CODES = {"NoSuchKey", "NoSuchBucket", "AccessDenied", "AllAccessDisabled",
                   "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "404",
                   "InvalidBucketName", "ExpiredToken", "InvalidObjectState"}


class S3Error(Exception):
    """A permanent S3 failure (missing key, no access, bad credentials)."""


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


def _call(uri: str, remote: RemoteConfig, operation: Any) -> Any:
    def attempt() -> Any:
        try:
            return operation()
        except Exception as exc:
            mapped = _classify(exc, uri)
            if mapped is exc:
                raise
            raise mapped from None

    return with_retries(attempt, remote, uri)


def head(uri: str, remote: RemoteConfig) -> dict:
    bucket, key = split_s3_uri(uri)
    return _call(uri, remote, lambda: client(remote).head_object(Bucket=bucket, Key=key))


def download(uri: str, dest: str, remote: RemoteConfig) -> int:
    """Download to ``dest`` with concurrent ranged GETs; verify size (and single-part ETag)."""
    from boto3.s3.transfer import TransferConfig

    bucket, key = split_s3_uri(uri)
    meta = head(uri, remote)
    expected = int(meta["ContentLength"])
    transfer = TransferConfig(multipart_threshold=remote.s3_part_bytes,
                              multipart_chunksize=remote.s3_part_bytes,
                              max_concurrency=remote.s3_max_concurrency, use_threads=True)

    def fetch() -> int:
        client(remote).download_file(bucket, key, dest, Config=transfer)
        size = os.path.getsize(dest)
        if size != expected:
            raise TransientError(f"short download: {size:,} of {expected:,} bytes")
        etag = str(meta.get("ETag", "")).strip('"')
        if remote.verify_etag and etag and "-" not in etag:
            digest = hashlib.md5(usedforsecurity=False)
            with open(dest, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 22), b""):
                    digest.update(block)
            if digest.hexdigest() != etag:
                raise TransientError("downloaded bytes do not match the object's ETag")
        return size

    try:
        return _call(uri, remote, fetch)
    except BaseException:
        if os.path.exists(dest):
            os.remove(dest)
        raise


def read_bytes(uri: str, remote: RemoteConfig) -> bytes:
    bucket, key = split_s3_uri(uri)
    return _call(uri, remote,
                 lambda: client(remote).get_object(Bucket=bucket, Key=key)["Body"].read())


def put_bytes(uri: str, data: bytes, remote: RemoteConfig, content_type: str = "") -> None:
    bucket, key = split_s3_uri(uri)
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
    bucket, key = split_s3_uri(uri)
    _call(uri, remote, lambda: client(remote).delete_object(Bucket=bucket, Key=key))


def download_parts_in_order(uri: str, dest: str, remote: RemoteConfig,
                            progress: Any) -> int:
    """Download with concurrent ranged GETs written at their offsets, reporting the length
    of the contiguous prefix on disk as parts complete (``progress(n)``), so a reader can
    follow the file from its start while later parts are still in flight."""
    from concurrent.futures import ThreadPoolExecutor

    bucket, key = split_s3_uri(uri)
    size = int(head(uri, remote)["ContentLength"])
    part = max(1, remote.s3_part_bytes)
    starts = list(range(0, size, part))
    done = [False] * len(starts)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.ftruncate(fd, size)

        def fetch(index: int) -> int:
            first = starts[index]
            last = min(first + part, size) - 1

            def get() -> bytes:
                body = client(remote).get_object(Bucket=bucket, Key=key,
                                                 Range=f"bytes={first}-{last}")["Body"].read()
                if len(body) != last - first + 1:
                    raise TransientError(f"short part: {len(body):,} of "
                                         f"{last - first + 1:,} bytes at {first:,}")
                return body

            os.pwrite(fd, _call(uri, remote, get), first)
            return index

        with ThreadPoolExecutor(max_workers=max(1, remote.s3_max_concurrency)) as pool:
            # Submitted in order: the earliest parts finish first, so the prefix grows steadily.
            prefix = 0
            for index in pool.map(fetch, range(len(starts))):
                done[index] = True
                while prefix < len(starts) and done[prefix]:
                    prefix += 1
                progress(size if prefix == len(starts) else starts[prefix])
    finally:
        os.close(fd)
    if size == 0:
        progress(0)
    return size
