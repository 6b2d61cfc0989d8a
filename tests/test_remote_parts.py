"""A part of a remote file's rows (a big file split across tasks) read from S3 (moto's server)
and HTTP (a local server that counts what it sends, drops connections, swaps files, or offers
no ranges), on loopback: the parts' counts equal the local reader's, part by part and summed;
a part fetches its headers and its rows' bytes, nothing else; a truncated file is refused by
every part in the local reader's words; a file replaced mid-read is refused, never mixed."""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from halo_lrg.count.local import count_sweep_file
from halo_lrg.count.randoms import RANDOMS_COLUMNS, count_randoms_per_brick
from halo_lrg.count.streaming import HEADER_READ_BYTES, remote_chunks, stream_count
from halo_lrg.fits.layout import RowSlice
from halo_lrg.fits.reader import SweepError, iter_column_chunks, sweep_layout
from halo_lrg.io import s3 as s3mod
from halo_lrg.io.fetch import InputHash, SourceError, file_identity
from halo_lrg.science.cuts import get_selections
from halo_lrg.survey.names import SweepBox
from halo_lrg.survey.synth import PlantedMask, generate_randoms, generate_sample
from test_http_ranges import RangeHandler, fresh, loopback

BUCKET = "halo-parts"
CHUNK = 8192
BOX = SweepBox(150.0, 155.0, 0.0, 5.0)


# --- inputs -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A 1,500-row sweep, a 5-row one, the big one cut mid-rows, and a randoms file."""
    root = tmp_path_factory.mktemp("parts")
    big = Path(generate_sample(root / "big", files=1, rows=1500, seed=21)[0].path)
    tiny = Path(generate_sample(root / "tiny", files=1, rows=5, seed=22)[0].path)
    layout = sweep_layout(str(big))
    cut = root / "cut" / big.name
    cut.parent.mkdir()
    cut.write_bytes(big.read_bytes()[:layout.data_start + 700 * layout.row_bytes + 100])
    randoms = Path(generate_randoms(root / "randoms-1-0.fits", BOX, 150, seed=3,
                                    mask=PlantedMask.default_for(BOX)).path)
    return {"big": big, "tiny": tiny, "cut": cut, "randoms": randoms}


SELECTIONS = get_selections("seed,desi-lrg")


def per_brick(result) -> Counter:
    """brick -> (objects, LRGs of each selection), as a Counter of (brick, what) keys."""
    out: Counter = Counter()
    for i, brick in enumerate(result.brickname):
        out[(str(brick), "objects")] += int(result.n_objects[i])
        for name, counts in zip(result.selections, result.counts_by_selection):
            out[(str(brick), name)] += int(counts[i])
    return out


# --- the two protocols, behind one face --------------------------------------------------------

class CountingClient:
    """The real S3 client, counting the bytes each GET returns; ``before(kwargs)`` runs before
    each GET (it may change the world)."""

    def __init__(self, real) -> None:
        self.real, self.before = real, None
        self.ranges: list[str] = []
        self.sent = 0
        self.lock = threading.Lock()

    def head_object(self, **kwargs):
        return self.real.head_object(**kwargs)

    def get_object(self, **kwargs):
        if self.before is not None:
            self.before(kwargs)
        response = self.real.get_object(**kwargs)
        with self.lock:
            self.ranges.append(kwargs["Range"])
            self.sent += int(response["ContentLength"])
        return response


class Handler(RangeHandler):
    """test_http_ranges' counting server, answering HEAD too (as the run's planning asks)."""

    def do_HEAD(self):
        entry = type(self).files.get(self.path)
        if entry is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(entry[0])))
        self.send_header("ETag", entry[1])
        self.end_headers()


