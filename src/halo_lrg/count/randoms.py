"""Count randoms per brick in one randoms file: the raw material of effective areas.

A Legacy Surveys randoms file (``randoms-1-<k>.fits``) holds points drawn uniformly on the
sky at a known density (2,500 per deg² in DR10) with the survey's coverage and masks looked
up at each: ``NOBS_*``, ``MASKBITS``. The fraction of a brick's points that survive a
selection's footprint cuts is the fraction of its area the selection can see
(:mod:`halo_lrg.science.area`). The cuts are the DESI LRG ones by default: at least one
exposure in g, r and z, and none of the MASKBITS in ``mask_bits`` (bits 1, 12, 13 = 12290).

Only the five needed columns are read (``halo_lrg.fits.reader``, row chunks, memory ~ one
chunk), and points are tallied per brick by the same integer-keyed tally as LRG counts.
:func:`count_randoms` with ``nside`` also tallies them per NESTED HEALPix pixel
(:class:`halo_lrg.count.pixels.PixelTally`, RA and DEC read too) in the same read of the file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Optional, Union

import numpy as np

from halo_lrg.count.local import (
    BRICKNAME,
    RESOLVE_COLUMNS,
    RESOLVE_OPTIONAL,
    BadBrickName,
    _BrickTally,
)
from halo_lrg.count.pixels import PixelTally
from halo_lrg.fits.layout import RowSlice
from halo_lrg.fits.reader import SweepError, iter_column_chunks
from halo_lrg.science.cuts import DESI_MASKBITS_REJECT, UnknownReleaseError
from halo_lrg.science.resolve import resolve_catalogue

if TYPE_CHECKING:
    import pandas as pd

#: What a randoms count reads (RA, DEC and PHOTSYS or RELEASE too when resolving N/S: the
#: LRG count's RESOLVE_COLUMNS and RESOLVE_OPTIONAL).
RANDOMS_COLUMNS = (BRICKNAME, "NOBS_G", "NOBS_R", "NOBS_Z", "MASKBITS")
DEFAULT_CHUNK_ROWS = 65_536
MAX_MASK_BITS = 2**31 - 1  # MASKBITS is a 32-bit signed column (16-bit in DR9)


class RandomsCount(NamedTuple):
    """Per-brick randoms of one file (or chunk stream), sorted by brickname; every brick with
    at least one point. Unpacks as ``brickname, n_total, n_kept``."""

    brickname: np.ndarray  # str
    n_total: np.ndarray  # int64: all points in the brick
    n_kept: np.ndarray  # int64: points passing the NOBS and MASKBITS cuts

    def frame(self) -> pd.DataFrame:
        """``brickname, n_randoms, n_kept`` as a DataFrame."""
        import pandas as pd

        return pd.DataFrame({"brickname": pd.Series(self.brickname, dtype=str),
                             "n_randoms": pd.Series(self.n_total, dtype="int64"),
                             "n_kept": pd.Series(self.n_kept, dtype="int64")})


class RandomsPixels(NamedTuple):
    """Per-pixel randoms of one file (or chunk stream) at ``nside``, sorted by NESTED pixel;
    every pixel with at least one point. Unpacks as ``pixel, n_total, n_kept``."""

    pixel: np.ndarray  # int64
    n_total: np.ndarray  # int64
    n_kept: np.ndarray  # int64
    nside: int

    def frame(self) -> pd.DataFrame:
        """``pixel, n_randoms, n_kept`` as a DataFrame."""
        import pandas as pd

        return pd.DataFrame({"pixel": pd.Series(self.pixel, dtype="int64"),
                             "n_randoms": pd.Series(self.n_total, dtype="int64"),
                             "n_kept": pd.Series(self.n_kept, dtype="int64")})


class RandomsCounts(NamedTuple):
    """What :func:`count_randoms` counted in one read: per brick, and per pixel when asked
    (None otherwise)."""

    bricks: RandomsCount
    pixels: Optional[RandomsPixels]


def check_mask_bits(mask_bits: int) -> int:
    """``mask_bits`` as an int in [0, 2**31 − 1], else ValueError."""
    if isinstance(mask_bits, bool) or not isinstance(mask_bits, (int, np.integer)):
        raise ValueError(f"mask_bits must be an integer, got {mask_bits!r}")
    if not 0 <= int(mask_bits) <= MAX_MASK_BITS:
        raise ValueError(f"mask_bits must be within [0, {MAX_MASK_BITS}], got {mask_bits}")
    return int(mask_bits)


def kept_randoms(chunk: Mapping[str, Any], mask_bits: int = DESI_MASKBITS_REJECT) -> np.ndarray:
    """Points observed in g, r and z (NOBS > 0) with none of ``mask_bits`` set in MASKBITS."""
    mask_bits = check_mask_bits(mask_bits)
    keep = ((np.asarray(chunk["NOBS_G"]) > 0) & (np.asarray(chunk["NOBS_R"]) > 0)
            & (np.asarray(chunk["NOBS_Z"]) > 0))
    # Widen first: a Python int wider than a 16-bit MASKBITS column would not broadcast.
    return keep & ((np.asarray(chunk["MASKBITS"]).astype(np.int64) & mask_bits) == 0)


def count_randoms_per_brick(
    path_or_chunks: Union[str, Path, Iterable[Mapping[str, Any]]],
    mask_bits: int = DESI_MASKBITS_REJECT,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    fast_path: bool = True,
    resolve: bool = False,
    rows: Optional[RowSlice] = None,
) -> RandomsCount:
    """``(brickname, n_total, n_kept)`` per brick of a randoms file (a local path) or of
    chunks ``{column: array}`` from any reader.

    ``resolve=True`` also drops points whose photometry is not primary where they lie
    (:func:`halo_lrg.science.resolve.resolve_mask`: north/south randoms of DR9 overlap),
    reading RA, DEC and PHOTSYS (or RELEASE). A file that cannot be used raises
    :class:`~halo_lrg.fits.reader.SweepError` naming it and the cause; nothing partial is
    returned. ``rows``: count that part of a file's rows only (a file split across tasks).
    """
    return count_randoms(path_or_chunks, mask_bits, chunk_rows, fast_path, resolve,
                         rows).bricks


def count_randoms(
    path_or_chunks: Union[str, Path, Iterable[Mapping[str, Any]]],
    mask_bits: int = DESI_MASKBITS_REJECT,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    fast_path: bool = True,
    resolve: bool = False,
    rows: Optional[RowSlice] = None,
    nside: Optional[int] = None,
) -> RandomsCounts:
    """:func:`count_randoms_per_brick`'s counts and, with ``nside``, the same points per
    NESTED HEALPix pixel at that nside (RA and DEC are then read as well), from one read of
    the file. Same errors, plus an RA or DEC that is NaN or out of range (named with its
    row)."""
    mask_bits = check_mask_bits(mask_bits)
    pixels = PixelTally(nside, 1) if nside is not None else None
    if isinstance(path_or_chunks, (str, os.PathLike)):
        name = str(path_or_chunks)
        positions = resolve or pixels is not None
        columns = RANDOMS_COLUMNS + (RESOLVE_COLUMNS if positions else ())
        chunks: Iterable[Mapping[str, Any]] = iter_column_chunks(
            name, columns, chunk_rows, RESOLVE_OPTIONAL if resolve else (), fast_path,
            raw_strings=(BRICKNAME,), rows=rows)
    else:
        name, chunks = "<chunks>", path_or_chunks
    # Rows named in errors count from the first row read (of the part, with ``rows``).
    part = f" ({rows})" if rows is not None and not rows.whole else ""
    tally = _BrickTally()
    first_row = 0
    for chunk in chunks:
        try:
            names = np.asarray(chunk[BRICKNAME])
            keep = kept_randoms(chunk, mask_bits)
            if resolve:
                keep &= resolve_catalogue(chunk)
            if pixels is not None:
                pixels.add(chunk["RA"], chunk["DEC"], keep[None, :], first_row)
        except KeyError as exc:
            raise SweepError(name, f"missing column {exc.args[0]}") from None
        except (UnknownReleaseError, ValueError) as exc:
            raise SweepError(name, f"{exc}{part}") from None
        try:
            tally.add(names, keep)
        except BadBrickName as exc:
            raise SweepError(name, str(exc)) from None
        first_row += names.size
    by_pixel = None
    if pixels is not None:
        pixel, n_total, n_kept = pixels.totals()
        by_pixel = RandomsPixels(pixel, n_total, n_kept[0], pixels.nside)
    return RandomsCounts(RandomsCount(*tally.totals()), by_pixel)
