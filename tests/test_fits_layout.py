"""One FITS layout model: the fast path, the streaming reader and the fitsio path read the same
table the same way, equal to astropy's reading; every path refuses a bad file with the same
cause; and a 1-character PHOTSYS routes desi-lrg objects as it says."""

from __future__ import annotations

import gzip
import http.server
import os
import tempfile
import warnings
from functools import partial
from pathlib import Path

import fitsio
import numpy as np
import pytest
from astropy.io import fits as afits
from hypothesis import given, settings
from hypothesis import strategies as st

from halo_lrg.config import load_config
from halo_lrg.count.local import count_sweep_file
from halo_lrg.count.streaming import GrowingDownload, _stream_chunks, stream_count
from halo_lrg.fits.layout import BLOCK, MAX_HEADER_BLOCKS, RecordColumns, find_table
from halo_lrg.fits.reader import SweepError, file_reader, iter_column_chunks
from halo_lrg.science.cuts import dereddened_flux, get_selection
from halo_lrg.survey.names import SweepBox
from halo_lrg.survey.synth import generate_sweep
from test_http_ranges import loopback

# --- writing FITS bytes by hand: every card, offset and heap byte under the test's control ----


def card(key: str, value=None) -> bytes:
    if value is None:
        return key.ljust(80).encode()
    if isinstance(value, bool):
        text = ("T" if value else "F").rjust(20)
    elif isinstance(value, str):
        text = ("'" + value.replace("'", "''").ljust(8) + "'").ljust(20)
    elif isinstance(value, int):
        text = str(value).rjust(20)
    else:
        text = repr(float(value)).upper().rjust(20)
    return f"{key:<8}= {text}".ljust(80)[:80].encode()


def header(cards) -> bytes:
    data = b"".join(cards) + card("END")
    return data + b" " * (-len(data) % BLOCK)


def padded(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % BLOCK)


def primary(image: bool = False) -> bytes:
    if not image:
        return header([card("SIMPLE", True), card("BITPIX", 8), card("NAXIS", 0),
                       card("EXTEND", True)])
    pixels = np.arange(15, dtype=">i2").reshape(3, 5)
    return header([card("SIMPLE", True), card("BITPIX", 16), card("NAXIS", 2),
                   card("NAXIS1", 5), card("NAXIS2", 3), card("EXTEND", True)]) + \
        padded(pixels.tobytes())


def image_extension() -> bytes:
    pixels = np.arange(7, dtype=">f4")
    return header([card("XTENSION", "IMAGE"), card("BITPIX", -32), card("NAXIS", 1),
                   card("NAXIS1", 7), card("PCOUNT", 0), card("GCOUNT", 1)]) + \
        padded(pixels.tobytes())


def bintable(columns, rows: np.ndarray, heap: bytes = b"", extname=None) -> bytes:
    """``columns``: (TTYPE, TFORM, {"TSCAL": .., "TZERO": ..}) in order; ``rows``: a
    structured array of the stored (big-endian) values."""
    width, nrows = rows.dtype.itemsize, len(rows)
    cards = [card("XTENSION", "BINTABLE"), card("BITPIX", 8), card("NAXIS", 2),
             card("NAXIS1", width), card("NAXIS2", nrows), card("PCOUNT", len(heap)),
             card("GCOUNT", 1), card("TFIELDS", len(columns))]
    for i, (name, tform, keys) in enumerate(columns, start=1):
        cards += [card(f"TTYPE{i}", name), card(f"TFORM{i}", tform)]
        cards += [card(f"{key}{i}", value) for key, value in keys.items()]
    if extname is not None:
        cards.append(card("EXTNAME", extname))
    return header(cards) + padded(rows.tobytes() + heap)