class Remote:
    """Files served by one protocol: ``put`` gives the URI, ``sent`` the body bytes served
    so far, ``ranges`` the byte ranges asked (first, last or None)."""

    def __init__(self, kind: str, request, tmp_path, monkeypatch) -> None:
        self.kind = kind
        monkeypatch.setenv("LOCAL_DIRS", str(tmp_path))  # the connection slots' lock files
        if kind == "s3":
            self.s3 = request.getfixturevalue("s3")
            self.client = CountingClient(self.s3)
            monkeypatch.setattr(s3mod, "client", lambda _remote: self.client)
        else:
            self.handler = fresh(Handler)
            stack = ExitStack()
            self.base = stack.enter_context(loopback(self.handler))
            request.addfinalizer(stack.close)

    def put(self, name: str, data: bytes, etag: str = '"v1"') -> str:
        if self.kind == "s3":
            self.s3.put_object(Bucket=BUCKET, Key=name, Body=data)
            return f"s3://{BUCKET}/{name}"
        self.handler.files[f"/{name}"] = [data, etag]
        return f"{self.base}/{name}"

    @property
    def sent(self) -> int:
        return self.client.sent if self.kind == "s3" else self.handler.stats["sent"]

    def ranges(self) -> list[tuple[int, int]]:
        asked = self.client.ranges if self.kind == "s3" else \
            [e["range"] or "" for e in self.handler.log]
        out = []
        for spec in asked:
            match = re.match(r"bytes=(\d+)-(\d+)$", spec)
            if match:
                out.append((int(match.group(1)), int(match.group(2))))
        return out


@pytest.fixture(params=["s3", "http"])
def remote(request, tmp_path, monkeypatch) -> Remote:
    return Remote(request.param, request, tmp_path, monkeypatch)


@pytest.fixture
def tmp_dir(tmp_path) -> Path:
    """Where tasks stage downloads: empty again after each read, whatever happened."""
    path = tmp_path / "staging"
    path.mkdir()
    return path


def part_config(config, tmp_dir: Path, chunk_rows: int = 200, **remote):
    """Parts of a few tens of kB, several at a time, so a part's rows are themselves fetched
    as concurrent ranged GETs; millisecond backoff."""
    return config.replace(remote={"http_parts": 3, "http_part_bytes": 40_000,
                                  "s3_part_bytes": 50_003, "s3_max_concurrency": 4,
                                  "download_chunk_bytes": CHUNK, "max_attempts": 3,
                                  "backoff_base_seconds": 0.01, "backoff_max_seconds": 0.02,
                                  "tmp_dir": str(tmp_dir), **remote},
                          read={"chunk_rows": chunk_rows})


def part_bytes(path: Path, part: RowSlice) -> tuple[int, int]:
    """The first and last byte of ``part``'s rows in the file at ``path``."""
    layout = sweep_layout(str(path))
    first, stop = part.bounds(layout.nrows)
    return (layout.data_start + first * layout.row_bytes,
            layout.data_start + stop * layout.row_bytes - 1)


# --- the counts ---------------------------------------------------------------------------------

@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.integers(1, 9), chunk_rows=st.integers(1, 800))
def test_parts_equal_the_local_reader_part_by_part_and_sum_to_the_whole(
        config, files, remote, tmp_dir, parts, chunk_rows):
    path = files["big"]
    uri = remote.put(path.name, path.read_bytes())
    cfg = part_config(config, tmp_dir, chunk_rows)
    summed: Counter = Counter()
    for k in range(parts):
        got = stream_count(uri, cfg, SELECTIONS, None, rows=RowSlice(k, parts))
        local = count_sweep_file(path, SELECTIONS, chunk_rows, rows=RowSlice(k, parts))
        assert got.path == uri and got.rows == local.rows
        assert got.bricks.equals(local.bricks), f"part {k + 1}/{parts}"
        summed += per_brick(got)
        assert list(tmp_dir.iterdir()) == []
    whole_local = count_sweep_file(path, SELECTIONS, chunk_rows)
    whole_remote = stream_count(uri, cfg, SELECTIONS, None)
    assert +summed == +per_brick(whole_local) == +per_brick(whole_remote)
    assert sum(n for (_b, what), n in summed.items() if what == "objects") == 1500


@pytest.mark.parametrize("parts", [4, 5, 6, 9])
def test_more_parts_than_rows_read_headers_only_for_the_empty_ones(config, files, remote,
                                                                   tmp_dir, parts):
    path = files["tiny"]
    data = path.read_bytes()
    uri = remote.put(path.name, data)
    cfg = part_config(config, tmp_dir)
    summed: Counter = Counter()
    for k in range(parts):
        part = RowSlice(k, parts)
        first, stop = part.bounds(5)
        before, asked = remote.sent, len(remote.ranges())
        got = stream_count(uri, cfg, SELECTIONS, None, rows=part)
        assert got.rows == stop - first
        assert got.bricks.equals(count_sweep_file(path, SELECTIONS, 100, rows=part).bricks)
        if stop == first:  # no rows: the headers, and not one byte of the table
            assert remote.sent - before == min(HEADER_READ_BYTES, len(data))
            assert [first for first, _last in remote.ranges()[asked:]] == [0]  # one request
        summed += per_brick(got)
    assert +summed == +per_brick(count_sweep_file(path, SELECTIONS, 100))


