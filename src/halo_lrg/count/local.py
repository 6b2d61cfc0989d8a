"""Count LRGs per brick in one sweep file: fitsio reads, numpy cuts, no Spark.

``count_sweep`` is the notebook entry point; the Spark job calls :func:`count_sweep_file`
once per file and sums the per-brick partials across files.

What a count needs of a file is checked here, the same for every reader (the local fast path,
fitsio, the streaming reader): before any row is read, the columns' types (:func:`count_check`:
BRICKNAME a string of at most 8 characters, every number the selection reads a scalar real
number, MASKBITS and RELEASE integers, PHOTSYS a string); while counting, every brick name
that will be written (printable ASCII without commas or quotes, not blank: it becomes a CSV
field) and the span of RELEASE values. A refusal is a :class:`SweepError` naming the file,
the column and, for a value, its row.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Union

import numpy as np

from halo_lrg.config import Config, load_config
from halo_lrg.fits.layout import TableLayout
from halo_lrg.fits.reader import LayoutCheck, SweepError, iter_column_chunks
from halo_lrg.science.cuts import Selection, UnknownReleaseError, get_selection
from halo_lrg.science.footprint import Footprint

if TYPE_CHECKING:
    import pandas as pd

BRICKNAME = "BRICKNAME"
COORDINATES = ("RA", "DEC")
#: Brick names have 8 characters (DR10: BRICKNAME 8A).
BRICKNAME_WIDTH = 8
#: Columns the cuts use as integers (a bit mask, release numbers), and as strings.
INTEGER_COLUMNS = frozenset({"MASKBITS", "RELEASE"})
STRING_COLUMNS = frozenset({"PHOTSYS"})
#: Release numbers are 16-bit (DR10: RELEASE I); the RELEASE -> PHOTSYS map tabulates the
#: values' span, so a wider one is refused rather than tabulated.
RELEASE_SPAN = 1 << 16
# Bytes a brick name may hold: printable ASCII but for the comma and quotes (a CSV field).
_NAME_OK = np.zeros(256, bool)
_NAME_OK[0x20:0x7F] = True
_NAME_OK[[ord(","), ord('"'), ord("'")]] = False


@dataclass(frozen=True)
class SweepCount:
    """Per-brick counts of one whole file, with what it took to get them.

    The counts are numpy arrays, sorted by brickname, holding every brick with an object:
    counting needs no pandas (importing pandas 3 loads pyarrow, ~80 MB, several times what
    counting a file takes). ``bricks`` gives them as a DataFrame.
    """

    path: str
    brickname: np.ndarray  # str
    n_objects: np.ndarray  # int64
    lrg_count: np.ndarray  # int64
    rows: int
    #: Objects that passed the footprint (== rows without one).
    objects: int
    lrg: int
    seconds: float

    @property
    def bricks(self) -> pd.DataFrame:
        """brickname (str), n_objects (int64), lrg_count (int64); sorted by brickname."""
        import pandas as pd

        return pd.DataFrame({"brickname": pd.Series(self.brickname, dtype=str),
                             "n_objects": pd.Series(self.n_objects, dtype="int64"),
                             "lrg_count": pd.Series(self.lrg_count, dtype="int64")})


_TOP = np.uint64(63)  # ASCII bytes leave the top bit of an 8-byte name as uint64 clear


class _BrickTally:
    """Objects and LRGs per brick, accumulated chunk by chunk, in memory that grows with the
    number of bricks, not rows, and in time independent of row order.

    BRICKNAME is 8 bytes, so each name is read as one uint64: grouping integers is far
    cheaper than grouping strings. The bricks seen so far are kept sorted (``known``, a few
    hundred for a sweep); each chunk's keys find their slot by binary search and are summed
    with ``bincount``: no sort of the rows, so shuffled input costs what sorted input does.
    Real sweeps are grouped by brick, so a chunk first collapses into a few runs.
    """

    def __init__(self) -> None:
        self.known: Optional[np.ndarray] = None
        self.objects = np.zeros(0, np.int64)
        self.lrgs = np.zeros(0, np.int64)

    def add(self, names: np.ndarray, selected: np.ndarray) -> None:
        if names.size == 0:
            return
        if names.dtype.itemsize == 8 and names.dtype.kind == "S":
            keys = np.ascontiguousarray(names).view(np.uint64)
        else:  # not the standard 8A column: group on the strings themselves
            keys = names
        selected = selected.astype(np.int64)
        change = keys[1:] != keys[:-1]
        if 4 * (1 + int(np.count_nonzero(change))) <= keys.size:  # grouped rows: few runs
            starts = np.flatnonzero(np.r_[True, change])
            self._merge(keys[starts], np.diff(np.r_[starts, keys.size]),
                        np.add.reduceat(selected, starts))
        elif keys.dtype == np.uint64 and not (keys >> _TOP).any():
            # Rows in no particular order: sort the chunk (numpy's SIMD sort, ~4x cheaper than
            # a binary search per row) with the selection packed into the key's top bit,
            # which ASCII names leave clear, so one sort groups by (brick, selected).
            packed = np.sort(keys | (selected.astype(np.uint64) << _TOP))
            starts = np.flatnonzero(np.r_[True, packed[1:] != packed[:-1]])
            runs = packed[starts]
            lengths = np.diff(np.r_[starts, packed.size])
            self._merge(runs & ~(np.uint64(1) << _TOP), lengths,
                        np.where(runs >> _TOP, lengths, 0))
        else:  # names that are not 8 ASCII bytes: one slot lookup per row
            self._merge(keys, None, selected)

    def _merge(self, keys: np.ndarray, objects: Optional[np.ndarray],
               lrgs: np.ndarray) -> None:
        slots = self._slots(keys)
        size = self.known.size  # type: ignore[union-attr]
        self.objects += (np.bincount(slots, minlength=size) if objects is None
                         else np.bincount(slots, objects, size).astype(np.int64))
        self.lrgs += np.bincount(slots, lrgs, size).astype(np.int64)

    def _slots(self, keys: np.ndarray) -> np.ndarray:
        """Each key's position in ``known``, adding the keys not seen before (each checked
        once, when first seen: :class:`BadBrickName` if it cannot be a brick name)."""
        if self.known is None:
            known = np.unique(keys)
            _check_names(known)
            self.known = known
            self.objects = np.zeros(self.known.size, np.int64)
            self.lrgs = np.zeros(self.known.size, np.int64)
        slots = np.searchsorted(self.known, keys)
        found = self.known[np.minimum(slots, self.known.size - 1)] == keys
        if not found.all():
            _check_names(keys[~found])
            grown = np.union1d(self.known, keys[~found])
            moved = np.searchsorted(grown, self.known)
            for name in ("objects", "lrgs"):
                counts = np.zeros(grown.size, np.int64)
                counts[moved] = getattr(self, name)
                setattr(self, name, counts)
            self.known = grown
            slots = np.searchsorted(self.known, keys)
        return slots

    def totals(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Names (str, padding stripped), objects and LRGs per brick, sorted by name; only
        bricks with an object."""
        if self.known is None:
            return np.array([], dtype=str), np.zeros(0, np.int64), np.zeros(0, np.int64)
        keys, objects, lrgs = self.known, self.objects, self.lrgs
        # Checked names: printable ASCII then padding (trailing blanks or NULs), stripped.
        names = np.char.decode(_stripped(keys), "ascii")
        # Stripping can merge names that differ only in padding: merge again by the text.
        unique, inverse = np.unique(names, return_inverse=True)
        objects = np.bincount(inverse, objects, unique.size)
        lrgs = np.bincount(inverse, lrgs, unique.size)
        keep = objects > 0
        return (unique[keep].astype(str), objects[keep].astype(np.int64),
                lrgs[keep].astype(np.int64))


