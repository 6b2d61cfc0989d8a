"""count_sweep: one file, no Spark, per-brick counts equal to the cuts on the whole table."""

from __future__ import annotations

import subprocess
import sys

import fitsio
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import halo_lrg
from halo_lrg.count.local import count_sweep_file
from halo_lrg.fits.reader import MissingColumnsError, SweepError
from halo_lrg.science.cuts import get_selection
from halo_lrg.science.footprint import Footprint


def expected_counts(path, selection, config, footprint=None) -> pd.DataFrame:
    """The reference: read the whole table at once with fitsio and count with pandas."""
    sel = get_selection(selection, config.cuts)
    table = fitsio.read(str(path), ext="SWEEP")
    keep = np.ones(len(table), bool) if footprint is None else footprint.contains(
        table["RA"], table["DEC"])
    frame = pd.DataFrame({"brickname": np.char.rstrip(table["BRICKNAME"].astype("U"))[keep],
                          "lrg_count": sel(table)[keep].astype("int64")})
    return frame.groupby("brickname", as_index=False)["lrg_count"].sum()


@pytest.mark.parametrize("selection", ["seed", "desi-lrg", "desi-lrg-south"])
def test_count_sweep_equals_whole_table_count(sample, config, selection):
    path = sample["paths"][1]
    got = halo_lrg.count_sweep(path, selection, config=config)
    assert list(got.columns) == ["brickname", "lrg_count"]
    pd.testing.assert_frame_equal(got.reset_index(drop=True),
                                  expected_counts(path, selection, config), check_dtype=False)
    assert got["brickname"].is_monotonic_increasing
    assert got["lrg_count"].sum() > 0


def test_bricks_without_lrgs_are_rows_not_gaps(sample, config):
    path = sample["paths"][0]
    strict = config.replace(cuts={"lrg_z_mag_max": 18.85})  # few LRGs: many empty bricks
    got = halo_lrg.count_sweep(path, "seed", config=strict)
    assert (got["lrg_count"] == 0).sum() > 0
    assert got["brickname"].tolist() == sample["summaries"][0].bricknames


@settings(max_examples=10, deadline=None)
@given(chunk_rows=st.integers(1, 7000), fast=st.booleans())
def test_chunking_never_changes_the_answer(sample, config, chunk_rows, fast):
    path = sample["paths"][0]
    sel = get_selection("desi-lrg", config.cuts)
    got = count_sweep_file(path, sel, chunk_rows, fast)
    whole = count_sweep_file(path, sel, 10**7, False)
    pd.testing.assert_frame_equal(got.bricks, whole.bricks)
    assert got.rows == whole.rows == sample["summaries"][0].rows


def test_footprint_keeps_only_objects_inside(sample, config):
    path = sample["paths"][0]
    box = sample["summaries"][0].box
    footprint = Footprint(box.ra_min, box.ra_min + 0.3, box.dec_min + 1.0, box.dec_min + 2.0)
    got = halo_lrg.count_sweep(path, "seed", config=config, footprint=footprint)
    expected = expected_counts(path, "seed", config, footprint)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected, check_dtype=False)
    assert 0 < len(got) < len(halo_lrg.count_sweep(path, "seed", config=config))


def test_empty_table_counts_nothing_without_error(defects, config):
    got = halo_lrg.count_sweep(defects["empty"], config=config)
    assert got.empty and list(got.columns) == ["brickname", "lrg_count"]


def test_bad_files_raise_errors_naming_them(defects, config):
    with pytest.raises(MissingColumnsError, match="FLUX_W1"):
        halo_lrg.count_sweep(defects["missing-column"], config=config)
    for kind in ("not-fits", "truncated"):
        with pytest.raises(SweepError, match=defects[kind].name):
            halo_lrg.count_sweep(defects[kind], config=config)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["1501p025", "0001p000", "1800m900", "15p0    ",
                                           "3599m899", "0000p000", "1501p02 "]),
                          st.booleans()), min_size=1, max_size=400),
       st.integers(1, 80))
def test_brick_tally_is_right_in_any_row_order_and_chunking(rows, chunk):
    from halo_lrg.count.local import _BrickTally

    names = np.array([n.encode() for n, _ in rows], dtype="S8")
    selected = np.array([s for _, s in rows])
    tally = _BrickTally()
    for start in range(0, len(rows), chunk):
        tally.add(names[start:start + chunk], selected[start:start + chunk])
    names, objects, lrgs = tally.totals()
    got = pd.DataFrame({"brickname": names, "n_objects": objects, "lrg_count": lrgs})
    expected = (pd.DataFrame({"brickname": [n.rstrip() for n, _ in rows],
                              "n_objects": 1, "lrg_count": selected.astype(int)})
                .groupby("brickname", as_index=False).sum())
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)


def test_row_order_does_not_change_the_counts(sample, tmp_path, config):
    # Real sweeps are grouped by brick; a shuffled copy (a user's catalogue, merged files)
    # takes the unsorted path of the tally and must give the same answer.
    import fitsio

    from halo_lrg.science.cuts import get_selection

    data = fitsio.read(str(sample["paths"][0]), ext=1)
    shuffled = tmp_path / "shuffled.fits"
    fitsio.write(str(shuffled), data[np.random.default_rng(3).permutation(len(data))],
                 extname="SWEEP")
    for name in ("seed", "desi-lrg"):
        selection = get_selection(name, config.cuts)
        a = count_sweep_file(sample["paths"][0], selection, 1000)
        b = count_sweep_file(shuffled, selection, 1000)
        assert a.brickname.tolist() == b.brickname.tolist()
        assert a.n_objects.tolist() == b.n_objects.tolist()
        assert a.lrg_count.tolist() == b.lrg_count.tolist()


def test_counting_a_file_needs_no_pandas(sample):
    # pandas 3 loads pyarrow (~80 MB): several times what counting a file takes.
    code = ("import sys\n"
            "from halo_lrg.config import load_config\n"
            "from halo_lrg.count.local import count_sweep_file\n"
            "from halo_lrg.science.cuts import get_selection\n"
            "config = load_config()\n"
            f"result = count_sweep_file({str(sample['paths'][0])!r}, "
            "get_selection('desi-lrg', config.cuts), 1000)\n"
            "assert result.lrg == result.lrg_count.sum() > 0, result\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pandas', 'pyarrow')))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