def test_a_part_fetches_its_headers_and_its_rows_bytes_only(config, files, remote, tmp_dir):
    path = files["big"]
    data = path.read_bytes()
    uri = remote.put(path.name, data)
    cfg = part_config(config, tmp_dir)
    header = min(HEADER_READ_BYTES, len(data))
    assert sweep_layout(str(path)).data_start <= header  # the headers take one request
    for k in range(5):
        begin, end = part_bytes(path, RowSlice(k, 5))
        before, asked = remote.sent, len(remote.ranges())
        stream_count(uri, cfg, SELECTIONS, None, rows=RowSlice(k, 5))
        assert remote.sent - before == header + (end - begin + 1)
        ranges = remote.ranges()[asked:]
        assert ranges[0] == (0, header - 1)
        assert len(ranges) > 2  # the rows as several concurrent parts...
        assert all(begin <= a <= b <= end for a, b in ranges[1:])  # ...inside the part
        assert sum(b - a + 1 for a, b in ranges[1:]) == end - begin + 1


def test_a_part_dropped_mid_way_resumes_where_it_stopped(config, files, tmp_path,
                                                          monkeypatch, request, tmp_dir):
    remote = Remote("http", request, tmp_path, monkeypatch)
    path = files["big"]
    uri = remote.put(path.name, path.read_bytes())
    cfg = part_config(config, tmp_dir)
    part = RowSlice(2, 3)
    begin, end = part_bytes(path, part)
    remote.handler.drops[begin] = 15_000  # the part's first ranged GET is cut
    got = stream_count(uri, cfg, SELECTIONS, None, rows=part)
    assert got.bricks.equals(count_sweep_file(path, SELECTIONS, 100, rows=part).bricks)
    assert not remote.handler.drops  # the cut happened
    first_end = next(b for a, b in remote.ranges() if a == begin)
    resumed = [a for a, b in remote.ranges() if b == first_end and a != begin]
    assert len(resumed) == 1 and resumed[0] >= begin + 15_000 - CHUNK  # at most a read lost
    assert remote.sent <= HEADER_READ_BYTES + (end - begin + 1) + CHUNK


# --- refusals -----------------------------------------------------------------------------------

def test_a_truncated_file_is_refused_by_every_part_in_the_local_readers_words(
        config, files, remote, tmp_dir):
    cut = files["cut"]
    uri = remote.put(cut.name, cut.read_bytes())
    cfg = part_config(config, tmp_dir)
    for k in range(4):
        with pytest.raises(SweepError) as local:
            count_sweep_file(cut, SELECTIONS, 100, rows=RowSlice(k, 4))
        before = remote.sent
        with pytest.raises(SweepError) as got:
            stream_count(uri, cfg, SELECTIONS, None, rows=RowSlice(k, 4))
        assert got.value.path == uri and got.value.cause == local.value.cause
        assert re.match(r"truncated: the header declares 1,500 rows of 505 bytes .* but the "
                        rf"file holds {cut.stat().st_size:,} bytes$", got.value.cause)
        assert remote.sent - before == HEADER_READ_BYTES  # refused before any row is fetched
        assert list(tmp_dir.iterdir()) == []


def test_an_http_file_replaced_between_the_headers_and_the_rows_is_refused(
        config, files, tmp_path, monkeypatch, request, tmp_dir):
    remote = Remote("http", request, tmp_path, monkeypatch)
    path = files["big"]
    data = path.read_bytes()
    uri = remote.put(path.name, data)
    changed = bytearray(data)
    changed[-3000] ^= 0xFF
    remote.handler.swap = (f"/{path.name}", [bytes(changed), '"v2"'])  # after the 1st answer
    with pytest.raises(SourceError, match=re.escape(uri) + r": the file changed on the server "
                                          r"during download \(bytes \d+-\d+ pinned to \"v1\" "
                                          r"were answered with the whole file\)"):
        stream_count(uri, part_config(config, tmp_dir), SELECTIONS, None, rows=RowSlice(2, 3))
    assert all(entry["if_range"] == '"v1"' for entry in remote.handler.log[1:])
    assert list(tmp_dir.iterdir()) == []