_NAME_RULE = ("a brick name must be printable ASCII without commas or quotes (it becomes a "
              "CSV field)")


class BadBrickName(ValueError):
    """A BRICKNAME value that cannot be a brick name: raised by the tally (one line, naming
    the value), and by :func:`tally_chunks` as a SweepError naming the file and the row."""


def _name_bytes(keys: np.ndarray) -> np.ndarray:
    """Names (uint64 keys of 8 bytes, bytes, or str) as a (n, width) uint8 array."""
    if keys.dtype == np.uint64:
        keys = keys.view("S8")
    elif keys.dtype.kind == "U":
        keys = np.char.encode(keys, "utf-8")  # anything not ASCII stays visible as such
    keys = np.ascontiguousarray(keys)
    width = max(1, keys.dtype.itemsize)
    return np.frombuffer(keys.tobytes(), np.uint8).reshape(len(keys), width) if keys.size \
        else np.zeros((0, width), np.uint8)


def _padding(codes: np.ndarray) -> np.ndarray:
    """Where a name's trailing padding (blanks and NULs, in any mix) lies."""
    blank = (codes == 0x20) | (codes == 0)
    return np.logical_and.accumulate(blank[:, ::-1], axis=1)[:, ::-1]


def _bad_names(keys: np.ndarray) -> np.ndarray:
    """Per name: True when it is blank or holds a byte other than printable ASCII, a comma
    or a quote before its padding."""
    codes = _name_bytes(keys)
    padding = _padding(codes)
    return (~(_NAME_OK[codes] | padding)).any(axis=1) | padding.all(axis=1)


