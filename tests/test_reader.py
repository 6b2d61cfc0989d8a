"""Reading sweeps: the fast path equals fitsio's, and every bad file is named and explained."""

from __future__ import annotations

import pickle

import fitsio
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from halo_lrg.fits.reader import MissingColumnsError, SweepError, iter_column_chunks, sweep_layout

# Every kind of column a sweep has: int16/32/64, float32/64, uint8, bool, strings, a 5E array.
MIXED = ["RELEASE", "BRICKID", "BRICKNAME", "REF_ID", "TYPE", "RA", "DEC", "DCHISQ",
         "FLUX_Z", "NOBS_W1", "WISEMASK_W1", "GAIA_DUPLICATED_SOURCE", "REF_CAT", "MASKBITS",
         "WISE_COADD_ID", "FIBERTOTFLUX_Z"]


def read_all(path, columns, chunk_rows, fast):
    chunks = list(iter_column_chunks(str(path), columns, chunk_rows, fast_path=fast))
    return {c: np.concatenate([ch[c] for ch in chunks]) for c in columns}, len(chunks)


@settings(max_examples=15, deadline=None)
@given(chunk_rows=st.integers(min_value=1, max_value=7000))
def test_fast_path_equals_fitsio_column_for_column(sample, chunk_rows):
    path = sample["paths"][0]
    fast, n_fast = read_all(path, MIXED, chunk_rows, fast=True)
    slow, n_slow = read_all(path, MIXED, chunk_rows, fast=False)
    reference = fitsio.read(str(path), ext="SWEEP", columns=MIXED)
    assert n_fast == n_slow == -(-len(reference) // chunk_rows)
    for column in MIXED:
        assert fast[column].shape == slow[column].shape, column
        np.testing.assert_array_equal(fast[column], slow[column], err_msg=column)
        expected = reference[column]
        if expected.dtype.kind in "SU":
            expected = np.char.rstrip(expected.astype("U"))
        np.testing.assert_array_equal(fast[column], expected, err_msg=column)


@pytest.mark.parametrize("fast", [True, False])
def test_unsigned_by_offset_columns_are_read_as_unsigned_on_both_paths(tmp_path, fast):
    path = tmp_path / "scaled.fits"
    data = np.zeros(10, dtype=[("BRICKNAME", "S8"), ("NOBS", "u2")])
    data["NOBS"] = np.arange(65530, 65540) % 65536
    fitsio.write(str(path), data, extname="SWEEP")  # uint16 is stored as int16 + TZERO
    layout = sweep_layout(str(path))
    assert layout.columns["NOBS"].offset_type == "u2"
    assert not layout.needs_fitsio(["NOBS"])  # the fast path reads it: no fitsio needed
    got, _ = read_all(path, ["NOBS"], 3, fast=fast)
    assert got["NOBS"].dtype == np.uint16
    np.testing.assert_array_equal(got["NOBS"], data["NOBS"])


def test_sweep_layout_is_found_by_extname(sample):
    layout = sweep_layout(str(sample["paths"][0]))
    assert layout.hdu_index == 1 and layout.extname == "SWEEP"
    assert layout.row_bytes == 505 and len(layout.columns) == 130
    assert not layout.needs_fitsio(layout.columns)
    assert layout.nrows == sample["summaries"][0].rows
    assert layout.columns["GAIA_DUPLICATED_SOURCE"].logical
    assert not layout.columns["BRICKNAME"].logical


def test_not_fits_is_named(defects):
    with pytest.raises(SweepError, match=r"sweep-000p000-005p005\.fits: not a FITS file"):
        list(iter_column_chunks(str(defects["not-fits"]), ["FLUX_Z"], 100))


@pytest.mark.parametrize("fast", [True, False])
def test_truncated_file_is_refused_before_reading(defects, fast):
    # fitsio alone would return zeros for the missing bytes.
    with pytest.raises(SweepError, match=r"sweep-005p000-010p005\.fits: truncated: the header "
                                         r"declares [\d,]+ rows of 505 bytes"):
        list(iter_column_chunks(str(defects["truncated"]), ["FLUX_Z"], 100, fast_path=fast))


def test_missing_column_is_named(defects):
    with pytest.raises(MissingColumnsError, match=r"missing column FLUX_W1$") as info:
        list(iter_column_chunks(str(defects["missing-column"]), ["FLUX_Z", "FLUX_W1"], 100))
    assert info.value.missing == ("FLUX_W1",)
    assert "sweep-010p000-015p005.fits" in str(info.value)


def test_empty_table_yields_nothing(defects):
    assert list(iter_column_chunks(str(defects["empty"]), ["FLUX_Z"], 100)) == []


def test_absent_and_zero_byte_files(tmp_path):
    with pytest.raises(SweepError, match=r"nope\.fits: cannot read file"):
        list(iter_column_chunks(str(tmp_path / "nope.fits"), ["FLUX_Z"], 10))
    (tmp_path / "zero.fits").write_bytes(b"")
    with pytest.raises(SweepError, match=r"zero.fits: empty file \(0 bytes\)"):
        list(iter_column_chunks(str(tmp_path / "zero.fits"), ["FLUX_Z"], 10))


def test_optional_columns_are_read_only_when_present(sample):
    chunk = next(iter_column_chunks(str(sample["paths"][0]), ["RELEASE"], 50,
                                    optional_columns=["PHOTSYS", "BRICKID"]))
    assert set(chunk) == {"RELEASE", "BRICKID"}


@pytest.mark.parametrize("error", [SweepError("/data/a.fits", "truncated at row 5"),
                                   MissingColumnsError("/data/b.fits", ["FLUX_W1", "EBV"])])
def test_errors_survive_pickling_across_processes(error):
    # A process pool or a Spark worker sends a file's error back pickled.
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error) and str(copy) == str(error)
    assert (copy.path, copy.cause) == (error.path, error.cause)
    assert getattr(copy, "missing", None) == getattr(error, "missing", None)
