"""HTTP(S) downloads that survive what networks do (stdlib only: nothing to bootstrap).

5xx, 429 (honouring Retry-After), resets, time-outs and bodies shorter than their
Content-Length are retried; 4xx are not. A download is accepted only when the bytes on disk
equal the file's size, so a truncated body is never read as a sweep.

One TCP stream across a continent is slow, and a broken 1.9 GB transfer should not start
over from byte 0. :func:`download`'s first request asks for the first part
(``Range: bytes=0-<remote.http_part_bytes - 1>``):

* answered 206 with a validator (a strong ETag, else Last-Modified), the file is fetched
  through :func:`halo_lrg.io.ranged.fetch_ranges`, the one ranged-download engine:
  ``remote.http_parts`` concurrent ranged GETs (that first answer is the first part), each
  pinned with ``If-Range`` and checked against its ``Content-Range``, a dropped part asked
  again from where it stopped. A file changed on the server (a 200 to a pinned request, or
  another total size, ETag or Last-Modified) is refused with :class:`FileChangedError`,
  nothing kept;
* answered 200 (no ranges offered), the body is the file, read as one stream; a stream that
  drops resumes with ``Range: bytes=<N>-`` (+ ``If-Range``) when the server says
  ``Accept-Ranges: bytes``, else starts over (``progress(0)``, the hasher reset), and a start
  over that brings another version of the file is refused too;
* answered 416 (Range Not Satisfiable): the file is empty, a clear error.

:func:`open_pinned` is that first request on its own, with a first range of the caller's
choosing: a :class:`PinnedFile` (the ranged case: any byte range of the file can then be read
into memory or fetched into a file, pinned to the version the first answer showed) or a
:class:`WholeStream` (no ranges: the file can only be read whole). A task reading a part of a
file's rows asks a header's worth first, then only its rows' bytes.

Every connection a download opens holds one of ``remote.max_connections_per_host`` slots
shared by every process of the node (:class:`ConnectionSlots`) for as long as it is open.
"""

from __future__ import annotations

import fcntl
import http.client
import logging
import os
import random
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union
from urllib.parse import urlsplit

from halo_lrg import __version__
from halo_lrg.config import RemoteConfig
from halo_lrg.io.ranged import Part, PinnedSource, Stopped, balanced_parts, pwrite_all
from halo_lrg.io.retry import TransientError, with_retries
from halo_lrg.io.workdir import staging_roots

USER_AGENT = f"halo-lrg/{__version__}"
NETWORK_ERRORS = (ConnectionError, socket.timeout, TimeoutError, http.client.HTTPException)
LOG = logging.getLogger("halo_lrg.io.http")


class PermanentHTTPError(Exception):
    def __init__(self, url: str, status: int, reason: str, detail: str = "") -> None:
        hint = {403: " (forbidden)", 404: " (no such file on the server)",
                401: " (authentication required)"}.get(status, "")
        super().__init__(f"HTTP {status} {reason}{hint}" + (f": {detail}" if detail else ""))
        self.url, self.status = url, status


class FileChangedError(PermanentHTTPError):
    """The file was replaced on the server while it was being fetched: what is on disk would
    mix two versions, so nothing is kept. Not retried. Callers name the URL (``.url``)."""

    def __init__(self, url: str, status: int, why: str) -> None:
        Exception.__init__(self, f"the file changed on the server during download ({why}); "
                                 "nothing was kept")
        self.url, self.status = url, status


class RangeNotSatisfiable(PermanentHTTPError):
    """HTTP 416; ``total`` is the size the server gave in ``Content-Range: bytes */N``."""

    def __init__(self, url: str, total: Optional[int]) -> None:
        super().__init__(url, 416, "Range Not Satisfiable")
        self.total = total