def _check_names(keys: np.ndarray) -> None:
    bad = _bad_names(keys)
    if bad.any():
        stored, why = _name_problem(keys[bad][:1])
        raise BadBrickName(f"BRICKNAME {stored!r} {why}: {_NAME_RULE}")


def _stripped(keys: np.ndarray) -> np.ndarray:
    """Names without their padding, as bytes (``S<width>``)."""
    codes = _name_bytes(keys).copy()
    codes[_padding(codes)] = 0  # trailing NULs are no part of a numpy bytes value
    return codes.view(f"S{codes.shape[1]}").reshape(len(codes))


def _name_problem(name: np.ndarray) -> tuple[bytes, str]:
    """One bad name (an array of one) as stored, and what is wrong with it."""
    stored = _name_bytes(name)[0]
    content = stored[~_padding(stored[None, :])[0]]
    if not content.size:
        return stored.tobytes(), "is blank"
    byte = int(content[~_NAME_OK[content]][0])
    why = ("holds a byte that is not ASCII" if byte >= 0x80
           else "holds a comma" if byte == ord(",")
           else "holds a quote" if byte in (ord('"'), ord("'"))
           else "holds a control character")
    return stored.tobytes(), why


def _name_cause(names: np.ndarray, first_row: int) -> str:
    """Why the first bad name among ``names`` (rows ``first_row``...) is refused."""
    row = int(np.flatnonzero(_bad_names(names))[0])
    stored, why = _name_problem(names[row:row + 1])
    return f"BRICKNAME at row {first_row + row:,} ({stored!r}) {why}: {_NAME_RULE}"


def count_check(selection: Selection, footprint: Optional[Footprint]) -> LayoutCheck:
    """The column types a count needs, checked once per file from its layout, before any row
    is read: every reader refuses the same file with the same words (``FLUX_R is 3E (a
    vector), expected a scalar number``), and no string, complex, logical or vector column is
    ever converted to a number and counted."""
    numbers = [c.upper() for c in (*selection.columns, *(COORDINATES if footprint else ()))]

    def check(layout: TableLayout) -> Optional[str]:
        problems = []
        brick = layout.columns[BRICKNAME]
        if not brick.string or brick.unsupported or brick.repeat > BRICKNAME_WIDTH:
            problems.append(f"{brick.describe()}, expected a string of at most "
                            f"{BRICKNAME_WIDTH} characters (DR10: 8A)")
        for name in dict.fromkeys(numbers):
            column = layout.columns.get(name)
            if column is None or name == BRICKNAME:
                continue
            if name in STRING_COLUMNS:
                if not column.string:
                    problems.append(f"{column.describe()}, expected a string")
            elif name in INTEGER_COLUMNS:
                if not column.integer:
                    problems.append(f"{column.describe()}, expected a scalar integer")
            elif not column.real_scalar:
                problems.append(f"{column.describe()}, expected a scalar number")
        for name in selection.optional_columns:
            column = layout.columns.get(name.upper())
            if column is not None and name.upper() in STRING_COLUMNS and not column.string:
                problems.append(f"{column.describe()}, expected a string")
        return "; ".join(problems) or None

    return check


