"""One model for ranged downloads: a file fetched as byte ranges, written at their offsets.

:func:`fetch_ranges` owns everything that does not depend on the protocol: the part plan,
concurrent parts, writes that are continued until whole (:func:`pwrite_all`), per-part length
checks, the contiguous prefix reported to ``progress`` (a reader follows the file from its
start while later parts are still in flight), a ``hasher`` fed the file's bytes in file order,
retries through the one policy (:mod:`halo_lrg.io.retry`) and stop-on-failure (the other parts
stop, the file is removed). The protocol injects one function, ``get(first, last, sink)``:
"hand bytes [first, last] of the object, pinned to the version the caller saw, to ``sink`` in
order" (S3: a ranged GET with ``IfMatch``; HTTP: a ranged GET with ``If-Range``).

A source that can continue a part where it stopped (HTTP) is ``resumable``: a part whose
connection drops after N bytes is asked again from ``first + N``, and its bytes count toward
the prefix as they land. Otherwise (S3) a failed part is fetched again whole and counts only
once it is complete.

The range fetched need not be the whole object: ``origin`` names the object's byte written at
``dest``'s offset 0, so bytes ``[a, b]`` of a multi-GB object land in a file of ``b - a + 1``
bytes (a task reading a part of a file's rows fetches only their bytes).

:class:`PinnedSource` is what a protocol implements once (S3: :class:`halo_lrg.io.s3.
PinnedObject`; HTTP: :class:`halo_lrg.io.http.PinnedFile`): an object's size, its pinned
``get`` and its part plan; on top of them it offers :meth:`PinnedSource.fetch` (any range into
a file, through :func:`fetch_ranges`) and :meth:`PinnedSource.read` (a small range into
memory, under the retry policy). :class:`RangeReader` serves ``read_at(offset, size)`` (the
FITS header walk's shape) from such small reads, in growing windows, so a header costs a
request or two, not one per 2,880-byte block.
"""

from __future__ import annotations

import errno
import os
import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Optional

from halo_lrg.config import RemoteConfig
from halo_lrg.io.retry import TransientError, with_retries

Writer = Callable[[int, Any, int], int]  # os.pwrite's shape: (fd, data, offset) -> bytes written
Sink = Callable[[Any], None]
#: ``get(first, last, sink)``: bytes ``first``..``last`` (inclusive) of the pinned version, handed
#: to ``sink`` in order. :class:`TransientError` is retried (a resumable source is then asked
#: for the rest only); anything else is final for the whole download.
RangeGetter = Callable[[int, int, Sink], None]
Part = tuple[int, int]  # (first byte, length)


def pwrite_all(fd: int, data: Any, offset: int, write: Writer = os.pwrite) -> int:
    """Write all of ``data`` at ``offset``: ``pwrite`` may write fewer bytes than given, so
    write the rest until done. Returns ``len(data)``; OSError if a write makes no progress."""
    view = memoryview(data).cast("B")
    done = 0
    while done < len(view):
        n = write(fd, view[done:], offset + done)
        if n <= 0:
            raise OSError(errno.EIO, f"write made no progress at offset {offset + done:,} "
                                     f"({done:,} of {len(view):,} bytes written)")
        done += n
    return done


class Stopped(Exception):
    """Another part failed (or the reader gave up): don't start, or go on with, this one."""


def split_parts(size: int, part_bytes: int, origin: int = 0) -> list[Part]:
    """``size`` bytes from ``origin`` in parts of ``part_bytes`` (the last one shorter)."""
    part = max(1, part_bytes)
    return [(origin + start, min(start + part, size) - start) for start in range(0, size, part)]


