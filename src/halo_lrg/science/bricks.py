"""The Legacy Surveys brick grid: names, ids, centres, bounds and exact areas, vectorised.

Rows of 0.25° in Dec (centres −90, −89.75, …, +90; edges half a brick either side, clipped to
±90); each row split evenly in RA into an even number of bricks no wider than 0.25° at the
row's edge nearest the equator; one brick at each pole. BRICKID counts from 1 at the south
pole, row by row, then by RA. This reproduces ``desiutil.brick.Bricks`` (662,174 bricks), the
grid every sweep's BRICKNAME/BRICKID refers to, without depending on desiutil.
"""

from __future__ import annotations

import functools
from typing import Any, Optional

import numpy as np

BRICK_SIZE = 0.25  # degrees
N_ROWS = 721


class UnknownBrickError(ValueError):
    """Bricknames that are not on the grid."""

    def __init__(self, names: Any) -> None:
        names = [str(n) for n in names]
        shown = ", ".join(repr(n) for n in names[:5])
        more = f" and {len(names) - 5} more" if len(names) > 5 else ""
        super().__init__(f"{len(names)} unknown brickname(s): {shown}{more}")
        self.names = names


@functools.lru_cache(maxsize=1)
def _rows() -> dict[str, np.ndarray]:
    centre_dec = np.arange(N_ROWS) * BRICK_SIZE - 90.0
    dec1 = np.clip(centre_dec - BRICK_SIZE / 2, -90.0, 90.0)
    dec2 = np.clip(centre_dec + BRICK_SIZE / 2, -90.0, 90.0)
    declo = np.maximum(0.0, np.abs(centre_dec) - BRICK_SIZE / 2)
    ncols = (np.ceil(360.0 / BRICK_SIZE * np.cos(np.deg2rad(declo)) / 2) * 2).astype(np.int64)
    ncols[0] = ncols[-1] = 1  # the polar caps
    first_id = np.concatenate([[1], 1 + np.cumsum(ncols)[:-1]])
    return {"centre_dec": centre_dec, "dec1": dec1, "dec2": dec2, "ncols": ncols,
            "first_id": first_id}


def _names(centre_ra: np.ndarray, centre_dec: np.ndarray) -> np.ndarray:
    # The survey's rule: RA x 10000 rounded to an integer, as 7 digits, first 4 kept; |Dec| x
    # 10000 likewise as 6 digits, first 3 kept. Rounding first turns 39.599999999999994
    # into 0396, as desiutil's "{:07.0f}" does (np.rint rounds half to even, as format does).
    ra_digits = np.rint(centre_ra * 10000).astype(np.int64) // 1000
    dec_digits = np.rint(np.abs(centre_dec) * 10000).astype(np.int64) // 1000
    sign = np.where(centre_dec >= 0, "p", "m")
    ra_text = np.char.zfill(ra_digits.astype(str), 4)
    dec_text = np.char.zfill(dec_digits.astype(str), 3)
    return np.char.add(np.char.add(ra_text, sign), dec_text).astype("<U8")


@functools.lru_cache(maxsize=1)
def _table_arrays() -> dict[str, np.ndarray]:
    rows = _rows()
    ncols = rows["ncols"]
    row = np.repeat(np.arange(N_ROWS), ncols)
    col = np.arange(row.size) - np.repeat(rows["first_id"] - 1, ncols)
    width = 360.0 / ncols[row]
    ra1 = col * width
    ra2 = np.where(col + 1 == ncols[row], 360.0, (col + 1) * width)
    centre_ra = 0.5 * (ra1 + ra2)
    dec1, dec2 = rows["dec1"][row], rows["dec2"][row]
    centre_dec = rows["centre_dec"][row]
    area = (ra2 - ra1) * np.degrees(np.sin(np.radians(dec2)) - np.sin(np.radians(dec1)))
    names = _names(centre_ra, centre_dec)
    order = np.argsort(names, kind="stable")
    return {"brickname": names, "brickid": np.arange(1, row.size + 1, dtype=np.int64),
            "ra": centre_ra, "dec": centre_dec, "ra1": ra1, "ra2": ra2, "dec1": dec1,
            "dec2": dec2, "area_deg2": area, "_name_order": order,
            "_sorted_names": names[order]}


