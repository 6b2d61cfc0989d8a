"""Read the columns a selection needs from a SWEEP file, in row chunks.

Every path takes the table from one layout model (:mod:`halo_lrg.fits.layout`), parsed from
the file's headers:

* the **fast path**: contiguous row chunks are read into one reused buffer and viewed through
  a numpy dtype naming only the needed fields (a sweep row is 505 bytes of which a selection
  needs ~60), then decoded by :func:`~halo_lrg.fits.layout.decode`; no per-row Python work.
  The streaming reader (count.streaming) runs the same :func:`table_chunks` on a download.
* the **fitsio path** (``read.fast_path = false``, or a needed column the view cannot decode:
  variable-length or bit arrays): fitsio reads the same HDU and its arrays are brought to the
  fast path's form (logicals bool, strings stripped ``str``, native byte order).

fitsio misreads integer columns scaled other than by the unsigned-offset convention (it copies
the stored bytes into a wider or float field, then scales garbage; float columns it scales in
float32): on the fitsio path those columns are decoded from the raw rows as on the fast path.
fitsio also reads a truncated file without complaint (zeros), so the file's size is checked
against the layout before any row is read.

fitsio hands a name to cfitsio, which reads its own syntax into it (``x.fits[1]`` is HDU 1 of
``x.fits``, ``x.fits(y)`` a template, ``$HOME`` an environment variable, ``dir[x]/...`` a
filter): the fitsio path never gives it the file's own name, but a name that can only mean the
file already open here (``/proc/self/fd/N`` on Linux, else a symlink with a plain name in a
private temp dir). cfitsio also keeps one error-message stack for the whole process: it is
emptied before and after each file, so one file's messages never reach another's error.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any, Callable, Optional

import numpy as np

from halo_lrg.fits.layout import (
    Column,
    FitsError,
    ReadAt,
    RecordColumns,
    RowSlice,
    TableLayout,
    decode,
    find_table,
    normalise_string,
)

#: Fills a buffer with the file's bytes from an offset, or raises (a truncated file).
Fill = Callable[[int, memoryview], None]
#: What a caller requires of the table before any row is read: the cause of a refusal (one
#: line, naming the columns), or None. Every read path runs it at the same point.
LayoutCheck = Callable[[TableLayout], Optional[str]]


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


def file_reader(fh: Any) -> ReadAt:
    """``read_at`` over an open binary file: short only at its end."""
    def read_at(offset: int, size: int) -> bytes:
        fh.seek(offset)
        return fh.read(size)
    return read_at


def file_fill(path: str, layout: TableLayout, fh: Any) -> Fill:
    """A :data:`Fill` reading ``fh`` with ``readinto`` (no copy); a short file is an error."""
    def fill(offset: int, view: memoryview) -> None:
        fh.seek(offset)
        got = 0
        while got < len(view):  # readinto may return short reads on pipes/network mounts
            more = fh.readinto(view[got:])
            if not more:
                row = (offset - layout.data_start + got) // layout.row_bytes
                raise SweepError(path, f"truncated at row {row:,} of {layout.nrows:,}")
            got += more
    return fill


def sweep_layout(path: str) -> TableLayout:
    """The layout of ``path``'s table (see :func:`~halo_lrg.fits.layout.find_table`), checked
    against the file's size. Raises :class:`SweepError` naming the file."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            layout = find_table(file_reader(fh))
    except OSError as exc:
        raise SweepError(path, f"cannot read file ({exc.strerror or exc})") from None
    except FitsError as exc:
        raise SweepError(path, str(exc)) from None
    if size < layout.file_end:
        raise SweepError(path, truncated_cause(layout, size))
    return layout


def truncated_cause(layout: TableLayout, size: int) -> str:
    """Why a file of ``size`` bytes cannot hold ``layout``'s table: the same words on every
    path (the streaming reader says it when a complete download is short)."""
    heap = f" and a {layout.heap_bytes:,}-byte heap" if layout.heap_bytes else ""
    return (f"truncated: the header declares {layout.nrows:,} rows of {layout.row_bytes} bytes"
            f"{heap} ({layout.file_end:,} bytes with headers and padding) but the file holds "
            f"{size:,} bytes")


def check_layout(path: str, layout: TableLayout, check: Optional[LayoutCheck]) -> None:
    """Run a caller's :data:`LayoutCheck`; its refusal is a :class:`SweepError`."""
    cause = check(layout) if check is not None else None
    if cause:
        raise SweepError(path, cause)


def select_columns(path: str, layout: TableLayout, columns: Sequence[str],
                   optional: Sequence[str] = ()) -> list[str]:
    """Upper-case names to read: every one of ``columns`` (else :class:`MissingColumnsError`
    naming the absent ones), then those of ``optional`` the table has."""
    wanted = list(dict.fromkeys(c.upper() for c in columns))
    missing = [c for c in wanted if c not in layout.columns]
    if missing:
        raise MissingColumnsError(path, missing)
    return wanted + [c for c in dict.fromkeys(c.upper() for c in optional)
                     if c in layout.columns and c not in wanted]