def balanced_parts(size: int, part_bytes: int, concurrency: int, first: int = 0,
                   origin: int = 0) -> list[Part]:
    """Parts of at most ``part_bytes`` whose count is a multiple of ``concurrency``, as equal as
    they can be, so no connection is left alone with a short tail. ``first`` fixes the first
    part's length (a part already asked for); the rest are balanced after it. The parts cover
    ``size`` bytes from ``origin``."""
    part = max(1, part_bytes)
    if size <= 0:
        return []
    head = min(size, first) if first > 0 else 0
    rest = size - head
    if rest == 0:
        return [(origin, size)]
    count = -(-rest // part)
    lanes = max(1, concurrency)
    while (count + (1 if head else 0)) % lanes and count < rest:
        count += 1
    length = -(-rest // count)
    plan = [(origin, head)] if head else []
    plan += [(origin + start, min(start + length, size) - start)
             for start in range(head, size, length)]
    return plan


def fetch_ranges(dest: str, size: int, get: RangeGetter, remote: RemoteConfig,
                 progress: Callable[[int], None], *, parts: list[Part], concurrency: int,
                 label: Callable[[int, int], str], resumable: bool = False,
                 hasher: Optional[Any] = None, write: Writer = os.pwrite,
                 stop: Optional[threading.Event] = None,
                 on_retry: Optional[Callable[[str], None]] = None, origin: int = 0) -> int:
    """Fetch ``size`` bytes of the object from its byte ``origin`` (by default the whole
    object: 0) into ``dest``, byte ``origin + i`` at offset ``i``, as ``parts`` (``(first,
    length)`` in the object, covering the range in order), ``concurrency`` at a time; return
    ``size``.

    Each part goes through ``get`` under the retry policy (its retries logged as
    ``label(first, last)``); it must deliver exactly its range and every byte must be written
    (short writes are continued) before it counts. ``progress(n)`` hears the contiguous prefix
    on disk, growing only, from the caller's thread; ``progress(size)`` once, after every part
    is whole and their total equals ``size`` (prefixes count ``dest``'s bytes, from ``origin``
    in the object). ``hasher`` (``reset()``, ``update(bytes)``) is
    reset, then hears the file's bytes in order (read back from ``dest``) as the prefix grows,
    all of them before ``progress(size)``. On any failure (a part, a write, ``progress``) the
    other parts stop, ``dest`` is removed and the first cause is raised. ``stop`` (set on
    failure) lets a source stop waiting (e.g. for a connection slot) too; ``write`` is an
    ``os.pwrite`` (a seam for tests)."""
    stop = stop if stop is not None else threading.Event()
    count = len(parts)
    starts = [start for start, _length in parts]
    lengths = [length for _start, length in parts]
    if sum(lengths) != size or any(b != a + n for (a, n), b in zip(parts, starts[1:])) \
            or (parts and starts[0] != origin):
        raise ValueError(f"parts do not cover {size:,} bytes from {origin:,} in order")
    landed = [0] * count  # bytes of each part on disk (resumable: as they land; else: whole)
    events: queue.Queue = queue.Queue()  # a part index when it ends, -1 when bytes land
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT, 0o600)

    def run(index: int) -> None:
        start, length = starts[index], lengths[index]
        last = start + length - 1

        def attempt() -> None:
            if stop.is_set():
                raise Stopped()
            if not resumable:
                landed[index] = 0
            begin = start + landed[index]
            got = [0]

            def sink(block: Any) -> None:
                if stop.is_set():
                    raise Stopped()
                view = memoryview(block).cast("B")
                if begin + got[0] + len(view) > last + 1:
                    raise TransientError(f"more bytes than asked for: bytes {start}-{last} "
                                         f"would end at {begin + got[0] + len(view) - 1:,}")
                pwrite_all(fd, view, begin + got[0] - origin, write)
                got[0] += len(view)
                if resumable:
                    landed[index] += len(view)
                    events.put(-1)

            if begin <= last:
                get(begin, last, sink)
            if not resumable:
                landed[index] = got[0]
            if landed[index] != length:
                raise TransientError(f"short part: {landed[index]:,} of {length:,} bytes "
                                     f"at {start:,}")

        try:
            with_retries(attempt, remote, label(start, last), on_retry, sleep=stop.wait)
        except BaseException:
            stop.set()  # before this part's future completes: no later part starts
            raise

    hashed = [0]  # bytes of the prefix the hasher has heard
    if hasher is not None:
        hasher.reset()

    def hash_prefix(end: int) -> None:
        if hasher is None or hashed[0] >= end:
            return
        with open(dest, "rb") as reader:
            reader.seek(hashed[0])
            while hashed[0] < end:
                block = reader.read(min(1 << 22, end - hashed[0]))
                if not block:
                    raise OSError(errno.EIO, f"cannot read back {dest} at {hashed[0]:,}")
                hasher.update(block)
                hashed[0] += len(block)

    try:
        try:
            os.ftruncate(fd, size)
            pool = ThreadPoolExecutor(max_workers=max(1, min(concurrency, count or 1)),
                                      thread_name_prefix="halo-lrg-part")
            futures: list[Future] = []
            try:
                for index in range(count):  # in order: the earliest parts tend to end first
                    future = pool.submit(run, index)
                    future.add_done_callback(lambda _f, i=index: events.put(i))
                    futures.append(future)
                complete = [False] * count
                ended, first_open, reported = 0, 0, 0
                while ended < count:
                    index = events.get()
                    if index >= 0:
                        ended += 1
                        error = futures[index].exception()
                        if isinstance(error, Stopped):
                            continue  # the part that stopped it reports why
                        if error is not None:
                            raise error
                        complete[index] = True
                    while first_open < count and complete[first_open]:
                        first_open += 1
                    if first_open == count:
                        continue
                    prefix = (starts[first_open] - origin
                              + (landed[first_open] if resumable else 0))
                    if reported < prefix < size:  # size: below, once, every length checked
                        hash_prefix(prefix)
                        progress(prefix)
                        reported = prefix
            except BaseException:
                stop.set()
                raise
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
            short = [i for i, n in enumerate(landed) if n != lengths[i]]
            if short or sum(landed) != size:
                raise TransientError(f"incomplete download: {sum(landed):,} of {size:,} bytes "
                                     f"written ({len(short)} part(s) short)")
        finally:
            os.close(fd)
        hash_prefix(size)
        progress(size)
    except BaseException:
        if os.path.exists(dest):
            os.remove(dest)
        raise
    return size


def read_range(get: RangeGetter, first: int, last: int, remote: RemoteConfig, what: str,
               on_retry: Optional[Callable[[str], None]] = None) -> bytes:
    """Bytes ``first``..``last`` (inclusive) of a pinned source, in memory, under the retry
    policy: a small read (a header), so a failed attempt starts it over. Exactly that many
    bytes, else :class:`TransientError` (retried, then raised)."""
    want = last - first + 1
    if want <= 0:
        return b""

    def attempt() -> bytes:
        got = bytearray()

        def sink(block: Any) -> None:
            if len(got) + len(memoryview(block).cast("B")) > want:
                raise TransientError(f"more bytes than asked for: bytes {first}-{last}")
            got.extend(block)

        get(first, last, sink)
        if len(got) != want:
            raise TransientError(f"short read: {len(got):,} of {want:,} bytes at {first:,}")
        return bytes(got)

    return with_retries(attempt, remote, what, on_retry)


class PinnedSource:
    """One remote object, pinned to the version first seen, read by byte ranges.

    A protocol sets ``uri``, ``size``, ``remote``, ``concurrency`` and what names the version
    (``etag``, ``modified``: "" when unknown), and implements
    :meth:`get` (a :data:`RangeGetter` pinned to that version: another version is refused,
    never mixed) and :meth:`plan` (how a range is split into concurrent parts). ``resumable``:
    a dropped part can be asked for its rest only. ``stop`` is set when a fetch fails (or a
    reader gives up), so requests waiting to start give up too. Use it as a context manager
    (:meth:`close` lets go of anything held open)."""

    uri: str = ""
    size: int = 0
    etag: str = ""
    modified: str = ""
    remote: RemoteConfig
    concurrency: int = 1
    resumable: bool = False

    def __init__(self) -> None:
        self.stop = threading.Event()

    def get(self, first: int, last: int, sink: Sink) -> None:
        raise NotImplementedError

    def plan(self, first: int, last: int) -> list[Part]:
        raise NotImplementedError

    def label(self, first: int, last: int) -> str:
        return f"{self.uri} (bytes {first}-{last})"

    def read(self, first: int, last: int) -> bytes:
        """Bytes ``first``..``last`` in memory (a small range: see :func:`read_range`)."""
        return read_range(self.get, first, last, self.remote, self.label(first, last))

    def fetch(self, dest: str, first: int, last: int, progress: Callable[[int], None], *,
              hasher: Optional[Any] = None, write: Writer = os.pwrite,
              on_retry: Optional[Callable[[str], None]] = None) -> int:
        """Bytes ``first``..``last`` into ``dest`` (byte ``first`` at offset 0) through
        :func:`fetch_ranges`: concurrent parts, contiguous-prefix ``progress``, resume or
        retry, ``dest`` removed on failure. Returns the bytes fetched."""
        if first < 0 or last >= self.size or last < first - 1:
            raise ValueError(f"{self.uri}: bytes {first}-{last} are not a range of its "
                             f"{self.size:,} bytes")
        return fetch_ranges(dest, last - first + 1, self.get, self.remote, progress,
                            parts=self.plan(first, last), concurrency=self.concurrency,
                            label=self.label, resumable=self.resumable, hasher=hasher,
                            write=write, stop=self.stop, on_retry=on_retry, origin=first)

    def close(self) -> None:
        """Let go of anything held open (a primed response); the source stays usable."""

    def __enter__(self) -> PinnedSource:
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.close()


class RangeReader:
    """``read_at(offset, size)`` over a source of ``size`` bytes read by ranges: short only at
    its end, as a file read is. A miss fetches a window from the missed byte (``window``
    bytes, doubled at each later miss), so a header walked block by block costs a request or
    two; windows stay in memory (a few headers' worth). ``fetched`` counts the bytes asked."""

    def __init__(self, read: Callable[[int, int], bytes], size: int, window: int) -> None:
        self._read, self.size, self.window = read, size, max(1, window)
        self._segments: list[tuple[int, bytes]] = []
        self.fetched = 0

    def __call__(self, offset: int, size: int) -> bytes:
        end = min(offset + max(0, size), self.size)
        out = bytearray()
        pos = offset
        while pos < end:
            start, data = self._segment(pos)
            piece = data[pos - start:end - start]
            out += piece
            pos += len(piece)
        return bytes(out)

    def _segment(self, pos: int) -> tuple[int, bytes]:
        for start, data in self._segments:
            if start <= pos < start + len(data):
                return start, data
        last = min(pos + self.window, self.size) - 1
        data = self._read(pos, last)
        self.fetched += len(data)
        self.window *= 2
        self._segments.append((pos, data))
        return pos, data