def _row_col(ra: Any, dec: Any) -> tuple[np.ndarray, np.ndarray]:
    ra = np.mod(np.atleast_1d(np.asarray(ra, dtype=np.float64)), 360.0)
    dec = np.atleast_1d(np.asarray(dec, dtype=np.float64))
    bad = ~((dec >= -90.0) & (dec <= 90.0))
    if bad.any():
        raise ValueError(f"Dec must be within [-90, 90] degrees, got {dec[bad][0]!r}")
    rows = _rows()
    row = np.clip(((dec + 90.0 + BRICK_SIZE / 2) / BRICK_SIZE).astype(np.int64), 0, N_ROWS - 1)
    col = np.minimum((ra / 360.0 * rows["ncols"][row]).astype(np.int64),
                     rows["ncols"][row] - 1)
    return row, col


def brickid_at(ra: Any, dec: Any) -> np.ndarray:
    """BRICKID of the brick containing each (ra, dec) in degrees."""
    row, col = _row_col(ra, dec)
    return _rows()["first_id"][row] + col


def brickname_at(ra: Any, dec: Any) -> np.ndarray:
    """BRICKNAME (``<U8``) of the brick containing each (ra, dec) in degrees."""
    return _table_arrays()["brickname"][brickid_at(ra, dec) - 1]


def brick_table(names: Optional[Any] = None) -> Any:
    """Bricks as a DataFrame ``brickname, brickid, ra, dec, ra1, ra2, dec1, dec2, area_deg2``.

    Without ``names``: all 662,174 bricks in BRICKID order. With ``names``: those bricks, in
    the order given (padding stripped); unknown names raise :class:`UnknownBrickError`.
    """
    import pandas as pd

    arrays = _table_arrays()
    columns = ["brickname", "brickid", "ra", "dec", "ra1", "ra2", "dec1", "dec2", "area_deg2"]
    if names is None:
        return pd.DataFrame({c: arrays[c] for c in columns})
    index = brick_index(names)
    return pd.DataFrame({c: arrays[c][index] for c in columns})


def brick_index(names: Any) -> np.ndarray:
    """Zero-based positions (BRICKID − 1) of bricknames; unknown names raise."""
    wanted = np.char.strip(np.asarray(names).astype(str)).astype("<U8")
    arrays = _table_arrays()
    sorted_names = arrays["_sorted_names"]
    pos = np.clip(np.searchsorted(sorted_names, wanted), 0, sorted_names.size - 1)
    found = sorted_names[pos] == wanted
    if not found.all():
        raise UnknownBrickError(dict.fromkeys(np.asarray(names).astype(str)[~found]))
    return arrays["_name_order"][pos]


def bricks_in_box(ra_min: float, ra_max: float, dec_min: float, dec_max: float) -> Any:
    """Bricks whose centre lies in the half-open box [ra_min, ra_max) x [dec_min, dec_max)."""
    table = brick_table()
    inside = ((table["ra"] >= ra_min) & (table["ra"] < ra_max)
              & (table["dec"] >= dec_min) & (table["dec"] < dec_max))
    return table[inside].reset_index(drop=True)


def bricks_overlapping(ra_min: float, ra_max: float, dec_min: float, dec_max: float) -> Any:
    """Bricks that share area with the box [ra_min, ra_max) x [dec_min, dec_max)."""
    table = brick_table()
    meets = ((table["ra2"] > ra_min) & (table["ra1"] < ra_max)
             & (table["dec2"] > dec_min) & (table["dec1"] < dec_max))
    return table[meets].reset_index(drop=True)
