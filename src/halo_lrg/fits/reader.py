"""Read the columns a selection needs from a SWEEP file, in row chunks.

Two ways, one result:

* the **fitsio path** (the reference): ``hdu.read(columns=..., rows=...)`` chunk by chunk;
* the **fast path**: fitsio locates the table (data offset, row width, each column's byte offset
  and dtype), then plain ``readinto`` of contiguous row chunks is viewed through a numpy dtype
  holding only the needed fields. A sweep row is 505 bytes of which a selection needs ~60;
  FITS tables are row-major, so every byte is read either way, but numpy's strided view skips
  fitsio's per-row decoding.

The fast path applies to uncompressed binary tables of fixed-width columns (every sweep); other
HDUs (tile-compressed, variable-length arrays, scaled columns) go through fitsio.

fitsio reads a truncated file without complaint (missing bytes come back as zeros), so the
file's size is checked against the header before any row is read.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

SWEEP_EXTNAME = "SWEEP"
LOGICAL_RAW = "S1"  # how the fast path views a FITS logical (TFORM L) byte


class SweepError(Exception):
    """A file cannot be used as a sweep. ``str(err)`` names the file and the cause."""

    def __init__(self, path: str, cause: str) -> None:
        super().__init__(f"{path}: {cause}")
        self.path = path
        self.cause = cause

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from its own arguments: the default (the message alone) cannot be, so the
        # error could not cross a process boundary (a multiprocessing pool, a Spark worker).
        return type(self), (self.path, self.cause)


class MissingColumnsError(SweepError):
    def __init__(self, path: str, missing: Sequence[str]) -> None:
        names = ", ".join(missing)
        super().__init__(path, f"missing column{'s' if len(missing) > 1 else ''} {names}")
        self.missing = tuple(missing)

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.path, self.missing)


@dataclass(frozen=True)
class TableLayout:
    """Where a sweep's binary table lies in its file, as fitsio reports it."""

    path: str
    hdu_index: int
    nrows: int
    row_bytes: int
    data_start: int
    columns: tuple[str, ...]
    #: Columns' numpy dtypes and byte offsets in a row, for the fast path (None: not possible).
    fields: Optional[dict[str, tuple[np.dtype, int]]]

    @property
    def data_bytes(self) -> int:
        return self.nrows * self.row_bytes


def _find_table(fits: Any, path: str) -> int:
    """The HDU holding the sweep: EXTNAME SWEEP if present, else the first binary table."""
    for index, hdu in enumerate(fits):
        if hdu.get_extname().strip().upper() == SWEEP_EXTNAME:
            return index
    for index, hdu in enumerate(fits):
        if hdu.get_exttype() == "BINARY_TBL":
            return index
    raise SweepError(path, "no binary table HDU (a sweep keeps its catalogue in HDU 1)")


def _fast_fields(hdu: Any, header: Any) -> Optional[dict[str, tuple[np.dtype, int]]]:
    """Column dtypes and offsets from fitsio's record dtype, or None where a view can't work."""
    if header.get("ZIMAGE") or header.get("ZTABLE") or int(header.get("PCOUNT", 0)) != 0:
        return None  # compressed, or a heap of variable-length arrays
    for i in range(1, int(header.get("TFIELDS", 0)) + 1):
        if f"TSCAL{i}" in header or f"TZERO{i}" in header:
            return None  # scaled or unsigned-by-offset columns need fitsio's conversion
    dtype, offsets, isvar = hdu.get_rec_dtype()
    if any(isvar) or dtype.itemsize != int(header["NAXIS1"]):
        return None
    fields = {name: (dtype.fields[name][0], int(off)) for name, off in zip(dtype.names, offsets)}
    for i, name in enumerate(dtype.names, start=1):
        if str(header.get(f"TFORM{i}", "")).strip().endswith("L"):
            # FITS logicals are the ASCII bytes 'T'/'F' (0 for null): a numpy bool view would
            # read 'F' as True, so view the raw byte and decode it in _decode.
            fields[name] = (np.dtype(LOGICAL_RAW), fields[name][1])
    return fields