def _open(url: str, remote: RemoteConfig, method: str = "GET",
          headers: Optional[dict[str, str]] = None) -> http.client.HTTPResponse:
    request = urllib.request.Request(url, method=method,
                                     headers={"User-Agent": USER_AGENT, **(headers or {})})
    try:
        # One timeout for connect and each read: urllib has no separate connect timeout.
        return urllib.request.urlopen(request, timeout=max(remote.connect_timeout_seconds,
                                                           remote.read_timeout_seconds))
    except urllib.error.HTTPError as exc:
        status = exc.code
        retry_after = exc.headers.get("Retry-After") if exc.headers else None
        content_range = exc.headers.get("Content-Range") if exc.headers else None
        exc.close()
        if status == 429 or status >= 500:
            try:
                wait = float(retry_after) if retry_after else None
            except ValueError:
                wait = None
            raise TransientError(f"HTTP {status} {exc.reason}", retry_after=wait) from None
        if status == 416:
            match = re.match(r"\s*bytes\s+\*/(\d+)\s*$", content_range or "")
            raise RangeNotSatisfiable(url, int(match.group(1)) if match else None) from None
        raise PermanentHTTPError(url, status, str(exc.reason)) from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, socket.gaierror):
            raise PermanentHTTPError(url, 0, f"unknown host ({reason})") from None
        raise TransientError(f"connection failed ({reason})") from None
    except NETWORK_ERRORS as exc:
        raise TransientError(f"connection failed ({type(exc).__name__}: {exc})") from None


# --- a per-host connection cap shared by the processes of a node --------------------------------

SLOTS_DIR = "halo-lrg-connections"


class Slot:
    """One held connection slot (an ``flock``ed descriptor); ``release()`` gives it back."""

    def __init__(self, fd: Optional[int]) -> None:
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing drops the lock


class ConnectionSlots:
    """At most ``limit`` connections to one host at a time from every thread and process
    that shares ``directory``: slot i is an ``flock`` on ``<directory>/<host>.<i>.lock``.
    Spark runs an executor's tasks in separate Python processes, so a lock the kernel
    arbitrates (and drops when a process dies) is what they can share. ``acquire`` tries the
    slots without blocking, starting at a random one, and sleeps briefly between rounds.
    ``directory`` None: no limit."""

    def __init__(self, directory: Optional[str], host: str, limit: int,
                 poll_seconds: float = 0.05) -> None:
        self.directory = directory if limit > 0 else None
        self.host, self.limit, self.poll_seconds = host, limit, poll_seconds

    @classmethod
    def for_url(cls, url: str, remote: RemoteConfig,
                env: Optional[Mapping[str, str]] = None) -> ConnectionSlots:
        """The slots of ``url``'s host (``remote.max_connections_per_host``; 0: no limit) in
        the node's scratch root: the first of YARN's or Spark's local directories, else the
        system temp directory (:func:`halo_lrg.io.workdir.staging_roots` without
        ``remote.tmp_dir``: lock files are not downloads, and every task of the node must
        name the same place, which the roomiest of several directories is not, as they
        fill)."""
        parts = urlsplit(url)
        try:
            port = parts.port or {"https": 443, "http": 80}.get(parts.scheme, 0)
        except ValueError:
            port = 0
        host = re.sub(r"[^a-z0-9.-]", "_", (parts.hostname or "").lower()) + f"_{port}"
        limit = remote.max_connections_per_host
        if limit <= 0:
            return cls(None, host, 0)
        directory = os.path.join(staging_roots("", env)[0], f"{SLOTS_DIR}-{os.getuid()}")
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            LOG.warning("no connection limit for %s: cannot create %s (%s)", host, directory,
                        exc)
            return cls(None, host, 0)
        return cls(directory, host, limit)

    def acquire(self, stop: Optional[threading.Event] = None) -> Slot:
        """A free slot, waiting for one as long as it takes (``stop`` set: :class:`Stopped`)."""
        if self.directory is None:
            return Slot(None)
        first = random.randrange(self.limit)
        while True:
            for k in range(self.limit):
                path = os.path.join(self.directory, f"{self.host}.{(first + k) % self.limit}.lock")
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)
                except OSError as exc:
                    LOG.warning("connection limit not applied: cannot open %s (%s)", path, exc)
                    return Slot(None)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    os.close(fd)
                    continue
                return Slot(fd)
            if stop is not None and stop.is_set():
                raise Stopped()
            pause = self.poll_seconds * random.uniform(0.5, 1.5)
            if stop is not None:
                stop.wait(pause)
            else:
                time.sleep(pause)


