"""Count a remote sweep while it downloads: the download runs in a thread into the task's
temp file and the reader follows it, one row chunk behind, so network and CPU overlap. Over
HTTP(S) it is one stream; on S3, concurrent ranged GETs written at their offsets, the reader
following the contiguous prefix.

The FITS headers are parsed from the first bytes (halo_lrg.fits.layout), so no complete file
is needed to start. Nothing is returned until the whole download is verified (its length
against Content-Length and the header's declared size): a truncated download is never counted,
and a retry that starts the file over only makes the reader wait, since the same bytes come
back. Tables the parser does not cover (scaled columns, heaps) are counted after the download
with fitsio, as any local file.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Optional
from urllib.parse import urlparse

import numpy as np

from halo_lrg.config import Config
from halo_lrg.count.local import (
    BRICKNAME,
    SweepCount,
    count_columns,
    count_sweep_file,
    tally_chunks,
)
from halo_lrg.fits.layout import BLOCK, parse_cards, table_layout
from halo_lrg.fits.reader import MissingColumnsError, SweepError, _decode
from halo_lrg.io.fetch import TEMP_PREFIX, _translated
from halo_lrg.science.cuts import Selection
from halo_lrg.science.footprint import Footprint


class DownloadCancelled(Exception):
    """The reader gave up (a bad file): stop downloading the rest."""


class GrowingDownload(threading.Thread):
    """Downloads ``url`` to ``dest`` in the background; readers wait for the bytes they need."""

    def __init__(self, url: str, dest: str, config: Config) -> None:
        super().__init__(name="halo-lrg-download", daemon=True)
        self.url, self.dest, self.config = url, dest, config
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
                                                  self._progress)
            else:
                http_source.download(self.url, self.dest, self.config.remote,
                                     progress=self._progress)
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


def _header(fd: int, download: GrowingDownload, at: int) -> tuple[dict, int]:
    size = BLOCK
    while True:
        cards, length = parse_cards(_pread_exact(fd, download, size, at))
        if length is not None:
            return cards, length
        size += BLOCK


def _stream_chunks(uri: str, fd: int, download: GrowingDownload, columns: tuple[str, ...],
                   optional: tuple[str, ...], chunk_rows: int
                   ) -> Optional[Iterator[dict[str, np.ndarray]]]:
    primary, primary_length = _header(fd, download, 0)
    if int(primary.get("NAXIS", 0)) != 0:
        return None  # data in the primary HDU: not a sweep layout we stream
    cards, table_length = _header(fd, download, primary_length)
    layout = table_layout(cards)
    if layout is None:
        return None
    nrows, row_bytes, dtype, logical = layout
    data_start = primary_length + table_length
    wanted = [c.upper() for c in dict.fromkeys(columns)]
    missing = [c for c in wanted if c not in dtype.names]
    if missing:
        raise MissingColumnsError(uri, missing)
    wanted += [c for c in optional if c in dtype.names and c not in wanted]
    view = np.dtype({"names": wanted, "formats": [dtype.fields[c][0] for c in wanted],
                     "offsets": [dtype.fields[c][1] for c in wanted], "itemsize": row_bytes})

    def chunks() -> Iterator[dict[str, np.ndarray]]:
        for start in range(0, nrows, chunk_rows):
            n = min(chunk_rows, nrows - start)
            raw = _pread_exact(fd, download, n * row_bytes, data_start + start * row_bytes)
            records = np.frombuffer(raw, dtype=view, count=n)
            yield {c: _decode(records[c], c in logical, c == BRICKNAME) for c in wanted}

    return chunks()


def stream_count(uri: str, config: Config, selection: Selection,
                 footprint: Optional[Footprint]) -> SweepCount:
    """Count an http(s) or s3 sweep while downloading it; the temp file goes, whatever
    happens."""
    started = time.perf_counter()
    workdir = tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=config.remote.tmp_dir or None)
    dest = os.path.join(workdir, os.path.basename(urlparse(uri).path) or "download")
    try:
        with _translated(uri):
            # The reader's descriptor exists before the download starts: a failed download
            # removes its file, and a reader opening the name after that would report a
            # missing temp file instead of the download's own error (a 404, say).
            fd = os.open(dest, os.O_RDONLY | os.O_CREAT, 0o600)
        try:
            result = _count_while_downloading(uri, dest, fd, config, selection, footprint,
                                              started)
        finally:
            os.close(fd)
        return dataclasses.replace(result, path=uri, seconds=time.perf_counter() - started)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _count_while_downloading(uri: str, dest: str, fd: int, config: Config,
                             selection: Selection, footprint: Optional[Footprint],
                             started: float) -> SweepCount:
    download = GrowingDownload(uri, dest, config)
    download.start()
    try:
        with _translated(uri):
            chunks = _stream_chunks(uri, fd, download, count_columns(selection, footprint),
                                    tuple(selection.optional_columns), config.read.chunk_rows)
            if chunks is None:  # not streamable: the whole file, then the usual reader
                download.join()
                download.wait_for(0)
                return count_sweep_file(dest, selection, config.read.chunk_rows,
                                        config.read.fast_path, footprint)
            result = tally_chunks(uri, chunks, selection, footprint, started)
            download.join()  # complete and verified before the counts count
            download.wait_for(0)
            return result
    finally:
        download.cancel()  # a no-op once it has finished; else don't fetch what won't be read
        download.join()
