"""LRG density per brick: counts joined to the brick grid's exact areas (and optional QA)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import numpy as np
import pandas as pd

from halo_lrg.science.bricks import brick_table

DENSITY_COLUMNS = ["brickname", "ra", "dec", "area_deg2", "lrg_count", "lrg_density"]


class TableError(ValueError):
    """A counts or QA table cannot be used; the message names the file and the problem."""


def read_counts_csv(path: Union[str, Path]) -> pd.DataFrame:
    """A ``brickname,lrg_count`` CSV as written by ``halo-lrg run``."""
    try:
        frame = pd.read_csv(path, dtype={"brickname": str})
    except FileNotFoundError:
        raise TableError(f"{path}: no such file") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise TableError(f"{path}: not a CSV table ({exc})") from None
    if list(frame.columns[:2]) != ["brickname", "lrg_count"]:
        raise TableError(f"{path}: expected the header 'brickname,lrg_count', got "
                         f"{','.join(map(str, frame.columns))!r}")
    if frame["lrg_count"].isna().any() or not np.issubdtype(frame["lrg_count"].dtype,
                                                             np.integer):
        raise TableError(f"{path}: lrg_count must be whole numbers")
    return frame[["brickname", "lrg_count"]]


def read_qa_table(path: Union[str, Path]) -> pd.DataFrame:
    """A per-brick table (FITS or CSV) with a BRICKNAME column, names stripped, upper-case
    BRICKNAME renamed ``brickname``; its other columns are kept as they are."""
    path = Path(path)
    try:
        if path.suffix.lower() in (".fits", ".fit", ".fz") or path.name.endswith(".fits.gz"):
            import fitsio

            data = fitsio.read(str(path), ext=1)
            frame = pd.DataFrame({name: _native(data[name]) for name in data.dtype.names
                                  if data[name].ndim == 1})
        else:
            frame = pd.read_csv(path)
    except FileNotFoundError:
        raise TableError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise TableError(f"{path}: cannot read a table ({str(exc).splitlines()[0]})") from None
    renames = {c: "brickname" for c in frame.columns if str(c).lower() == "brickname"}
    if not renames:
        raise TableError(f"{path}: no BRICKNAME column to join on")
    frame = frame.rename(columns=renames)
    frame["brickname"] = frame["brickname"].astype(str).str.strip()
    if frame["brickname"].duplicated().any():
        raise TableError(f"{path}: BRICKNAME repeats, so the join would be ambiguous")
    return frame


def _native(values: np.ndarray) -> np.ndarray:
    """FITS columns are big-endian and strings padded; pandas wants native and stripped."""
    if values.dtype.kind in "SU":
        return np.char.strip(values.astype(str))
    return values.astype(values.dtype.newbyteorder("="))


def density_table(counts: pd.DataFrame, qa: Optional[pd.DataFrame] = None,
                  area: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """``brickname, ra, dec, area_deg2, lrg_count, lrg_density`` (per deg²), in the counts'
    order, followed by the QA table's other columns where given (left join on brickname).

    With ``area`` (a ``brickname, …, area_eff_deg2`` table from randoms, see
    :mod:`halo_lrg.science.area`), ``area_eff_deg2`` and ``lrg_density_eff`` follow
    ``lrg_density``; without it the table is what it always was."""
    names = counts["brickname"].astype(str).str.strip()
    bricks = brick_table(names.to_numpy())  # raises UnknownBrickError naming strangers
    out = pd.DataFrame({
        "brickname": names.to_numpy(),
        "ra": bricks["ra"].to_numpy(),
        "dec": bricks["dec"].to_numpy(),
        "area_deg2": bricks["area_deg2"].to_numpy(),
        "lrg_count": counts["lrg_count"].to_numpy().astype(np.int64),
    })
    out["lrg_density"] = out["lrg_count"] / out["area_deg2"]
    own = list(DENSITY_COLUMNS)
    if area is not None:
        from halo_lrg.science.area import EFFECTIVE_COLUMNS, add_effective_area

        out = add_effective_area(out, area)
        own += EFFECTIVE_COLUMNS
    if qa is not None:
        extra = qa.drop(columns=[c for c in own if c in qa.columns and c != "brickname"])
        out = out.merge(extra, on="brickname", how="left", validate="one_to_one")
    return out
