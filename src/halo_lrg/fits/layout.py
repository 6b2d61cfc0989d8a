"""One model of a FITS file's binary table, for every read path.

The local fast path, the streaming reader (which sees only a growing prefix of the file) and
the fitsio fallback all take the table's layout from here: the HDU walk and the choice of
table, each column's offset, type, repeat and scaling, and how raw row bytes become arrays.
Headers are read through a callback ``read_at(offset, size) -> bytes`` (short only at the end
of the file), one 2880-byte block at a time, each block's cards parsed once.

Headers are held to what cfitsio (under the fitsio path) holds them to, so that no path reads
a header another refuses: the mandatory keywords first and in order (SIMPLE/XTENSION, BITPIX,
NAXIS, NAXISn, PCOUNT, GCOUNT, TFIELDS), no byte over 0x7F before the END card and no control
byte in a keyword field, values delimited by blanks only. The table's data must fill whole
2880-byte blocks (cfitsio fails on the last rows of a file cut inside its padding).
Compressed bytes (gzip at any level, bzip2, xz, zstd, zip, compress) are refused by name, never
decompressed: cfitsio would decompress some of them behind fitsio's back, so the fitsio path
would count what the others refuse.

Errors are :class:`FitsError` with a one-line cause; readers add the file's name.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, KeysView, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

BLOCK = 2880
CARD = 80
#: Header blocks read before giving up on an END card (~2.9 MB): a real header is a few blocks.
MAX_HEADER_BLOCKS = 1000
SWEEP_EXTNAME = "SWEEP"

ReadAt = Callable[[int, int], bytes]

# Bytes per element and big-endian numpy base type of each binary-table TFORM code.
_WIDTH = {"L": 1, "X": 1, "B": 1, "I": 2, "J": 4, "K": 8, "A": 1, "E": 4, "D": 8, "C": 8,
          "M": 16, "P": 8, "Q": 16}
_BASE = {"L": "S1", "B": "u1", "I": ">i2", "J": ">i4", "K": ">i8", "E": ">f4", "D": ">f8",
         "C": ">c8", "M": ">c16", "P": ">i4", "Q": ">i8"}
_NUMERIC = frozenset("BIJKEDCM")
_REAL = frozenset("BIJKED")
# Integer columns whose TZERO (with TSCAL 1) flips the sign bit: the unsigned (signed, for B)
# convention. Their values are integers of the same width, as fitsio and astropy return them.
_OFFSET_TYPES = {("B", -128): "i1", ("I", 32768): "u2", ("J", 2**31): "u4",
                 ("K", 2**63): "u8"}
_TFORM = re.compile(r" *([0-9]*)([A-Z])(.*?) *$")
_INT = re.compile(r"[+-]?[0-9]+$")
_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([ED][+-]?[0-9]+)?$")
_NOT_FITS = "not a FITS file: first card is not SIMPLE = T"
# Leading bytes of compressed files (cfitsio would decompress some of them on open; no path
# here does: a compressed sweep is refused by name on every path).
_COMPRESSED = ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"),
               (b"\x28\xb5\x2f\xfd", "zstd"), (b"PK\x03\x04", "zip"),
               (b"\x1f\x9d", "Unix compress (.Z)"), (b"\x1f\x1e", "pack (.z)"))
#: Header bytes FITS allows in a card (printable ASCII, FITS standard 4.0 section 4.1.1).
_TEXT = frozenset(range(0x20, 0x7F))


class FitsError(ValueError):
    """Bytes that are not a FITS binary table this package can read; the message says why."""


# --- header cards ----------------------------------------------------------------------------

def _value(text: str) -> Any:
    """A card's value (after ``= ``): str, bool, int, float, or the raw text if none fits."""
    text = text.lstrip(" ")  # blanks only: cfitsio takes no other control byte for one
    if text.startswith("'"):
        out, i = [], 1
        while i < len(text):
            if text[i] == "'":
                if text[i + 1:i + 2] != "'":
                    break
                i += 1  # '' is a quote inside the string
            out.append(text[i])
            i += 1
        return "".join(out).rstrip(" ")
    text = text.split("/", 1)[0].strip(" ")
    if text in ("T", "F"):
        return text == "T"
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text.upper()):
        return float(text.upper().replace("D", "E"))
    return text


