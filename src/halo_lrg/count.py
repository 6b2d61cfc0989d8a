"""Count LRGs per brick in one sweep file: fitsio reads, numpy cuts, no Spark.

``count_sweep`` is the notebook entry point; the Spark job calls :func:`count_sweep_file`
once per file and sums the per-brick partials across files.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
import pandas as pd

from halo_lrg.config import Config, load_config
from halo_lrg.cuts import Selection, UnknownReleaseError, get_selection
from halo_lrg.footprint import Footprint
from halo_lrg.reader import SweepError, iter_column_chunks

BRICKNAME = "BRICKNAME"
COORDINATES = ("RA", "DEC")


@dataclass(frozen=True)
class SweepCount:
    """Per-brick counts of one whole file, with what it took to get them."""

    path: str
    #: brickname (str), n_objects (int64), lrg_count (int64); sorted by brickname.
    bricks: pd.DataFrame
    rows: int
    #: Objects that passed the footprint (== rows without one).
    objects: int
    lrg: int
    seconds: float


def _accumulate(names: np.ndarray, selected: np.ndarray,
                parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
    unique, inverse = np.unique(names, return_inverse=True)
    objects = np.bincount(inverse, minlength=unique.size)
    lrgs = np.bincount(inverse, weights=selected, minlength=unique.size)
    parts.append((unique, objects, lrgs.astype(np.int64)))


def count_sweep_file(
    path: Union[str, Path],
    selection: Selection,
    chunk_rows: int,
    fast_path: bool = True,
    footprint: Optional[Footprint] = None,
) -> SweepCount:
    """Objects and LRGs per brick of one local sweep file, read in chunks of ``chunk_rows``.

    Raises :class:`~halo_lrg.reader.SweepError` (naming the file) when the file cannot be
    used; nothing partial is ever returned.
    """
    path = str(path)
    started = time.perf_counter()
    columns = (BRICKNAME, *selection.columns, *(COORDINATES if footprint else ()))
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    rows = 0
    for chunk in iter_column_chunks(path, columns, chunk_rows,
                                    selection.optional_columns, fast_path):
        names = chunk[BRICKNAME]
        rows += names.size
        try:
            selected = selection(chunk)
        except UnknownReleaseError as exc:
            raise SweepError(path, str(exc)) from None
        if footprint is not None:
            inside = footprint.contains(chunk["RA"], chunk["DEC"])
            names, selected = names[inside], selected[inside]
        _accumulate(names, selected, parts)
    if parts:
        frame = pd.DataFrame({
            "brickname": np.concatenate([p[0] for p in parts]),
            "n_objects": np.concatenate([p[1] for p in parts]),
            "lrg_count": np.concatenate([p[2] for p in parts])})
        bricks = (frame.groupby("brickname", sort=True, as_index=False).sum()
                  .astype({"brickname": str, "n_objects": "int64", "lrg_count": "int64"}))
        bricks = bricks[bricks["n_objects"] > 0].reset_index(drop=True)
    else:
        bricks = pd.DataFrame({"brickname": pd.Series([], dtype=str),
                               "n_objects": pd.Series([], dtype="int64"),
                               "lrg_count": pd.Series([], dtype="int64")})
    return SweepCount(path, bricks, rows, int(bricks["n_objects"].sum()),
                      int(bricks["lrg_count"].sum()), time.perf_counter() - started)


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
