"""LRG density per brick: counts joined to the brick grid's exact areas (and optional QA).

A run of one selection writes ``brickname,lrg_count``; of several, the wide table
``brickname,n_objects,<selection>,...``. Its density table keeps ``n_objects`` (every object
of the brick: a coverage signal, low where the survey barely saw the brick) with
``object_density``, then each selection's count and ``<selection>_density`` per deg²
(:data:`WIDE_DENSITY_COLUMNS`); ``selection=`` picks one selection's column out of a wide
table into the one-selection layout (what ``regions`` and ``plot`` read).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import numpy as np
import pandas as pd

from halo_lrg.science.bricks import brick_table

DENSITY_COLUMNS = ["brickname", "ra", "dec", "area_deg2", "lrg_count", "lrg_density"]
#: The wide table's own columns, before each selection's ``<name>, <name>_density``.
WIDE_DENSITY_COLUMNS = ["brickname", "ra", "dec", "area_deg2", "n_objects", "object_density"]
WIDE_OBJECTS = "n_objects"


class TableError(ValueError):
    """A counts or QA table cannot be used; the message names the file and the problem."""


def read_csv_table(path: Union[str, Path]) -> pd.DataFrame:
    """A CSV with a ``brickname`` column read as text; a TableError naming the file when it
    is missing or not CSV."""
    try:
        return pd.read_csv(path, dtype={"brickname": str})
    except FileNotFoundError:
        raise TableError(f"{path}: no such file") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise TableError(f"{path}: not a CSV table ({exc})") from None


def read_counts_csv(path: Union[str, Path]) -> pd.DataFrame:
    """A counts CSV as written by ``halo-lrg run``: ``brickname,lrg_count``, or the wide
    ``brickname,n_objects,<selection>,...`` of several selections (all its columns)."""
    frame = read_csv_table(path)
    header = [str(c) for c in frame.columns]
    if header[:2] == ["brickname", WIDE_OBJECTS] and len(header) > 2:
        columns = header[1:]
    elif header[:2] == ["brickname", "lrg_count"]:
        columns = ["lrg_count"]
    else:
        raise TableError(f"{path}: expected the header 'brickname,lrg_count' (or "
                         f"'brickname,n_objects,<selection>,...'), got {','.join(header)!r}")
    for column in columns:
        if frame[column].isna().any() or not np.issubdtype(frame[column].dtype, np.integer):
            raise TableError(f"{path}: {column} must be whole numbers")
    return frame[["brickname", *columns]]


def selection_columns(counts: pd.DataFrame) -> list[str]:
    """The selections of a wide counts table (its columns after ``n_objects``); empty for a
    ``brickname, lrg_count`` one."""
    if "lrg_count" in counts.columns or WIDE_OBJECTS not in counts.columns:
        return []
    return [str(c) for c in counts.columns if c not in ("brickname", WIDE_OBJECTS)]


def one_selection(counts: pd.DataFrame, selection: str) -> pd.DataFrame:
    """``brickname, lrg_count, n_objects`` for ``selection`` out of a wide counts table
    (TableError naming the selections there when it is not one of them)."""
    names = selection_columns(counts)
    if selection not in names:
        have = ", ".join(names) or "none: a one-selection table (brickname,lrg_count)"
        raise TableError(f"no selection {selection!r} in the counts (selections: {have})")
    return pd.DataFrame({"brickname": counts["brickname"],
                         "lrg_count": counts[selection].to_numpy(),
                         WIDE_OBJECTS: counts[WIDE_OBJECTS].to_numpy()})


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
    ``lrg_density``; without it the table is what it always was. A ``counts`` with
    ``n_objects`` beside ``lrg_count`` (:func:`one_selection`) keeps it after them.

    A wide counts table (several selections) gives :data:`WIDE_DENSITY_COLUMNS` then, per
    selection, ``<name>`` and ``<name>_density`` (and ``<name>_density_eff`` with ``area``,
    whose ``area_eff_deg2`` then follows ``area_deg2``)."""
    if selection_columns(counts):
        return _wide_density_table(counts, qa, area)
    out = _brick_columns(counts)
    out["lrg_count"] = counts["lrg_count"].to_numpy().astype(np.int64)
    out["lrg_density"] = out["lrg_count"] / out["area_deg2"]
    own = list(DENSITY_COLUMNS)
    if area is not None:
        from halo_lrg.science.area import EFFECTIVE_COLUMNS, add_effective_area

        out = add_effective_area(out, area)
        own += EFFECTIVE_COLUMNS
    if WIDE_OBJECTS in counts.columns:
        out[WIDE_OBJECTS] = counts[WIDE_OBJECTS].to_numpy().astype(np.int64)
        own.append(WIDE_OBJECTS)
    return _with_qa(out, qa, own)


def _brick_columns(counts: pd.DataFrame) -> pd.DataFrame:
    """brickname (stripped), centre and exact area of each brick of ``counts``."""
    names = counts["brickname"].astype(str).str.strip()
    bricks = brick_table(names.to_numpy())  # raises UnknownBrickError naming strangers
    return pd.DataFrame({
        "brickname": names.to_numpy(),
        "ra": bricks["ra"].to_numpy(),
        "dec": bricks["dec"].to_numpy(),
        "area_deg2": bricks["area_deg2"].to_numpy(),
    })


def _with_qa(out: pd.DataFrame, qa: Optional[pd.DataFrame], own: list[str]) -> pd.DataFrame:
    if qa is not None:
        extra = qa.drop(columns=[c for c in own if c in qa.columns and c != "brickname"])
        out = out.merge(extra, on="brickname", how="left", validate="one_to_one")
    return out


def _wide_density_table(counts: pd.DataFrame, qa: Optional[pd.DataFrame],
                        area: Optional[pd.DataFrame]) -> pd.DataFrame:
    selections = selection_columns(counts)
    out = _brick_columns(counts)
    own = list(WIDE_DENSITY_COLUMNS)
    eff = None
    if area is not None:
        from halo_lrg.science.area import add_effective_area

        # The one-selection join (its checks and its NaN rules), on objects as the count.
        joined = add_effective_area(
            out.assign(lrg_count=counts[WIDE_OBJECTS].to_numpy(), lrg_density=0.0), area)
        eff = joined["area_eff_deg2"].to_numpy()
        out["area_eff_deg2"] = eff
        own.insert(own.index("area_deg2") + 1, "area_eff_deg2")
    out[WIDE_OBJECTS] = counts[WIDE_OBJECTS].to_numpy().astype(np.int64)
    out["object_density"] = out[WIDE_OBJECTS] / out["area_deg2"]
    for name in selections:
        out[name] = counts[name].to_numpy().astype(np.int64)
        out[f"{name}_density"] = out[name] / out["area_deg2"]
        own += [name, f"{name}_density"]
        if eff is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                out[f"{name}_density_eff"] = np.where(eff > 0, out[name] / eff, np.nan)
            own.append(f"{name}_density_eff")
    return _with_qa(out, qa, own)