def _block_cards(block: bytes, cards: dict[str, Any], keys: list[str], hdu: int,
                 offset: int) -> bool:
    """Add one block's keyword cards to ``cards`` (the first occurrence of a key wins, as in
    cfitsio) and every card's keyword to ``keys`` (in order: the mandatory ones are checked
    by position); True when the block holds the END card.

    A card before END holding a byte that is not ASCII, or a control character in its keyword
    field (columns 1-10), is refused: FITS allows neither, fitsio fails on the first, and a
    header that runs on into binary data (no END card) shows so. Control characters later in a
    card, which cfitsio tolerates, are left to the value's own checks.
    """
    if max(block, default=0) >= 0x80 or not all(
            _TEXT.issuperset(block[start:start + 10]) for start in range(0, len(block), CARD)):
        _refuse_bytes(block, keys, hdu, offset)
    for start in range(0, len(block), CARD):
        card = block[start:start + CARD].decode("ascii", "replace")  # only END may hold any
        key = card[:8].rstrip(" ")
        keys.append(key)
        if key == "END":
            return True
        if card[8:10] == "= " and key and key not in cards:
            cards[key] = _value(card[10:])
    return False


def _refuse_bytes(block: bytes, keys: list[str], hdu: int, offset: int) -> None:
    """Raise for the first card (before END) of ``block`` holding a byte FITS does not allow
    there; return when the only such bytes follow the END card."""
    for n, start in enumerate(range(0, len(block), CARD)):
        raw = block[start:start + CARD]
        if raw[:8].rstrip(b" ") == b"END":
            return
        bad = [b for i, b in enumerate(raw) if b >= 0x80 or (i < 10 and b not in _TEXT)]
        if bad:
            raise FitsError(f"HDU {hdu}: header card {len(keys) + n + 1} (byte "
                            f"{offset + start:,}) holds 0x{bad[0]:02X}, which a FITS header "
                            "cannot: a damaged header, or one with no END card")


def _not_fits(head: bytes) -> FitsError:
    for magic, kind in _COMPRESSED:
        if head.startswith(magic):
            return FitsError(f"{_NOT_FITS} (the bytes are {kind}-compressed: decompress them "
                             "first)")
    if head.lstrip()[:1] == b"<":
        return FitsError(f"{_NOT_FITS} (the bytes look like HTML: an error page?)")
    return FitsError(_NOT_FITS)


def read_header(read_at: ReadAt, offset: int, hdu: int,
                max_blocks: int = MAX_HEADER_BLOCKS) -> tuple[dict[str, Any], int]:
    """The cards of the header starting at ``offset``, and the header's length in bytes.

    Linear in the header's size: each block is read and parsed once. The mandatory keywords
    must stand first, in the order FITS requires (cfitsio reads them by position).
    """
    cards, keys, length = _header(read_at, offset, hdu, max_blocks)
    _check_mandatory(cards, keys, hdu)
    return cards, length


def _header(read_at: ReadAt, offset: int, hdu: int, max_blocks: int
            ) -> tuple[dict[str, Any], list[str], int]:
    cards: dict[str, Any] = {}
    keys: list[str] = []
    for n in range(max_blocks):
        block = read_at(offset + n * BLOCK, BLOCK)
        if n == 0 and hdu == 0:
            if not block:
                raise FitsError("empty file (0 bytes), not FITS")
            first = block[:CARD].decode("ascii", "replace")
            if first[:10] != "SIMPLE  = " or _value(first[10:]) is not True:
                raise _not_fits(block)
        if len(block) < BLOCK:
            raise FitsError(f"truncated: the file ends inside the header of HDU {hdu} "
                            f"(byte {offset + n * BLOCK + len(block):,})")
        if _block_cards(block, cards, keys, hdu, offset + n * BLOCK):
            return cards, keys, (n + 1) * BLOCK
    raise FitsError(f"HDU {hdu}: no END card in the first {max_blocks} header blocks "
                    f"({max_blocks * BLOCK:,} bytes): not a FITS header")