# Column kinds: (TFORM, scaling keys, raw numpy format). Every kind the layout must get right.
KINDS = {
    "str1": ("1A", {}, "S1"), "str3": ("3A", {}, "S3"), "str8": ("8A", {}, "S8"),
    "bool": ("L", {}, "S1"), "bool1": ("1L", {}, "S1"), "bool3": ("3L", {}, ("S1", (3,))),
    "i2": ("I", {}, ">i2"), "i4x2": ("2J", {}, (">i4", (2,))), "i8": ("K", {}, ">i8"),
    "u1x7": ("7B", {}, ("u1", (7,))), "f4x5": ("5E", {}, (">f4", (5,))), "f8": ("D", {}, ">f8"),
    "u16": ("I", {"TZERO": 32768}, ">i2"), "u16f": ("I", {"TZERO": 32768.0}, ">i2"),
    "u32": ("J", {"TZERO": 2147483648}, ">i4"), "u64": ("K", {"TZERO": 2**63}, ">i8"),
    "u16x3": ("3I", {"TZERO": 32768}, (">i2", (3,))),
    "s8": ("B", {"TZERO": -128}, "u1"), "b_unit": ("B", {"TSCAL": 1, "TZERO": 0}, "u1"),
    "i2_scaled": ("I", {"TSCAL": 2.0, "TZERO": 1.5}, ">i2"),
    "i2_zero": ("I", {"TZERO": 10}, ">i2"), "i4_scale": ("J", {"TSCAL": 3}, ">i4"),
    "f4_scaled": ("E", {"TSCAL": 2.0, "TZERO": 1.0}, ">f4"),
    "u16_scaled": ("I", {"TSCAL": 2.0, "TZERO": 32768}, ">i2"),
}
# astropy 8 raises on these (it takes TZERO 32768 for unsigned whatever TSCAL is, and then
# adds a float TZERO to the uint16 array): the reference is the FITS formula itself.
ASTROPY_FAILS = {"u16_scaled": lambda raw: raw.astype(np.float64) * 2.0 + 32768,
                 "u16f": lambda raw: raw.astype(np.int64) + 32768}
ALPHABET = np.frombuffer(b"ABCSNxyz019 ", dtype="S1")


def raw_values(rng: np.random.Generator, tform: str, fmt, nrows: int) -> np.ndarray:
    """Stored bytes of one column: any bit pattern for numbers, T/F/null for logicals,
    printable text padded with blanks or NULs for strings."""
    dtype = np.dtype(fmt[0] if isinstance(fmt, tuple) else fmt)
    shape = (nrows, *fmt[1]) if isinstance(fmt, tuple) else (nrows,)
    if tform.endswith("L"):
        return rng.choice(np.array([b"T", b"F", b"\0"]), shape)
    if tform.endswith("A"):
        chars = rng.choice(ALPHABET, (nrows, dtype.itemsize))
        lengths = rng.integers(0, dtype.itemsize + 1, nrows)
        chars[np.arange(dtype.itemsize) >= lengths[:, None]] = rng.choice([b" ", b"\0"])
        return chars.view(f"S{dtype.itemsize}").reshape(shape)
    count = int(np.prod(shape)) * dtype.itemsize
    return np.frombuffer(rng.bytes(count), dtype=dtype).reshape(shape)