def test_an_s3_object_replaced_between_the_headers_and_the_rows_is_refused(
        config, files, tmp_path, monkeypatch, request, tmp_dir):
    remote = Remote("s3", request, tmp_path, monkeypatch)
    path = files["big"]
    data = path.read_bytes()
    uri = remote.put(path.name, data)
    etag = remote.s3.head_object(Bucket=BUCKET, Key=path.name)["ETag"]
    begin, _end = part_bytes(path, RowSlice(2, 3))

    def replace_before_the_rows(kwargs):
        if int(kwargs["Range"].split("=")[1].split("-")[0]) >= begin:
            remote.s3.put_object(Bucket=BUCKET, Key=path.name, Body=data[::-1])

    remote.client.before = replace_before_the_rows
    with pytest.raises(SourceError, match=re.escape(uri) + r": the object changed during "
                                          rf"download \(ETag was {etag.strip(chr(34))}\)"):
        stream_count(uri, part_config(config, tmp_dir), SELECTIONS, None, rows=RowSlice(2, 3))
    assert list(tmp_dir.iterdir()) == []


def test_a_file_replaced_since_the_run_was_planned_is_refused_by_its_later_parts(
        config, files, remote, tmp_dir):
    """Parts of one file are read by different tasks at different times: each pins its own
    requests, and ``expect`` (the identity the plan saw) ties them to one version."""
    path = files["big"]
    data = path.read_bytes()
    uri = remote.put(path.name, data)
    cfg = part_config(config, tmp_dir)
    planned = file_identity(uri, cfg)
    assert planned.known
    first = stream_count(uri, cfg, SELECTIONS, None, rows=RowSlice(0, 2), expect=planned)
    assert first.rows == 750
    remote.put(path.name, data[:-2880], etag='"v2"')  # replaced between the two tasks
    with pytest.raises(SourceError, match=re.escape(uri) + r": the file changed since the run "
                                          rf"was planned \(its size was {len(data):,} bytes, now "
                                          rf"{len(data) - 2880:,}\); its parts would mix two "
                                          r"versions$"):
        stream_count(uri, cfg, SELECTIONS, None, rows=RowSlice(1, 2), expect=planned)
    remote.put(path.name, data[::-1], etag='"v3"')  # the same size, another version
    with pytest.raises(SourceError, match=r"its ETag was .*, now .*; its parts would mix"):
        stream_count(uri, cfg, SELECTIONS, None, rows=RowSlice(1, 2), expect=planned)
    assert list(tmp_dir.iterdir()) == []


def test_a_checksum_cannot_be_asked_of_a_part(config, files, remote, tmp_dir):
    path = files["tiny"]
    uri = remote.put(path.name, path.read_bytes())
    cfg = part_config(config, tmp_dir)
    with pytest.raises(ValueError, match=r"a checksum is of the whole file, not of rows part "
                                         r"2/3: read the file whole to verify it"):
        stream_count(uri, cfg, SELECTIONS, None, InputHash(), rows=RowSlice(1, 3))
    assert remote.sent == 0  # refused before any request
    hasher = InputHash()  # one part of one is the whole file: hashed as ever
    stream_count(uri, cfg, SELECTIONS, None, hasher, rows=RowSlice(0, 1))
    assert hasher.nbytes == path.stat().st_size


# --- whole-file fallbacks, same counts ----------------------------------------------------------