def _check_mandatory(cards: dict[str, Any], keys: list[str], hdu: int) -> None:
    """SIMPLE or XTENSION, BITPIX, NAXIS, NAXISn, then (extensions) PCOUNT, GCOUNT and (binary
    tables) TFIELDS, each in its place, as the FITS standard (4.4.1) requires and cfitsio
    checks: a header that has them elsewhere is refused on every path, not only fitsio's."""
    def expect(position: int, key: str) -> None:
        found = keys[position] if position < len(keys) else "END"
        if found != key:
            raise FitsError(f"HDU {hdu}: card {position + 1} is {found!r} where FITS requires "
                            f"{key} (the mandatory keywords come first, in order)")

    expect(0, "SIMPLE" if hdu == 0 else "XTENSION")
    expect(1, "BITPIX")
    expect(2, "NAXIS")
    naxis = _int(cards, "NAXIS", hdu)
    if naxis > 999:
        raise FitsError(f"HDU {hdu}: NAXIS = {naxis} is over 999")
    for i in range(1, naxis + 1):
        expect(2 + i, f"NAXIS{i}")
    if hdu > 0:
        expect(3 + naxis, "PCOUNT")
        expect(4 + naxis, "GCOUNT")
        if isinstance(cards.get("XTENSION"), str) and \
                cards["XTENSION"].strip(" ") == "BINTABLE":
            expect(5 + naxis, "TFIELDS")


def _int(cards: dict[str, Any], key: str, hdu: int, default: Optional[int] = None,
         minimum: Optional[int] = 0) -> int:
    value = cards.get(key, default)
    if value is None:
        raise FitsError(f"HDU {hdu}: {key} is missing")
    if isinstance(value, bool) or not isinstance(value, int):
        raise FitsError(f"HDU {hdu}: {key} = {value!r} is not an integer")
    if minimum is not None and value < minimum:
        raise FitsError(f"HDU {hdu}: {key} = {value} is negative")
    return value


def _data_bytes(cards: dict[str, Any], hdu: int) -> int:
    """Bytes of the HDU's data (heap included), before padding to a block."""
    bitpix = _int(cards, "BITPIX", hdu, minimum=None)
    if bitpix not in (8, 16, 32, 64, -32, -64):
        raise FitsError(f"HDU {hdu}: BITPIX = {bitpix} is not a FITS value")
    naxis = _int(cards, "NAXIS", hdu)
    if naxis > 999:
        raise FitsError(f"HDU {hdu}: NAXIS = {naxis} is over 999")
    axes = [_int(cards, f"NAXIS{i}", hdu) for i in range(1, naxis + 1)]
    if hdu == 0 and cards.get("GROUPS") is True and axes and axes[0] == 0:
        axes = axes[1:]  # random groups: NAXIS1 = 0 is not a dimension
    pcount = _int(cards, "PCOUNT", hdu, default=0 if hdu == 0 else None)
    gcount = _int(cards, "GCOUNT", hdu, default=1 if hdu == 0 else None)
    if not axes:
        return 0
    return abs(bitpix) // 8 * gcount * (pcount + math.prod(axes))


# --- the table model -------------------------------------------------------------------------