# --- validators and ranges ----------------------------------------------------------------------

@dataclass(frozen=True)
class ContentRange:
    first: int
    last: int
    total: Optional[int]  # None for "*"


def content_range(value: Optional[str]) -> Optional[ContentRange]:
    """``Content-Range: bytes a-b/N`` (or ``/*``); None when absent or not that shape."""
    match = re.match(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", value or "")
    if not match or int(match.group(2)) < int(match.group(1)):
        return None
    total = None if match.group(3) == "*" else int(match.group(3))
    return ContentRange(int(match.group(1)), int(match.group(2)), total)


def validator_of(headers: Any) -> str:
    """What pins a version in ``If-Range``: a strong ETag, else Last-Modified, else ""
    (a weak ETag never matches in If-Range)."""
    etag = str(headers.get("ETag") or "").strip()
    if etag and not etag.startswith("W/"):
        return etag
    return str(headers.get("Last-Modified") or "").strip()


def _same_version(validator: str, headers: Any) -> bool:
    """False when ``headers`` show another version than ``validator`` names."""
    if validator.startswith('"'):
        etag = str(headers.get("ETag") or "").strip()
        return not etag or etag == validator
    modified = str(headers.get("Last-Modified") or "").strip()
    return not modified or modified == validator


def _version_headers(headers: Any) -> tuple[str, str]:
    """(ETag, Last-Modified) as sent, "" when absent: what :func:`head` reports."""
    return (str(headers.get("ETag") or "").strip(),
            str(headers.get("Last-Modified") or "").strip())


def _changed_size(url: str, status: int, was: int, now: int) -> FileChangedError:
    return FileChangedError(url, status, f"its size was {was:,} bytes, now {now:,}")


def _unsatisfiable(url: str, exc: RangeNotSatisfiable, first: int, size: int
                   ) -> PermanentHTTPError:
    """A 416 in the middle of a download: the file shrank, or the server is confused."""
    if exc.total is not None and exc.total != size:
        return _changed_size(url, 416, size, exc.total)
    return PermanentHTTPError(url, 416, "Range Not Satisfiable",
                              f"bytes from {first:,} of a {size:,}-byte file")


# --- downloads ----------------------------------------------------------------------------------

@dataclass
class _Ranged:
    """A first request answered 206: the file's size and validator, and the open response
    (with its slot) that is the first part, ``bytes 0-last``."""

    response: http.client.HTTPResponse
    slot: Slot
    last: int
    size: int
    validator: str
    etag: str = ""
    modified: str = ""


def download(url: str, dest: str, remote: RemoteConfig,
             on_retry: Optional[Callable[[str], None]] = None,
             progress: Optional[Callable[[int], None]] = None,
             hasher: Optional[Any] = None) -> int:
    """Download ``url`` to ``dest``; return its size. Concurrent ranged GETs when the server
    offers ranges, else one stream (see the module docstring). Raises PermanentHTTPError
    (:class:`FileChangedError` for a file replaced mid-download) or, after the last attempt,
    TransientError; ``dest`` is removed on failure.

    ``progress(n)`` hears the length of the file's contiguous prefix on disk as it grows, for a
    reader following the file (0 when a stream that cannot resume starts over: rare). ``hasher``
    (an object with ``reset()`` and ``update(bytes)``, e.g. :class:`halo_lrg.io.fetch.InputHash`)
    hears the file's bytes in order, and a reset whenever the download starts over."""
    report = progress if progress is not None else (lambda _n: None)
    first = remote.http_part_bytes if remote.http_parts > 1 else None
    try:
        with open_pinned(url, remote, first, on_retry) as opened:
            if isinstance(opened, PinnedFile):
                return opened.fetch(dest, 0, opened.size - 1, report, hasher=hasher,
                                    on_retry=on_retry)
            return opened.download(dest, report, hasher, on_retry)
    except BaseException:
        if os.path.exists(dest):
            os.remove(dest)
        raise


def open_pinned(url: str, remote: RemoteConfig, first_bytes: Optional[int],
                on_retry: Optional[Callable[[str], None]] = None
                ) -> Union[PinnedFile, WholeStream]:
    """The first request for ``url`` (``Range: bytes=0-<first_bytes - 1>``; None: ``bytes=0-``),
    under the retry policy. Answered 206 with a validator: a :class:`PinnedFile` (its size and
    validator known, that answer held open as its first ``first_bytes``); else (no ranges, or
    none that can be pinned) a :class:`WholeStream`, the 200 answer held open, to be read
    whole. Either way a context manager: leaving it closes what was not read."""
    stream = WholeStream(url, remote, ConnectionSlots.for_url(url, remote))
    try:
        ranged = with_retries(lambda: stream.first(first_bytes), remote, url, on_retry)
    except BaseException:
        stream.close()
        raise
    if ranged is None:
        return stream
    return PinnedFile(url, remote, stream.slots, ranged)


class PinnedFile(PinnedSource):
    """An HTTP(S) file pinned to one version (a strong ETag, else Last-Modified), read by
    ranged GETs (:class:`halo_lrg.io.ranged.PinnedSource`): each pinned with ``If-Range``,
    checked (206, its ``Content-Range``, the same version), its body handed on as it arrives;
    each request holds a connection slot while it is open. A dropped part is asked again from
    where it stopped. A fetch runs ``remote.http_parts`` balanced parts of at most
    ``remote.http_part_bytes``. The first request's answer (``bytes 0-last``) serves the first
    read of exactly that range. Made by :func:`open_pinned`."""

    resumable = True

    def __init__(self, url: str, remote: RemoteConfig, slots: ConnectionSlots,
                 first: _Ranged) -> None:
        super().__init__()
        self.uri, self.url, self.remote, self.slots = url, url, remote, slots
        self.size, self.validator = first.size, first.validator
        self.etag, self.modified = first.etag, first.modified
        self.concurrency = max(1, remote.http_parts)
        self._primed: Optional[_Ranged] = first
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            primed, self._primed = self._primed, None
        if primed is not None:
            primed.response.close()
            primed.slot.release()

    def plan(self, first: int, last: int) -> list[Part]:
        with self._lock:
            head = self._primed.last + 1 if self._primed is not None and first == 0 else 0
        return balanced_parts(last - first + 1, self.remote.http_part_bytes,
                              self.remote.http_parts, first=head, origin=first)

    def get(self, first: int, last: int, sink: Callable[[Any], None]) -> None:
        with self._lock:
            primed = self._primed
            if primed is not None and (first, last) == (0, primed.last):
                self._primed = None
            else:
                primed = None
        if primed is not None:
            response, slot = primed.response, primed.slot
        else:
            slot = self.slots.acquire(self.stop)
            try:
                response = _open(self.url, self.remote, headers={
                    "Range": f"bytes={first}-{last}", "If-Range": self.validator})
            except RangeNotSatisfiable as exc:
                slot.release()
                raise _unsatisfiable(self.url, exc, first, self.size) from None
            except BaseException:
                slot.release()
                raise
        try:
            with response:
                self._check(response, first, last)
                _copy_body(response, last - first + 1, sink, self.remote.download_chunk_bytes)
        finally:
            slot.release()

    def _check(self, response: http.client.HTTPResponse, first: int, last: int) -> None:
        if response.status == 200:
            raise FileChangedError(self.url, 200, f"bytes {first}-{last} pinned to "
                                                  f"{self.validator} were answered with the "
                                                  "whole file")
        if response.status != 206:
            raise PermanentHTTPError(self.url, response.status, str(response.reason),
                                     f"unexpected answer to a request for bytes {first}-{last}")
        got = content_range(response.headers.get("Content-Range"))
        if got is not None and got.total is not None and got.total != self.size:
            raise _changed_size(self.url, 206, self.size, got.total)
        if not _same_version(self.validator, response.headers):
            raise FileChangedError(self.url, 206, f"it was {self.validator}, now "
                                                  f"{validator_of(response.headers)}")
        if got is None or (got.first, got.last) != (first, last):
            raise TransientError(f"asked for bytes {first}-{last}, got Content-Range "
                                 f"{response.headers.get('Content-Range')!r}")


def _copy_body(response: http.client.HTTPResponse, want: int, sink: Callable[[Any], None],
               chunk: int, done: int = 0) -> None:
    """``want`` bytes of ``response``'s body to ``sink`` as they arrive; TransientError if the
    connection drops or the body ends short (the sink has what arrived). ``done``: bytes
    before this body, for the messages."""
    received = 0
    try:
        while received < want:
            block = response.read(min(max(1, chunk), want - received))
            if not block:
                break
            sink(block)
            received += len(block)
    except NETWORK_ERRORS as exc:
        raise TransientError(f"connection lost after {done + received:,} of {done + want:,} "
                             f"bytes ({type(exc).__name__})") from None
    if received < want:
        raise TransientError(f"short body: {done + received:,} of {done + want:,} bytes")


class WholeStream:
    """A file read as one stream, from a server that offers no ranges (or none that can be
    pinned): :meth:`first` makes the first request (which may find ranges instead: then it
    returns :class:`_Ranged` for a :class:`PinnedFile`); :meth:`download` reads the answer
    into a file, then resumes (``Range: bytes=<N>-`` + ``If-Range``, when the server says
    ``Accept-Ranges: bytes``) or starts over, one attempt each under the retry policy."""

    def __init__(self, url: str, remote: RemoteConfig, slots: ConnectionSlots) -> None:
        self.url, self.remote, self.slots = url, remote, slots
        self.progress: Callable[[int], None] = lambda _n: None
        self.hasher: Optional[Any] = None
        self.fd: Optional[int] = None
        self.pending: Optional[tuple[http.client.HTTPResponse, Slot]] = None  # the 200 answer
        self.written = 0        # bytes of the file on disk, in order
        self.reported = 0       # the most progress() has heard: bytes a reader may have read
        self.size: Optional[int] = None
        self.validator = ""
        self.etag = self.modified = ""  # the headers as they came (as io.fetch reads them)
        self.resumable = False

    def __enter__(self) -> WholeStream:
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the answer not yet read, if any, and the file being written."""
        pending, self.pending = self.pending, None
        if pending is not None:
            pending[0].close()
            pending[1].release()
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def download(self, dest: str, progress: Callable[[int], None],
                 hasher: Optional[Any] = None,
                 on_retry: Optional[Callable[[str], None]] = None) -> int:
        """The whole file into ``dest`` (truncated first); its size. ``progress`` and
        ``hasher`` as :func:`download`'s. Call once."""
        self.progress, self.hasher = progress, hasher
        self.fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        if hasher is not None:
            hasher.reset()
        try:
            return with_retries(self._attempt, self.remote, self.url, on_retry)
        finally:
            self.close()

    def _attempt(self) -> int:
        if self.pending is not None:
            opened, self.pending = self.pending, None
        elif self.resumable and self.written > 0:
            opened = self._resume()
        else:
            opened = self._whole()
        response, slot = opened
        try:
            with response:
                return self._copy(response)
        finally:
            slot.release()

    def _request(self, headers: dict[str, str]) -> tuple[http.client.HTTPResponse, Slot]:
        slot = self.slots.acquire()
        try:
            return _open(self.url, self.remote, headers=headers), slot
        except BaseException:
            slot.release()
            raise

    def first(self, first_bytes: Optional[int]) -> Optional[_Ranged]:
        """One attempt at the first request: :class:`_Ranged` when the answer can be pinned,
        else None with the whole file's answer held as ``pending``."""
        part = max(1, first_bytes) if first_bytes is not None else None
        try:
            response, slot = self._request(
                {"Range": f"bytes=0-{part - 1}" if part is not None else "bytes=0-"})
        except RangeNotSatisfiable as exc:
            if exc.total == 0:
                raise PermanentHTTPError(self.url, 416, "Range Not Satisfiable",
                                         "the file on the server is empty (0 bytes)") from None
            raise
        if response.status == 206:
            got = content_range(response.headers.get("Content-Range"))
            validator = validator_of(response.headers)
            if got is not None and got.first == 0 and got.total and got.last < got.total \
                    and validator:
                return _Ranged(response, slot, got.last, got.total, validator,
                               *_version_headers(response.headers))
            # Ranges without a validator to pin them (or an unreadable Content-Range): one
            # plain stream, started over if it breaks.
            LOG.info("%s: ranges offered without a validator; one stream", self.url)
            response.close()
            slot.release()
            self.pending = self._whole()
            return None
        try:
            self._take(response)
        except BaseException:
            response.close()
            slot.release()
            raise
        self.pending = response, slot
        return None

    def _whole(self) -> tuple[http.client.HTTPResponse, Slot]:
        """The whole file again, from byte 0."""
        response, slot = self._request({})
        try:
            if response.status != 200:
                raise PermanentHTTPError(self.url, response.status, str(response.reason),
                                         "unexpected answer to a plain GET")
            self._start_over()
            self._take(response)
        except BaseException:
            response.close()
            slot.release()
            raise
        return response, slot

    def _resume(self) -> tuple[http.client.HTTPResponse, Slot]:
        """The rest of the file from byte ``written``, pinned to the version begun."""
        assert self.size is not None
        try:
            response, slot = self._request({"Range": f"bytes={self.written}-",
                                            "If-Range": self.validator})
        except RangeNotSatisfiable as exc:
            raise _unsatisfiable(self.url, exc, self.written, self.size) from None
        try:
            if response.status == 200:  # the whole file: the same version, or another
                self._start_over()
                self._take(response)
                return response, slot
            got = content_range(response.headers.get("Content-Range"))
            if response.status != 206:
                raise PermanentHTTPError(self.url, response.status, str(response.reason),
                                         f"unexpected answer to a request for bytes "
                                         f"{self.written}-")
            if got is not None and got.total is not None and got.total != self.size:
                raise _changed_size(self.url, 206, self.size, got.total)
            if not _same_version(self.validator, response.headers):
                raise FileChangedError(self.url, 206, f"it was {self.validator}, now "
                                                      f"{validator_of(response.headers)}")
            if got is None or (got.first, got.last) != (self.written, self.size - 1):
                raise TransientError(f"asked for bytes {self.written}-, got Content-Range "
                                     f"{response.headers.get('Content-Range')!r}")
            LOG.debug("%s: resuming at byte %d", self.url, self.written)
        except BaseException:
            response.close()
            slot.release()
            raise
        return response, slot

    def _start_over(self) -> None:
        if self.written:
            assert self.fd is not None
            os.ftruncate(self.fd, 0)
            self.written = 0
            self.progress(0)
        if self.hasher is not None:
            self.hasher.reset()

    def _take(self, response: http.client.HTTPResponse) -> None:
        """Adopt a 200's size and validator; another version than the one a reader may
        already have read from is refused."""
        length = response.headers.get("Content-Length")
        size = int(length) if length is not None and length.strip().isdigit() else None
        validator = validator_of(response.headers)
        if self.reported:
            if self.size is not None and size is not None and size != self.size:
                raise _changed_size(self.url, 200, self.size, size)
            if self.validator and validator and validator != self.validator:
                raise FileChangedError(self.url, 200, f"it was {self.validator}, now "
                                                      f"{validator}")
        self.size, self.validator = size, validator
        self.etag, self.modified = _version_headers(response.headers)
        accepts = str(response.headers.get("Accept-Ranges") or "").lower()
        self.resumable = "bytes" in accepts and bool(validator) and size is not None

    def _copy(self, response: http.client.HTTPResponse) -> int:
        assert self.fd is not None
        fd = self.fd

        def sink(block: Any) -> None:
            pwrite_all(fd, block, self.written)
            if self.hasher is not None:
                self.hasher.update(block)
            self.written += len(block)
            self.reported = max(self.reported, self.written)
            self.progress(self.written)

        chunk = self.remote.download_chunk_bytes
        if self.size is not None:
            _copy_body(response, self.size - self.written, sink, chunk, done=self.written)
            return self.written
        try:  # no Content-Length: to the end of the body
            for block in iter(lambda: response.read(max(1, chunk)), b""):
                sink(block)
        except NETWORK_ERRORS as exc:
            raise TransientError(f"connection lost after {self.written:,} bytes "
                                 f"({type(exc).__name__})") from None
        return self.written


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
