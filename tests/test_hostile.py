"""Hostile inputs (issue "Durable runs", section 5).

Every hostile input ends in a correct count or in one line naming the file and the cause, the
same on every read path: the local fast path, the fitsio path (``read.fast_path = false``) and
the streaming reader (driven over a complete local file, as tests/test_fits_layout.py does).
Under ``--on-error skip`` a run records it and counts the rest. Every file is generated here.
"""

from __future__ import annotations

import bz2
import gzip
import logging
import os
import threading
import time
from pathlib import Path

import fitsio
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from halo_lrg.count.local import (
    SweepCount,
    count_check,
    count_columns,
    count_sweep_file,
    tally_chunks,
)
from halo_lrg.count.streaming import GrowingDownload, _stream_chunks
from halo_lrg.fits.layout import BLOCK, CARD
from halo_lrg.fits.reader import SweepError, clear_cfitsio_messages, sweep_layout
from halo_lrg.science.cuts import get_selection
from halo_lrg.survey.index import IndexLinesError, parse_index, select_inputs
from halo_lrg.survey.names import SweepBox, sweep_name
from halo_lrg.survey.synth import generate_sweep
from test_fits_layout import bintable, card, primary

READERS = ("fast", "fitsio", "stream")
SELECTION = get_selection("desi-lrg")  # reads the most columns, PHOTSYS when present
BOX = SweepBox(150.0, 155.0, 0.0, 5.0)


# --- counting one file on each path -----------------------------------------------------------

def finished_download(path: str) -> GrowingDownload:
    """The streaming reader's download, over a file already complete (no network), named as
    stream_count names it: by the URI the reader reads."""
    download = GrowingDownload(path, path, None)  # type: ignore[arg-type]
    download.written, download.finished = os.path.getsize(path), True
    return download


def count(path, reader: str, selection=SELECTION, chunk_rows: int = 100) -> SweepCount:
    """One file counted by ``reader``: the local fast path, the fitsio path, or the streaming
    reader over the complete file (its checks, chunks and tally, as stream_count runs them)."""
    path = str(path)
    if reader != "stream":
        return count_sweep_file(path, selection, chunk_rows, reader == "fast")
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = _stream_chunks(path, fd, finished_download(path),
                                count_columns(selection, None),
                                tuple(selection.optional_columns), chunk_rows,
                                check=count_check(selection, None))
        assert chunks is not None, "the streaming reader handed the table to fitsio"
        return tally_chunks(path, chunks, selection, None, time.perf_counter())
    finally:
        os.close(fd)


def outcome(path, reader: str, **kwargs) -> tuple:
    """("ok", rows, bricks, objects, lrgs) or ("error", cause); any other exception fails."""
    try:
        got = count(path, reader, **kwargs)
    except SweepError as exc:
        assert exc.path == str(path), (exc.path, path)
        assert "\n" not in str(exc) and str(exc) == f"{path}: {exc.cause}"
        return ("error", exc.cause)
    return ("ok", got.rows, got.brickname.tolist(), got.n_objects.tolist(),
            got.lrg_count.tolist())


def on_every_path(path, **kwargs) -> tuple:
    """The outcome, asserted the same on every path."""
    outcomes = {reader: outcome(path, reader, **kwargs) for reader in READERS}
    assert outcomes["fitsio"] == outcomes["fast"], outcomes
    assert outcomes["stream"] == outcomes["fast"], outcomes
    return outcomes["fast"]


# --- files -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("good") / sweep_name(BOX)
    generate_sweep(path, BOX, 300, seed=1)
    return path


@pytest.fixture(scope="module")
def reference(good) -> tuple:
    expected = outcome(good, "fast")
    assert expected[0] == "ok" and expected[1] == 300 and sum(expected[4]) > 0
    return expected


def table_header_end(data: bytes) -> int:
    """Offset of the END card of HDU 1's header in a generated sweep."""
    end = data.index(b"END" + b" " * (CARD - 3), BLOCK)
    assert end % CARD == 0
    return end


def replace_card(data: bytes, key: str, new: bytes) -> bytes:
    start = data.index(key.ljust(8).encode() + b"= ")
    assert start % CARD == 0
    return data[:start] + new.ljust(CARD) + data[start + CARD:]


def swapped_cards(data: bytes, first: str, second: str) -> bytes:
    a = data.index(first.ljust(8).encode() + b"= ", BLOCK)
    b = data.index(second.ljust(8).encode() + b"= ", BLOCK)
    out = bytearray(data)
    out[a:a + CARD], out[b:b + CARD] = data[b:b + CARD], data[a:a + CARD]
    return bytes(out)


def without_table_end(data: bytes) -> bytes:
    """HDU 1's header with its END card blanked: it runs on into the binary rows."""
    end = table_header_end(data)
    return data[:end] + b" " * CARD + data[end + CARD:]


def with_brickname(path: Path, row: int, name: bytes) -> bytes:
    """The file's bytes with BRICKNAME of ``row`` replaced by ``name`` (8 bytes, as stored)."""
    layout = sweep_layout(str(path))
    start = layout.data_start + row * layout.row_bytes + layout.columns["BRICKNAME"].offset
    data = bytearray(path.read_bytes())
    data[start:start + 8] = name.ljust(8)[:8]
    return bytes(data)