@dataclass(frozen=True)
class Column:
    """One binary-table column, as its TFORMn/TSCALn/TZEROn declare it."""

    name: str  # TTYPEn upper-cased ("" when unnamed)
    index: int  # 0-based position in the table
    tform: str
    code: str  # TFORM letter
    repeat: int
    offset: int  # byte offset in a row
    width: int  # bytes in a row
    scale: float = 1.0
    zero: float = 0.0
    #: Why the fast path cannot decode this column (None: it can).
    unsupported: Optional[str] = None

    @property
    def logical(self) -> bool:
        return self.code == "L"  # decided by the TFORM code: a 1A string is not a logical

    @property
    def string(self) -> bool:
        return self.code == "A"

    @property
    def variable(self) -> bool:
        """A variable-length array descriptor: the values live in the heap."""
        return self.code in "PQ"

    @property
    def scaled(self) -> bool:
        return self.code in _NUMERIC and (self.scale != 1 or self.zero != 0)

    @property
    def offset_type(self) -> Optional[str]:
        """The integer type of an unsigned-by-offset column (TZERO 32768 on I...), else None."""
        if not self.scaled or self.scale != 1:
            return None
        return next((t for (code, zero), t in _OFFSET_TYPES.items()
                     if code == self.code and self.zero == zero), None)

    @property
    def real_scalar(self) -> bool:
        """One real number a row (integer or float, scaled or not) that the view decodes."""
        return self.code in _REAL and self.repeat == 1 and not self.unsupported

    @property
    def integer(self) -> bool:
        """A :attr:`real_scalar` whose values are integers (unscaled, or unsigned by offset)."""
        return self.real_scalar and self.code in "BIJK" and (
            not self.scaled or self.offset_type is not None)

    @property
    def kind(self) -> str:
        """What one row of the column holds, in words: ``"a vector"``, ``"a string"``..."""
        if self.unsupported:
            return self.unsupported
        if self.string:
            return "a string"
        if self.logical:
            return "a logical" if self.repeat == 1 else "a vector of logicals"
        if self.code in "CM":
            return "a complex number" if self.repeat == 1 else "a vector of complex numbers"
        if self.repeat != 1:
            return "a vector"
        if self.code in "ED" or (self.scaled and self.offset_type is None):
            return "a float" if not self.scaled else "a scaled number (a float)"
        return "an integer"

    def describe(self) -> str:
        """``"FLUX_R is 3E (a vector)"``: the column's name, TFORM and kind."""
        return f"{self.name} is {self.tform} ({self.kind})"

    @property
    def base_dtype(self) -> Optional[np.dtype]:
        """Stored type of one element (big-endian; a descriptor's pair for P/Q); None for
        bit arrays."""
        if self.string:
            return np.dtype(f"S{self.repeat}")
        return np.dtype(_BASE[self.code]) if self.code in _BASE else None

    @property
    def view_format(self) -> Any:
        """numpy format of the column's raw bytes, for a strided view of whole rows."""
        base = self.base_dtype
        if self.string:
            return base
        if self.variable:
            return (base, (2,))
        return base if self.repeat == 1 else (base, (self.repeat,))


@dataclass(frozen=True)
class RowSlice:
    """Part ``part`` (0-based) of ``parts`` near-equal row ranges of a table: rows
    ``[nrows·part // parts, nrows·(part+1) // parts)``.

    A big file is split this way from its size alone, before anything has read its header:
    the task that reads a part learns ``nrows`` from the header and takes its own rows, so
    the parts of one file cover each row exactly once whatever ``nrows`` turns out to be."""

    part: int = 0
    parts: int = 1

    def __post_init__(self) -> None:
        if not (isinstance(self.parts, int) and isinstance(self.part, int)
                and self.parts >= 1 and 0 <= self.part < self.parts):
            raise ValueError(f"a row slice is part k of n with 0 <= k < n, got part "
                             f"{self.part!r} of {self.parts!r}")

    @property
    def whole(self) -> bool:
        return self.parts == 1

    def bounds(self, nrows: int) -> tuple[int, int]:
        """The first row and one past the last row of this part of ``nrows`` rows."""
        return nrows * self.part // self.parts, nrows * (self.part + 1) // self.parts

    def __str__(self) -> str:
        return "all rows" if self.whole else f"rows part {self.part + 1}/{self.parts}"


