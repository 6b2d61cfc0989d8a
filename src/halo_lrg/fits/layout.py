"""FITS binary-table formats as numpy dtypes, and a minimal header parser.

The streaming reader must know a table's layout from its first bytes, before fitsio can open
the (still growing) file; the generator writes the same formats. Only what sweeps use is
supported: fixed-width I J K E D B L A columns, no scaling, no heap.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

BLOCK = 2880
CARD = 80
_CODES = {"I": ">i2", "J": ">i4", "K": ">i8", "E": ">f4", "D": ">f8", "B": "u1", "L": "?"}


def numpy_format(tform: str) -> Any:
    """numpy format of a TFORM: ``"8A"`` -> ``"S8"``, ``"5E"`` -> ``(">f4", (5,))``."""
    tform = tform.strip()
    code = tform.lstrip("0123456789")
    repeat = int(tform[: len(tform) - len(code)] or 1)
    if code == "A":
        return f"S{repeat}"
    base = _CODES[code[:1]]
    return (base, (repeat,)) if repeat > 1 else base


def parse_cards(data: bytes) -> tuple[dict[str, Any], Optional[int]]:
    """Header cards of one HDU from ``data`` (its first block onwards), and the header's
    length in bytes, or None when ``data`` does not yet reach its END card."""
    cards: dict[str, Any] = {}
    for start in range(0, len(data) - CARD + 1, CARD):
        card = data[start:start + CARD].decode("ascii", "replace")
        key = card[:8].strip()
        if key == "END":
            end = start + CARD
            return cards, -(-end // BLOCK) * BLOCK
        if card[8:10] != "= ":
            continue
        value = card[10:].split("/", 1)[0].strip() if not card[10:].strip().startswith("'") \
            else card[10:].strip()[1:].split("'", 1)[0].rstrip()
        cards[key] = value
    return cards, None


def table_layout(cards: dict[str, Any]) -> Optional[tuple[int, int, np.dtype, set[str]]]:
    """(nrows, row bytes, full-row dtype, logical column names) of a plain binary table,
    or None when the table needs fitsio (scaled columns, a heap, unknown formats)."""
    if cards.get("XTENSION", "").strip() != "BINTABLE" or int(cards.get("PCOUNT", 0)) != 0:
        return None
    names, formats, logical = [], [], set()
    for i in range(1, int(cards["TFIELDS"]) + 1):
        if f"TSCAL{i}" in cards or f"TZERO{i}" in cards:
            return None
        name = cards[f"TTYPE{i}"].strip().upper()
        try:
            fmt = numpy_format(cards[f"TFORM{i}"])
        except (KeyError, ValueError):
            return None
        if fmt == "?":  # FITS logicals are 'T'/'F' bytes: decode, don't view as bool
            fmt = "S1"
            logical.add(name)
        names.append(name)
        formats.append(fmt)
    dtype = np.dtype({"names": names, "formats": formats})
    if dtype.itemsize != int(cards["NAXIS1"]):
        return None
    return int(cards["NAXIS2"]), int(cards["NAXIS1"]), dtype, logical
