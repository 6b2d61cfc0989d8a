"""Count randoms per brick in one randoms file: the raw material of effective areas.

A Legacy Surveys randoms file (``randoms-1-<k>.fits``) holds points drawn uniformly on the
sky at a known density (2,500 per deg² in DR10) with the survey's coverage and masks looked
up at each: ``NOBS_*``, ``MASKBITS``. The fraction of a brick's points that survive a
selection's footprint cuts is the fraction of its area the selection can see
(:mod:`halo_lrg.science.area`). The cuts are the DESI LRG ones by default: at least one
exposure in g, r and z, and none of the MASKBITS in ``mask_bits`` (bits 1, 12, 13 = 12290).

Only the five needed columns are read (``halo_lrg.fits.reader``, row chunks, memory ~ one
chunk), and points are tallied per brick by the same integer-keyed tally as LRG counts.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Union

import numpy as np

from halo_lrg.count.local import BRICKNAME, BadBrickName, _BrickTally
from halo_lrg.fits.reader import SweepError, iter_column_chunks
from halo_lrg.science.cuts import DESI_MASKBITS_REJECT, UnknownReleaseError
from halo_lrg.science.resolve import resolve_catalogue

if TYPE_CHECKING:
    import pandas as pd

#: What a randoms count reads (RA, DEC and PHOTSYS or RELEASE too when resolving N/S).
RANDOMS_COLUMNS = (BRICKNAME, "NOBS_G", "NOBS_R", "NOBS_Z", "MASKBITS")
RESOLVE_COLUMNS = ("RA", "DEC")
RESOLVE_OPTIONAL = ("PHOTSYS", "RELEASE")
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
) -> RandomsCount:
    """``(brickname, n_total, n_kept)`` per brick of a randoms file (a local path) or of
    chunks ``{column: array}`` from any reader.

    ``resolve=True`` also drops points whose photometry is not primary where they lie
    (:func:`halo_lrg.science.resolve.resolve_mask`: north/south randoms of DR9 overlap),
    reading RA, DEC and PHOTSYS (or RELEASE). A file that cannot be used raises
    :class:`~halo_lrg.fits.reader.SweepError` naming it and the cause; nothing partial is
    returned.
    """
    mask_bits = check_mask_bits(mask_bits)
    if isinstance(path_or_chunks, (str, os.PathLike)):
        name = str(path_or_chunks)
        columns = RANDOMS_COLUMNS + (RESOLVE_COLUMNS if resolve else ())
        chunks: Iterable[Mapping[str, Any]] = iter_column_chunks(
            name, columns, chunk_rows, RESOLVE_OPTIONAL if resolve else (), fast_path,
            raw_strings=(BRICKNAME,))
    else:
        name, chunks = "<chunks>", path_or_chunks
    tally = _BrickTally()
    for chunk in chunks:
        try:
            keep = kept_randoms(chunk, mask_bits)
            if resolve:
                keep &= resolve_catalogue(chunk)
        except KeyError as exc:
            raise SweepError(name, f"missing column {exc.args[0]}") from None
        except (UnknownReleaseError, ValueError) as exc:
            raise SweepError(name, str(exc)) from None
        try:
            tally.add(np.asarray(chunk[BRICKNAME]), keep)
        except BadBrickName as exc:
            raise SweepError(name, str(exc)) from None
    return RandomsCount(*tally.totals())
