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

Several selections are counted in one read of the file: the columns read are the union of
theirs, and the tally keeps, per brick, the objects and one LRG count per selection. A local
file's chunks are read lazily: the columns every selection reading them reads only at a few
rows (DESI's, past its cheaper cuts: :func:`count_sparse`) are decoded at those rows alone.

North/south (``resolve=True``): the count also notes which photometric systems the file's
objects come from (PHOTSYS, else RELEASE) and tallies, per brick, the objects (and LRGs of
each selection) that desitarget's resolution would drop (:func:`halo_lrg.science.resolve.
resolve_mask`: N kept only in the northern area, S only outside it). Whether to drop them is
decided for the whole run, once every file has said which systems it holds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

import numpy as np

from halo_lrg.config import Config, load_config
from halo_lrg.fits.layout import RowSlice, TableLayout
from halo_lrg.fits.reader import LayoutCheck, SweepError, iter_column_chunks, sweep_layout
from halo_lrg.science.cuts import (
    NORTH_RELEASES,
    SOUTH_RELEASES,
    Selection,
    SharedColumns,
    UnknownReleaseError,
    get_selections,
    photsys_from_release,
)
from halo_lrg.science.footprint import Footprint
from halo_lrg.science.resolve import RESOLVE_DEC, in_north_galactic_cap, is_north_photsys

if TYPE_CHECKING:
    import pandas as pd

    from halo_lrg.count.pixels import PixelCounts

BRICKNAME = "BRICKNAME"
COORDINATES = ("RA", "DEC")
#: Brick names have 8 characters (DR10: BRICKNAME 8A).
BRICKNAME_WIDTH = 8
#: Columns the cuts use as integers (a bit mask, release numbers), and as strings.
INTEGER_COLUMNS = frozenset({"MASKBITS", "RELEASE"})
STRING_COLUMNS = frozenset({"PHOTSYS"})
#: What north/south resolution reads: positions, and PHOTSYS when the file has it, else
#: RELEASE (a file with neither holds objects of unknown system, marked "?").
RESOLVE_COLUMNS = ("RA", "DEC")
RESOLVE_OPTIONAL = ("PHOTSYS", "RELEASE")
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
    #: LRGs per brick of the (first) selection.
    lrg_count: np.ndarray  # int64
    rows: int
    #: Objects that passed the footprint (== rows without one).
    objects: int
    #: LRGs of the (first) selection.
    lrg: int
    seconds: float
    #: The selections counted, in order (empty: one, unnamed).
    selections: tuple[str, ...] = ()
    #: LRGs per brick of each selection, shape (selections, bricks); row 0 is ``lrg_count``.
    #: None: ``lrg_count`` alone.
    lrg_counts: Optional[np.ndarray] = None
    #: North/south, when looked at (None: not): the photometric systems of the counted
    #: objects, sorted ("", "N", "S", "NS"; "?" for objects with neither PHOTSYS nor RELEASE),
    #: and per brick the objects and LRGs of each selection that resolution would drop.
    photsys: Optional[str] = None
    dropped_objects: Optional[np.ndarray] = None  # int64 (bricks,)
    dropped_counts: Optional[np.ndarray] = None  # int64 (selections, bricks)
    #: With a HEALPix nside: the same counts per NESTED pixel (objects, LRGs per selection),
    #: and what resolution would drop from each pixel (when north/south is looked at).
    pixels: Optional[PixelCounts] = None
    dropped_pixels: Optional[PixelCounts] = None

    @property
    def counts_by_selection(self) -> np.ndarray:
        """LRGs per brick, shape (selections, bricks)."""
        return self.lrg_counts if self.lrg_counts is not None else self.lrg_count[None, :]

    @property
    def lrg_by_selection(self) -> tuple[int, ...]:
        """The file's LRGs under each selection, in order."""
        return tuple(int(n) for n in self.counts_by_selection.sum(axis=1))

    @property
    def bricks(self) -> pd.DataFrame:
        """brickname (str), n_objects (int64), lrg_count (int64); sorted by brickname. With
        several selections, one column of LRGs per selection (by name) instead of
        ``lrg_count``."""
        import pandas as pd

        frame = {"brickname": pd.Series(self.brickname, dtype=str),
                 "n_objects": pd.Series(self.n_objects, dtype="int64")}
        if len(self.selections) > 1:
            for name, counts in zip(self.selections, self.counts_by_selection):
                frame[name] = pd.Series(counts, dtype="int64")
        else:
            frame["lrg_count"] = pd.Series(self.lrg_count, dtype="int64")
        return pd.DataFrame(frame)


_TOP = np.uint64(63)  # ASCII bytes leave the top bit of an 8-byte name as uint64 clear


class _BrickTally:
    """Objects and LRGs per brick, accumulated chunk by chunk, in memory that grows with the
    number of bricks, not rows, and in time independent of row order.

    ``width`` counted columns besides the objects (one per selection); without it, one, given
    and returned flat (``add(names, selected)`` with a 1-D mask).

    BRICKNAME is 8 bytes, so each name is read as one uint64: grouping integers is far
    cheaper than grouping strings. The bricks seen so far are kept sorted (``known``, a few
    hundred for a sweep); each chunk's keys find their slot by binary search and are summed
    with ``bincount``: no sort of the rows, so shuffled input costs what sorted input does.
    Real sweeps are grouped by brick, so a chunk first collapses into a few runs.
    """

    def __init__(self, width: Optional[int] = None) -> None:
        self.flat = width is None
        self.width = 1 if width is None else int(width)
        self.known: Optional[np.ndarray] = None
        self.objects = np.zeros(0, np.int64)
        self.counts = np.zeros((self.width, 0), np.int64)

    @property
    def lrgs(self) -> np.ndarray:
        return self.counts[0]

    def add(self, names: np.ndarray, selected: np.ndarray) -> None:
        """Count ``names`` (one per row) with ``selected``: a bool mask of the rows (a flat
        tally), or a (width, rows) array of them, one per counted column."""
        if names.size == 0:
            return
        if names.dtype.itemsize == 8 and names.dtype.kind == "S":
            keys = np.ascontiguousarray(names).view(np.uint64)
        else:  # not the standard 8A column: group on the strings themselves
            keys = names
        rows = selected[None, :] if selected.ndim == 1 else selected
        change = keys[1:] != keys[:-1]
        if 4 * (1 + int(np.count_nonzero(change))) <= keys.size:  # grouped rows: few runs
            starts = np.flatnonzero(np.r_[True, change])
            # int32 sums: a run is part of one chunk (half the work of int64 sums).
            self._merge(keys[starts], np.diff(np.r_[starts, keys.size]),
                        np.add.reduceat(rows, starts, axis=1, dtype=np.int32))
        elif rows.shape[0] == 1 and keys.dtype == np.uint64 and not (keys >> _TOP).any():
            # Rows in no particular order: sort the chunk (numpy's SIMD sort, ~4x cheaper than
            # a binary search per row) with the selection packed into the key's top bit,
            # which ASCII names leave clear, so one sort groups by (brick, selected).
            packed = np.sort(keys | (rows[0].astype(np.uint64) << _TOP))
            starts = np.flatnonzero(np.r_[True, packed[1:] != packed[:-1]])
            runs = packed[starts]
            lengths = np.diff(np.r_[starts, packed.size])
            self._merge(runs & ~(np.uint64(1) << _TOP), lengths,
                        np.where(runs >> _TOP, lengths, 0)[None, :])
        else:  # names that are not 8 ASCII bytes, or several columns: a slot lookup per row
            self._merge(keys, None, rows.astype(np.int64))

    def _merge(self, keys: np.ndarray, objects: Optional[np.ndarray],
               counts: np.ndarray) -> None:
        slots = self._slots(keys)
        size = self.known.size  # type: ignore[union-attr]
        self.objects += (np.bincount(slots, minlength=size) if objects is None
                         else np.bincount(slots, objects, size).astype(np.int64))
        if self.width == 1:
            self.counts[0] += np.bincount(slots, counts[0], size).astype(np.int64)
        else:  # every column in one call (slots may repeat: add.at sums repeats)
            np.add.at(self.counts, (slice(None), slots), counts)

    def _slots(self, keys: np.ndarray) -> np.ndarray:
        """Each key's position in ``known``, adding the keys not seen before (each checked
        once, when first seen: :class:`BadBrickName` if it cannot be a brick name)."""
        if self.known is None:
            known = np.unique(keys)
            _check_names(known)
            self.known = known
            self.objects = np.zeros(self.known.size, np.int64)
            self.counts = np.zeros((self.width, self.known.size), np.int64)
        slots = np.searchsorted(self.known, keys)
        found = self.known[np.minimum(slots, self.known.size - 1)] == keys
        if not found.all():
            _check_names(keys[~found])
            grown = np.union1d(self.known, keys[~found])
            moved = np.searchsorted(grown, self.known)
            objects = np.zeros(grown.size, np.int64)
            objects[moved] = self.objects
            counts = np.zeros((self.width, grown.size), np.int64)
            counts[:, moved] = self.counts
            self.known, self.objects, self.counts = grown, objects, counts
            slots = np.searchsorted(self.known, keys)
        return slots

    def totals(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Names (str, padding stripped), objects and LRGs per brick (flat, or one row per
        counted column), sorted by name; only bricks with an object."""
        if self.known is None:
            empty = np.zeros(0, np.int64) if self.flat else np.zeros((self.width, 0), np.int64)
            return np.array([], dtype=str), np.zeros(0, np.int64), empty
        keys, objects, counts = self.known, self.objects, self.counts
        # Checked names: printable ASCII then padding (trailing blanks or NULs), stripped.
        names = np.char.decode(_stripped(keys), "ascii")
        # Stripping can merge names that differ only in padding: merge again by the text.
        unique, inverse = np.unique(names, return_inverse=True)
        objects = np.bincount(inverse, objects, unique.size)
        counts = np.stack([np.bincount(inverse, row, unique.size) for row in counts])
        keep = objects > 0
        counts = counts[:, keep].astype(np.int64)
        return (unique[keep].astype(str), objects[keep].astype(np.int64),
                counts[0] if self.flat else counts)


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


SelectionArg = Union[Selection, Sequence[Selection]]


def _selections(selection: SelectionArg) -> tuple[Selection, ...]:
    """One selection or several, as a tuple (at least one, names distinct)."""
    selections = (selection,) if isinstance(selection, Selection) else tuple(selection)
    if not selections:
        raise ValueError("no selection to count")
    names = [s.name for s in selections]
    if len(set(names)) != len(names):
        raise ValueError(f"selections named twice: {', '.join(names)}")
    return selections


def count_check(selection: SelectionArg, footprint: Optional[Footprint],
                resolve: bool = False, nside: Optional[int] = None) -> LayoutCheck:
    """The column types a count needs, checked once per file from its layout, before any row
    is read: every reader refuses the same file with the same words (``FLUX_R is 3E (a
    vector), expected a scalar number``), and no string, complex, logical or vector column is
    ever converted to a number and counted."""
    selections = _selections(selection)
    numbers = [c.upper() for c in count_columns(selections, footprint, resolve, nside)[1:]]
    optional = [c.upper() for c in count_optional(selections, resolve)]

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
        for name in dict.fromkeys(optional):
            column = layout.columns.get(name)
            if column is None or name in numbers:
                continue
            if name in STRING_COLUMNS and not column.string:
                problems.append(f"{column.describe()}, expected a string")
            elif name in INTEGER_COLUMNS and not column.integer:
                problems.append(f"{column.describe()}, expected a scalar integer")
        return "; ".join(problems) or None

    return check


def count_sweep_file(
    path: Union[str, Path],
    selection: SelectionArg,
    chunk_rows: int,
    fast_path: bool = True,
    footprint: Optional[Footprint] = None,
    *,
    resolve: bool = False,
    unknown_release_photsys: str = "",
    rows: Optional[RowSlice] = None,
    nside: Optional[int] = None,
) -> SweepCount:
    """Objects and LRGs per brick of one local sweep file, read in chunks of ``chunk_rows``
    (``rows``: of that part of its rows only, by default all; ``nside``: per NESTED HEALPix
    pixel at that nside as well, from RA and DEC).

    ``selection``: one, or several counted in the same read (one column of LRGs each).
    ``resolve``: also note the file's photometric systems and what north/south resolution
    would drop (see the module's doc; ``unknown_release_photsys`` as ``cuts.``'s).

    Raises :class:`~halo_lrg.fits.reader.SweepError` (naming the file) when the file cannot be
    used; nothing partial is ever returned.
    """
    path = str(path)
    started = time.perf_counter()
    # A part's rows are numbered from its first in the file, so that errors name file rows.
    first_row = 0 if rows is None or rows.whole else rows.bounds(sweep_layout(path).nrows)[0]
    chunks = iter_column_chunks(path, count_columns(selection, footprint, resolve, nside),
                                chunk_rows,
                                count_optional(selection, resolve), fast_path,
                                raw_strings=(BRICKNAME,),
                                check=count_check(selection, footprint, resolve, nside),
                                rows=rows,
                                lazy=count_sparse(selection))
    return tally_chunks(path, chunks, selection, footprint, started, resolve=resolve,
                        unknown_release_photsys=unknown_release_photsys, first_row=first_row,
                        nside=nside)


def count_columns(selection: SelectionArg, footprint: Optional[Footprint],
                  resolve: bool = False, nside: Optional[int] = None) -> tuple[str, ...]:
    """The columns a count reads: names, the selections' (their union, once each),
    coordinates for a footprint, north/south resolution or HEALPix pixels."""
    selections = _selections(selection)
    return tuple(dict.fromkeys(
        (BRICKNAME, *(c for s in selections for c in s.columns),
         *(COORDINATES if footprint is not None or resolve or nside else ()))))


def count_sparse(selection: SelectionArg) -> tuple[str, ...]:
    """The columns a count reads only at some rows: those every selection reading them
    declares sparse (:attr:`~halo_lrg.science.cuts.Selection.sparse_columns`). The reader
    decodes the rest of each chunk at once, these at the rows read (``lazy``)."""
    selections = _selections(selection)
    whole = {c for s in selections for c in s.columns if c not in s.sparse_columns}
    whole.update((BRICKNAME, *COORDINATES, *RESOLVE_OPTIONAL))  # the count's own: every row
    return tuple(c for c in dict.fromkeys(c for s in selections for c in s.sparse_columns)
                 if c not in whole)


def count_optional(selection: SelectionArg, resolve: bool = False) -> tuple[str, ...]:
    """The columns a count reads when the file has them (PHOTSYS, RELEASE for resolution)."""
    selections = _selections(selection)
    return tuple(dict.fromkeys((*(c for s in selections for c in s.optional_columns),
                                *(RESOLVE_OPTIONAL if resolve else ()))))


def _north_flags(chunk: dict[str, np.ndarray], unknown_release_photsys: str,
                 known: dict[int, bool]) -> Union[bool, np.ndarray, None]:
    """Per object: north (BASS/MzLS)? From PHOTSYS, else RELEASE; a bool when every object
    of the chunk has the same system (the usual case), None when the chunk has neither.
    ``known``: release -> north, filled as releases are met (a file holds a handful)."""
    if "PHOTSYS" in chunk:
        north = is_north_photsys(chunk["PHOTSYS"])
    elif "RELEASE" in chunk:
        release = np.asarray(chunk["RELEASE"])
        if release.size == 0:
            return False
        low, high = int(release.min()), int(release.max())
        if low == high:  # one release in the chunk: no per-row look-up at all
            if low not in known:
                known[low] = _release_is_north(low, unknown_release_photsys)
            return known[low]
        offsets = release.astype(np.int64) - low
        # A chunk holds a few release values: classify those (once a file), then look each
        # row up only when they are of both systems.
        values = np.flatnonzero(np.bincount(offsets)).tolist()
        for value in values:
            if value + low not in known:
                known[value + low] = _release_is_north(value + low, unknown_release_photsys)
        value_north = [known[value + low] for value in values]
        if all(value_north) or not any(value_north):
            return value_north[0]
        table = np.zeros(values[-1] + 1, bool)
        table[[v for v, n in zip(values, value_north) if n]] = True
        return table[offsets]
    else:
        return None
    if north.all() or not north.any():
        return bool(north[0]) if north.size else False
    return north


def _release_is_north(release: int, unknown_release_photsys: str) -> bool:
    if release in SOUTH_RELEASES:
        return False
    if release in NORTH_RELEASES:
        return True
    # Not a known release: the map's own rule (an error naming it, or the configured default).
    return bool(photsys_from_release(np.array([release]), unknown_release_photsys)[0] == "N")


def _dropped_by_resolution(ra: np.ndarray, dec: np.ndarray, north: Union[bool, np.ndarray]
                           ) -> Optional[np.ndarray]:
    """Which objects desitarget's resolution drops (N outside the northern area, S inside
    it: the complement of :func:`~halo_lrg.science.resolve.resolve_mask`); None when none.
    The northern area's Galactic test runs only on objects at Dec ≥ 32.375."""
    dec = np.asarray(dec, dtype=np.float64)
    high = dec >= RESOLVE_DEC
    if not high.any():  # no northern area here: every N object goes, every S one stays
        if isinstance(north, bool):
            return np.ones(dec.size, bool) if north and dec.size else None
        return north.copy() if north.any() else None
    area = np.zeros(dec.size, bool)
    area[high] = in_north_galactic_cap(np.asarray(ra, dtype=np.float64)[high], dec[high])
    dropped = area != north
    return dropped if dropped.any() else None


def _selected(chunk: Mapping[str, np.ndarray], selections: tuple[Selection, ...]
              ) -> np.ndarray:
    """Each selection's mask of the chunk's rows, shape (selections, rows). Several share
    what they compute alike (:class:`SharedColumns`), which goes when this returns: before
    the next chunk is read, not after."""
    if len(selections) == 1:
        return selections[0](chunk)[None, :]
    shared = SharedColumns(chunk)
    return np.stack([s(shared) for s in selections])


def tally_chunks(path: str, chunks: Iterator[Mapping[str, np.ndarray]],
                 selection: SelectionArg,
                 footprint: Optional[Footprint], started: float, *, resolve: bool = False,
                 unknown_release_photsys: str = "", first_row: int = 0,
                 nside: Optional[int] = None) -> SweepCount:
    """Count a file's chunks (from any reader) into per-brick objects and LRGs of each
    selection, and with ``resolve`` what north/south resolution would drop. ``first_row``:
    the file row of the first chunk's first row (a part of a file), for error messages.
    ``nside``: the same per NESTED HEALPix pixel (RA and DEC in the chunks)."""
    selections = _selections(selection)
    tally = _BrickTally(len(selections))
    dropped_tally = _BrickTally(len(selections)) if resolve else None
    pixels = dropped_pixels = None
    if nside:  # imported here: the pixel tally's map writing brings pandas
        from halo_lrg.count.pixels import PixelTally

        pixels = PixelTally(nside, len(selections))
        dropped_pixels = PixelTally(nside, len(selections)) if resolve else None
    systems: set[str] = set()
    releases: dict[int, bool] = {}
    rows = 0
    for chunk in chunks:
        names = chunk[BRICKNAME]
        chunk_row, rows = first_row + rows, rows + names.size
        release = chunk.get("RELEASE")
        if release is not None and release.size and \
                int(release.max()) - int(release.min()) >= RELEASE_SPAN:
            raise SweepError(path, f"RELEASE holds values from {int(release.min())} to "
                                   f"{int(release.max())}: not survey release numbers")
        try:
            selected = _selected(chunk, selections)
            north = _north_flags(chunk, unknown_release_photsys, releases) if resolve else None
        except UnknownReleaseError as exc:
            raise SweepError(path, str(exc) + (" (or count without north/south resolution)"
                                               if resolve else "")) from None
        except ValueError as exc:  # a PHOTSYS that is neither N nor S
            raise SweepError(path, str(exc)) from None
        kept = None
        ra, dec = chunk.get("RA"), chunk.get("DEC")
        if footprint is not None:
            kept = footprint.contains(ra, dec)
            names, selected = names[kept], selected[:, kept]
            if resolve or pixels is not None:
                ra, dec = ra[kept], dec[kept]
                north = north[kept] if isinstance(north, np.ndarray) else north
        try:
            tally.add(names, selected)
        except BadBrickName:
            # The first bad name of the chunk among those counted, with its row in the file.
            rows_of = np.arange(names.size) if kept is None else np.flatnonzero(kept)
            bad = int(np.flatnonzero(_bad_names(names))[0])
            raise SweepError(path, _name_cause(names[bad:bad + 1],
                                               chunk_row + int(rows_of[bad]))) from None
        if pixels is not None:
            try:
                pixels.add(ra, dec, selected, chunk_row)
            except ValueError as exc:  # RA or Dec that is no position
                raise SweepError(path, f"cannot count per HEALPix pixel: {exc}") from None
        if dropped_tally is not None and names.size:
            _note_systems(systems, north)
            if north is None:
                continue  # objects of unknown system: never resolved
            try:
                dropped = _dropped_by_resolution(ra, dec, north)
            except ValueError as exc:  # RA or Dec that is no position (NaN, |Dec| > 90)
                raise SweepError(path, f"cannot resolve north/south: {exc}") from None
            if dropped is not None:
                dropped_tally.add(names[dropped], selected[:, dropped])
                if dropped_pixels is not None:
                    dropped_pixels.add(ra[dropped], dec[dropped], selected[:, dropped])
    names, objects, counts = tally.totals()
    extra: dict[str, Any] = {}
    if dropped_tally is not None:
        extra = {"photsys": "".join(sorted(systems)),
                 **_aligned(names, dropped_tally, len(selections))}
    if pixels is not None:
        extra["pixels"] = pixels.totals()
        if dropped_pixels is not None:
            extra["dropped_pixels"] = _aligned_pixels(extra["pixels"], dropped_pixels)
    return SweepCount(path, names, objects, counts[0], rows, int(objects.sum()),
                      int(counts[0].sum()), time.perf_counter() - started,
                      selections=tuple(s.name for s in selections), lrg_counts=counts, **extra)


def _note_systems(systems: set[str], north: Union[bool, np.ndarray, None]) -> None:
    if north is None:
        systems.add("?")
    elif isinstance(north, bool):
        systems.add("N" if north else "S")
    else:
        if north.any():
            systems.add("N")
        if not north.all():
            systems.add("S")


def _aligned_pixels(pixels: PixelCounts, dropped: Any) -> PixelCounts:
    """What resolution drops, per pixel of ``pixels`` (its pixels are among them)."""
    some = dropped.totals()
    objects = np.zeros(pixels.pixel.size, np.int64)
    counts = np.zeros(pixels.counts.shape, np.int64)
    at = np.searchsorted(pixels.pixel, some.pixel)
    objects[at] = some.n_objects
    counts[:, at] = some.counts
    return type(some)(pixels.pixel, objects, counts)


def _aligned(names: np.ndarray, dropped: _BrickTally, width: int) -> dict[str, np.ndarray]:
    """What resolution drops, per brick of ``names`` (its bricks are among them)."""
    objects = np.zeros(names.size, np.int64)
    counts = np.zeros((width, names.size), np.int64)
    some, some_objects, some_counts = dropped.totals()
    if some.size:
        at = np.searchsorted(names, some)
        objects[at] = some_objects
        counts[:, at] = some_counts
    return {"dropped_objects": objects, "dropped_counts": counts}


def count_sweep(
    path: Union[str, Path],
    selection: Union[str, Sequence[str]] = "seed",
    *,
    config: Optional[Config] = None,
    footprint: Optional[Footprint] = None,
) -> pd.DataFrame:
    """LRGs per brick in one sweep file: a DataFrame ``brickname, lrg_count`` sorted by name.

    Every brick with at least one object in the file is present (a count of 0 is a count).
    Only the needed columns are read, in row chunks, so memory does not grow with the file.
    Several selections (``"seed,desi-lrg"`` or a list; names from the configuration's
    ``[selections]`` too) are counted in one read: ``brickname, n_objects, <selection>...``::

        >>> import halo_lrg
        >>> halo_lrg.count_sweep("sweep-150p000-155p005.fits", "desi-lrg")  # doctest: +SKIP
    """
    config = config or load_config()
    selections = get_selections(selection, config.cuts, config.selections)
    result = count_sweep_file(path, selections, config.read.chunk_rows,
                              config.read.fast_path, footprint)
    if len(selections) > 1:
        return result.bricks
    return result.bricks[["brickname", "lrg_count"]]