def table_chunks(path: str, layout: TableLayout, names: Sequence[str], chunk_rows: int,
                 raw_strings: Iterable[str], fill: Fill, rows: Optional[RowSlice] = None,
                 lazy: Collection[str] = ()) -> Iterator[Mapping[str, np.ndarray]]:
    """``{name: array}`` for successive chunks of at most ``chunk_rows`` rows (of ``rows``'
    part of the table only, by default all), read by ``fill`` into one reused buffer (memory
    is chunk_rows x row_bytes whatever the file's size) and decoded from a strided view.
    ``lazy``: columns decoded only when read, at the rows read: each chunk is then a
    :class:`~halo_lrg.fits.layout.RecordColumns` (readable until the next one is asked for)."""
    first, stop = (rows or RowSlice()).bounds(layout.nrows)
    if not names or stop <= first:
        return
    dtype = layout.view_dtype(names)
    columns = [layout.columns[n] for n in names]
    raw = {c.upper() for c in raw_strings}
    buffer = bytearray(min(chunk_rows, stop - first) * layout.row_bytes)
    for start in range(first, stop, chunk_rows):
        n = min(chunk_rows, stop - start)
        view = memoryview(buffer)[: n * layout.row_bytes]
        fill(layout.data_start + start * layout.row_bytes, view)
        records = np.frombuffer(view, dtype=dtype, count=n)
        try:
            chunk: Mapping[str, np.ndarray] = (
                RecordColumns(records, columns, raw, start, lazy) if lazy else
                {c.name: decode(records[c.name], c, c.name in raw, start) for c in columns})
        except FitsError as exc:
            raise SweepError(path, str(exc)) from None
        yield chunk
        if isinstance(chunk, RecordColumns):
            chunk.release()  # before the buffer is refilled


def iter_column_chunks(
    path: str,
    columns: Sequence[str],
    chunk_rows: int,
    optional_columns: Sequence[str] = (),
    fast_path: bool = True,
    raw_strings: Sequence[str] = (),
    check: Optional[LayoutCheck] = None,
    rows: Optional[RowSlice] = None,
    lazy: Collection[str] = (),
) -> Iterator[Mapping[str, np.ndarray]]:
    """Yield ``{column: array}`` for successive chunks of at most ``chunk_rows`` rows (of
    ``rows``' part of the table only: by default every row). ``lazy``: on the fast path,
    columns decoded only when read (see :func:`table_chunks`).

    Column names are matched case-insensitively and returned upper case. A required column
    that is absent raises :class:`MissingColumnsError` naming it; optional ones are read when
    present. ``check`` (a :data:`LayoutCheck`) may then refuse the table before any row is
    read. Numbers come back in native byte order, TSCAL/TZERO applied; FITS logicals as
    bool. Strings come back as ``str`` with padding stripped, except the columns named in
    ``raw_strings``: those stay fixed-width bytes (``S<n>``, padding kept), which is much
    cheaper to group by; a string that is not ASCII is refused, naming its row. An empty
    table yields nothing. ``fast_path=False`` reads through fitsio.
    """
    if chunk_rows <= 0:
        raise ValueError(f"chunk_rows must be positive, got {chunk_rows}")
    layout = sweep_layout(path)
    wanted = select_columns(path, layout, columns, optional_columns)
    check_layout(path, layout, check)
    if layout.nrows == 0:
        return
    raw = {c.upper() for c in raw_strings}
    if fast_path and not layout.needs_fitsio(wanted):
        with open(path, "rb", buffering=0) as fh:
            yield from table_chunks(path, layout, wanted, chunk_rows, raw,
                                    file_fill(path, layout, fh), rows, lazy)
    else:
        yield from _fitsio_chunks(path, layout, wanted, chunk_rows, raw, rows)


def _fitsio_misreads(column: Column) -> bool:
    return column.scaled and column.offset_type is None and not column.unsupported