def test_a_server_without_ranges_gives_each_part_the_same_counts(
        config, files, tmp_path, monkeypatch, request, tmp_dir, caplog):
    remote = Remote("http", request, tmp_path, monkeypatch)
    remote.handler.ranges = False
    path = files["big"]
    data = path.read_bytes()
    uri = remote.put(path.name, data)
    cfg = part_config(config, tmp_dir)
    summed: Counter = Counter()
    with caplog.at_level(logging.INFO, logger="halo_lrg.count.streaming"):
        for k in range(3):
            before, requests = remote.sent, len(remote.handler.log)
            got = stream_count(uri, cfg, SELECTIONS, None, rows=RowSlice(k, 3))
            local = count_sweep_file(path, SELECTIONS, 100, rows=RowSlice(k, 3))
            assert got.bricks.equals(local.bricks) and got.rows == local.rows
            # the whole file, once: the first answer (a 200) is read, not asked again
            assert remote.sent - before == len(data)
            assert len(remote.handler.log) - requests == 1
            summed += per_brick(got)
    assert +summed == +per_brick(count_sweep_file(path, SELECTIONS, 100))
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert messages.count(f"{uri}: the server offers no byte ranges it can pin; the whole "
                          "file is downloaded to read rows part 2/3") == 1
    # a truncated file is refused in the local readers' words on this path too
    cut = files["cut"]
    cut_uri = remote.put(cut.name, cut.read_bytes())
    with pytest.raises(SweepError) as local_error:
        count_sweep_file(cut, SELECTIONS, 100, rows=RowSlice(1, 3))
    with pytest.raises(SweepError) as got_error:
        stream_count(cut_uri, cfg, SELECTIONS, None, rows=RowSlice(1, 3))
    assert got_error.value.path == cut_uri and got_error.value.cause == local_error.value.cause
    assert list(tmp_dir.iterdir()) == []


def test_columns_only_fitsio_reads_are_read_from_the_whole_pinned_file(
        config, remote, tmp_path, tmp_dir):
    import fitsio

    table = np.zeros(40, dtype=[("BRICKNAME", "S8"), ("VAR", object)])
    table["BRICKNAME"] = [b"1501p025", b"1502p025"] * 20
    table["VAR"] = [np.arange(i % 7, dtype="i4") for i in range(40)]
    local = tmp_path / "var.fits"
    fitsio.write(str(local), table, extname="SWEEP")
    data = local.read_bytes()
    uri = remote.put("var.fits", data)
    cfg = part_config(config, tmp_dir)
    for k in range(3):
        part = RowSlice(k, 3)
        before = remote.sent
        with remote_chunks(uri, cfg, ("BRICKNAME", "VAR"), (), 6, rows=part) as rows:
            got = list(rows)
        expected = list(iter_column_chunks(str(local), ["BRICKNAME", "VAR"], 6,
                                           raw_strings=["BRICKNAME"], rows=part))
        assert rows.first_row == part.bounds(40)[0]
        assert len(got) == len(expected) > 0
        for mine, theirs in zip(got, expected):
            assert mine.keys() == theirs.keys()
            for name in mine:
                np.testing.assert_array_equal(mine[name], theirs[name])
        assert remote.sent - before == min(HEADER_READ_BYTES, len(data)) + len(data)
    assert list(tmp_dir.iterdir()) == []


# --- other tallies through the same entry -------------------------------------------------------

def test_randoms_parts_count_as_the_local_randoms_count(config, files, remote, tmp_dir):
    path = files["randoms"]
    uri = remote.put(path.name, path.read_bytes())
    cfg = part_config(config, tmp_dir)
    nrows = sweep_layout(str(path)).nrows
    totals: Counter = Counter()
    for k in range(4):
        part = RowSlice(k, 4)
        with remote_chunks(uri, cfg, RANDOMS_COLUMNS, (), 300, rows=part) as rows:
            got = count_randoms_per_brick(rows)
        assert rows.first_row == part.bounds(nrows)[0]
        local = count_randoms_per_brick(path, chunk_rows=300, rows=part)
        for mine, theirs in zip(got, local):
            np.testing.assert_array_equal(mine, theirs)
        for brick, total, kept in zip(*got):
            totals[(str(brick), "total")] += int(total)
            totals[(str(brick), "kept")] += int(kept)
    whole = count_randoms_per_brick(path, chunk_rows=300)
    assert +totals == +Counter({**{(str(b), "total"): int(n) for b, n in zip(whole[0], whole[1])},
                                **{(str(b), "kept"): int(n) for b, n in zip(whole[0], whole[2])}})
    assert 0 < sum(whole.n_kept) < sum(whole.n_total) == nrows  # the planted mask cut some
    assert list(tmp_dir.iterdir()) == []
