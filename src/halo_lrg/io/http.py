"""HTTP(S) downloads that survive what networks do (stdlib only: nothing to bootstrap).

5xx, 429 (honouring Retry-After), resets, time-outs and bodies shorter than their
Content-Length are retried; 4xx are not. A download is accepted only when the bytes on disk
equal the Content-Length, so a truncated body is never read as a sweep.
"""

from __future__ import annotations

import http.client
import os
import socket
import urllib.error
import urllib.request
from typing import Any, Callable, Optional

from halo_lrg import __version__
from halo_lrg.config import RemoteConfig
from halo_lrg.io.retry import TransientError, with_retries

USER_AGENT = f"halo-lrg/{__version__}"
NETWORK_ERRORS = (ConnectionError, socket.timeout, TimeoutError, http.client.HTTPException)


class PermanentHTTPError(Exception):
    def __init__(self, url: str, status: int, reason: str) -> None:
        hint = {403: " (forbidden)", 404: " (no such file on the server)",
                401: " (authentication required)"}.get(status, "")
        super().__init__(f"HTTP {status} {reason}{hint}")
        self.url, self.status = url, status


def _open(url: str, remote: RemoteConfig, method: str = "GET") -> http.client.HTTPResponse:
    request = urllib.request.Request(url, method=method, headers={"User-Agent": USER_AGENT})
    try:
        # One timeout for connect and each read: urllib has no separate connect timeout.
        return urllib.request.urlopen(request, timeout=max(remote.connect_timeout_seconds,
                                                           remote.read_timeout_seconds))
    except urllib.error.HTTPError as exc:
        status = exc.code
        retry_after = exc.headers.get("Retry-After") if exc.headers else None
        exc.close()
        if status == 429 or status >= 500:
            try:
                wait = float(retry_after) if retry_after else None
            except ValueError:
                wait = None
            raise TransientError(f"HTTP {status} {exc.reason}", retry_after=wait) from None
        raise PermanentHTTPError(url, status, str(exc.reason)) from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, socket.gaierror):
            raise PermanentHTTPError(url, 0, f"unknown host ({reason})") from None
        raise TransientError(f"connection failed ({reason})") from None
    except NETWORK_ERRORS as exc:
        raise TransientError(f"connection failed ({type(exc).__name__}: {exc})") from None


def download(url: str, dest: str, remote: RemoteConfig,
             on_retry: Optional[Callable[[str], None]] = None,
             progress: Optional[Callable[[int], None]] = None,
             hasher: Optional[Any] = None) -> int:
    """Stream ``url`` to ``dest``; return its size. Raises PermanentHTTPError or (after the
    last attempt) TransientError. ``progress(n)`` hears the bytes on disk so far (0 when an
    attempt starts over), for a reader following the file as it grows. ``hasher`` (an object
    with ``reset()`` and ``update(bytes)``, e.g. :class:`halo_lrg.io.fetch.InputHash`) hears
    every byte as it arrives, and a reset when an attempt starts over."""
    def attempt() -> int:
        response = _open(url, remote)
        expected = response.headers.get("Content-Length")
        written = 0
        if hasher is not None:
            hasher.reset()
        try:
            with response, open(dest, "wb") as out:
                if progress is not None:
                    progress(0)
                while True:
                    block = response.read(remote.download_chunk_bytes)
                    if not block:
                        break
                    if hasher is not None:
                        hasher.update(block)
                    out.write(block)
                    written += len(block)
                    if progress is not None:
                        out.flush()  # readers use pread on another descriptor
                        progress(written)
        except NETWORK_ERRORS as exc:
            raise TransientError(f"connection lost after {written:,} bytes "
                                 f"({type(exc).__name__})") from None
        if expected is not None and written != int(expected):
            raise TransientError(f"short body: {written:,} of {int(expected):,} bytes")
        return written

    try:
        return with_retries(attempt, remote, url, on_retry)
    except BaseException:
        if os.path.exists(dest):
            os.remove(dest)
        raise


def read_bytes(url: str, remote: RemoteConfig) -> bytes:
    def attempt() -> bytes:
        response = _open(url, remote)
        expected = response.headers.get("Content-Length")
        try:
            with response:
                body = response.read()
        except NETWORK_ERRORS as exc:
            raise TransientError(f"connection lost ({type(exc).__name__})") from None
        if expected is not None and len(body) != int(expected):
            raise TransientError(f"short body: {len(body):,} of {int(expected):,} bytes")
        return body

    return with_retries(attempt, remote, url)


def head(url: str, remote: RemoteConfig) -> dict[str, str]:
    """The validators of a HEAD request: ``content-length``, ``etag`` and ``last-modified``
    (lower-case keys; those the server sends)."""
    def attempt() -> dict[str, str]:
        with _open(url, remote, method="HEAD") as response:
            return {name: str(response.headers[name]).strip()
                    for name in ("content-length", "etag", "last-modified")
                    if response.headers.get(name) is not None}

    return with_retries(attempt, remote, url)


def content_length(url: str, remote: RemoteConfig) -> Optional[int]:
    """Size from a HEAD request, or None when the server doesn't say."""
    value = head(url, remote).get("content-length")
    return int(value) if value is not None else None