def count_sweep_file(
    path: Union[str, Path],
    selection: Selection,
    chunk_rows: int,
    fast_path: bool = True,
    footprint: Optional[Footprint] = None,
) -> SweepCount:
    """Objects and LRGs per brick of one local sweep file, read in chunks of ``chunk_rows``.

    Raises :class:`~halo_lrg.fits.reader.SweepError` (naming the file) when the file cannot be
    used; nothing partial is ever returned.
    """
    path = str(path)
    started = time.perf_counter()
    chunks = iter_column_chunks(path, count_columns(selection, footprint), chunk_rows,
                                selection.optional_columns, fast_path,
                                raw_strings=(BRICKNAME,),
                                check=count_check(selection, footprint))
    return tally_chunks(path, chunks, selection, footprint, started)


def count_columns(selection: Selection, footprint: Optional[Footprint]) -> tuple[str, ...]:
    """The columns a count reads: names, the selection's, coordinates for a footprint."""
    return (BRICKNAME, *selection.columns, *(COORDINATES if footprint else ()))


def tally_chunks(path: str, chunks: Iterator[dict[str, np.ndarray]], selection: Selection,
                 footprint: Optional[Footprint], started: float) -> SweepCount:
    """Count a file's chunks (from any reader) into per-brick objects and LRGs."""
    tally = _BrickTally()
    rows = 0
    for chunk in chunks:
        names = chunk[BRICKNAME]
        first_row, rows = rows, rows + names.size
        release = chunk.get("RELEASE")
        if release is not None and release.size and \
                int(release.max()) - int(release.min()) >= RELEASE_SPAN:
            raise SweepError(path, f"RELEASE holds values from {int(release.min())} to "
                                   f"{int(release.max())}: not survey release numbers")
        try:
            selected = selection(chunk)
        except UnknownReleaseError as exc:
            raise SweepError(path, str(exc)) from None
        kept = None
        if footprint is not None:
            kept = footprint.contains(chunk["RA"], chunk["DEC"])
            names, selected = names[kept], selected[kept]
        try:
            tally.add(names, selected)
        except BadBrickName:
            # The first bad name of the chunk among those counted, with its row in the file.
            rows_of = np.arange(names.size) if kept is None else np.flatnonzero(kept)
            bad = int(np.flatnonzero(_bad_names(names))[0])
            raise SweepError(path, _name_cause(names[bad:bad + 1],
                                               first_row + int(rows_of[bad]))) from None
    names, objects, lrgs = tally.totals()
    return SweepCount(path, names, objects, lrgs, rows, int(objects.sum()), int(lrgs.sum()),
                      time.perf_counter() - started)


def count_sweep(
    path: Union[str, Path],
    selection: str = "seed",
    *,
    config: Optional[Config] = None,
    footprint: Optional[Footprint] = None,
) -> pd.DataFrame:
    """LRGs per brick in one sweep file: a DataFrame ``brickname, lrg_count`` sorted by name.

    Every brick with at least one object in the file is present (a count of 0 is a count).
    Only the needed columns are read, in row chunks, so memory does not grow with the file::

        >>> import halo_lrg
        >>> halo_lrg.count_sweep("sweep-150p000-155p005.fits", "desi-lrg")  # doctest: +SKIP
    """
    config = config or load_config()
    result = count_sweep_file(path, get_selection(selection, config.cuts),
                              config.read.chunk_rows, config.read.fast_path, footprint)
    return result.bricks[["brickname", "lrg_count"]]