def _fitsio_chunks(path: str, layout: TableLayout, wanted: list[str], chunk_rows: int,
                   raw: set[str], rows: Optional[RowSlice] = None
                   ) -> Iterator[dict[str, np.ndarray]]:
    import fitsio

    ours = [c for c in wanted if _fitsio_misreads(layout.columns[c])]
    theirs = [c for c in wanted if c not in ours]
    with ExitStack() as stack:
        try:
            fh = stack.enter_context(open(path, "rb", buffering=0))
        except OSError as exc:
            raise SweepError(path, f"cannot read file ({exc.strerror or exc})") from None
        name = stack.enter_context(_cfitsio_name(fh.fileno(), path))
        clear_cfitsio_messages()
        stack.callback(clear_cfitsio_messages)  # after the file is closed, on every exit
        try:
            fits = stack.enter_context(fitsio.FITS(name))
            hdu = fits[layout.hdu_index]
            kind, nrows = hdu.get_exttype(), int(hdu.get_nrows())
            colnames = hdu.get_colnames()
        except (OSError, ValueError, KeyError, IndexError) as exc:
            raise SweepError(path, f"fitsio cannot read HDU {layout.hdu_index} "
                                   f"({_first_line(exc)})") from None
        if kind != "BINARY_TBL" or nrows != layout.nrows:
            raise SweepError(path, f"fitsio sees HDU {layout.hdu_index} as {kind} of {nrows:,} "
                                   f"rows, the header a binary table of {layout.nrows:,}")
        names = [colnames[layout.columns[c].index] for c in theirs]
        own: Optional[Iterator[dict[str, np.ndarray]]] = None
        if ours:
            own = table_chunks(path, layout, ours, chunk_rows, raw, file_fill(path, layout, fh),
                               rows)
        first, last = (rows or RowSlice()).bounds(layout.nrows)
        for start in range(first, last, chunk_rows):
            stop = min(start + chunk_rows, last)
            chunk: dict[str, np.ndarray] = {}
            if theirs:
                try:
                    data = hdu.read(columns=names, rows=np.arange(start, stop))
                except UnicodeDecodeError:
                    # fitsio decodes strings as ASCII and fails on the whole read: name the
                    # row and value as the fast path does, from the stored bytes.
                    raise SweepError(path, _string_cause(path, layout, theirs, start, stop,
                                                         fh)) from None
                except (OSError, ValueError) as exc:
                    raise SweepError(path, f"read failed at rows {start:,}-{stop:,} "
                                           f"({_first_line(exc)})") from None
                for c, n in zip(theirs, names):
                    try:
                        chunk[c] = _from_fitsio(data[n], layout.columns[c], c in raw,
                                                stop - start)
                    except FitsError as exc:
                        raise SweepError(path, str(exc)) from None
                    except ValueError:  # a shape cfitsio took from elsewhere (TDIMn)
                        raise SweepError(path, f"fitsio reads column {c} as "
                                               f"{data[n].dtype}{data[n].shape[1:]}, not as "
                                               f"its TFORM {layout.columns[c].tform} "
                                               "declares") from None
            if own is not None:
                chunk.update(next(own))
            yield {c: chunk[c] for c in wanted}


@contextmanager
def _cfitsio_name(fd: int, path: str) -> Iterator[str]:
    """A name cfitsio can only read as the file open on ``fd``.

    ``/proc/self/fd/N`` opens the same file anew (its own offset) and stays unique while
    ``fd`` is open, so cfitsio, which shares the handle of a name it already has open, can
    never mistake another file for this one. Elsewhere a symlink named ``sweep.fits`` in a
    private temp dir (``/dev/fd`` on macOS would share ``fd``'s offset)."""
    proc = f"/proc/self/fd/{fd}"
    if sys.platform.startswith("linux") and os.path.exists(proc):
        yield proc
        return
    workdir = tempfile.mkdtemp(prefix="halo-lrg-fitsio-")
    try:
        link = os.path.join(workdir, "sweep.fits")
        os.symlink(os.path.abspath(path), link)
        yield link
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def clear_cfitsio_messages() -> None:
    """Empty cfitsio's error-message stack, which is global to the process.

    fitsio reads the stack (as much as fits its message) only when a call fails; messages
    pushed by calls that recovered, or left over from a long failure, would otherwise open the
    next failure's message, whichever file it is about. fitsio has no call to clear it, but
    any failing call drains it: ``get_keytype("")`` fails (status 204) and pushes nothing of
    its own, so it is repeated until the failure reports only its status line.
    """
    try:
        from fitsio import _fitsio_wrap

        probe = _fitsio_wrap.get_keytype
    except (ImportError, AttributeError):
        return
    for _ in range(64):  # cfitsio keeps at most 25 messages; each drain takes ~10
        try:
            probe("")
        except OSError as exc:
            if str(exc).strip().count("\n") == 0:
                return
        except Exception:
            return
        else:
            return


def _string_cause(path: str, layout: TableLayout, names: list[str], start: int, stop: int,
                  fh: Any) -> str:
    """The fast path's error for rows ``start:stop`` of the string columns in ``names``,
    decoded from the stored bytes (fitsio only says that some string is not ASCII)."""
    strings = [n for n in names if layout.columns[n].string]
    buffer = bytearray((stop - start) * layout.row_bytes)
    file_fill(path, layout, fh)(layout.data_start + start * layout.row_bytes,
                                memoryview(buffer))
    records = np.frombuffer(buffer, dtype=layout.view_dtype(strings), count=stop - start)
    for name in strings:
        try:
            decode(records[name], layout.columns[name], True, start)
        except FitsError as exc:
            return str(exc)
    return f"fitsio cannot decode a string in rows {start:,}-{stop:,}"


def _from_fitsio(values: np.ndarray, column: Column, raw: bool, n: int) -> np.ndarray:
    """fitsio's array in the fast path's form."""
    if column.string:
        return normalise_string(values, raw, column.name)
    if column.unsupported:
        return np.array(values)
    if column.logical:
        out = np.array(values) if values.dtype.kind == "b" else values == b"T"
    else:
        out = values.astype(values.dtype.newbyteorder("="))
    # fitsio shapes a field by its TDIMn; the view by its repeat alone.
    return out.reshape((n,) if column.repeat == 1 else (n, column.repeat))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
