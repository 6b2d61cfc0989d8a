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
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Iterator
from typing import Any, Optional

import numpy as np

from halo_lrg.config import Config
from halo_lrg.count.local import (
    BRICKNAME,
    SelectionArg,
    SweepCount,
    count_check,
    count_columns,
    count_optional,
    count_sweep_file,
    tally_chunks,
)
from halo_lrg.fits.layout import FitsError, ReadAt, TableLayout, find_table
from halo_lrg.fits.reader import (
    Fill,
    LayoutCheck,
    SweepError,
    check_layout,
    select_columns,
    table_chunks,
)
from halo_lrg.io.fetch import _translated, download_name
from halo_lrg.io.workdir import task_workdir
from halo_lrg.science.footprint import Footprint


class DownloadCancelled(Exception):
    """The reader gave up (a bad file): stop downloading the rest."""


class GrowingDownload(threading.Thread):
    """Downloads ``url`` to ``dest`` in the background; readers wait for the bytes they need."""

    def __init__(self, url: str, dest: str, config: Config, hasher: Any = None) -> None:
        super().__init__(name="halo-lrg-download", daemon=True)
        self.url, self.dest, self.config, self.hasher = url, dest, config, hasher
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
        from halo_lrg.io.uri import is_s3

        try:
            if is_s3(self.url):
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
                  ) -> Optional[Iterator[dict[str, np.ndarray]]]:
    """The table's row chunks from any byte source, by the layout model every reader uses:
    headers through ``read_at``, rows through ``fill``; ``check`` refuses a table as
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
    return _with_padding(table_chunks(uri, layout, wanted, chunk_rows, raw_strings, fill),
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


def stream_count(uri: str, config: Config, selection: SelectionArg,
                 footprint: Optional[Footprint], hasher: Any = None, *,
                 resolve: bool = False) -> SweepCount:
    """Count an http(s) or s3 sweep while downloading it; the temp file goes, whatever
    happens. ``hasher`` (``reset()``, ``update(bytes)``) hears every byte of the download in
    file order: the caller checks the digest once this returns. ``selection``: one or
    several; ``resolve`` as :func:`~halo_lrg.count.local.count_sweep_file`'s (with
    ``config.cuts.unknown_release_photsys``)."""
    started = time.perf_counter()
    with task_workdir(config.remote.tmp_dir) as workdir:
        dest = os.path.join(workdir, download_name(uri))
        with _translated(uri):
            # The reader's descriptor exists before the download starts: a failed download
            # removes its file, and a reader opening the name after that would report a
            # missing temp file instead of the download's own error (a 404, say).
            fd = os.open(dest, os.O_RDONLY | os.O_CREAT, 0o600)
        try:
            result = _count_while_downloading(uri, dest, fd, config, selection, footprint,
                                              started, hasher, resolve)
        finally:
            os.close(fd)
        return dataclasses.replace(result, path=uri, seconds=time.perf_counter() - started)


def _count_while_downloading(uri: str, dest: str, fd: int, config: Config,
                             selection: SelectionArg, footprint: Optional[Footprint],
                             started: float, hasher: Any = None, resolve: bool = False
                             ) -> SweepCount:
    download = GrowingDownload(uri, dest, config, hasher)
    download.start()
    unknown = config.cuts.unknown_release_photsys
    try:
        with _translated(uri):
            chunks = _stream_chunks(uri, fd, download,
                                    count_columns(selection, footprint, resolve),
                                    count_optional(selection, resolve), config.read.chunk_rows,
                                    check=count_check(selection, footprint, resolve))
            if chunks is None:  # not streamable: the whole file, then the usual reader
                download.join()
                download.wait_for(0)
                return count_sweep_file(dest, selection, config.read.chunk_rows,
                                        config.read.fast_path, footprint, resolve=resolve,
                                        unknown_release_photsys=unknown)
            result = tally_chunks(uri, chunks, selection, footprint, started,
                                  resolve=resolve, unknown_release_photsys=unknown)
            download.join()  # complete and verified before the counts count
            download.wait_for(0)
            return result
    finally:
        download.cancel()  # a no-op once it has finished; else don't fetch what won't be read
        download.join()