def case_duplicates() -> bytes:
    rows = np.zeros(1, dtype=[("a", ">f4"), ("b", ">f4")])
    return primary() + bintable([("Flux_Z", "E", {}), ("FLUX_Z", "E", {})], rows,
                                extname="SWEEP")


NOT_FITS = "not a FITS file: first card is not SIMPLE = T"
#: kind -> (the file's bytes from the good sweep's, its path; the cause on every path)
HOSTILE = {
    "not-fits": (lambda data, _p: b"these are not the bytes you are looking for\n" * 100,
                 f"{NOT_FITS}"),
    "html": (lambda data, _p: b"<!DOCTYPE html><html>404 Not Found</html>\n" * 100,
             f"{NOT_FITS} (the bytes look like HTML: an error page?)"),
    "empty": (lambda data, _p: b"", "empty file (0 bytes), not FITS"),
    "random-bytes": (lambda data, _p: np.random.default_rng(0).bytes(len(data)), NOT_FITS),
    "random-bytes-after-the-primary": (
        lambda data, _p: data[:BLOCK] + np.random.default_rng(0).bytes(len(data) - BLOCK),
        "no binary table HDU (a sweep keeps its catalogue in HDU 1)"),
    "gzip": (lambda data, _p: gzip.compress(data),
             f"{NOT_FITS} (the bytes are gzip-compressed: decompress them first)"),
    "gzip-level-0": (lambda data, _p: gzip.compress(data, compresslevel=0),
                     f"{NOT_FITS} (the bytes are gzip-compressed: decompress them first)"),
    "bzip2": (lambda data, _p: bz2.compress(data),
              f"{NOT_FITS} (the bytes are bzip2-compressed: decompress them first)"),
    "no-end-card": (lambda data, _p: without_table_end(data),
                    "HDU 1: header card {card} (byte {byte:,}) holds 0x{value:02X}, which a "
                    "FITS header cannot: a damaged header, or one with no END card"),
    "negative-naxis2": (lambda data, _p: replace_card(data, "NAXIS2", card("NAXIS2", -5)),
                        "HDU 1: NAXIS2 = -5 is negative"),
    "header-cut": (lambda data, _p: data[:BLOCK + 1000],
                   "truncated: the file ends inside the header of HDU 1 (byte 3,880)"),
    "case-duplicate-names": (lambda data, _p: case_duplicates(),
                             "HDU 1: columns 1 ('Flux_Z') and 2 ('FLUX_Z') have the same "
                             "name"),
    "mandatory-keywords-out-of-order": (
        lambda data, _p: swapped_cards(data, "PCOUNT", "GCOUNT"),
        "HDU 1: card 6 is 'GCOUNT' where FITS requires PCOUNT (the mandatory keywords come "
        "first, in order)"),
    "non-ascii-header": (
        lambda data, _p: data.replace(b"'FLUX_W1 '", b"'FLUX_W\xe9 '", 1),
        "HDU 1: header card {card} (byte {byte:,}) holds 0xE9, which a FITS header "
        "cannot: a damaged header, or one with no END card"),
    "non-ascii-brickname": (
        lambda data, path: with_brickname(path, 123, b"15\xe91p02"),
        "column BRICKNAME: row 123 holds bytes that are not ASCII (b'15\\xe91p02 ')"),
}