@dataclass(frozen=True)
class TableLayout:
    """Where a binary table lies in its file and what its rows hold."""

    hdu_index: int
    nrows: int
    row_bytes: int
    data_start: int
    heap_bytes: int  # PCOUNT: the heap (and any gap before it) after the rows
    columns: dict[str, Column]  # by upper-cased name, in table order
    extname: str = ""
    compressed: bool = False  # ZTABLE = T: rows are tiles of compressed columns

    @property
    def table_bytes(self) -> int:
        return self.nrows * self.row_bytes

    @property
    def data_end(self) -> int:
        """Where the table's rows and heap end."""
        return self.data_start + self.table_bytes + self.heap_bytes

    @property
    def file_end(self) -> int:
        """File size the table needs: rows and heap padded to a whole block, as FITS
        requires and cfitsio reads (it fails on the last rows of a file cut short of it)."""
        return self.data_start + -(-(self.table_bytes + self.heap_bytes) // BLOCK) * BLOCK

    def needs_fitsio(self, names: Iterable[str]) -> bool:
        """Whether columns ``names`` can only be read through fitsio."""
        return any(self.columns[n].unsupported for n in names)

    def view_dtype(self, names: Sequence[str]) -> np.dtype:
        """A dtype as wide as a row that names only ``names``: a strided view of raw rows."""
        cols = [self.columns[n] for n in names]
        return np.dtype({"names": list(names), "formats": [c.view_format for c in cols],
                         "offsets": [c.offset for c in cols], "itemsize": self.row_bytes})


def parse_tform(tform: str) -> tuple[int, str, int]:
    """(repeat, code, bytes in a row) of a binary-table TFORM; FitsError if it is none."""
    match = _TFORM.match(tform.upper())
    if not match or match.group(2) not in _WIDTH:
        raise FitsError(f"TFORM {tform!r} is not a FITS binary-table format")
    repeat = int(match.group(1) or 1)
    code = match.group(2)
    if code == "X":
        return repeat, code, (repeat + 7) // 8
    if code in "PQ":
        if repeat > 1:
            raise FitsError(f"TFORM {tform!r}: a descriptor's repeat is 0 or 1")
    elif match.group(3) and code != "A":  # 'rAw' (a width) is the only suffix fixed forms have
        raise FitsError(f"TFORM {tform!r} is not a FITS binary-table format")
    return repeat, code, repeat * _WIDTH[code]


def numpy_format(tform: str) -> Any:
    """numpy format to *write* a TFORM's values: ``"8A"`` -> ``"S8"``, ``"L"`` -> ``"?"``,
    ``"5E"`` -> ``(">f4", (5,))``."""
    repeat, code, _width = parse_tform(tform)
    if code == "A":
        return f"S{repeat}"
    if code not in _BASE or code in "PQ":
        raise FitsError(f"TFORM {tform!r}: no fixed numpy format")
    base = "?" if code == "L" else _BASE[code]
    return (base, (repeat,)) if repeat > 1 else base


def _number(cards: dict[str, Any], key: str, default: float) -> Any:
    value = cards.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


def table_layout(cards: dict[str, Any], hdu: int, data_start: int) -> TableLayout:
    """The layout of the BINTABLE whose header ``cards`` are, data at ``data_start``."""
    if _int(cards, "BITPIX", hdu, minimum=None) != 8 or _int(cards, "NAXIS", hdu) != 2:
        raise FitsError(f"HDU {hdu}: a binary table has BITPIX = 8 and NAXIS = 2")
    row_bytes = _int(cards, "NAXIS1", hdu)
    nrows = _int(cards, "NAXIS2", hdu)
    heap = _int(cards, "PCOUNT", hdu, default=0)
    if _int(cards, "GCOUNT", hdu, default=1) != 1:
        raise FitsError(f"HDU {hdu}: a binary table has GCOUNT = 1")
    tfields = _int(cards, "TFIELDS", hdu)
    columns: dict[str, Column] = {}
    offset = 0
    for i in range(1, tfields + 1):
        tform = cards.get(f"TFORM{i}")
        if not isinstance(tform, str):
            raise FitsError(f"HDU {hdu}: TFORM{i} is missing or not a string")
        try:
            repeat, code, width = parse_tform(tform)
        except FitsError as exc:
            raise FitsError(f"HDU {hdu}: column {i}: {exc}") from None
        name = str(cards.get(f"TTYPE{i}", "")).strip(" ").upper()
        scale, zero = _number(cards, f"TSCAL{i}", 1.0), _number(cards, f"TZERO{i}", 0.0)
        unsupported = None
        if code in "PQ":
            unsupported = "a variable-length array (heap)"
        elif code == "X":
            unsupported = "a bit array (X)"
        elif repeat == 0:
            unsupported = "zero width"
        elif scale is None or zero is None:
            unsupported = "a non-numeric TSCAL/TZERO"
        column = Column(name, i - 1, tform.strip(" "), code, repeat, offset, width,
                        1.0 if scale is None else scale, 0.0 if zero is None else zero,
                        unsupported)
        offset += width
        if not name:
            continue  # an unnamed column can't be asked for
        if name in columns:
            first = cards.get(f"TTYPE{columns[name].index + 1}")
            raise FitsError(f"HDU {hdu}: columns {columns[name].index + 1} ({first!r}) and "
                            f"{i} ({cards[f'TTYPE{i}']!r}) have the same name")
        columns[name] = column
    if offset != row_bytes:
        raise FitsError(f"HDU {hdu}: NAXIS1 = {row_bytes} but the columns' TFORMs add up to "
                        f"{offset} bytes")
    extname = cards.get("EXTNAME", "")
    return TableLayout(hdu, nrows, row_bytes, data_start, heap, columns,
                       extname.strip(" ") if isinstance(extname, str) else "",
                       cards.get("ZTABLE") is True)


def find_table(read_at: ReadAt, extname: str = SWEEP_EXTNAME,
               max_header_blocks: int = MAX_HEADER_BLOCKS) -> TableLayout:
    """The table to read: the first BINTABLE whose EXTNAME is ``extname`` (case and padding
    ignored), else the first BINTABLE. One rule for every read path.

    HDUs are walked from the start; the walk stops at the named table, so a sweep (its table
    in HDU 1) is found from its first blocks. Bytes after the last HDU that do not begin an
    extension are ignored, as astropy and cfitsio do.
    """
    offset, hdu = 0, 0
    first: Optional[TableLayout] = None
    while True:
        if hdu > 0:
            head = read_at(offset, 8)
            if head != b"XTENSION":
                break  # the end of the file, or padding/junk after the last HDU
        cards, length = read_header(read_at, offset, hdu, max_header_blocks)
        if hdu > 0 and not isinstance(cards.get("XTENSION"), str):
            raise FitsError(f"HDU {hdu}: XTENSION is not a string")
        size = _data_bytes(cards, hdu)
        if hdu > 0 and cards["XTENSION"].strip(" ") == "BINTABLE":
            table = table_layout(cards, hdu, offset + length)
            if table.extname.upper() == extname.upper():
                return _uncompressed(table)
            first = first or table
        offset += length + -(-size // BLOCK) * BLOCK
        hdu += 1
    if first is None:
        raise FitsError("no binary table HDU (a sweep keeps its catalogue in HDU 1)")
    return _uncompressed(first)


def _uncompressed(table: TableLayout) -> TableLayout:
    # fitsio reads a tile-compressed table's raw tiles (cfitsio does not decompress tables
    # on read), so no path could give its values: refuse it by name.
    if table.compressed:
        raise FitsError(f"HDU {table.hdu_index} is a tile-compressed table (ZTABLE = T), "
                        "which neither this reader nor fitsio decompresses: decompress it "
                        "first (funpack)")
    return table


# --- values ----------------------------------------------------------------------------------

def decode(values: np.ndarray, column: Column, raw_string: bool = False,
           first_row: int = 0) -> np.ndarray:
    """A column's values from its raw (strided, big-endian) view, always as a new array.

    Logicals -> bool (``'T'`` is true; ``'F'`` and null are false), shape (n,) or
    (n, repeat). Strings -> ``str`` with trailing blanks stripped, or with ``raw_string`` the
    fixed-width bytes as stored; a byte that is not ASCII is refused, naming the row
    (``first_row`` is the table row of ``values[0]``). Numbers -> native byte order, scaled as
    astropy scales them: the unsigned-by-offset convention gives integers of the same width,
    any other TSCAL/TZERO float64 ``raw * TSCAL + TZERO``.
    """
    if column.unsupported:
        raise FitsError(f"column {column.name} is {column.unsupported}: read it with fitsio")
    if column.logical:
        return values == b"T"
    if column.string:
        return normalise_string(values, raw_string, column.name, first_row)
    native = values.astype(values.dtype.newbyteorder("="))  # a copy: buffers are reused
    if not column.scaled:
        return native
    target = column.offset_type
    if target is not None:
        unsigned = native.view(f"u{native.dtype.itemsize}")
        unsigned ^= np.array(1 << (8 * native.dtype.itemsize - 1), dtype=unsigned.dtype)
        return unsigned.view(target)
    out = native.astype(np.float64)
    if column.scale != 1:
        out *= column.scale
    if column.zero != 0:
        out += column.zero
    return out


class RecordColumns(Mapping[str, np.ndarray]):
    """One chunk's columns (``{name: array}``, as :func:`decode` gives them), those named in
    ``lazy`` decoded from the chunk's raw records only when first asked for, and
    :meth:`columns_rows`: columns' values at some rows only.

    Decoding is what a column costs (a row is 505 bytes, so each value is a cache miss): a
    selection that evaluates its cheap, rejecting cuts first needs its other columns only at
    the rows that survive them, and decodes just those. The other columns are decoded at
    once, while the freshly read rows are still in the CPU's caches; so are strings and
    logicals (a string's error names its row in the table, as on every other path).

    The records are a view of the reader's buffer, which it refills for the next chunk:
    :meth:`release` (the reader calls it before refilling) keeps what was decoded and makes
    any other access an error rather than a read of the next chunk's bytes."""

    def __init__(self, records: np.ndarray, columns: Sequence[Column],
                 raw_strings: Iterable[str] = (), first_row: int = 0,
                 lazy: Iterable[str] = ()) -> None:
        self._records: Optional[np.ndarray] = records
        self._columns = {c.name: c for c in columns}
        self._decoded: dict[str, np.ndarray] = {}
        raw, lazy = set(raw_strings), {name.upper() for name in lazy}
        for column in columns:
            if column.name not in lazy or column.string or column.logical:
                self._decoded[column.name] = decode(records[column.name], column,
                                                    column.name in raw, first_row)

    def __getitem__(self, name: str) -> np.ndarray:
        values = self._decoded.get(name)
        if values is None:
            values = self._decoded[name] = decode(self._raw(name), self._columns[name])
        return values

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._columns)

    def __contains__(self, name: object) -> bool:
        return name in self._columns

    def keys(self) -> KeysView[str]:
        return self._columns.keys()

    def columns_rows(self, names: Iterable[str], rows: np.ndarray) -> dict[str, np.ndarray]:
        """``{name: self[name][rows]}`` (``rows``: indices), decoding only those rows of the
        columns not decoded whole."""
        out: dict[str, np.ndarray] = {}
        for name in names:
            values = self._decoded.get(name)
            out[name] = (values[rows] if values is not None
                         else decode(self._raw(name)[rows], self._columns[name]))
        return out

    def release(self) -> None:
        """Forget the records: the columns decoded so far stay readable, no other."""
        self._records = None

    def _raw(self, name: str) -> np.ndarray:
        column = self._columns[name]  # KeyError for a column the chunk does not have
        if self._records is None:
            raise RuntimeError(f"column {column.name} was read from a chunk after the reader "
                               "moved to the next one (its buffer is reused): read it before")
        return self._records[column.name]


def normalise_string(values: np.ndarray, raw: bool, name: str = "",
                     first_row: int = 0) -> np.ndarray:
    """Bytes or str values as a new array: ``str`` stripped of trailing blanks, or with
    ``raw`` fixed-width bytes (``S<width>``, cheap to group by). Every path gives the same
    answer, and the same error for a value that is not ASCII (FITS strings are ASCII; fitsio
    cannot return others): :func:`non_ascii_error`."""
    if values.dtype.kind == "S":
        stored = np.array(values)  # contiguous: a copy, as buffers are reused
        codes = stored.view(np.uint8)
        if codes.size and codes.max() >= 0x80:
            raise non_ascii_error(stored, name, first_row)
        text = stored if raw else stored.astype("U")
    elif raw:
        try:
            text = np.array(values, dtype=f"S{max(1, values.dtype.itemsize // 4)}")
        except UnicodeEncodeError:
            raise FitsError(f"column {name}: a string holds characters that are not "
                            "ASCII") from None
    else:
        text = np.array(values)
    if raw:
        return text
    return np.char.rstrip(text) if text.size else text


def non_ascii_error(stored: np.ndarray, name: str, first_row: int = 0) -> FitsError:
    """The error for fixed-width bytes ``stored`` (rows ``first_row``...) holding a byte that
    is not ASCII, naming the first such row and its value."""
    rows = stored.view(np.uint8).reshape(len(stored), -1)
    row = int(np.flatnonzero((rows >= 0x80).any(axis=1))[0])
    return FitsError(f"column {name}: row {first_row + row:,} holds bytes that are not ASCII "
                     f"({rows[row].tobytes()!r})")
