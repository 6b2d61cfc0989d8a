"""One table in several formats: CSV (what the project always wrote), FITS and Parquet, the
latter two with units and provenance a reader finds without the manifest.

``table_bytes(frame, fmt, units=..., header=...)`` gives a file's bytes, so a caller writes
them wherever it writes (a run publishes them through :mod:`halo_lrg.io.output`, locally or
to S3; a command writes a local file).

- **CSV** stays plain: ``to_csv(index=False, float_format="%.10g", lineterminator="\\n")``,
  no comment lines (``units`` and ``header`` are not written: every CSV reader keeps working).
- **FITS**: an empty primary HDU and one ``BINTABLE`` named ``extname``, written by fitsio.
  Text columns become fixed-width ASCII (``<n>A``, ``n`` the longest value, at least 1; a
  missing value is ""), ``int64`` ``K``, ``float64`` ``D`` (other signed integer and float
  widths, ``uint8`` and bool keep their own type; wider unsigned integers become ``int64``).
  ``units`` give ``TUNITn`` (a column without a unit, or with "", gets none). Each ``header``
  item is a card in the table's header: the value, or ``(value, comment)`` (a 2-tuple is
  always that pair: give a list for a pair of values).
- **Parquet**: the pyarrow table of the frame (no index), each unit as its field's metadata
  ``unit``, and the header as JSON in the schema metadata: key ``halo_lrg`` holds
  ``{key: value}`` for every item, key ``halo_lrg_comments`` ``{key: comment}`` for items
  that have one. ``pandas.read_parquet`` reads it back.

**FITS keywords** (one rule): the key upper-cased, every character other than ``A-Z``,
``0-9``, ``_`` and ``-`` replaced by ``_``; up to 8 characters it is a standard keyword,
longer ones use the HIERARCH convention (``sel1_zfiber_max`` is ``HIERARCH
SEL1_ZFIBER_MAX``; astropy and fitsio read it as ``SEL1_ZFIBER_MAX``). A key
longer than :data:`MAX_KEY_LENGTH` after that, two keys that become the same keyword, or a
reserved keyword (``NAXIS``, ``TTYPE1``, ``HIERARCH...``) is a ValueError naming the key.

**FITS values**: str, int, float, bool and None (an undefined value). A list or dict becomes
its JSON string (in Parquet it stays a JSON list or object: the whole header is JSON there).
A NaN or infinite float has neither a FITS nor a JSON form and is refused. Strings longer
than a card continue over CONTINUE cards (the OGIP long-string convention, announced by
``LONGSTRN``); a string with a character a FITS header cannot hold (non-ASCII, control), or
with ``=`` in a HIERARCH card (which fitsio misreads), is written as its JSON string's body
(``\\u00b2``, ``\\u003d``). A comment is cut to what its card leaves (whole in Parquet).
cfitsio writes floats with 15 significant digits: every decimal threshold a configuration
holds reads back equal (a float that 15 digits would take past the largest float, or a
subnormal one, is refused); the Parquet metadata keeps the exact value.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Optional, Union

import numpy as np
import pandas as pd

from halo_lrg.config import OUTPUT_FORMATS

#: The formats :func:`table_bytes` writes, in the order a listing shows them (the same
#: names ``[output] formats`` accepts).
TABLE_FORMATS: tuple[str, ...] = OUTPUT_FORMATS

_SUFFIXES = {"csv": ".csv", "fits": ".fits", "parquet": ".parquet"}

#: Units of the project's table columns, in the FITS unit-string convention (``deg2`` is
#: square degrees, ``deg-2`` per square degree, what astropy's FITS unit parser reads); ""
#: marks a count (no unit). Counts (``lrg_count``, ``n_objects``, a selection's column),
#: density (:mod:`halo_lrg.science.density`), area (:mod:`halo_lrg.science.area`) and
#: regions (:mod:`halo_lrg.science.regions`) tables. A wide table's per-selection columns
#: follow :func:`column_units`' suffix rules.
COLUMN_UNITS: dict[str, str] = {
    "brickname": "",
    "ra": "deg",
    "dec": "deg",
    "ra_min": "deg",
    "ra_max": "deg",
    "dec_min": "deg",
    "dec_max": "deg",
    "cell_ra_min": "deg",
    "cell_ra_max": "deg",
    "cell_dec_min": "deg",
    "cell_dec_max": "deg",
    "area_deg2": "deg2",
    "area_eff_deg2": "deg2",
    "lrg_count": "",
    "n_objects": "",
    "n_randoms": "",
    "n_kept": "",
    "n_bricks": "",
    "lrg_density": "deg-2",
    "lrg_density_eff": "deg-2",
    "object_density": "deg-2",
}
#: Column-name endings with a unit whatever the selection name before them.
_SUFFIX_UNITS = (("_density_eff", "deg-2"), ("_density", "deg-2"), ("_deg2", "deg2"))

#: The longest keyword :func:`table_bytes` writes: HIERARCH, the keyword, " = " and a value
#: of up to 24 characters (a float's longest form) fit one 80-character card.
MAX_KEY_LENGTH = 44
#: Keywords the FITS structure or a convention owns (exactly, or with a column number).
_RESERVED = re.compile(r"^(SIMPLE|BITPIX|NAXIS\d*|EXTEND|XTENSION|PCOUNT|GCOUNT|TFIELDS|"
                       r"EXTNAME|END|CONTINUE|COMMENT|HISTORY|LONGSTRN|HIERARCH.*|"
                       r"(TTYPE|TFORM|TUNIT|TDIM|TNULL|TSCAL|TZERO|TDISP)\d+)$")
#: A string longer than this needs CONTINUE cards.
_CARD_STRING = 68


def parse_formats(value: Union[str, Sequence[str]]) -> tuple[str, ...]:
    """``"csv,fits"`` or ``["csv", "fits"]`` as a tuple of format names: lower-cased, blanks
    dropped, each once in the order first given. A ValueError names an unknown one and the
    choices; an empty value is one too (CSV need not be among them)."""
    items = [value] if isinstance(value, str) else list(value)
    names: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"table format {item!r} is not a name (choose from "
                             f"{', '.join(TABLE_FORMATS)})")
        for name in (part.strip().lower() for part in item.split(",")):
            if not name:
                continue
            if name not in TABLE_FORMATS:
                raise ValueError(f"unknown table format {name!r} (choose from "
                                 f"{', '.join(TABLE_FORMATS)})")
            if name not in names:
                names.append(name)
    if not names:
        raise ValueError(f"no table format given (choose from {', '.join(TABLE_FORMATS)})")
    return tuple(names)


def table_suffix(fmt: str) -> str:
    """The file suffix of a format: ``.csv``, ``.fits``, ``.parquet``."""
    try:
        return _SUFFIXES[fmt]
    except KeyError:
        raise ValueError(f"unknown table format {fmt!r} (choose from "
                         f"{', '.join(TABLE_FORMATS)})") from None


def column_units(columns: Iterable[str]) -> dict[str, str]:
    """The unit of each of ``columns`` that has one: :data:`COLUMN_UNITS`, else by ending
    (``<selection>_density``, ``<selection>_density_eff``: ``deg-2``; ``*_deg2``:
    ``deg2``). Columns with no known unit are left out; counts map to ""."""
    units = {}
    for column in columns:
        name = str(column)
        if name in COLUMN_UNITS:
            units[name] = COLUMN_UNITS[name]
            continue
        for ending, unit in _SUFFIX_UNITS:
            if name.endswith(ending):
                units[name] = unit
                break
    return units


def table_bytes(frame: pd.DataFrame, fmt: str, *, units: Optional[Mapping[str, str]] = None,
                header: Optional[Mapping[str, Any]] = None, extname: str = "TABLE") -> bytes:
    """``frame`` as the bytes of a ``fmt`` file (see the module's doc for each format).

    ``units`` maps column names to units (names not in the frame are ignored, so
    :data:`COLUMN_UNITS` can be passed whole); ``header`` maps keys to a value or a
    ``(value, comment)`` pair; both are for FITS and Parquet only. ValueError for an unknown
    format, a column FITS cannot hold, or a header item it cannot write, naming it."""
    if fmt == "csv":
        return frame.to_csv(index=False, float_format="%.10g", lineterminator="\n").encode()
    if fmt not in TABLE_FORMATS:
        table_suffix(fmt)  # the one unknown-format error
    present = {str(c) for c in frame.columns}
    wanted = {str(k): str(v) for k, v in (units or {}).items() if str(k) in present and v}
    items = {str(k): _split_item(k, v) for k, v in (header or {}).items()}
    if fmt == "fits":
        return _fits_bytes(frame, wanted, items, extname)
    return _parquet_bytes(frame, wanted, items)


def _split_item(key: Any, item: Any) -> tuple[Any, str]:
    """``value`` or ``(value, comment)`` (a 2-tuple is always that pair) as ``(value,
    comment)``, checked: a list or dict must be JSON, a float finite."""
    value, comment = item if isinstance(item, tuple) and len(item) == 2 else (item, "")
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, (list, dict)):
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"header item {key!r}: not JSON ({exc})") from None
    elif isinstance(value, np.generic):
        value = value.item()
    if value is not None and not isinstance(value, (str, bool, int, float, list, dict)):
        raise ValueError(f"header item {key!r}: a value must be a str, int, float, bool, "
                         f"list or dict, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"header item {key!r}: {value} has no FITS or JSON form")
    if not isinstance(comment, str):
        raise ValueError(f"header item {key!r}: its comment must be a str, got {comment!r}")
    return value, comment


# --- FITS -----------------------------------------------------------------------------------

def fits_keyword(key: str) -> str:
    """The FITS keyword ``key`` becomes (the module's rule), without the HIERARCH prefix."""
    keyword = re.sub(r"[^A-Z0-9_-]", "_", str(key).upper())
    if not keyword:
        raise ValueError(f"header item {key!r}: an empty key is no FITS keyword")
    if len(keyword) > MAX_KEY_LENGTH:
        raise ValueError(f"header item {key!r}: too long for a FITS card (at most "
                         f"{MAX_KEY_LENGTH} characters)")
    if _RESERVED.match(keyword):
        raise ValueError(f"header item {key!r}: {keyword} is reserved in FITS (the table's "
                         "structure, or a convention's keyword)")
    return keyword


def _fits_text(value: str, hierarch: bool = False) -> str:
    """A header string as FITS can hold it: printable ASCII, else the JSON string's body
    (``json.loads('"' + text + '"')`` gives the value back). In a HIERARCH card an ``=``
    is escaped too (``\\u003d``): fitsio (1.4) takes a HIERARCH card's last ``=`` for its
    value indicator and misreads a string value or comment holding one."""
    if all(" " <= ch <= "~" for ch in value) and not (hierarch and "=" in value):
        return value
    text = json.dumps(value)[1:-1]
    return text.replace("=", "\\u003d") if hierarch else text


def _fit_comment(name: str, value: Any, comment: str) -> str:
    """``comment`` cut to what is left of the card after ``name = value`` (cfitsio's layout:
    a standard keyword's value fills columns 11-30 at least, a string is quoted and padded
    to 8), so a value that fits one card keeps one card; a long string's comment follows
    its last CONTINUE card."""
    if isinstance(value, str):
        text = "'" + value.replace("'", "''").ljust(8) + "'"
        if len(text) > _CARD_STRING + 2:
            return comment
    elif value is None:
        text = ""
    elif isinstance(value, bool):
        text = "T" if value else "F"
    elif isinstance(value, float):
        text = format(value, ".15G") + "."  # cfitsio may add a point
    else:
        text = str(value)
    hierarch = name.startswith("HIERARCH ")
    used = len(name) + 3 + len(text) if hierarch else max(30, 10 + len(text))
    return comment[:max(0, 80 - used - 3)]


def _fits_columns(frame: pd.DataFrame) -> np.ndarray:
    """The frame as a structured array of FITS-writable columns (see the module's doc)."""
    arrays, dtypes = [], []
    for column in frame.columns:
        name = str(column)
        series = frame[column]
        kind = series.dtype.kind
        if kind == "b" and series.dtype == np.dtype(bool):
            values = series.to_numpy()
        elif kind in "iu" and isinstance(series.dtype, np.dtype):
            values = series.to_numpy()
            if kind == "u" and values.dtype.itemsize > 1:
                if values.size and int(values.max()) > np.iinfo(np.int64).max:
                    raise ValueError(f"column {name!r}: values beyond int64 have no FITS "
                                     "integer type")
                values = values.astype(np.int64)
        elif kind == "f" and isinstance(series.dtype, np.dtype):
            values = series.to_numpy()
            if values.dtype.itemsize < 4:
                values = values.astype(np.float32)
        elif kind in "OSU" or isinstance(series.dtype, pd.StringDtype):
            values = _ascii_column(name, series)
        else:
            raise ValueError(f"column {name!r}: dtype {series.dtype} has no FITS column type "
                             "here (text, integers, floats and bool do)")
        arrays.append(values.astype(values.dtype.newbyteorder("=")))
        dtypes.append((name, arrays[-1].dtype))
    names = [name for name, _ in dtypes]
    if len(set(names)) != len(names):
        raise ValueError(f"column names repeat ({', '.join(names)}): a FITS table needs "
                         "each once")
    out = np.empty(len(frame), dtype=dtypes)
    for (name, _), values in zip(dtypes, arrays):
        out[name] = values
    return out


def _ascii_column(name: str, series: pd.Series) -> np.ndarray:
    texts = ["" if _missing(v) else v.decode() if isinstance(v, bytes) else str(v)
             for v in series.tolist()]
    try:
        encoded = [t.encode("ascii") for t in texts]
    except UnicodeEncodeError:
        raise ValueError(f"column {name!r}: FITS text columns are ASCII; this one is "
                         "not") from None
    width = max([1, *(len(b) for b in encoded)])
    return np.array(encoded, dtype=f"S{width}")


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _fits_bytes(frame: pd.DataFrame, units: Mapping[str, str],
                items: Mapping[str, tuple[Any, str]], extname: str) -> bytes:
    import fitsio

    data = _fits_columns(frame)
    cards = []
    seen: dict[str, str] = {}
    for key, (value, comment) in items.items():
        keyword = fits_keyword(key)
        if keyword in seen:
            raise ValueError(f"header items {seen[keyword]!r} and {key!r} are both FITS "
                             f"keyword {keyword}")
        seen[keyword] = key
        if isinstance(value, (list, dict)):
            value = json.dumps(value)
        if isinstance(value, float) and (math.isinf(float(format(value, ".15G")))
                                         or 0 < abs(value) < sys.float_info.min):
            raise ValueError(f"header item {key!r}: {value!r} is beyond the normal floats at "
                             "15 digits, as cfitsio writes them")
        hierarch = len(keyword) > 8
        if isinstance(value, str):
            value = _fits_text(value, hierarch)
        name = f"HIERARCH {keyword}" if hierarch else keyword
        cards.append((name, value, _fit_comment(name, value, _fits_text(comment, hierarch))))
    long_strings = any(isinstance(v, str) and len(v) > _CARD_STRING for _n, v, _c in cards)
    with tempfile.TemporaryDirectory(prefix="halo-lrg-table-") as tmp:
        path = os.path.join(tmp, "table.fits")
        with fitsio.FITS(path, "rw", clobber=True) as fits:
            fits.write(data, extname=extname,
                       units=[units.get(name, "") for name in data.dtype.names])
            hdu = fits[-1]
            if long_strings:
                hdu.write_key("LONGSTRN", "OGIP 1.0",
                              "The OGIP long string convention may be used")
            for name, value, comment in cards:
                hdu.write_key(name, value, comment)
        with open(path, "rb") as fh:
            return fh.read()


# --- Parquet --------------------------------------------------------------------------------

def _parquet_bytes(frame: pd.DataFrame, units: Mapping[str, str],
                   items: Mapping[str, tuple[Any, str]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    fields = [field.with_metadata({**(field.metadata or {}), b"unit": units[field.name]})
              if field.name in units else field for field in table.schema]
    metadata = dict(table.schema.metadata or {})
    metadata[b"halo_lrg"] = json.dumps({k: v for k, (v, _c) in items.items()},
                                       allow_nan=False).encode()
    comments = {k: c for k, (_v, c) in items.items() if c}
    if comments:
        metadata[b"halo_lrg_comments"] = json.dumps(comments).encode()
    table = pa.Table.from_arrays(table.columns, schema=pa.schema(fields, metadata=metadata))
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()