def hostile_file(kind: str, good: Path, directory: Path) -> tuple[Path, str]:
    """The hostile file of ``kind`` made from the good sweep, and its cause on every path."""
    make, cause = HOSTILE[kind]
    data = good.read_bytes()
    content = make(data, good)
    path = directory / f"{kind}.fits"
    path.write_bytes(content)
    if kind == "no-end-card":
        cause = _first_forbidden_card(content, cause)
    elif kind == "non-ascii-header":
        at = data.index(b"'FLUX_W1 '") // CARD * CARD
        cause = cause.format(card=(at - BLOCK) // CARD + 1, byte=at)
    return path, cause


def _first_forbidden_card(content: bytes, template: str) -> str:
    """Where HDU 1's header (one block after the primary's), its END card gone, meets the
    first byte FITS forbids in a header: over 0x7F, or a control byte in a keyword field."""
    for at in range(BLOCK, len(content), CARD):
        raw = content[at:at + CARD]
        bad = [b for i, b in enumerate(raw) if b >= 0x80 or (i < 10 and not 0x20 <= b < 0x7F)]
        if bad:
            return template.format(card=(at - BLOCK) // CARD + 1, byte=at, value=bad[0])
    raise AssertionError("the rows look like header text")


# --- classes of hostile input: the same outcome on every path ---------------------------------

@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_each_hostile_file_ends_in_the_same_one_line_error_on_every_path(good, tmp_path, kind):
    path, cause = hostile_file(kind, good, tmp_path)
    assert on_every_path(path) == ("error", cause)


def test_a_truncated_file_is_never_counted_on_any_path(good, tmp_path):
    data = good.read_bytes()
    layout = sweep_layout(str(good))
    cuts = {"rows": layout.data_start + 150 * layout.row_bytes + 7,
            "padding": layout.data_end}  # every row there, the block's padding missing
    for name, size in cuts.items():
        path = tmp_path / f"cut-{name}.fits"
        path.write_bytes(data[:size])
        expected = ("error", f"truncated: the header declares 300 rows of 505 bytes "
                             f"({layout.file_end:,} bytes with headers and padding) but the "
                             f"file holds {size:,} bytes")
        assert outcome(path, "fast") == outcome(path, "fitsio") == expected
        # The streaming reader cannot know the size before the end: it refuses at the first
        # byte it waits for in vain (the counts read so far go with the error).
        needs = layout.file_end if name == "padding" else layout.data_start + 200 * 505
        assert outcome(path, "stream") == (
            "error", f"truncated: the header needs {needs:,} bytes but the server sent "
                     f"{size:,}")


def test_compressed_files_are_refused_and_a_name_means_nothing(good, reference, tmp_path):
    # A .fits.gz is refused plainly (no path decompresses: cfitsio would, on its own), and a
    # level-0 gzip, whose FITS bytes lie uncompressed inside it, is never counted as rows.
    for level in (9, 0):
        path = tmp_path / f"level{level}" / "sweep-150p000-155p005.fits.gz"
        path.parent.mkdir()
        path.write_bytes(gzip.compress(good.read_bytes(), compresslevel=level))
        assert on_every_path(path) == (
            "error", f"{NOT_FITS} (the bytes are gzip-compressed: decompress them first)")
    # Plain FITS bytes under a compressed-looking name are what they are, on every path.
    plain = tmp_path / "plain.fits.gz"
    plain.write_bytes(good.read_bytes())
    assert on_every_path(plain) == reference


# --- 1. one bad file never poisons the next ------------------------------------------------------

@pytest.mark.parametrize("reader", READERS)
def test_a_bad_file_never_poisons_the_next_in_the_same_process(good, reference, tmp_path,
                                                               reader):
    bad = {kind: hostile_file(kind, good, tmp_path)
           for kind in ("no-end-card", "gzip", "non-ascii-brickname", "non-ascii-header",
                        "mandatory-keywords-out-of-order")}
    for kind, (path, cause) in bad.items():
        assert outcome(path, reader) == ("error", cause), kind
        assert outcome(good, reader) == reference, f"after {kind}"
    # The same name, bad then good (a retried download, a fixed file): read anew each time.
    same = tmp_path / "same.fits"
    for path, cause in bad.values():
        same.write_bytes(path.read_bytes())
        assert outcome(same, reader) == ("error", cause)
        same.write_bytes(good.read_bytes())
        assert outcome(same, reader) == reference


def test_cfitsio_messages_never_outlive_a_file(good, tmp_path):
    from fitsio import _fitsio_wrap

    def stack() -> str:  # what the next failure would report beyond its own status line
        try:
            _fitsio_wrap.get_keytype("")
        except OSError as exc:
            return str(exc).strip().split("\n", 1)[-1] if "\n" in str(exc).strip() else ""
        raise AssertionError("get_keytype('') succeeded")

    for _ in range(30):  # messages pushed by calls that recovered: cfitsio keeps them
        _fitsio_wrap.parse_card("STALE   = 'no closing quote")
    path, cause = hostile_file("non-ascii-brickname", good, tmp_path)
    assert outcome(path, "fitsio") == ("error", cause)  # fitsio failed on this one
    assert stack() == ""
    for _ in range(30):
        _fitsio_wrap.parse_card("STALE   = 'no closing quote")
    assert outcome(good, "fitsio")[0] == "ok"
    assert stack() == ""
    clear_cfitsio_messages()  # and it is safe to call at any time
    assert stack() == ""


# --- 2./6. what a path means -------------------------------------------------------------------

@pytest.mark.parametrize("shape", ["dir[x]/sweep.fits", "x.fits(y)", "x.fits+1", "$HOME.fits",
                                   "other.fits[1]", "~x.fits", "!x.fits"])
def test_a_path_means_only_that_file_on_every_path(good, reference, tmp_path, shape):
    # cfitsio reads its extended-filename syntax into ordinary names: a filter, a template, an
    # HDU number, an environment variable. Beside other.fits, "other.fits[1]" would be HDU 1
    # of THE OTHER file: the other file has other counts, so reading it would show.
    other = tmp_path / "other.fits"
    generate_sweep(other, BOX, 200, seed=2)
    assert outcome(other, "fast") != reference
    path = tmp_path / shape
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(good.read_bytes())
    assert on_every_path(path) == reference


# --- 5. column types and brick names -------------------------------------------------------------

def rewritten(good: Path, path: Path, change) -> Path:
    """A copy of ``good`` whose table is ``change(table)``, written by fitsio."""
    with fitsio.FITS(str(good)) as fits:
        primary_header, data = fits[0].read_header(), fits["SWEEP"].read()
    data = change(data)
    with fitsio.FITS(str(path), "rw", clobber=True) as fits:
        fits.write(None, header=primary_header)
        fits.write(data, extname="SWEEP")
    return path


def retyped(name: str, fmt, value):
    def change(data: np.ndarray) -> np.ndarray:
        names = list(data.dtype.names)
        if name not in names:
            names.append(name)
        out = np.zeros(len(data), dtype=[(n, fmt if n == name else data.dtype[n])
                                         for n in names])
        for n in data.dtype.names:
            if n != name:
                out[n] = data[n]
        out[name] = value
        return out
    return change


@pytest.mark.parametrize("name,fmt,value,cause", [
    ("FLUX_R", (">f4", (3,)), 1.0, "FLUX_R is 3E (a vector), expected a scalar number"),
    ("FLUX_R", "S8", b"1.5", "FLUX_R is 8A (a string), expected a scalar number"),
    ("FLUX_R", ">c8", 1 + 0j, "FLUX_R is C (a complex number), expected a scalar number"),
    ("FLUX_W1", "?", True, "FLUX_W1 is L (a logical), expected a scalar number"),
    ("MASKBITS", ">f4", 0.0, "MASKBITS is E (a float), expected a scalar integer"),
    ("RELEASE", ">f8", 10000.0, "RELEASE is D (a float), expected a scalar integer"),
    ("BRICKNAME", ">i4", 7, "BRICKNAME is J (an integer), expected a string of at most 8 "
                            "characters (DR10: 8A)"),
    ("BRICKNAME", "S12", b"1501p025", "BRICKNAME is 12A (a string), expected a string of at "
                                      "most 8 characters (DR10: 8A)"),
    ("PHOTSYS", ">f4", 1.0, "PHOTSYS is E (a float), expected a string"),
])
def test_columns_of_the_wrong_type_are_refused_by_name(good, tmp_path, name, fmt, value,
                                                       cause):
    path = rewritten(good, tmp_path / "retyped.fits", retyped(name, fmt, value))
    assert on_every_path(path) == ("error", cause)


def test_a_string_that_is_not_ascii_is_named_with_its_row_on_every_path(good, tmp_path):
    # PHOTSYS is read as text (not raw bytes like BRICKNAME): fitsio fails on the whole read,
    # the fast path on the value; both name the same row and value.
    path = rewritten(good, tmp_path / "photsys.fits", retyped("PHOTSYS", "S1", b"S"))
    layout = sweep_layout(str(path))
    data = bytearray(path.read_bytes())
    data[layout.data_start + 205 * layout.row_bytes + layout.columns["PHOTSYS"].offset] = 0xE9
    path.write_bytes(bytes(data))
    assert on_every_path(path) == (
        "error", "column PHOTSYS: row 205 holds bytes that are not ASCII (b'\\xe9')")


def test_every_wrong_column_is_named_at_once(good, tmp_path):
    def change(data):
        return retyped("FLUX_G", "S4", b"x")(retyped("FLUX_R", (">f4", (3,)), 1.0)(data))

    path = rewritten(good, tmp_path / "two.fits", change)
    assert on_every_path(path) == ("error", "FLUX_G is 4A (a string), expected a scalar "
                                            "number; FLUX_R is 3E (a vector), expected a "
                                            "scalar number")


def test_release_values_no_survey_has_are_refused_not_tabulated(good, tmp_path):
    # desi-lrg maps RELEASE to north/south by tabulating the values' span: a 64-bit column
    # spanning 2^40 would ask for terabytes. Wide integer columns with sane values count.
    wide = rewritten(good, tmp_path / "wide.fits", retyped("RELEASE", ">i8", 10000))
    assert on_every_path(wide)[0] == "ok"
    values = np.full(300, 10000, np.int64)
    values[77] = 1 << 40
    spread = rewritten(good, tmp_path / "spread.fits", retyped("RELEASE", ">i8", values))
    assert on_every_path(spread) == (
        "error", f"RELEASE holds values from 10000 to {1 << 40}: not survey release numbers")


@pytest.mark.parametrize("name,why", [
    (b"1501,025", "holds a comma"),
    (b'1501"025', "holds a quote"),
    (b"1501'025", "holds a quote"),
    (b"1501\n025", "holds a control character"),
    (b"1501\r025", "holds a control character"),
    (b"15\x0001p0", "holds a control character"),  # a NUL before the end is no padding
    (b"\t1501p02", "holds a control character"),
    (b"        ", "is blank"),
    (b"\0\0\0\0\0\0\0\0", "is blank"),
])
def test_brick_names_a_csv_cannot_hold_are_refused_with_their_row(good, tmp_path, name, why):
    path = tmp_path / "names.fits"
    path.write_bytes(with_brickname(good, 201, name))
    stored = name.ljust(8)
    assert on_every_path(path) == (
        "error", f"BRICKNAME at row 201 ({stored!r}) {why}: a brick name must be printable "
                 "ASCII without commas or quotes (it becomes a CSV field)")


def test_brick_names_keep_their_padding_out_of_the_counts(good, tmp_path):
    # Trailing blanks and NULs, in any mix, are padding: "1501p0" padded either way is one
    # brick, and its name never carries a NUL into the CSV.
    data = bytearray(good.read_bytes())
    layout = sweep_layout(str(good))
    at = layout.columns["BRICKNAME"].offset
    for row, name in enumerate([b"1501p0 \0", b"1501p0\0 ", b"1501p0\0\0", b"1501p0  "]):
        start = layout.data_start + row * layout.row_bytes + at
        data[start:start + 8] = name
    path = tmp_path / "padded.fits"
    path.write_bytes(bytes(data))
    got = on_every_path(path)
    assert got[0] == "ok" and got[3][got[2].index("1501p0")] == 4
    assert all("\0" not in name and name == name.strip() for name in got[2])


# --- 3./4. the index -------------------------------------------------------------------------

def test_an_index_names_each_input_once_however_it_is_spelt(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d").mkdir()
    a = str(tmp_path / "d" / "a.fits")
    spellings = [a, f"file://{a}", "d/a.fits", "./d/a.fits", f"{tmp_path}/d/../d/a.fits",
                 f"{tmp_path}//d/a.fits", f"file://localhost{a}", "file:d/a.fits"]
    text = "\n".join([*spellings, "s3://bucket/k.fits", "s3a://bucket/k.fits",
                      "s3://bucket//k.fits", "https://Host.example:443/x/s.fits",
                      "https://host.example/x/s.fits", "http://host.example/x/s.fits"])
    uris, duplicates = parse_index(text)
    assert uris == [a, "s3://bucket/k.fits", "https://Host.example:443/x/s.fits",
                    "http://host.example/x/s.fits"]
    assert duplicates == [*spellings[1:], "s3a://bucket/k.fits", "s3://bucket//k.fits",
                          "https://host.example/x/s.fits"]


def test_a_symlink_is_another_name_not_the_same_input(tmp_path):
    # Compared by abspath/normpath, never by resolving links (an index says names).
    target = tmp_path / "a.fits"
    target.write_bytes(b"")
    (tmp_path / "link.fits").symlink_to(target)
    uris, duplicates = parse_index(f"{target}\n{tmp_path / 'link.fits'}\n")
    assert len(uris) == 2 and duplicates == []


def test_an_index_text_with_a_byte_order_mark_and_crlf_lines(tmp_path):
    text = "\ufeff# sweeps\r\n/data/a.fits\r\n\r\n  /data/b.fits  \r\n"
    chosen = select_inputs(text, index="sweeps.txt")
    assert chosen.uris == ["/data/a.fits", "/data/b.fits"]


def test_bad_index_lines_are_refused_together_naming_the_index_and_lines():
    text = "\n".join(["\ufeff/data/a.fits", "# fine", "s3://bucket", "/data/b.fits",
                      "ftp://host/c.fits", "s3://b/d.fits s3://b/e.fits", "",
                      "file://data/f.fits", "s3://bucket/", "https:///g.fits"])
    with pytest.raises(IndexLinesError) as info:
        select_inputs(text, index="sweeps.txt")
    message = str(info.value)
    assert "\n" not in message
    assert message == (
        "sweeps.txt line 3: s3://bucket: no object key; "
        "line 5: ftp://host/c.fits: unsupported URI scheme 'ftp' (use a path, file://, "
        "s3:// or http(s)://); "
        "line 6: s3://b/d.fits s3://b/e.fits: holds a space inside the URI: one URI a line, "
        "comments on their own # lines (a file name with a space: a file:// URI with %20); "
        "and 3 more bad lines")
    assert [n for n, _entry, _cause in info.value.problems] == [3, 5, 6, 8, 9, 10]
    assert info.value.problems[3][2].startswith("a file:// URI names the host 'data'")
    assert info.value.problems[5][2] == "no host"


def test_index_lines_end_as_an_editor_ends_them_and_stay_one_line_in_a_message():
    assert parse_index("/d/a.fits\r/d/b.fits\r\n/d/c.fits\n")[0] == [
        "/d/a.fits", "/d/b.fits", "/d/c.fits"]  # classic Mac, Windows, Unix
    with pytest.raises(IndexLinesError) as info:
        parse_index("/d/a.fits\x0c/d/b.fits\nhttp://host:port/x.fits\n/d/\x00.fits\n", "ix")
    assert str(info.value) == (
        "ix line 1: /d/a.fits\\x0c/d/b.fits: holds a control character (U+000C); "
        "line 2: http://host:port/x.fits: not a URI (Port could not be cast to integer value "
        "as 'port'); line 3: /d/\\x00.fits: holds a control character (U+0000)")


def test_one_bad_index_line_is_named_alone():
    with pytest.raises(IndexLinesError, match=r"^sweeps\.txt line 1: s3://bucket: no object "
                                              r"key$"):
        parse_index("s3://bucket\n/data/a.fits\n", "sweeps.txt")


# --- 7. non-finite and negative fluxes under desi-lrg ------------------------------------------

def flux(mag: float) -> float:
    return 10 ** (-0.4 * (mag - 22.5))


#: Two objects the DESI south cuts select: BOTH through the low-z cut's g - W1 and r - W1
#: branches, G_ONLY through g - W1 alone (r - W1 < 1.8).
BOTH = {"FLUX_G": flux(23.5), "FLUX_R": flux(21.5), "FLUX_Z": flux(19.8),
        "FLUX_W1": flux(18.6), "FIBERFLUX_Z": flux(20.6), "FIBERTOTFLUX_Z": flux(20.5)}
G_ONLY = {"FLUX_G": flux(21.0), "FLUX_R": flux(18.6), "FLUX_Z": flux(18.3),
          "FLUX_W1": flux(17.3), "FIBERFLUX_Z": flux(19.0), "FIBERTOTFLUX_Z": flux(18.9)}
QUALITY = {"MW_TRANSMISSION_G": 0.9, "MW_TRANSMISSION_R": 0.93, "MW_TRANSMISSION_Z": 0.95,
           "MW_TRANSMISSION_W1": 0.99, "FLUX_IVAR_R": 5.0, "FLUX_IVAR_Z": 5.0,
           "FLUX_IVAR_W1": 5.0, "GAIA_PHOT_G_MEAN_MAG": 0.0, "NOBS_G": 2, "NOBS_R": 2,
           "NOBS_Z": 2, "MASKBITS": 0}
INF, NAN = float("inf"), float("nan")
#: (object, column, value, selected): the behaviour science/cuts.py documents.
DOCUMENTED = [
    *[(obj, col, v, False) for obj in ("BOTH", "G_ONLY")
      for col in ("FLUX_R", "FLUX_Z", "FLUX_W1", "FIBERFLUX_Z", "FLUX_IVAR_R", "FLUX_IVAR_Z",
                  "FLUX_IVAR_W1", "GAIA_PHOT_G_MEAN_MAG", "FIBERTOTFLUX_Z",
                  "MW_TRANSMISSION_R", "MW_TRANSMISSION_Z", "MW_TRANSMISSION_W1")
      for v in (NAN,)],
    *[(obj, col, v, False) for obj in ("BOTH", "G_ONLY")
      for col in ("FLUX_R", "FLUX_Z", "FLUX_W1", "FIBERFLUX_Z") for v in (0.0, -3.0, -INF)],
    *[(obj, col, INF, False) for obj in ("BOTH", "G_ONLY") for col in ("FLUX_R", "FLUX_Z")],
    # +inf W1 or zfiber: magnitudes of -inf pass every cut they enter
    *[(obj, col, INF, True) for obj in ("BOTH", "G_ONLY") for col in ("FLUX_W1", "FIBERFLUX_Z")],
    *[(obj, "MW_TRANSMISSION_W1", 0.0, True) for obj in ("BOTH", "G_ONLY")],
    # g: replaceable by r - W1; a non-positive g clips to 40 mag, which passes g - W1
    *[("BOTH", "FLUX_G", v, True) for v in (NAN, INF, -INF, 0.0, -3.0)],
    *[("BOTH", "MW_TRANSMISSION_G", v, True) for v in (NAN, 0.0)],
    *[("G_ONLY", "FLUX_G", v, True) for v in (0.0, -3.0, -INF)],
    *[("G_ONLY", "FLUX_G", v, False) for v in (NAN, INF)],
    # FIBERTOTFLUX_Z is a bright limit only; +inf ivars and Gaia G pass their > comparisons
    *[(obj, "FIBERTOTFLUX_Z", v, True) for obj in ("BOTH", "G_ONLY") for v in (0.0, -3.0, -INF)],
    *[(obj, "FIBERTOTFLUX_Z", INF, False) for obj in ("BOTH", "G_ONLY")],
    *[(obj, col, INF, True) for obj in ("BOTH", "G_ONLY")
      for col in ("FLUX_IVAR_R", "FLUX_IVAR_Z", "FLUX_IVAR_W1", "GAIA_PHOT_G_MEAN_MAG")],
]


def catalogue(obj: str, column: str, value: float) -> dict[str, np.ndarray]:
    row = {**(BOTH if obj == "BOTH" else G_ONLY), **QUALITY, column: value}
    def kind(name: str) -> str:
        return ">i2" if name.startswith("NOBS") else ">i4" if name == "MASKBITS" else ">f4"
    return {name: np.array([v], dtype=kind(name)) for name, v in row.items()}


def test_the_documented_objects_are_selected_as_they_are():
    south = get_selection("desi-lrg-south")
    for obj in ("BOTH", "G_ONLY"):
        assert south(catalogue(obj, "MASKBITS", 0))[0], obj


@pytest.mark.parametrize("obj,column,value,selected", DOCUMENTED)
def test_non_finite_and_negative_values_under_desi_lrg_are_as_documented(obj, column, value,
                                                                         selected):
    for name in ("desi-lrg-south", "desi-lrg-north"):
        cat = catalogue(obj, column, value)
        if name.endswith("north") and obj == "G_ONLY":
            continue  # the north's g - W1 > 2.97 is another object
        assert get_selection(name)(cat)[0] == selected, (name, obj, column, value)


def test_non_finite_and_negative_values_select_as_in_desitarget():
    desitarget_cuts = pytest.importorskip("desitarget.cuts")
    logging.getLogger("desitarget").setLevel(logging.ERROR)
    south = get_selection("desi-lrg-south")
    for obj, column, value, _selected in DOCUMENTED:
        cat = catalogue(obj, column, value)

        def dered(band: str, cat=cat) -> np.ndarray:  # as desitarget's reader divides
            return cat[f"FLUX_{band}"] / cat[f"MW_TRANSMISSION_{band}"]

        with np.errstate(all="ignore"):
            theirs = np.asarray(desitarget_cuts.isLRG(
                gflux=dered("G"), rflux=dered("R"), zflux=dered("Z"), w1flux=dered("W1"),
                zfiberflux=cat["FIBERFLUX_Z"] / cat["MW_TRANSMISSION_Z"],
                rfluxivar=cat["FLUX_IVAR_R"], zfluxivar=cat["FLUX_IVAR_Z"],
                w1fluxivar=cat["FLUX_IVAR_W1"], gaiagmag=cat["GAIA_PHOT_G_MEAN_MAG"],
                gnobs=cat["NOBS_G"], rnobs=cat["NOBS_R"], znobs=cat["NOBS_Z"],
                maskbits=cat["MASKBITS"], zfibertotflux=cat["FIBERTOTFLUX_Z"], south=True),
                dtype=bool)
        assert south(cat)[0] == theirs[0], (obj, column, value)


def test_non_finite_fluxes_never_select_under_seed():
    seed = get_selection("seed")
    for column in ("FLUX_R", "FLUX_Z", "FLUX_W1", "MW_TRANSMISSION_R", "MW_TRANSMISSION_Z",
                   "MW_TRANSMISSION_W1"):
        for value in (NAN, INF, -INF, 0.0, -3.0):
            cat = catalogue("BOTH", column, value)
            assert not seed(cat)[0], (column, value)
    assert seed(catalogue("BOTH", "MASKBITS", 0))[0]


# --- 8. random damage: SweepError or a count, never a hang, the paths agreeing -----------------

class Small:
    """A valid small sweep to damage: its bytes, layout and the columns a count reads."""

    def __init__(self, path: Path) -> None:
        self.data = path.read_bytes()
        self.layout = sweep_layout(str(path))
        self.needed = [self.layout.columns[c] for c in count_columns(SELECTION, None)]

    def __repr__(self) -> str:
        return f"Small({len(self.data):,} bytes)"


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Small:
    path = tmp_path_factory.mktemp("damage") / sweep_name(BOX)
    generate_sweep(path, BOX, 300, seed=3)
    return Small(path)


REGIONS = ("header", "brickname", "needed", "anywhere")


def place(region: str, number: int, data: bytes, layout, needed) -> int:
    if region == "header":
        return number % layout.data_start
    row = number % layout.nrows
    if region == "brickname":
        column = layout.columns["BRICKNAME"]
    elif region == "needed":
        column = needed[(number // layout.nrows) % len(needed)]
    else:
        return number % len(data)
    return layout.data_start + row * layout.row_bytes + column.offset + \
        (number // 7) % column.width


def watched(path: Path, reader: str, seconds: float = 5.0) -> tuple:
    """The reader's outcome, in a thread given ``seconds``: a hang fails the test (the thread
    is a daemon, left behind) instead of hanging the run."""
    result: list = []

    def target() -> None:
        try:
            result.append(outcome(path, reader))
        except BaseException as exc:  # surfaced below, with the reader's name
            result.append(("raised", f"{type(exc).__name__}: {exc}"))

    thread = threading.Thread(target=target, daemon=True)
    started = time.perf_counter()
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{reader} still reading after {seconds} s"
    assert time.perf_counter() - started < seconds
    (got,) = result
    assert got[0] != "raised", f"{reader}: not a SweepError: {got[1]}"
    return got


@settings(max_examples=50, deadline=None)
@given(flips=st.lists(st.tuples(st.sampled_from(REGIONS), st.integers(0, 2**31),
                                st.integers(0, 255)), min_size=1, max_size=4),
       cut=st.one_of(st.none(), st.integers(0, 2**31)))
def test_random_damage_ends_in_a_count_or_a_sweep_error_the_paths_agree(small, tmp_path_factory,
                                                                        flips, cut):
    """The rule asserted, per damaged file (byte flips, then perhaps a truncation):

    * each path returns a count or raises SweepError (nothing else), within 5 s;
    * the fast path and the streaming reader run the same layout, checks and decoding: the
      same outcome always, and the same message unless the file was cut short (the streaming
      reader, which cannot know the size first, reports the first byte it waits for in vain,
      or a damaged value it meets before the cut);
    * the fitsio path runs that layout and those checks first, so it fails wherever the fast
      path fails, with the same message; it may also fail alone, but only when a flipped byte
      lies in a header (cfitsio interprets header cards the layout model does not read: units,
      TDIMn, TNULLn...); rows are decoded alike, so a flipped row byte never parts them;
    * when every path counts, the counts are equal.
    """
    data, layout, needed = small.data, small.layout, small.needed
    damaged = bytearray(data)
    where = []
    for region, number, value in flips:
        at = place(region, number, data, layout, needed)
        damaged[at] = value
        where.append(at)
    truncated = cut is not None and cut % (len(data) + 1) < len(data)
    if truncated:
        damaged = damaged[:cut % (len(data) + 1)]
    path = tmp_path_factory.mktemp("damaged") / "damaged.fits"
    path.write_bytes(bytes(damaged))
    got = {reader: watched(path, reader) for reader in READERS}
    fast, fits, stream = got["fast"], got["fitsio"], got["stream"]
    assert stream[0] == fast[0], got
    if not truncated:
        assert stream == fast, got
    if fast[0] == "error":
        assert fits[0] == "error", got
        assert fits == fast or any(at < layout.data_start for at in where), got
    elif fits[0] == "error":
        assert any(at < layout.data_start for at in where), got
    else:
        assert fits == fast, got


# --- in Spark: bad files beside good ones, one worker after another -------------------------

def run_index(spark, config, index: Path, output: Path):
    from halo_lrg.spark.run import JobSpec, run_job

    cfg = config.replace(run={"progress_interval": 0.2, "on_error": "skip"})
    return run_job(spark, JobSpec(str(index), str(output), cfg), emit=lambda _line: None)


@pytest.fixture(scope="module")
def spark_inputs(tmp_path_factory):
    """Four good sweeps of 300 rows, and three bad files larger than any of them, so the run
    (largest first) gives each worker a bad file before good ones."""
    directory = tmp_path_factory.mktemp("spark-hostile")
    goods = []
    for k in range(4):
        box = SweepBox(150.0 + 5 * k, 155.0 + 5 * k, 0.0, 5.0)
        path = directory / sweep_name(box)
        generate_sweep(path, box, 300, seed=10 + k)
        goods.append(path)
    big = directory / "big.fits"
    generate_sweep(big, SweepBox(200.0, 205.0, 0.0, 5.0), 3000, seed=5)
    data = big.read_bytes()
    bad = {"no-end-card": without_table_end(data),
           "gzip-level-0": gzip.compress(data, compresslevel=0),
           "non-ascii-brickname": with_brickname(big, 2500, b"15\xe91p02")}
    bads = {}
    for kind, content in bad.items():
        bads[kind] = directory / f"sweep-{kind}.fits"
        bads[kind].write_bytes(content)
    assert min(p.stat().st_size for p in bads.values()) > max(p.stat().st_size for p in goods)
    return goods, bads


@pytest.mark.spark
@pytest.mark.parametrize("fast_path", [True, False])
def test_bad_files_fail_alone_in_spark_and_the_good_ones_count(spark, config, spark_inputs,
                                                              tmp_path, fast_path):
    goods, bads = spark_inputs
    cfg = config.replace(read={"fast_path": fast_path})
    index = tmp_path / "index.txt"
    index.write_text("".join(f"{p}\n" for p in [*bads.values(), *goods]))
    result = run_index(spark, cfg, index, tmp_path / "out")
    status = {f.uri: f for f in result.files}
    assert [status[str(p)].status for p in goods] == ["ok"] * 4
    for path in bads.values():
        entry = status[str(path)]
        assert entry.status == "failed" and entry.error.startswith(f"{path}: "), entry
        assert "\n" not in entry.error
    assert "gzip-compressed" in status[str(bads["gzip-level-0"])].error
    assert "no END card" in status[str(bads["no-end-card"])].error
    assert "row 2,500 holds bytes that are not ASCII" in \
        status[str(bads["non-ascii-brickname"])].error
    assert result.state == "partial"
    counts = pd.read_csv(tmp_path / "out" / "lrg_counts_per_brick" / "part-00000.csv",
                         dtype={"brickname": str})
    selection = get_selection(cfg.cuts.selection, cfg.cuts)
    expected = pd.concat([count_sweep_file(p, selection, 1000).bricks for p in goods])
    expected = expected.groupby("brickname", as_index=False)["lrg_count"].sum()
    assert counts["brickname"].tolist() == expected["brickname"].tolist()
    assert counts["lrg_count"].tolist() == expected["lrg_count"].tolist()


@pytest.mark.spark
def test_a_file_named_twice_in_an_index_is_counted_once(spark, config, spark_inputs, tmp_path,
                                                        caplog):
    goods, _bads = spark_inputs
    a, b = goods[0], goods[1]
    spellings = [f"file://{a}", f"{a.parent}/./{a.name}", f"{a.parent}//{a.name}"]
    index = tmp_path / "index.txt"
    index.write_text("\ufeff" + "".join(f"{e}\n" for e in [a, *spellings, b]))
    caplog.set_level(logging.WARNING)
    result = run_index(spark, config, index, tmp_path / "out")
    assert sorted(f.uri for f in result.files) == sorted([str(a), str(b)])
    assert result.state == "complete"
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    for spelling in spellings:
        assert f"duplicate index entry dropped: {spelling}" in warned
