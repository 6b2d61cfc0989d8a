"""Count a remote sweep while it downloads: the download runs in a thread into the task's
temp file and the reader follows it, one row chunk behind, so network and CPU overlap. S3
objects, and HTTP(S) files from servers that offer byte ranges, arrive as concurrent ranged
GETs written at their offsets (halo_lrg.io.ranged); the reader follows the contiguous prefix.

The FITS headers are parsed from the first bytes by the layout model every reader uses
(halo_lrg.fits.layout), so no complete file is needed to start. Nothing is returned until the
whole download is verified (its length against Content-Length and the header's declared size):
a truncated download is never counted, and a retry that starts the file over only makes the
reader wait, since the same bytes come back. Tables whose needed columns only fitsio reads
(variable-length or bit arrays) are counted after the download, as any local file (a count
refuses such columns before: :func:`halo_lrg.count.local.count_check` runs here too, at the
point the local readers run it, and a file cut short of its last block's padding is refused
as the local readers refuse it).

**A part of a file's rows** (``rows``, a :class:`~halo_lrg.fits.layout.RowSlice`: a big file
split across tasks) fetches the headers by small ranged reads (:class:`~halo_lrg.io.ranged.
RangeReader`: a first read of :data:`HEADER_READ_BYTES`, doubled at each miss), then only its
rows' bytes, ``data_start + first·row_bytes`` to ``data_start + stop·row_bytes``, through the
same engine (:meth:`~halo_lrg.io.ranged.PinnedSource.fetch`: concurrent parts, resume,
retries, the per-host connection cap), into a temp file holding just those bytes, which the
reader follows as it does a whole file. Every request of the part (the headers' and the
rows') is pinned to the version the first one saw (S3 ``IfMatch`` on the HEAD's ETag, HTTP
``If-Range``): a file replaced meanwhile is refused, never mixed. The object's size (S3 HEAD,
HTTP ``Content-Range`` total) is checked against the table's ``file_end`` in the local
readers' words (:func:`~halo_lrg.fits.reader.truncated_cause`), so a truncated file is refused
alike by every part and by the local path. A part cannot be checksummed (``hasher`` is a
ValueError). Two cases read the whole file once and take the part's rows from it, with the
same counts: a server that offers no byte ranges (or none it can pin: no validator), logged
at INFO, and a table whose needed columns only fitsio reads.

:func:`remote_chunks` is the one entry: a context manager yielding the chunks (whole file or
part; local paths too, read in place) as :class:`RemoteRows`, verified complete when the
iterator ends; :func:`stream_count` tallies them into LRG counts, and other tallies (randoms
per brick: ``count_randoms_per_brick(rows)`` on what it yields) use it the same way.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

import numpy as np

from halo_lrg.config import Config
from halo_lrg.count.local import (
    BRICKNAME,
    SelectionArg,
    SweepCount,
    count_check,
    count_columns,
    count_optional,
    tally_chunks,
)
from halo_lrg.fits.layout import BLOCK, FitsError, ReadAt, RowSlice, TableLayout, find_table
from halo_lrg.fits.reader import (
    Fill,
    LayoutCheck,
    MissingColumnsError,
    SweepError,
    check_layout,
    iter_column_chunks,
    select_columns,
    sweep_layout,
    table_chunks,
    truncated_cause,
)
from halo_lrg.io.fetch import (
    InputIdentity,
    SourceError,
    _translated,
    download_name,
    local_copy,
)
from halo_lrg.io.ranged import PinnedSource, RangeReader
from halo_lrg.io.uri import REMOTE_SCHEMES, is_s3, scheme_of
from halo_lrg.io.workdir import task_workdir
from halo_lrg.science.footprint import Footprint

if TYPE_CHECKING:
    from halo_lrg.io.http import WholeStream

LOG = logging.getLogger("halo_lrg.count.streaming")

#: The first header read of a part: 16 FITS blocks (46,080 bytes) hold a DR10 sweep's two
#: headers (~9-13 blocks) in one request; a longer header takes a second, twice as big.
HEADER_READ_BYTES = 16 * BLOCK


class DownloadCancelled(Exception):
    """The reader gave up (a bad file): stop downloading the rest."""


class GrowingDownload(threading.Thread):
    """Downloads ``url`` to ``dest`` in the background; readers wait for the bytes they need.

    By default the whole file, by its protocol's download; ``fetch(progress)`` replaces that
    (a part's byte range: ``dest`` then holds those bytes from offset 0). ``progress(n)``:
    the first ``n`` bytes of ``dest`` are on disk."""

    def __init__(self, url: str, dest: str, config: Config, hasher: Any = None, *,
                 fetch: Optional[Callable[[Callable[[int], None]], Any]] = None) -> None:
        super().__init__(name="halo-lrg-download", daemon=True)
        self.url, self.dest, self.config, self.hasher = url, dest, config, hasher
        self.fetch = fetch
        self.written = 0
        self.finished = False
        self.error: Optional[BaseException] = None
        self.cancelled = False
        self._changed = threading.Condition()

    def cancel(self) -> None:
        self.cancelled = True

    def run(self) -> None:
        from halo_lrg.io import http as http_source
        from halo_lrg.io import s3 as s3_source

        try:
            if self.fetch is not None:
                self.fetch(self._progress)
            elif is_s3(self.url):
                s3_source.download_parts_in_order(self.url, self.dest, self.config.remote,
                                                  self._progress, hasher=self.hasher)
            else:
                http_source.download(self.url, self.dest, self.config.remote,
                                     progress=self._progress, hasher=self.hasher)
        except BaseException as exc:  # handed to the reader, which raises it
            self.error = exc
        finally:
            with self._changed:
                self.finished = True
                self._changed.notify_all()

    def _progress(self, written: int) -> None:
        if self.cancelled:
            raise DownloadCancelled(self.url)
        with self._changed:
            self.written = written
            self._changed.notify_all()

    def wait_for(self, nbytes: int) -> None:
        """Block until ``nbytes`` are on disk; raise the download's error, or a truncation."""
        with self._changed:
            while self.written < nbytes and not self.finished:
                self._changed.wait(1.0)
            if self.error is not None:
                raise self.error
            if self.written < nbytes:
                raise SweepError(self.url, f"truncated: the header needs {nbytes:,} bytes but "
                                           f"the server sent {self.written:,}")


def _pread_exact(fd: int, download: GrowingDownload, size: int, offset: int) -> bytes:
    while True:
        download.wait_for(offset + size)
        data = os.pread(fd, size, offset)
        if len(data) == size:
            return data
        # A retry started the file over between our wait and our read: wait again.


def _read_upto(fd: int, download: GrowingDownload, size: int, offset: int) -> bytes:
    """Header reads: as :func:`_pread_exact`, but short at the end of a complete download,
    as a file read is at its end (the HDU walk stops there)."""
    try:
        return _pread_exact(fd, download, size, offset)
    except SweepError:
        if download.error is not None or not download.finished:
            raise
        return os.pread(fd, size, offset)


def layout_chunks(uri: str, read_at: ReadAt, fill: Fill, columns: tuple[str, ...],
                  optional: tuple[str, ...], chunk_rows: int,
                  raw_strings: tuple[str, ...] = (BRICKNAME,),
                  check: Optional[LayoutCheck] = None,
                  rows: Optional[RowSlice] = None,
                  ) -> Optional[Iterator[dict[str, np.ndarray]]]:
    """The table's row chunks (``rows``: of that part of the rows only) from any byte
    source, by the layout model every reader uses: headers through ``read_at``, rows through
    ``fill``; ``check`` refuses a table as
    :func:`~halo_lrg.fits.reader.iter_column_chunks` does, at the same point. None when a
    needed column can only be read by fitsio (variable-length or bit arrays)."""
    try:
        layout = find_table(read_at)
    except FitsError as exc:
        raise SweepError(uri, str(exc)) from None
    wanted = select_columns(uri, layout, columns, optional)
    check_layout(uri, layout, check)
    if layout.needs_fitsio(wanted):
        return None
    return _with_padding(table_chunks(uri, layout, wanted, chunk_rows, raw_strings, fill, rows),
                         layout, fill)


def _with_padding(chunks: Iterator[dict[str, np.ndarray]], layout: TableLayout, fill: Fill
                  ) -> Iterator[dict[str, np.ndarray]]:
    """The chunks, then the table's last padding byte: a file cut short of the block FITS
    requires is refused here as the local paths refuse it (by its size, before reading)."""
    yield from chunks
    if layout.file_end > layout.data_end:
        fill(layout.file_end - 1, memoryview(bytearray(1)))


def _stream_chunks(uri: str, fd: int, download: GrowingDownload, columns: tuple[str, ...],
                   optional: tuple[str, ...], chunk_rows: int,
                   raw_strings: tuple[str, ...] = (BRICKNAME,),
                   check: Optional[LayoutCheck] = None,
                   ) -> Optional[Iterator[dict[str, np.ndarray]]]:
    def read_at(offset: int, size: int) -> bytes:
        return _read_upto(fd, download, size, offset)

    def fill(offset: int, view: memoryview) -> None:
        view[:] = _pread_exact(fd, download, len(view), offset)

    return layout_chunks(uri, read_at, fill, columns, optional, chunk_rows, raw_strings,
                         check)


@dataclass
class RemoteRows:
    """What :func:`remote_chunks` yields: ``chunks`` (``{column: array}``, iterable as the
    object itself) and ``first_row``, the file row of the first chunk's first row (0 for a
    whole file), for messages that name rows. The iterator ends only once every byte it read
    is verified (the download complete, its length checked)."""

    chunks: Iterator[dict[str, np.ndarray]]
    first_row: int = 0

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return self.chunks


@dataclass(frozen=True)
class _Wanted:
    """What the caller reads: columns, optional columns, chunk size, raw strings, check."""

    columns: tuple[str, ...]
    optional: tuple[str, ...]
    chunk_rows: int
    raw_strings: tuple[str, ...]
    check: Optional[LayoutCheck]


@contextmanager
def remote_chunks(uri: str, config: Config, columns: tuple[str, ...],
                  optional: tuple[str, ...], chunk_rows: int, *,
                  rows: Optional[RowSlice] = None,
                  raw_strings: tuple[str, ...] = (BRICKNAME,),
                  check: Optional[LayoutCheck] = None,
                  hasher: Any = None,
                  expect: Optional[InputIdentity] = None) -> Iterator[RemoteRows]:
    """The row chunks of ``uri`` (``rows``: of that part of its rows only), read while they
    download (see the module docstring); the temp file goes when the block ends, whatever
    happens. ``columns``, ``optional``, ``chunk_rows``, ``raw_strings`` and ``check`` as
    :func:`~halo_lrg.fits.reader.iter_column_chunks`'s, refusals at the same points.
    ``hasher`` (``reset()``, ``update(bytes)``) hears every byte of a whole file in order (the
    caller checks the digest once the chunks end); ValueError with a part. A local path or
    ``file://`` is read in place. ``expect``: the identity the run was planned with
    (:func:`~halo_lrg.io.fetch.file_identity`); a part of a file whose size or validator now
    differs is refused (SourceError), so the parts of one file, read by different tasks at
    different times, all read one version (a whole file is one version by itself). Fetch
    failures are :class:`~halo_lrg.io.fetch.SourceError`, unusable files
    :class:`~halo_lrg.fits.reader.SweepError`, both naming ``uri``."""
    part = rows is not None and not rows.whole
    if part and hasher is not None:
        raise ValueError(f"{uri}: a checksum is of the whole file, not of {rows}: read the "
                         "file whole to verify it")
    if chunk_rows <= 0:
        raise ValueError(f"chunk_rows must be positive, got {chunk_rows}")
    wanted = _Wanted(tuple(columns), tuple(optional), chunk_rows, tuple(raw_strings), check)
    if scheme_of(uri) not in REMOTE_SCHEMES:
        with local_copy(uri, config, hasher) as path:
            yield _local_rows(path, path, config, wanted, rows)
        return
    with task_workdir(config.remote.tmp_dir) as workdir:
        dest = os.path.join(workdir, download_name(uri))
        with ExitStack() as cleanup, _translated(uri):
            if rows is not None and part:
                yield _part_rows(uri, dest, config, wanted, rows, cleanup, expect)
            else:
                yield _whole_rows(uri, dest, config, wanted, hasher, cleanup)


def _reader_fd(dest: str, cleanup: ExitStack) -> int:
    # The reader's descriptor exists before the download starts: a failed download removes
    # its file, and a reader opening the name after that would report a missing temp file
    # instead of the download's own error (a 404, say).
    fd = os.open(dest, os.O_RDONLY | os.O_CREAT, 0o600)
    cleanup.callback(os.close, fd)
    return fd


def _started(download: GrowingDownload, cleanup: ExitStack,
             source: Optional[PinnedSource] = None) -> GrowingDownload:
    def stop() -> None:
        download.cancel()  # a no-op once it has finished; else don't fetch what won't be read
        if source is not None:
            source.stop.set()  # parts waiting for a connection slot give up too
        download.join()

    download.start()
    cleanup.callback(stop)
    return download


def _verified(chunks: Iterator[dict[str, np.ndarray]], download: GrowingDownload
              ) -> Iterator[dict[str, np.ndarray]]:
    """``chunks``, then the download's end: complete and verified before the counts count."""
    yield from chunks
    download.join()
    download.wait_for(0)


def _whole_rows(uri: str, dest: str, config: Config, wanted: _Wanted, hasher: Any,
                cleanup: ExitStack) -> RemoteRows:
    fd = _reader_fd(dest, cleanup)
    download = _started(GrowingDownload(uri, dest, config, hasher), cleanup)
    chunks = _stream_chunks(uri, fd, download, wanted.columns, wanted.optional,
                            wanted.chunk_rows, wanted.raw_strings, wanted.check)
    if chunks is None:  # not streamable: the whole file, then the local reader
        download.join()
        download.wait_for(0)
        return _local_rows(uri, dest, config, wanted, None)
    return RemoteRows(_verified(chunks, download))


def _local_rows(uri: str, path: str, config: Config, wanted: _Wanted,
                rows: Optional[RowSlice]) -> RemoteRows:
    """A complete local file's chunks by the local readers (fast path or fitsio), errors
    naming ``uri``."""
    try:
        layout = sweep_layout(path)
    except SweepError as exc:
        raise _renamed(exc, uri) from None
    first_row = (rows or RowSlice()).bounds(layout.nrows)[0]

    def chunks() -> Iterator[dict[str, np.ndarray]]:
        try:
            yield from iter_column_chunks(path, wanted.columns, wanted.chunk_rows,
                                          wanted.optional, config.read.fast_path,
                                          raw_strings=wanted.raw_strings, check=wanted.check,
                                          rows=rows)
        except SweepError as exc:
            raise _renamed(exc, uri) from None

    return RemoteRows(chunks(), first_row)


def _renamed(exc: SweepError, uri: str) -> SweepError:
    """The same refusal, naming the input rather than its temp copy."""
    if exc.path == uri:
        return exc
    if isinstance(exc, MissingColumnsError):
        return MissingColumnsError(uri, exc.missing)
    return SweepError(uri, exc.cause)


def _pinned_source(uri: str, config: Config) -> Union[PinnedSource, WholeStream]:
    """The object pinned by its first request: S3 (a HEAD), or HTTP (a first ranged read of
    :data:`HEADER_READ_BYTES`), which may find no ranges (a :class:`~halo_lrg.io.http.
    WholeStream`)."""
    if is_s3(uri):
        from halo_lrg.io.s3 import PinnedObject

        return PinnedObject(uri, config.remote)
    from halo_lrg.io.http import open_pinned

    return open_pinned(uri, config.remote, HEADER_READ_BYTES)


def _changed_since_planned(uri: str, expect: Optional[InputIdentity], size: Optional[int],
                           etag: str, modified: str) -> None:
    """SourceError when what the first request saw is not the version the run planned with
    (only what both sides know is compared)."""
    if expect is None:
        return
    was = {"size": expect.size, "ETag": (expect.etag or "").strip('"'),
           "Last-Modified": expect.modified or ""}
    now = {"size": size, "ETag": etag.strip('"'), "Last-Modified": modified}
    for what in ("size", "ETag", "Last-Modified"):
        before, after = was[what], now[what]
        if before and after and before != after:
            if what == "size":
                before, after = f"{before:,} bytes", f"{after:,}"
            raise SourceError(uri, f"the file changed since the run was planned (its {what} "
                                   f"was {before}, now {after}); its parts would mix two "
                                   "versions")


def _part_rows(uri: str, dest: str, config: Config, wanted: _Wanted, rows: RowSlice,
               cleanup: ExitStack, expect: Optional[InputIdentity] = None) -> RemoteRows:
    source = _pinned_source(uri, config)
    cleanup.callback(source.close)
    _changed_since_planned(uri, expect, source.size, source.etag, source.modified)
    if not isinstance(source, PinnedSource):
        LOG.info("%s: the server offers no byte ranges it can pin; the whole file is "
                 "downloaded to read %s", uri, rows)
        source.download(dest, lambda _n: None)
        return _local_rows(uri, dest, config, wanted, rows)
    reader = RangeReader(source.read, source.size, HEADER_READ_BYTES)
    try:
        layout = find_table(reader)
    except FitsError as exc:
        raise SweepError(uri, str(exc)) from None
    if source.size < layout.file_end:
        raise SweepError(uri, truncated_cause(layout, source.size))
    names = select_columns(uri, layout, wanted.columns, wanted.optional)
    check_layout(uri, layout, wanted.check)
    if layout.needs_fitsio(names):
        LOG.info("%s: columns only fitsio reads; the whole file is downloaded to read %s",
                 uri, rows)
        source.fetch(dest, 0, source.size - 1, lambda _n: None)
        return _local_rows(uri, dest, config, wanted, rows)
    first, stop = rows.bounds(layout.nrows)
    if stop <= first:
        return RemoteRows(iter(()), first)
    begin = layout.data_start + first * layout.row_bytes
    end = layout.data_start + stop * layout.row_bytes - 1
    fd = _reader_fd(dest, cleanup)

    def fetch(progress: Callable[[int], None]) -> int:
        return source.fetch(dest, begin, end, progress)

    download = _started(GrowingDownload(uri, dest, config, fetch=fetch), cleanup, source)

    def fill(offset: int, view: memoryview) -> None:
        view[:] = _pread_exact(fd, download, len(view), offset - begin)

    return RemoteRows(_verified(table_chunks(uri, layout, names, wanted.chunk_rows,
                                             wanted.raw_strings, fill, rows), download),
                      first)


def stream_count(uri: str, config: Config, selection: SelectionArg,
                 footprint: Optional[Footprint], hasher: Any = None, *,
                 resolve: bool = False, rows: Optional[RowSlice] = None,
                 expect: Optional[InputIdentity] = None,
                 nside: Optional[int] = None) -> SweepCount:
    """Count an http(s) or s3 sweep while downloading it (``rows``: that part of its rows
    only, fetching only their bytes: see the module docstring); the temp file goes, whatever
    happens. ``hasher`` (``reset()``, ``update(bytes)``) hears every byte of the download in
    file order: the caller checks the digest once this returns (ValueError with a part: a
    part's bytes are not the file's). ``expect``: see :func:`remote_chunks`.
    ``selection``: one or several; ``resolve`` and ``nside`` as
    :func:`~halo_lrg.count.local.count_sweep_file`'s (with
    ``config.cuts.unknown_release_photsys``)."""
    started = time.perf_counter()
    with remote_chunks(uri, config, count_columns(selection, footprint, resolve, nside),
                       count_optional(selection, resolve), config.read.chunk_rows, rows=rows,
                       check=count_check(selection, footprint, resolve, nside),
                       hasher=hasher, expect=expect) as table:
        result = tally_chunks(uri, table.chunks, selection, footprint, started,
                              resolve=resolve,
                              unknown_release_photsys=config.cuts.unknown_release_photsys,
                              first_row=table.first_row, nside=nside)
    return dataclasses.replace(result, path=uri, seconds=time.perf_counter() - started)