@contextmanager
def open_sweep(path: str) -> Iterator[tuple[Any, Any, TableLayout]]:
    """Open ``path`` with fitsio and validate it as a sweep: ``(fits, hdu, layout)``.

    Raises :class:`SweepError` naming the file for anything that is not a readable,
    complete binary table.
    """
    import fitsio

    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise SweepError(path, f"cannot read file ({exc.strerror or exc})") from None
    if size == 0:
        raise SweepError(path, "empty file (0 bytes), not FITS")
    try:
        fits = fitsio.FITS(path)
    except OSError as exc:
        raise SweepError(path, f"not a FITS file ({_first_line(exc)})") from None
    try:
        index = _find_table(fits, path)
        hdu = fits[index]
        header = hdu.read_header()
        if hdu.get_exttype() != "BINARY_TBL":
            raise SweepError(path, f"HDU {index} is {hdu.get_exttype()}, not a binary table")
        nrows = int(hdu.get_nrows())
        row_bytes = int(header["NAXIS1"])
        data_start = int(hdu.get_offsets()["data_start"])
        needed = data_start + nrows * row_bytes
        if size < needed:
            raise SweepError(
                path, f"truncated: the header declares {nrows:,} rows of {row_bytes} bytes "
                      f"({needed:,} bytes with headers) but the file holds {size:,} bytes")
        layout = TableLayout(path, index, nrows, row_bytes, data_start,
                             tuple(c.upper() for c in hdu.get_colnames()),
                             _fast_fields(hdu, header))
    except SweepError:
        fits.close()
        raise
    except (OSError, KeyError, ValueError) as exc:
        fits.close()
        raise SweepError(path, f"unreadable FITS table ({_first_line(exc)})") from None
    try:
        yield fits, hdu, layout
    finally:
        fits.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def iter_column_chunks(
    path: str,
    columns: Sequence[str],
    chunk_rows: int,
    optional_columns: Sequence[str] = (),
    fast_path: bool = True,
    raw_strings: Sequence[str] = (),
) -> Iterator[dict[str, np.ndarray]]:
    """Yield ``{column: array}`` for successive chunks of at most ``chunk_rows`` rows.

    Column names are matched case-insensitively and returned upper case. A required column
    that is absent raises :class:`MissingColumnsError` naming it; optional ones are read when
    present. Numbers come back in native byte order. Strings come back as ``str`` with
    padding stripped, except the columns named in ``raw_strings``: those stay fixed-width
    bytes (``S<n>``, padding kept), which is much cheaper to group by. An empty table yields
    nothing.
    """
    if chunk_rows <= 0:
        raise ValueError(f"chunk_rows must be positive, got {chunk_rows}")
    with open_sweep(path) as (_fits, hdu, layout):
        wanted = [c.upper() for c in dict.fromkeys(columns)]
        missing = [c for c in wanted if c not in layout.columns]
        if missing:
            raise MissingColumnsError(path, missing)
        wanted += [c.upper() for c in optional_columns
                   if c.upper() in layout.columns and c.upper() not in wanted]
        if layout.nrows == 0:
            return
        raw = {c.upper() for c in raw_strings}
        if fast_path and layout.fields is not None:
            yield from _fast_chunks(layout, wanted, chunk_rows, raw)
        else:
            yield from _fitsio_chunks(hdu, layout, wanted, chunk_rows, raw)


def _fitsio_chunks(hdu: Any, layout: TableLayout, wanted: list[str], chunk_rows: int,
                   raw: set[str]) -> Iterator[dict[str, np.ndarray]]:
    actual = {c.upper(): c for c in hdu.get_colnames()}
    names = [actual[c] for c in wanted]
    for start in range(0, layout.nrows, chunk_rows):
        stop = min(start + chunk_rows, layout.nrows)
        try:
            data = hdu.read(columns=names, rows=np.arange(start, stop))
        except OSError as exc:
            raise SweepError(layout.path, f"read failed at rows {start:,}-{stop:,} "
                                          f"({_first_line(exc)})") from None
        yield {c: _normalise(data[n], c in raw) for c, n in zip(wanted, names)}


def view_dtype(layout: TableLayout, wanted: Sequence[str]) -> np.dtype:
    """A dtype as wide as a row that names only ``wanted``: a strided view of the raw bytes."""
    assert layout.fields is not None
    by_upper = {name.upper(): spec for name, spec in layout.fields.items()}
    return np.dtype({"names": list(wanted),
                     "formats": [by_upper[c][0] for c in wanted],
                     "offsets": [by_upper[c][1] for c in wanted],
                     "itemsize": layout.row_bytes})


def _fast_chunks(layout: TableLayout, wanted: list[str], chunk_rows: int,
                 raw: set[str]) -> Iterator[dict[str, np.ndarray]]:
    dtype = view_dtype(layout, wanted)
    # One buffer, reused: memory is chunk_rows x row_bytes whatever the file's size.
    buffer = bytearray(min(chunk_rows, layout.nrows) * layout.row_bytes)
    with open(layout.path, "rb", buffering=0) as fh:
        fh.seek(layout.data_start)
        for start in range(0, layout.nrows, chunk_rows):
            n = min(chunk_rows, layout.nrows - start)
            view = memoryview(buffer)[: n * layout.row_bytes]
            got = fh.readinto(view)
            while got < len(view):  # readinto may return short reads on pipes/network mounts
                more = fh.readinto(view[got:])
                if not more:
                    row = start + got // layout.row_bytes
                    raise SweepError(layout.path, f"truncated at row {row:,} of {layout.nrows:,}")
                got += more
            records = np.frombuffer(view, dtype=dtype, count=n)
            # Copy each field out: the buffer is overwritten by the next chunk.
            yield {c: _decode(records[c], dtype.fields[c][0] == LOGICAL_RAW, c in raw)
                   for c in wanted}


def _decode(values: np.ndarray, logical: bool, raw: bool) -> np.ndarray:
    if logical:
        return values == b"T"
    return _normalise(values, raw)


def _normalise(values: np.ndarray, raw: bool = False) -> np.ndarray:
    """A contiguous copy in native byte order (so later arithmetic needs no byte swapping);
    strings stripped to ``str`` unless ``raw``."""
    kind = values.dtype.kind
    if kind in "SU":
        if raw:
            width = values.dtype.itemsize // (4 if kind == "U" else 1)
            return np.ascontiguousarray(values.astype(f"S{width}"))
        text = values.astype("U") if kind == "S" else values
        return np.char.rstrip(text) if text.size else text
    return values.astype(values.dtype.newbyteorder("="), copy=True)
