"""FITS and Parquet beside the CSV: the same values, with units and provenance.

Every table a format writes is read back by independent readers (astropy and fitsio for
FITS, pandas and Spark for Parquet) and compared, column by column, with what the CSV says.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import string
from pathlib import Path

import fitsio
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.table import Table
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from halo_lrg import __version__
from halo_lrg.cli import main
from halo_lrg.config import ConfigError, load_config
from halo_lrg.io.tables import (
    COLUMN_UNITS,
    MAX_KEY_LENGTH,
    TABLE_FORMATS,
    column_units,
    fits_keyword,
    parse_formats,
    table_bytes,
    table_suffix,
)
from halo_lrg.science.area import AREA_COLUMNS, EFFECTIVE_COLUMNS
from halo_lrg.science.density import DENSITY_COLUMNS, WIDE_DENSITY_COLUMNS, density_table
from halo_lrg.science.regions import REGION_COLUMNS

#: Real bricks (the grid's own names), so density tables can be built from them.
BRICKS = ["1501p025", "0001p000", "1503p025", "1506p025", "1501p027", "1800p900"]


def csv_frame(data: bytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(data), dtype={"brickname": str})


def fits_write(tmp_path: Path, data: bytes, name: str = "t.fits") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def text(values) -> list[str]:
    """A FITS string column as str, whichever reader (astropy gives bytes, fitsio str)."""
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def assert_same_values(frame: pd.DataFrame, columns: dict) -> None:
    """``columns`` (name -> array read back from a file) hold exactly ``frame``'s values:
    text as text, integers as int64, floats equal bit for bit (NaN where NaN)."""
    assert list(columns) == [str(c) for c in frame.columns]
    for name in frame.columns:
        want, got = frame[name], np.asarray(columns[name])
        if want.dtype.kind in "OSU" or isinstance(want.dtype, pd.StringDtype):
            assert text(got) == [str(v) for v in want], name
        elif want.dtype.kind == "i":
            assert got.dtype.kind == "i" and got.dtype.itemsize == 8, name
            np.testing.assert_array_equal(got, want.to_numpy(), err_msg=name)
        else:
            assert got.dtype.kind == "f" and got.dtype.itemsize == want.dtype.itemsize, name
            np.testing.assert_array_equal(got, want.to_numpy(), err_msg=name)


def assert_csv_agrees(csv: pd.DataFrame, frame: pd.DataFrame) -> None:
    """What a CSV reader gets equals ``frame`` as the CSV writes floats: each value printed
    with 10 significant digits (``%.10g``), NaN as an empty field."""
    assert list(csv.columns) == list(frame.columns)
    for name in frame.columns:
        if frame[name].dtype.kind == "f":
            printed = np.array([float(f"{x:.10g}") for x in frame[name].to_numpy()])
            np.testing.assert_array_equal(csv[name].to_numpy(float), printed, err_msg=name)
        else:
            assert csv[name].tolist() == frame[name].tolist(), name


# --- the format names ------------------------------------------------------------------------

def test_parse_formats_normalises_and_keeps_the_first_order():
    assert parse_formats("csv") == ("csv",)
    assert parse_formats(" FITS , csv,fits,,Parquet") == ("fits", "csv", "parquet")
    assert parse_formats(["parquet", "csv,fits"]) == ("parquet", "csv", "fits")
    assert parse_formats(("fits",)) == ("fits",)  # CSV need not be among them
    assert TABLE_FORMATS == ("csv", "fits", "parquet")
    assert [table_suffix(f) for f in TABLE_FORMATS] == [".csv", ".fits", ".parquet"]


@pytest.mark.parametrize("value, bad", [("csv,xlsx", "'xlsx'"), (["fits", "hdf5"], "'hdf5'"),
                                        ("", "no table format"), (" , ", "no table format"),
                                        (["csv", 3], "3")])
def test_parse_formats_names_the_bad_one_and_the_choices(value, bad):
    with pytest.raises(ValueError, match="choose from csv, fits, parquet") as caught:
        parse_formats(value)
    assert bad in str(caught.value) and "\n" not in str(caught.value)


def test_table_suffix_refuses_an_unknown_format():
    with pytest.raises(ValueError, match=r"unknown table format 'xml' \(choose from"):
        table_suffix("xml")
    with pytest.raises(ValueError, match="'xml'"):
        table_bytes(pd.DataFrame({"a": [1]}), "xml")


def test_the_configuration_checks_formats_when_it_is_loaded():
    assert load_config(env={}).output.formats == "csv"
    cfg = load_config(env={"HALO_LRG_OUTPUT__FORMATS": "csv,fits"})
    assert parse_formats(cfg.output.formats) == ("csv", "fits")
    with pytest.raises(ConfigError, match=r"output.formats: unknown format 'xlsx'"):
        load_config(env={"HALO_LRG_OUTPUT__FORMATS": "csv,xlsx"})
    with pytest.raises(ConfigError, match="choose from csv, fits, parquet"):
        cfg.replace(output={"formats": ["parquet", "txt"]})


# --- units -----------------------------------------------------------------------------------

def test_every_column_of_the_project_tables_has_a_known_unit():
    tables = [DENSITY_COLUMNS, WIDE_DENSITY_COLUMNS, AREA_COLUMNS, EFFECTIVE_COLUMNS,
              REGION_COLUMNS]
    for columns in tables:
        units = column_units(columns)
        missing = [c for c in columns if c not in units]
        assert not missing, f"no unit for {missing}"
    # A wide table's per-selection columns, whatever the selection's name.
    assert column_units(["desi-lrg", "desi-lrg_density", "z20p2_density_eff", "lrg_count",
                         "ebv"]) == {"desi-lrg_density": "deg-2",
                                     "z20p2_density_eff": "deg-2", "lrg_count": ""}
    assert COLUMN_UNITS["ra"] == COLUMN_UNITS["dec"] == "deg"
    assert COLUMN_UNITS["area_deg2"] == "deg2" and COLUMN_UNITS["lrg_density"] == "deg-2"


@pytest.mark.parametrize("unit", sorted({v for v in COLUMN_UNITS.values() if v}))
def test_unit_strings_are_what_astropy_reads_as_fits_units(unit):
    parsed = u.Unit(unit, format="fits")
    assert parsed == {"deg": u.deg, "deg2": u.deg ** 2, "deg-2": u.deg ** -2}[unit]


# --- one table, three formats ----------------------------------------------------------------

@pytest.fixture
def wide_density() -> pd.DataFrame:
    counts = pd.DataFrame({"brickname": BRICKS, "n_objects": [50, 0, 7, 12, 3, 1],
                           "seed": [5, 0, 1, 2, 0, 1], "desi-lrg": [4, 0, 0, 2, 0, 0]})
    area = pd.DataFrame({"brickname": BRICKS[:4], "area_eff_deg2": [0.05, 0.0, 0.06, 0.01]})
    return density_table(counts, area=area)


HEADER = {
    "halo_lrg_version": (__version__, "the version"),
    "selection": "seed,desi-lrg",
    "sel1": ("seed", "dereddened z < 20.4, r - z > 0.4, z - W1 > 0.8"),
    "sel1_lrg_z_mag_max": 20.4,
    "sel2_quality_mask": {"maskbits_reject": 12290, "nobs_positive": ["G", "R", "Z"]},
    "sel1_quality_mask": None,
    "resolved": (False, "north/south applied"),
    "nsreason": "run.resolve = auto: only one photometric system appears " + "x" * 60,
    "index": "s3://bucket/dr10/south/sweep/10.1/index.txt",
    "nfiles": 3,
}


def test_fits_holds_the_csv_values_with_units_and_cards(tmp_path, wide_density):
    units = column_units(wide_density.columns)
    csv = table_bytes(wide_density, "csv", units=units, header=HEADER)
    assert csv == wide_density.to_csv(index=False, float_format="%.10g",
                                      lineterminator="\n").encode()
    assert b"halo" not in csv and not csv.startswith(b"#")  # CSV stays plain
    path = fits_write(tmp_path, table_bytes(wide_density, "fits", units=units, header=HEADER,
                                            extname="DENSITY"))
    assert_csv_agrees(csv_frame(csv), wide_density)

    table = Table.read(path, hdu="DENSITY")  # astropy
    assert_same_values(wide_density, {c: table[c] for c in table.colnames})
    assert table["ra"].unit == u.deg and table["area_deg2"].unit == u.deg ** 2
    assert table["desi-lrg_density_eff"].unit == u.deg ** -2
    assert table["n_objects"].unit is None and table["brickname"].unit is None

    data, header = fitsio.read(str(path), ext="DENSITY", header=True)  # fitsio
    assert_same_values(wide_density, {n: data[n] for n in data.dtype.names})
    with fits.open(path) as hdus:
        assert len(hdus) == 2 and hdus[0].header["NAXIS"] == 0
        card = hdus[1].header
        forms = {card[f"TTYPE{i}"]: card[f"TFORM{i}"] for i in range(1, card["TFIELDS"] + 1)}
        units_read = {card[f"TTYPE{i}"]: card.get(f"TUNIT{i}")
                      for i in range(1, card["TFIELDS"] + 1)}
    assert forms["brickname"] == "8A" and forms["n_objects"] == "K" and forms["ra"] == "D"
    assert units_read == {c: units.get(c) or None for c in wide_density.columns}

    for read in (card, header):  # astropy's and fitsio's reading of the same cards
        assert read["HALO_LRG_VERSION"] == __version__
        assert read["SELECTION"] == "seed,desi-lrg" and read["SEL1"] == "seed"
        assert read["SEL1_LRG_Z_MAG_MAX"] == 20.4 and read["NFILES"] == 3
        assert read["RESOLVED"] is False
        assert read["NSREASON"] == HEADER["nsreason"]  # a long string over CONTINUE cards
        assert read["INDEX"] == HEADER["index"]
        assert json.loads(read["SEL2_QUALITY_MASK"]) == HEADER["sel2_quality_mask"]
    assert card.comments["SEL1"] == HEADER["sel1"][1]
    assert card.comments["HALO_LRG_VERSION"] == "the version"
    assert card["SEL1_QUALITY_MASK"] is None or isinstance(card["SEL1_QUALITY_MASK"],
                                                           fits.card.Undefined)
    assert "HIERARCH HALO_LRG_VERSION" in path.read_bytes().decode("ascii", "replace")


def test_parquet_holds_the_csv_values_with_units_and_metadata(wide_density):
    units = column_units(wide_density.columns)
    data = table_bytes(wide_density, "parquet", units=units, header=HEADER)
    back = pd.read_parquet(io.BytesIO(data))
    pd.testing.assert_frame_equal(back, wide_density, check_dtype=True)
    assert_csv_agrees(csv_frame(table_bytes(wide_density, "csv")), back)

    schema = pq.read_schema(io.BytesIO(data))
    assert schema.field("ra").metadata == {b"unit": b"deg"}
    assert schema.field("desi-lrg_density").metadata == {b"unit": b"deg-2"}
    assert not schema.field("n_objects").metadata  # a count: no unit
    meta = json.loads(schema.metadata[b"halo_lrg"])
    plain = {k: v[0] if isinstance(v, tuple) else v for k, v in HEADER.items()}
    assert meta == plain  # JSON values: the dict stays a dict, None stays null
    assert json.loads(schema.metadata[b"halo_lrg_comments"]) == {
        k: v[1] for k, v in HEADER.items() if isinstance(v, tuple)}


def test_an_empty_table_is_still_a_table_in_every_format(tmp_path):
    empty = pd.DataFrame({"brickname": pd.Series([], dtype=str),
                          "lrg_count": pd.Series([], dtype="int64")})
    table = Table.read(fits_write(tmp_path, table_bytes(empty, "fits")))
    assert table.colnames == ["brickname", "lrg_count"] and len(table) == 0
    assert len(pd.read_parquet(io.BytesIO(table_bytes(empty, "parquet")))) == 0
    assert table_bytes(empty, "csv") == b"brickname,lrg_count\n"


def test_missing_text_is_an_empty_fits_string_and_a_parquet_null(tmp_path):
    frame = pd.DataFrame({"brickname": ["1501p025", None], "n": [1, 2]})
    data = fitsio.read(str(fits_write(tmp_path, table_bytes(frame, "fits"))), ext=1)
    assert text(data["brickname"]) == ["1501p025", ""]
    assert pd.read_parquet(io.BytesIO(table_bytes(frame, "parquet")))["brickname"].isna().tolist() \
        == [False, True]


@pytest.mark.parametrize("frame, match", [
    (pd.DataFrame({"t": pd.to_datetime(["2025-01-01"])}), "column 't': dtype"),
    (pd.DataFrame({"s": ["1501p025", "é"]}), "column 's': FITS text columns are ASCII"),
    (pd.DataFrame({"n": pd.array([1, None], dtype="Int64")}), "column 'n': dtype Int64"),
])
def test_a_column_fits_cannot_hold_is_named(frame, match):
    with pytest.raises(ValueError, match=match):
        table_bytes(frame, "fits")


# --- the keyword rule ------------------------------------------------------------------------

def test_keywords_are_upper_case_standard_up_to_8_characters_else_hierarch(tmp_path):
    assert fits_keyword("date") == "DATE" and fits_keyword("sel1_base") == "SEL1_BASE"
    assert fits_keyword("desi-lrg.zfiber max") == "DESI-LRG_ZFIBER_MAX"
    frame = pd.DataFrame({"a": [1]})
    path = fits_write(tmp_path, table_bytes(frame, "fits", header={
        "date": "2025-11-26T00:00:00", "sel1_base": "seed", "x.y": 1}))
    raw = path.read_bytes()[2880:].decode("ascii")
    cards = [raw[i:i + 80] for i in range(0, 2880, 80)]
    assert any(c.startswith("DATE    = '2025-11-26T00:00:00'") for c in cards)
    assert any(c.startswith("HIERARCH SEL1_BASE = 'seed") for c in cards)
    assert any(c.startswith("X_Y     =                    1") for c in cards)


@pytest.mark.parametrize("header, match", [
    ({"sel1": 1, "SEL1": 2}, "'sel1' and 'SEL1' are both FITS keyword SEL1"),
    ({"a.b": 1, "a_b": 2}, "both FITS keyword A_B"),
    ({"naxis2": 5}, "'naxis2': NAXIS2 is reserved"),
    ({"ttype1": "x"}, "TTYPE1 is reserved"),
    ({"hierarchy": 1}, "HIERARCHY is reserved"),
    ({"k" * (MAX_KEY_LENGTH + 1): 1}, "too long for a FITS card"),
    ({"": 1}, "an empty key"),
    ({"ratio": float("nan")}, "'ratio': nan has no FITS or JSON form"),
    ({"big": 1.7976931348623151e+308}, "'big': .* beyond the normal floats at 15 digits"),
    ({"tiny": 5e-324}, "'tiny': 5e-324 is beyond the normal floats"),
    ({"when": object()}, "'when': a value must be"),
    ({"bad": {"x": {1, 2}}}, "'bad': not JSON"),
])
def test_header_items_fits_cannot_hold_are_named(header, match):
    with pytest.raises(ValueError, match=match):
        table_bytes(pd.DataFrame({"a": [1]}), "fits", header=header)


def test_text_a_header_cannot_hold_is_written_as_json_escapes(tmp_path):
    header = {"region": "deg² north", "long_text": "run.resolve = auto", "note": "a = b"}
    path = fits_write(tmp_path, table_bytes(pd.DataFrame({"a": [1]}), "fits", header=header))
    for read in (fits.getheader(path, 1), fitsio.read_header(str(path), 1)):
        assert read["REGION"] == "deg\\u00b2 north"
        assert json.loads(f'"{read["REGION"]}"') == "deg² north"
        # fitsio misreads "=" in a HIERARCH string: escaped there, kept in a standard card
        assert read["LONG_TEXT"] == "run.resolve \\u003d auto"
        assert json.loads(f'"{read["LONG_TEXT"]}"') == "run.resolve = auto"
        assert read["NOTE"] == "a = b"
    meta = json.loads(pq.read_schema(io.BytesIO(table_bytes(
        pd.DataFrame({"a": [1]}), "parquet", header=header))).metadata[b"halo_lrg"])
    assert meta == header  # Parquet keeps the text as it is


def test_a_long_comment_is_cut_to_its_card_and_kept_whole_in_parquet(tmp_path):
    comment = "complete, or partial: files skipped (see manifest.json) " * 2
    header = {"state": ("complete", comment), "halo_lrg_version": ("1.0", comment)}
    path = fits_write(tmp_path, table_bytes(pd.DataFrame({"a": [1]}), "fits", header=header))
    raw = path.read_bytes()[2880:].decode("ascii")
    assert "CONTINUE" not in raw  # a short value keeps one card
    read = fits.getheader(path, 1)
    assert read["STATE"] == "complete" and comment.startswith(read.comments["STATE"])
    assert len(read.comments["STATE"]) > 20
    data = table_bytes(pd.DataFrame({"a": [1]}), "parquet", header=header)
    assert json.loads(pq.read_schema(io.BytesIO(data)).metadata[b"halo_lrg_comments"])[
        "state"] == comment


# --- round trips over random tables ----------------------------------------------------------

brick_names = st.builds(lambda ra, sign, dec: f"{ra:04d}{sign}{dec:03d}",
                        st.integers(0, 3599), st.sampled_from("pm"), st.integers(0, 900))
finite_or_nan = st.one_of(st.floats(allow_nan=False, allow_infinity=False, width=64),
                          st.just(float("nan")))


@st.composite
def frames(draw) -> pd.DataFrame:
    n = draw(st.integers(0, 12))
    columns = {"brickname": draw(st.lists(brick_names, min_size=n, max_size=n))}
    for k in range(draw(st.integers(0, 3))):
        columns[f"n_{k}"] = np.array(draw(st.lists(st.integers(-2**63, 2**63 - 1),
                                                   min_size=n, max_size=n)), dtype=np.int64)
    for k in range(draw(st.integers(0, 3))):
        columns[f"x_{k}_density"] = np.array(draw(st.lists(finite_or_nan, min_size=n,
                                                           max_size=n)), dtype=np.float64)
    return pd.DataFrame(columns)


@settings(max_examples=40, deadline=None)
@given(frames())
def test_csv_fits_and_parquet_round_trip_the_same_values(tmp_path_factory, frame):
    units = column_units(frame.columns)
    path = fits_write(tmp_path_factory.mktemp("rt"), table_bytes(frame, "fits", units=units))
    data = fitsio.read(str(path), ext=1)
    assert_same_values(frame, {n: data[n] for n in data.dtype.names})
    table = Table.read(path)
    assert_same_values(frame, {c: table[c] for c in table.colnames})
    assert all(table[c].unit == u.Unit(units[c], format="fits") for c in units if units[c])
    pd.testing.assert_frame_equal(pd.read_parquet(io.BytesIO(table_bytes(frame, "parquet"))),
                                  frame)
    if len(frame):
        assert_csv_agrees(csv_frame(table_bytes(frame, "csv")), frame)


header_text = st.text(st.sampled_from(string.printable[:-5] + "é²"), max_size=120)


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.sampled_from(["note", "a_rather_long_key", "sel1_zfiber_max",
                                        "index", "n"]),
                       st.one_of(header_text, st.integers(-2**63, 2**63 - 1), st.booleans(),
                                 st.floats(-1e307, 1e307).filter(
                                     lambda x: x == 0 or abs(x) > 1e-307)),
                       max_size=5))
def test_header_values_read_back_by_astropy_and_fitsio(tmp_path_factory, header):
    path = fits_write(tmp_path_factory.mktemp("hdr"),
                      table_bytes(pd.DataFrame({"a": [1]}), "fits", header=header))
    for read in (fits.getheader(path, 1), fitsio.read_header(str(path), 1)):
        for key, value in header.items():
            got = read[key.upper()]
            if isinstance(value, str):
                # trailing blanks are not significant in a FITS string
                assert got.rstrip() == value.rstrip() or \
                    json.loads(f'"{got}"').rstrip() == value.rstrip(), (key, value, got)
            elif isinstance(value, float):
                assert math.isclose(got, float(f"{value:.15g}"), rel_tol=1e-15, abs_tol=0)
            else:
                assert got == value and type(got) is type(value)


# --- the density command ---------------------------------------------------------------------

def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_density_command_writes_each_format_beside_the_same_csv(tmp_path):
    counts = tmp_path / "counts.csv"
    counts.write_text("brickname,lrg_count\n" + "".join(f"{b},{k}\n"
                                                         for k, b in enumerate(BRICKS)))
    plain = invoke("density", str(counts), "--output", str(tmp_path / "plain.csv"))
    assert plain.exit_code == 0, plain.output
    result = invoke("density", str(counts), "--output", str(tmp_path / "d" / "density.csv"),
                    "--format", "csv,fits,parquet")
    assert result.exit_code == 0, result.output
    out = tmp_path / "d"
    assert sorted(p.name for p in out.iterdir()) == ["density.csv", "density.fits",
                                                     "density.parquet"]
    assert (out / "density.csv").read_bytes() == (tmp_path / "plain.csv").read_bytes()
    csv = csv_frame((out / "density.csv").read_bytes())
    table = Table.read(out / "density.fits", hdu="DENSITY")
    assert_csv_agrees(csv, table.to_pandas().assign(brickname=text(table["brickname"])))
    assert table["lrg_density"].unit == u.deg ** -2
    assert table.meta["HALO_LRG_VERSION"] == __version__
    assert table.meta["COUNTS"] == str(counts)
    parquet = pd.read_parquet(out / "density.parquet")
    assert_csv_agrees(csv, parquet)
    assert json.loads(pq.read_schema(out / "density.parquet").metadata[b"halo_lrg"])[
        "counts"] == str(counts)
    assert str(out / "density.fits") in result.output

    only = invoke("density", str(counts), "--output", str(tmp_path / "f" / "x.fits"),
                  "--format", "fits")
    assert only.exit_code == 0 and [p.name for p in (tmp_path / "f").iterdir()] == ["x.fits"]


def test_density_command_refuses_an_unknown_format():
    result = CliRunner().invoke(main, ["density", "c.csv", "--output", "d.csv", "--format",
                                       "csv,xlsx"])
    assert result.exit_code == 2
    assert "unknown table format 'xlsx' (choose from csv, fits, parquet)" in result.output


def test_run_refuses_an_unknown_format_before_spark():
    result = CliRunner().invoke(main, ["run", "--index", "i", "--output", "o", "--format",
                                       "fits,hdf5"])
    assert result.exit_code == 2 and "unknown table format 'hdf5'" in result.output


# --- a run ---------------------------------------------------------------------------------

def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def dr10_index(sample, tmp_path) -> Path:
    """The sample's sweeps under a release's folder layout, so their paths say the release."""
    folder = tmp_path / "dr10" / "south" / "sweep" / "10.1"
    folder.mkdir(parents=True)
    for path in sample["paths"]:
        os.symlink(path, folder / path.name)
    index = tmp_path / "index.txt"
    index.write_text("".join(f"{folder / p.name}\n" for p in sample["paths"]))
    return index


@pytest.mark.spark
def test_a_run_writes_every_format_with_the_csv_values_and_removes_stale_ones(
        spark, sample, dr10_index, tmp_path, config):
    from chispa import assert_df_equality

    out, plain = tmp_path / "out", tmp_path / "plain"
    result = invoke("run", "--index", str(dr10_index), "--output", str(out), "--with-density",
                    "--selection", "seed,desi-lrg", "--format", "csv,fits,parquet")
    assert result.exit_code == 0, result.output
    assert f"fits:     {out}/lrg_counts_per_brick.fits, {out}/lrg_density.fits" \
        in result.output
    alone = invoke("run", "--index", str(dr10_index), "--output", str(plain),
                   "--selection", "seed,desi-lrg")
    assert alone.exit_code == 0, alone.output
    counts_csv = out / "lrg_counts_per_brick" / "part-00000.csv"
    assert counts_csv.read_bytes() == (plain / "lrg_counts_per_brick" /
                                       "part-00000.csv").read_bytes()
    assert not list(plain.glob("*.fits")) and not list(plain.glob("*.parquet"))

    manifest = json.loads((out / "manifest.json").read_text())
    for stem, csv_path in (("lrg_counts_per_brick", counts_csv),
                           ("lrg_density", out / "lrg_density.csv")):
        csv = csv_frame(csv_path.read_bytes())
        table = Table.read(out / f"{stem}.fits")
        assert_csv_agrees(csv, table.to_pandas().assign(brickname=text(table["brickname"])))
        data = fitsio.read(str(out / f"{stem}.fits"), ext=1)
        assert_csv_agrees(csv, pd.DataFrame({n: text(data[n]) if n == "brickname" else data[n]
                                             .astype(data[n].dtype.newbyteorder("="))
                                             for n in data.dtype.names}))
        parquet = pd.read_parquet(out / f"{stem}.parquet")
        assert_csv_agrees(csv, parquet)
        if stem == "lrg_counts_per_brick":  # integers only: exactly the CSV, dtypes too
            pd.testing.assert_frame_equal(parquet, csv)
            assert_df_equality(spark.read.parquet(str(out / f"{stem}.parquet")),
                               spark.createDataFrame(csv), ignore_nullable=True)
        assert table["brickname"].dtype.kind == "S" and table["seed"].dtype == np.dtype(">i8")

        meta = table.meta
        assert meta["HALO_LRG_VERSION"] == __version__ == manifest["halo_lrg_version"]
        assert meta["SELECTION"] == "seed,desi-lrg"
        assert (meta["SEL1"], meta["SEL2"]) == ("seed", "desi-lrg")
        assert meta["SEL1_LRG_Z_MAG_MAX"] == config.cuts.lrg_z_mag_max
        assert meta["SEL1_LRG_MIN_R_MINUS_Z"] == config.cuts.lrg_min_r_minus_z
        assert json.loads(meta["SEL2_QUALITY_MASK"])["maskbits_reject"] == 12290
        assert meta["INDEX"] == str(dr10_index)
        assert (meta["RESOLVE"], meta["RESOLVED"], meta["NSREASON"]) == (
            manifest["north_south"]["mode"], manifest["north_south"]["applied"],
            manifest["north_south"]["reason"])
        assert (meta["RELEASE"], meta["RELEASE_REGION"], meta["SWEEP_VERSION"]) == (
            "dr10", "south", "10.1")
        assert meta["DATE"][:4].isdigit() and meta["STATE"] == "complete"
        provenance = json.loads(pq.read_schema(out / f"{stem}.parquet").metadata[b"halo_lrg"])
        assert provenance["release"] == "dr10" and provenance["sel1"] == "seed"
        assert provenance["sel2_quality_mask"]["maskbits_reject"] == 12290
    assert Table.read(out / "lrg_density.fits")["area_deg2"].unit == u.deg ** 2

    listed = {o["name"]: o for o in manifest["outputs"]}
    assert set(listed) == {"lrg_counts_per_brick/part-00000.csv", "lrg_density.csv",
                           "lrg_counts_per_brick.fits", "lrg_density.fits",
                           "lrg_counts_per_brick.parquet", "lrg_density.parquet"}
    for name, entry in listed.items():
        assert entry["sha256"] == sha256(out / name) and entry["bytes"] == \
            (out / name).stat().st_size
        assert entry["uri"] == f"{out}/{name}"
    assert listed["lrg_density.fits"]["table"] == "density"
    assert listed["lrg_counts_per_brick.parquet"]["format"] == "parquet"
    assert manifest["counts_sha256"] == sha256(counts_csv)
    assert manifest["config"]["output"]["formats"] == "csv,fits,parquet"

    # CSV only this time: the FITS and Parquet of the last run would be stale, so they go.
    again = invoke("run", "--index", str(dr10_index), "--output", str(out),
                   "--selection", "seed,desi-lrg")
    assert again.exit_code == 0, again.output
    left = sorted(p.name for p in out.iterdir() if not p.name.startswith("_"))
    assert left == ["lrg_counts_per_brick", "manifest.json"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert [o["name"] for o in manifest["outputs"]] == ["lrg_counts_per_brick/part-00000.csv"]
    assert manifest["outputs"][0]["sha256"] == sha256(counts_csv) == manifest["counts_sha256"]


@pytest.mark.spark
def test_no_release_is_claimed_when_the_paths_do_not_say_it(spark, sample, tmp_path):
    out = tmp_path / "out"
    result = invoke("run", "--index", str(sample["index"]), "--output", str(out),
                    "--format", "fits")
    assert result.exit_code == 0, result.output
    meta = Table.read(out / "lrg_counts_per_brick.fits").meta
    assert "RELEASE" not in meta and "SWEEP_VERSION" not in meta
    assert meta["SELECTION"] == "seed" and meta["INDEX"] == str(sample["index"])
    assert not (out / "lrg_counts_per_brick.parquet").exists()
    listed = [o["name"] for o in json.loads((out / "manifest.json").read_text())["outputs"]]
    assert listed == ["lrg_counts_per_brick/part-00000.csv", "lrg_counts_per_brick.fits"]