@st.composite
def tables(draw):
    """A file holding the table to read, with whatever may precede and surround it."""
    kinds = draw(st.lists(st.sampled_from(sorted(KINDS)), min_size=1, max_size=8))
    nrows = draw(st.sampled_from([0, 1, 2, 7, 33]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    names = [f"C{i}_{k}" for i, k in enumerate(kinds)]
    ttypes = [n.lower() if draw(st.booleans()) else n for n in names]  # case never matters
    specs = [(t, KINDS[k][0], KINDS[k][1]) for t, k in zip(ttypes, kinds)]
    values = {n: raw_values(rng, KINDS[k][0], KINDS[k][2], nrows)
              for n, k in zip(names, kinds)}
    formats = [KINDS[k][2] for k in kinds]
    # Extra columns never read: a variable-length array (its heap after the rows) and
    # neighbours on either side, so offsets and NAXIS1 are not the needed columns' alone.
    heap = b""
    if draw(st.booleans()):
        lengths = rng.integers(0, 4, nrows)
        offsets = np.r_[0, np.cumsum(lengths)[:-1]] * 4 if nrows else np.zeros(0, int)
        position = draw(st.integers(0, len(specs)))
        specs.insert(position, ("VAR", "PJ()", {}))
        formats.insert(position, (">i4", (2,)))
        names.insert(position, "VAR")
        values["VAR"] = np.stack([lengths, offsets], axis=1).astype(">i4") if nrows else \
            np.zeros((0, 2), ">i4")
        heap = np.arange(int(lengths.sum()), dtype=">i4").tobytes()
    for extra in range(draw(st.integers(0, 2))):
        position = draw(st.integers(0, len(specs)))
        specs.insert(position, (f"EXTRA{extra}", "3E", {}))
        formats.insert(position, (">f4", (3,)))
        names.insert(position, f"EXTRA{extra}")
        values[f"EXTRA{extra}"] = raw_values(rng, "3E", (">f4", (3,)), nrows)
    rows = np.zeros(nrows, dtype=[(n, f) for n, f in zip(names, formats)])
    for name in names:
        rows[name] = values[name]
    # Where the table is: HDU 1 named SWEEP; HDU 2 after another BINTABLE (the name matched
    # whatever its case and padding); or the only BINTABLE, unnamed, after an IMAGE.
    where = draw(st.sampled_from(["hdu1", "after-table", "unnamed"]))
    image = draw(st.booleans())
    body = primary(image)
    if where == "after-table":
        other = np.full(3, b"Q", dtype=[("C0_STR1", "S1")])
        body += bintable([("C0_STR1", "1A", {})], other, extname="OTHER")
        extname = draw(st.sampled_from(["SWEEP", "sweep", " Sweep"]))
        hdu = 2
    elif where == "unnamed":
        body += image_extension()
        extname, hdu = None, 2
    else:
        extname, hdu = "SWEEP", 1
    body += bintable(specs, rows, heap, extname)
    wanted = [n for n in names if n != "VAR" and not n.startswith("EXTRA")]
    draw(st.randoms()).shuffle(wanted)  # read in any order
    raw = {n for n in wanted if KINDS[n.split("_", 1)[1]][0].endswith("A") and draw(
        st.booleans())}
    return Table(body, hdu, nrows, wanted, raw, f"{where}, image={image}, {specs}", values)


class Table:
    """A generated file; shown by its description, not its bytes."""

    def __init__(self, data: bytes, hdu: int, nrows: int, wanted: list, raw: set,
                 description: str, stored: dict) -> None:
        self.data, self.hdu, self.nrows, self.wanted, self.raw = data, hdu, nrows, wanted, raw
        self.description, self.stored = description, stored

    def __repr__(self) -> str:
        return f"Table({self.description}, nrows={self.nrows}, wanted={self.wanted}, " \
               f"raw={sorted(self.raw)})"


def finished_download(path: str) -> GrowingDownload:
    """The streaming reader's download, over a file already complete (no network)."""
    download = GrowingDownload(f"file://{path}", path, None)
    download.written, download.finished = os.path.getsize(path), True
    return download


def streamed(path: str, columns, chunk_rows: int, raw=(), optional=()):
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = _stream_chunks(path, fd, finished_download(path), tuple(columns),
                                tuple(optional), chunk_rows, tuple(raw))
        assert chunks is not None, "the streaming reader handed the table to fitsio"
        return list(chunks)
    finally:
        os.close(fd)


def local(path: str, columns, chunk_rows: int, fast: bool, raw=()):
    return list(iter_column_chunks(path, columns, chunk_rows, fast_path=fast, raw_strings=raw))


def astropy_column(path: str, hdu: int, name: str) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # null logicals
        with afits.open(path) as hdul:
            values = np.array(hdul[hdu].data[name.lower()])
    return np.char.rstrip(values.astype("U")) if values.dtype.kind in "SU" else values


@settings(max_examples=40, deadline=None)
@given(table=tables(), chunk_rows=st.sampled_from([1, 5, 1000]))
def test_every_path_reads_every_layout_as_astropy_does(table, chunk_rows):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "t.fits")
        Path(path).write_bytes(table.data)
        wanted, raw = table.wanted, sorted(table.raw)
        with open(path, "rb") as fh:
            layout = find_table(file_reader(fh))
        assert layout.hdu_index == table.hdu and layout.nrows == table.nrows
        results = {"fast": local(path, wanted, chunk_rows, True, raw),
                   "fitsio": local(path, wanted, chunk_rows, False, raw),
                   "stream": streamed(path, wanted, chunk_rows, raw)}
        expected_chunks = -(-table.nrows // chunk_rows)
        names = [c.upper() for c in wanted]  # matched whatever the case; returned upper case
        for name, chunks in results.items():
            assert len(chunks) == expected_chunks, name
            assert all(list(c) == names for c in chunks), name
        if not table.nrows:
            return
        got = {path_name: {c: np.concatenate([ch[c] for ch in chunks]) for c in names}
               for path_name, chunks in results.items()}
        for column, asked in zip(names, wanted):
            fast = got["fast"][column]
            for other in ("fitsio", "stream"):
                theirs = got[other][column]
                assert (theirs.dtype, theirs.shape) == (fast.dtype, fast.shape), (other, column)
                np.testing.assert_array_equal(theirs, fast, err_msg=f"{other} {column}")
            kind = asked.split("_", 1)[1]
            if kind in ASTROPY_FAILS:
                reference = ASTROPY_FAILS[kind](table.stored[asked])
            else:
                reference = astropy_column(path, table.hdu, column)
            if asked in table.raw:
                assert fast.dtype.kind == "S"
                fast = np.char.rstrip(np.char.decode(fast, "ascii"))
            assert fast.shape == reference.shape, column
            np.testing.assert_array_equal(fast, reference, err_msg=f"astropy {column}")


@settings(max_examples=40, deadline=None)
@given(table=tables(), chunk_rows=st.sampled_from([1, 5, 1000]), data=st.data())
def test_a_lazily_decoded_chunk_is_the_eager_chunk_whole_or_at_any_rows(table, chunk_rows,
                                                                        data):
    """RecordColumns (columns decoded when read, or at some rows only) gives what the
    eager decode gives, for every column kind: scaled, unsigned, vectors, logicals, strings."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "t.fits")
        Path(path).write_bytes(table.data)
        wanted, raw = table.wanted, sorted(table.raw)
        lazy = data.draw(st.lists(st.sampled_from(wanted), unique=True), label="lazy")
        eager_chunks = local(path, wanted, chunk_rows, True, raw)
        lazy_chunks = iter_column_chunks(path, wanted, chunk_rows, raw_strings=raw, lazy=lazy)
        for eager, chunk in zip(eager_chunks, lazy_chunks):
            assert isinstance(chunk, RecordColumns) == bool(lazy)
            assert list(chunk) == list(eager)
            n = len(next(iter(eager.values())))
            rows = np.array(data.draw(st.lists(st.integers(0, n - 1), max_size=8)), dtype=int)
            at_rows = chunk.columns_rows(list(eager), rows) if lazy else None
            for name, values in eager.items():
                if at_rows is not None:
                    assert at_rows[name].dtype == values.dtype, name
                    np.testing.assert_array_equal(at_rows[name], values[rows], err_msg=name)
                np.testing.assert_array_equal(chunk[name], values, err_msg=name)
                assert chunk[name].dtype == values.dtype, name


def test_one_character_strings_are_strings_and_logicals_by_tform(tmp_path):
    rows = np.zeros(3, dtype=[("PHOTSYS", "S1"), ("FLAG", "S1"), ("FLAGS", "S1", (3,))])
    rows["PHOTSYS"] = [b"S", b"N", b"T"]
    rows["FLAG"] = [b"T", b"F", b"\0"]
    rows["FLAGS"] = [[b"T", b"F", b"T"]] * 3
    path = tmp_path / "t.fits"
    path.write_bytes(primary() + bintable(
        [("PHOTSYS", "1A", {}), ("FLAG", "1L", {}), ("FLAGS", "3L", {})], rows,
        extname="SWEEP"))
    for chunks in (local(str(path), ["PHOTSYS", "FLAG", "FLAGS"], 10, fast)
                   for fast in (True, False)):
        (chunk,) = chunks
        assert chunk["PHOTSYS"].tolist() == ["S", "N", "T"]
        assert chunk["FLAG"].tolist() == [True, False, False]
        assert chunk["FLAGS"].shape == (3, 3) and chunk["FLAGS"].dtype == bool


# --- errors: one cause, whichever path reads -------------------------------------------------

def minimal_table() -> bytes:
    rows = np.zeros(1, dtype=[("FLUX_Z", ">f4")])
    return primary() + bintable([("FLUX_Z", "E", {})], rows, extname="SWEEP")


def edited(old: bytes, new: bytes) -> bytes:
    data = minimal_table()
    assert data.count(old) == 1
    return data.replace(old, new)


BAD_FILES = {
    "not-fits": (b"this is not a FITS file\n" * 200,
                 r"not a FITS file: first card is not SIMPLE = T$"),
    "gzip": (gzip.compress(minimal_table()), r"not a FITS file: .*gzip"),
    "html": (b"  <!DOCTYPE html><html><body>404 Not Found</body></html>\n" * 100,
             r"not a FITS file: .*HTML"),
    "negative-naxis2": (edited(card("NAXIS2", 1), card("NAXIS2", -5)),
                        r"HDU 1: NAXIS2 = -5 is negative"),
    "no-end": (card("SIMPLE", True) + b" " * (BLOCK * (MAX_HEADER_BLOCKS + 3) - 80),
               rf"HDU 0: no END card in the first {MAX_HEADER_BLOCKS} header blocks"),
    "no-table": (primary(True) + image_extension(), r"no binary table HDU"),
    "naxis1": (edited(card("NAXIS1", 4), card("NAXIS1", 5)),
               r"HDU 1: NAXIS1 = 5 but the columns' TFORMs add up to 4 bytes"),
    "naxis2-text": (edited(card("NAXIS2", 1), card("NAXIS2", "many")),
                    r"HDU 1: NAXIS2 = 'many' is not an integer"),
    "header-cut": (minimal_table()[: BLOCK + 400],
                   r"truncated: the file ends inside the header of HDU 1"),
    "ztable": (edited(card("EXTNAME", "SWEEP"), card("ZTABLE", True)),
               r"tile-compressed table \(ZTABLE = T\)"),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
@pytest.mark.parametrize("reader", ["fast", "fitsio", "stream"])
def test_bad_files_fail_with_the_same_cause_on_every_path(tmp_path, kind, reader):
    data, message = BAD_FILES[kind]
    path = tmp_path / "bad.fits"
    path.write_bytes(data)
    with pytest.raises(SweepError, match=message) as info:
        if reader == "stream":
            streamed(str(path), ["FLUX_Z"], 10)
        else:
            local(str(path), ["FLUX_Z"], 10, reader == "fast")
    assert info.value.path == str(path)


def test_duplicate_names_differing_in_case_are_named(tmp_path):
    rows = np.zeros(1, dtype=[("a", ">f4"), ("b", ">f4")])
    path = tmp_path / "dup.fits"
    path.write_bytes(primary() + bintable([("Flux_Z", "E", {}), ("FLUX_Z", "E", {})], rows,
                                          extname="SWEEP"))
    for fast in (True, False):
        with pytest.raises(SweepError, match=r"columns 1 \('Flux_Z'\) and 2 \('FLUX_Z'\) have "
                                             r"the same name"):
            local(str(path), ["FLUX_Z"], 10, fast)


def test_a_64_mb_body_that_is_not_fits_costs_a_linear_read(tmp_path, monkeypatch):
    html = tmp_path / "html.fits"
    with open(html, "wb") as out:
        out.write((b"<html>" + b" " * 1018) * (64 << 10))  # 64 MiB
    blank = tmp_path / "blank.fits"  # a FITS start, then no END card: walks to the cap
    with open(blank, "wb") as out:
        out.write(card("SIMPLE", True))
        out.truncate(64 << 20)
        out.seek(80)
        out.write(b" " * (BLOCK * (MAX_HEADER_BLOCKS + 10)))
    read = []
    pread = os.pread

    def counting(fd, size, offset):
        read.append(size)
        return pread(fd, size, offset)

    monkeypatch.setattr(os, "pread", counting)
    with pytest.raises(SweepError, match="HTML"):
        streamed(str(html), ["FLUX_Z"], 10)
    assert sum(read) <= BLOCK
    read.clear()
    with pytest.raises(SweepError, match="no END card"):
        streamed(str(blank), ["FLUX_Z"], 10)
    # Each block once: re-scanning from the start at every block would read ~1.4 GB.
    assert sum(read) <= BLOCK * MAX_HEADER_BLOCKS and len(read) <= MAX_HEADER_BLOCKS


def test_an_html_body_served_as_a_sweep_fails_while_downloading(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "sweep.fits").write_bytes(b"<html>" + b" " * (64 << 20))
    (tmp_path / "tmp").mkdir()
    config = load_config().replace(remote={"tmp_dir": str(tmp_path / "tmp"),
                                           "max_attempts": 1})
    with loopback(partial(_QuietHandler, directory=str(root))) as base, \
            pytest.raises(SweepError, match=r"sweep\.fits: not a FITS file: .*HTML"):
        stream_count(f"{base}/sweep.fits", config, get_selection("seed", config.cuts), None)
    assert list((tmp_path / "tmp").iterdir()) == []


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


# --- PHOTSYS: a 1A column routes desi-lrg per object -------------------------------------------

def with_photsys(path: Path, photsys) -> np.ndarray:
    """Rewrite a generated sweep with a PHOTSYS 1A column (as desitarget writes it)."""
    from numpy.lib import recfunctions

    with fitsio.FITS(str(path)) as fits:
        primary_header = fits[0].read_header()
        data = fits["SWEEP"].read()
    data = recfunctions.append_fields(data, "PHOTSYS", np.broadcast_to(photsys, len(data)),
                                      dtypes="S1", usemask=False)
    with fitsio.FITS(str(path), "rw", clobber=True) as fits:
        fits.write(None, header=primary_header)
        fits.write(data, extname="SWEEP")
    with afits.open(path) as hdul:
        assert hdul["SWEEP"].columns["PHOTSYS"].format == "1A"
    return data


@pytest.fixture(scope="module")
def photsys_sweeps(tmp_path_factory):
    """PHOTSYS contradicting RELEASE both ways, so routing by either one shows."""
    outdir = tmp_path_factory.mktemp("photsys")
    box = SweepBox(150.0, 155.0, 0.0, 5.0)
    files = {}
    for photsys, release in (("S", 9011), ("N", 10000)):
        path = outdir / f"sweep-{photsys}.fits"
        generate_sweep(path, box, 20000, seed=11, release_default=release,
                       release_10002_fraction=0.0)
        with_photsys(path, photsys.encode())
        files[photsys] = path
    return files


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("photsys", ["S", "N"])
def test_photsys_routes_desi_lrg_brick_by_brick(config, photsys_sweeps, photsys, fast):
    path = photsys_sweeps[photsys]
    hemisphere = {"S": "south", "N": "north"}[photsys]
    got = count_sweep_file(path, get_selection("desi-lrg", config.cuts), 1000, fast)
    same = count_sweep_file(path, get_selection(f"desi-lrg-{hemisphere}", config.cuts), 1000,
                            fast)
    other = count_sweep_file(
        path, get_selection(f"desi-lrg-{'north' if photsys == 'S' else 'south'}", config.cuts),
        1000, fast)
    assert other.lrg != same.lrg  # the file tells the hemispheres apart
    np.testing.assert_array_equal(got.brickname, same.brickname)
    np.testing.assert_array_equal(got.lrg_count, same.lrg_count)
    np.testing.assert_array_equal(got.n_objects, same.n_objects)


def test_desi_lrg_equals_desitarget_routed_by_photsys(config, tmp_path):
    desitarget_cuts = pytest.importorskip("desitarget.cuts")
    path = tmp_path / "sweep-150p000-155p005.fits"
    generate_sweep(path, SweepBox(150.0, 155.0, 0.0, 5.0), 20000, seed=5,
                   release_10002_fraction=0.0)
    photsys = np.random.default_rng(5).choice(np.array([b"S", b"N"]), 20000)
    with_photsys(path, photsys)
    selection = get_selection("desi-lrg", config.cuts)
    for fast in (True, False):
        chunks = list(iter_column_chunks(str(path), selection.columns, 4096,
                                         selection.optional_columns, fast))
        cat = {c: np.concatenate([ch[c] for ch in chunks]) for c in chunks[0]}
        assert cat["PHOTSYS"].dtype.kind == "U"
        np.testing.assert_array_equal(cat["PHOTSYS"], photsys.astype("U"))
        ours = selection(cat)

        def dered(band, cat=cat):
            return dereddened_flux(cat[f"FLUX_{band}"], cat[f"MW_TRANSMISSION_{band}"])

        def theirs(south, cat=cat, dered=dered):
            with np.errstate(all="ignore"):
                return np.asarray(desitarget_cuts.isLRG(
                    gflux=dered("G"), rflux=dered("R"), zflux=dered("Z"), w1flux=dered("W1"),
                    zfiberflux=dereddened_flux(cat["FIBERFLUX_Z"], cat["MW_TRANSMISSION_Z"]),
                    rfluxivar=cat["FLUX_IVAR_R"], zfluxivar=cat["FLUX_IVAR_Z"],
                    w1fluxivar=cat["FLUX_IVAR_W1"], gaiagmag=cat["GAIA_PHOT_G_MEAN_MAG"],
                    gnobs=cat["NOBS_G"], rnobs=cat["NOBS_R"], znobs=cat["NOBS_Z"],
                    maskbits=cat["MASKBITS"], zfibertotflux=cat["FIBERTOTFLUX_Z"],
                    south=south), dtype=bool)

        south, north = theirs(True), theirs(False)
        assert (south != north).any()  # the routing matters on this catalogue
        np.testing.assert_array_equal(ours, np.where(cat["PHOTSYS"] == "S", south, north))
