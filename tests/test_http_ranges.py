"""HTTP(S) downloads as concurrent ranged GETs: parts out of order, servers without ranges,
files that change mid-download, dropped connections resumed, 416, and the per-host
connection cap shared by processes. A local server on loopback, which counts what it sends;
functional, not timed."""

from __future__ import annotations

import hashlib
import http.server
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Optional

import pytest

from halo_lrg.io import http as httpmod
from halo_lrg.io.fetch import InputHash, SourceError, local_copy
from halo_lrg.io.ranged import balanced_parts, split_parts

PART = 64 * 1024
CHUNK = 8 * 1024


def payload(size: int, seed: int) -> bytes:
    return bytes((i * 31 + seed * 7 + (i >> 9)) % 251 for i in range(size))


class QuietServer(http.server.ThreadingHTTPServer):
    """A client that goes away mid-response (what the fault tests do on purpose) is no error
    of the server's: no traceback on stderr, where it would land outside any test's output."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


@contextmanager
def loopback(handler: Any) -> Iterator[str]:
    """A threading HTTP server on 127.0.0.1 answering with ``handler`` (a request handler
    class, or a ``functools.partial`` of one); yields its base URL, shut down on exit."""
    server = QuietServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def fresh(handler: type, **state: Any) -> type:
    """A subclass of ``handler`` with state of its own (``files``, counters, locks...): a
    server's requests share it, and no other server sees it."""
    if issubclass(handler, RangeHandler):
        state = {"files": {}, "delays": {}, "drops": {}, "log": [], "finished": [],
                 "stats": {"active": 0, "peak": 0, "sent": 0}, "swapped": threading.Event(),
                 "lock": threading.Lock(), **state}
    return type(handler.__name__, (handler,), state)


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves ``files`` (path -> [bytes, ETag]); knobs are class attributes:

    ``ranges``: answer ``Range`` with 206 and say ``Accept-Ranges: bytes``; ``first_whole``:
    answer the first request 200 even so; ``if_range``: honour ``If-Range`` (else ignore it);
    ``delays``: range start -> seconds to wait before the body; ``drops``: range start -> bytes
    sent before the connection is cut (once); ``swap``: (path, [bytes, ETag]) served instead
    once the first response ends, with requests for later ranges held until then; ``pace``:
    seconds between blocks. Counts body bytes sent, and requests in flight (``active``,
    ``peak``: each request counts until just before its last byte, so within the time its
    client holds the connection)."""

    files: ClassVar[dict] = {}
    ranges = True
    first_whole = False
    if_range = True
    delays: ClassVar[dict] = {}
    drops: ClassVar[dict] = {}
    swap: ClassVar[Optional[tuple]] = None
    swapped: ClassVar[threading.Event]
    pace = 0.0
    log: ClassVar[list] = []
    finished: ClassVar[list] = []
    stats: ClassVar[dict] = {}
    lock = threading.Lock()

    def log_message(self, *args):
        pass

    def do_GET(self):
        cls = type(self)
        with cls.lock:
            first_request = not cls.log
            cls.log.append({"path": self.path, "range": self.headers.get("Range"),
                            "if_range": self.headers.get("If-Range")})
            cls.stats["active"] += 1
            cls.stats["peak"] = max(cls.stats["peak"], cls.stats["active"])
        counted = [True]

        def done():
            if counted[0]:
                counted[0] = False
                with cls.lock:
                    cls.stats["active"] -= 1

        try:
            wanted = self.headers.get("Range")
            start = 0
            if wanted and cls.swap is not None and not wanted.startswith("bytes=0-"):
                cls.swapped.wait(10)
            entry = cls.files.get(self.path)
            if entry is None:
                self.send_error(404)
                return
            data, etag = entry
            if not cls.ranges or (first_request and cls.first_whole):
                wanted = None
            pinned = self.headers.get("If-Range")
            if wanted and pinned and cls.if_range and pinned != etag:
                wanted = None  # another version: the whole file
            if wanted:
                match = re.match(r"bytes=(\d+)-(\d*)$", wanted)
                start = int(match.group(1))
                end = int(match.group(2)) if match.group(2) else len(data) - 1
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                end = min(end, len(data) - 1)
                body = data[start:end + 1]
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            else:
                body = data
                self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("ETag", etag)
            if cls.ranges:
                self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            self.wfile.flush()
            time.sleep(cls.delays.get(start, 0))
            cut = cls.drops.pop(start, None)
            limit = len(body) if cut is None else cut
            sent = 0
            while sent < limit:
                block = body[sent:min(sent + 4096, limit)]
                if sent + len(block) == len(body):
                    done()  # before the last byte: the client still holds its connection
                self.wfile.write(block)
                sent += len(block)
                with cls.lock:
                    cls.stats["sent"] += len(block)
                if cls.pace:
                    time.sleep(cls.pace)
            self.wfile.flush()
            if cut is not None:
                self.connection.shutdown(2)  # the connection drops mid-body
                self.close_connection = True
                return
            with cls.lock:
                cls.finished.append(start)
                if cls.swap is not None and not cls.swapped.is_set():
                    path, new = cls.swap
                    cls.files[path] = new
                    cls.swapped.set()
        finally:
            done()


@pytest.fixture
def server():
    """A RangeHandler server of its own; yields (base URL, handler class)."""
    handler = fresh(RangeHandler)
    with loopback(handler) as base:
        yield base, handler


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """The node's scratch directory (where the connection slots' lock files live)."""
    root = tmp_path / "scratch"
    root.mkdir()
    monkeypatch.setenv("LOCAL_DIRS", str(root))
    return root


def remote_for(config, **extra):
    return config.replace(remote={"http_parts": 4, "http_part_bytes": PART,
                                  "download_chunk_bytes": CHUNK, "max_attempts": 3,
                                  "backoff_base_seconds": 0.01, "backoff_max_seconds": 0.02,
                                  **extra}).remote


class Following:
    """A progress callback that checks, at each call, that the reported prefix of ``dest`` is
    on disk and right, and that it only grows."""

    def __init__(self, dest: Path, data: bytes) -> None:
        self.dest, self.data, self.seen = dest, data, []

    def __call__(self, n: int) -> None:
        with open(self.dest, "rb") as fh:
            assert fh.read(n) == self.data[:n], f"reported {n:,} bytes not yet on disk"
        assert not self.seen or n > self.seen[-1], "the prefix went backwards"
        self.seen.append(n)


def ranges_asked(handler) -> list[tuple[int, Optional[int]]]:
    out = []
    for entry in handler.log:
        match = re.match(r"bytes=(\d+)-(\d*)$", entry["range"] or "")
        if match:
            out.append((int(match.group(1)), int(match.group(2)) if match.group(2) else None))
    return out


# --- the part plan ------------------------------------------------------------------------------

def test_parts_cover_the_file_and_leave_no_connection_a_lone_tail():
    assert split_parts(3500, 1000) == [(0, 1000), (1000, 1000), (2000, 1000), (3000, 500)]
    assert balanced_parts(0, 10, 4) == []
    for size, part, lanes, first in [(1000, 100, 4, 100), (1001, 100, 4, 0), (250, 100, 4, 100),
                                     (10_000, 3000, 3, 3000), (50, 100, 4, 100), (7, 2, 4, 2)]:
        plan = balanced_parts(size, part, lanes, first=first)
        assert [s for s, _ in plan] == [sum(n for _, n in plan[:k]) for k in range(len(plan))]
        assert sum(n for _, n in plan) == size and max(n for _, n in plan) <= part
        if first:
            assert plan[0] == (0, min(first, size))
    assert len(balanced_parts(4 * PART + 1, PART, 4, first=PART)) == 8  # 2 rounds, not 1 + a tail


# --- concurrent parts ---------------------------------------------------------------------------

def test_parts_arriving_out_of_order_give_the_file_and_a_contiguous_prefix(config, server,
                                                                           scratch, tmp_path):
    base, handler = server
    data = payload(4 * PART, 1)
    handler.files["/a.fits"] = [data, '"v1"']
    handler.delays.update({0: 0.6, PART: 0.3})  # the early parts' bodies come last
    dest = tmp_path / "a.fits"
    follow = Following(dest, data)
    hasher = InputHash()
    size = httpmod.download(f"{base}/a.fits", str(dest), remote_for(config), progress=follow,
                            hasher=hasher)
    assert size == len(data) and dest.read_bytes() == data
    assert handler.finished[-1] == 0 and handler.finished[-2] == PART  # really out of order
    assert follow.seen[-1] == len(data) and follow.seen.count(len(data)) == 1
    assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()
    assert hasher.nbytes == len(data)
    asked = ranges_asked(handler)
    assert asked[0] == (0, PART - 1)  # the first request is the first part
    assert sorted(asked) == [(0, PART - 1), (PART, 2 * PART - 1), (2 * PART, 3 * PART - 1),
                             (3 * PART, 4 * PART - 1)]
    assert handler.log[0]["if_range"] is None
    assert all(entry["if_range"] == '"v1"' for entry in handler.log[1:])
    assert handler.stats["sent"] == len(data)


def test_a_file_within_one_part_is_one_request(config, server, scratch, tmp_path):
    base, handler = server
    data = payload(PART // 2, 2)
    handler.files["/s.fits"] = [data, '"s"']
    dest = tmp_path / "s.fits"
    assert httpmod.download(f"{base}/s.fits", str(dest), remote_for(config)) == len(data)
    assert dest.read_bytes() == data and len(handler.log) == 1


def test_a_server_without_ranges_is_read_as_one_stream(config, server, scratch, tmp_path):
    base, handler = server
    handler.ranges = False
    data = payload(3 * PART + 5, 3)
    handler.files["/a.fits"] = [data, '"v1"']
    dest = tmp_path / "a.fits"
    follow = Following(dest, data)
    hasher = InputHash()
    assert httpmod.download(f"{base}/a.fits", str(dest), remote_for(config), progress=follow,
                            hasher=hasher) == len(data)
    assert dest.read_bytes() == data and len(handler.log) == 1
    assert len(follow.seen) > 3 and follow.seen[-1] == len(data)  # followed as it streamed
    assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()


def test_a_stream_that_cannot_resume_starts_over_from_byte_0(config, server, scratch, tmp_path):
    base, handler = server
    handler.ranges = False
    data = payload(3 * PART, 4)
    handler.files["/a.fits"] = [data, '"v1"']
    handler.drops[0] = len(data) // 2
    dest = tmp_path / "a.fits"
    seen = []
    hasher = InputHash()
    assert httpmod.download(f"{base}/a.fits", str(dest), remote_for(config),
                            progress=seen.append, hasher=hasher) == len(data)
    assert dest.read_bytes() == data and len(handler.log) == 2
    assert handler.log[1]["range"] is None  # a plain GET: the whole file again
    assert seen.count(0) == 1 and seen[-1] == len(data)
    assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()
    assert hasher.nbytes == len(data)


# --- a file that changes mid-download -----------------------------------------------------------

@pytest.mark.parametrize("server_kind,new_size,message", [
    ("honours If-Range", 0, r"bytes \d+-\d+ pinned to \"v1\" were answered with the whole file"),
    ("ignores If-Range", 1000, r"its size was 262,144 bytes, now 263,144"),
    ("ignores If-Range", 0, r"it was \"v1\", now \"v2\""),
])
def test_a_file_that_changes_mid_download_is_refused_and_nothing_kept(
        config, server, scratch, tmp_path, server_kind, new_size, message):
    base, handler = server
    handler.if_range = server_kind == "honours If-Range"
    data = payload(4 * PART, 5)
    handler.files["/a.fits"] = [data, '"v1"']
    handler.swap = ("/a.fits", [payload(4 * PART + new_size, 6), '"v2"'])
    dest = tmp_path / "a.fits"
    seen = []
    with pytest.raises(httpmod.FileChangedError,
                       match=r"^the file changed on the server during download \(" + message
                             + r"\); nothing was kept$") as info:
        httpmod.download(f"{base}/a.fits", str(dest), remote_for(config), progress=seen.append)
    assert info.value.url == f"{base}/a.fits"
    assert not dest.exists()
    assert all(n <= PART for n in seen)  # only the first version's first part was reported
    assert len(handler.log) <= 4  # refused, not retried


def test_a_changed_file_is_a_permanent_source_error_naming_the_url(config, server, scratch,
                                                                   tmp_path):
    base, handler = server
    handler.files["/a.fits"] = [payload(4 * PART, 7), '"v1"']
    handler.swap = ("/a.fits", [payload(4 * PART, 8), '"v2"'])
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    cfg = config.replace(remote={**vars(remote_for(config)), "tmp_dir": str(tmp)})
    url = f"{base}/a.fits"
    with pytest.raises(SourceError, match=rf"^{re.escape(url)}: the file changed on the server"
                                          r" during download") as info, local_copy(url, cfg):
        pass
    assert info.value.transient is False
    assert list(tmp.iterdir()) == []


# --- resume, don't restart ----------------------------------------------------------------------

def test_a_part_dropped_at_90_percent_resumes_there(config, server, scratch, tmp_path):
    base, handler = server
    data = payload(4 * PART, 9)
    handler.files["/a.fits"] = [data, '"v1"']
    handler.drops[2 * PART] = int(PART * 0.9)
    dest = tmp_path / "a.fits"
    hasher = InputHash()
    follow = Following(dest, data)
    assert httpmod.download(f"{base}/a.fits", str(dest), remote_for(config), progress=follow,
                            hasher=hasher) == len(data)
    assert dest.read_bytes() == data
    assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()
    resumed = [r for r in ranges_asked(handler) if 2 * PART < r[0] < 3 * PART]
    assert len(resumed) == 1 and resumed[0][1] == 3 * PART - 1
    assert resumed[0][0] >= 2 * PART + int(PART * 0.9) - CHUNK  # at most a read lost
    assert handler.log[-1]["if_range"] == '"v1"'
    assert handler.stats["sent"] <= 1.15 * len(data)


def test_a_single_stream_dropped_at_90_percent_resumes_with_a_range(config, server, scratch,
                                                                     tmp_path):
    """The first answer is a 200 (one stream), but the server offers ranges: the rest is
    asked as ``bytes=N-`` pinned with If-Range."""
    base, handler = server
    handler.first_whole = True
    data = payload(4 * PART, 10)
    handler.files["/a.fits"] = [data, '"v1"']
    handler.drops[0] = int(len(data) * 0.9)
    dest = tmp_path / "a.fits"
    seen = []
    hasher = InputHash()
    assert httpmod.download(f"{base}/a.fits", str(dest), remote_for(config),
                            progress=seen.append, hasher=hasher) == len(data)
    assert dest.read_bytes() == data and 0 not in seen
    assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()
    assert len(handler.log) == 2
    start, end = ranges_asked(handler)[-1]
    assert end is None and start >= int(len(data) * 0.9) - CHUNK
    assert handler.log[1]["if_range"] == '"v1"'
    assert handler.stats["sent"] <= 1.15 * len(data)


def test_one_part_mode_resumes_too(config, server, scratch, tmp_path):
    base, handler = server
    data = payload(4 * PART, 11)
    handler.files["/a.fits"] = [data, '"v1"']
    handler.drops[0] = int(len(data) * 0.9)
    dest = tmp_path / "a.fits"
    assert httpmod.download(f"{base}/a.fits", str(dest),
                            remote_for(config, http_parts=1)) == len(data)
    assert dest.read_bytes() == data
    assert ranges_asked(handler)[0] == (0, None)
    assert handler.stats["sent"] <= 1.15 * len(data)


# --- 416 ----------------------------------------------------------------------------------------

def test_an_empty_file_is_a_clear_error_not_a_loop(config, server, scratch, tmp_path):
    base, handler = server
    handler.files["/e.fits"] = [b"", '"e"']
    dest = tmp_path / "e.fits"
    with pytest.raises(httpmod.PermanentHTTPError,
                       match=r"^HTTP 416 Range Not Satisfiable: the file on the server is "
                             r"empty \(0 bytes\)$"):
        httpmod.download(f"{base}/e.fits", str(dest), remote_for(config))
    assert len(handler.log) == 1 and not dest.exists()


def test_a_file_that_shrank_mid_download_is_a_clear_error_not_a_loop(config, server, scratch,
                                                                      tmp_path):
    base, handler = server
    handler.if_range = False  # else the change would be a 200
    handler.files["/a.fits"] = [payload(4 * PART, 12), '"v1"']
    handler.swap = ("/a.fits", [payload(PART, 13), '"v1"'])  # the same validator, even
    dest = tmp_path / "a.fits"
    with pytest.raises(httpmod.FileChangedError,
                       match=r"its size was 262,144 bytes, now 65,536"):
        httpmod.download(f"{base}/a.fits", str(dest), remote_for(config, http_parts=2))
    assert not dest.exists() and len(handler.log) <= 3


# --- the per-host connection cap ----------------------------------------------------------------

CHILD = textwrap.dedent(f"""
    import sys
    from halo_lrg.config import load_config
    from halo_lrg.io import http
    url, dest = sys.argv[1:]
    remote = load_config().replace(remote={{
        "http_parts": 4, "http_part_bytes": {PART}, "download_chunk_bytes": {CHUNK},
        "max_connections_per_host": 3}}).remote
    print(http.download(url, dest, remote))
""")


def test_two_processes_never_exceed_the_per_host_cap(server, scratch, tmp_path):
    base, handler = server
    handler.pace = 0.01  # ~0.16 s a part: the parts overlap
    data = payload(4 * PART, 14)
    handler.files["/a.fits"] = [data, '"v1"']
    env = {**os.environ, "LOCAL_DIRS": str(scratch)}
    children = [subprocess.Popen([sys.executable, "-c", CHILD, f"{base}/a.fits",
                                  str(tmp_path / f"out{k}.fits")], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for k in range(2)]
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        assert out.strip() == str(len(data))
    for k in range(2):
        assert (tmp_path / f"out{k}.fits").read_bytes() == data
    assert len(handler.log) == 8  # 2 processes x 4 parts
    assert handler.stats["peak"] == 3  # the cap, reached and never exceeded
    assert sorted(p.name for p in scratch.iterdir()) == [f"halo-lrg-connections-{os.getuid()}"]


def test_the_slots_are_shared_by_threads_and_given_back(tmp_path):
    slots = httpmod.ConnectionSlots(str(tmp_path), "host_80", 2, poll_seconds=0.005)
    held = [slots.acquire(), slots.acquire()]
    got = []
    waiter = threading.Thread(target=lambda: got.append(slots.acquire()))
    waiter.start()
    time.sleep(0.1)
    assert not got  # both slots taken: it waits
    held.pop().release()
    waiter.join(5)
    assert len(got) == 1
    stop = threading.Event()
    stop.set()
    from halo_lrg.io.ranged import Stopped

    with pytest.raises(Stopped):
        slots.acquire(stop)
    for slot in [*held, *got]:
        slot.release()
    slots.acquire().release()
    unlimited = httpmod.ConnectionSlots(None, "host_80", 0)
    assert [unlimited.acquire() for _ in range(10)]


# --- counting while the parts download ----------------------------------------------------------

def test_a_streamed_count_over_ranged_parts_equals_the_local_count(config, sample, server,
                                                                   scratch, tmp_path):
    """The reader follows the contiguous prefix while later parts land first, and a part
    dropped mid-way is resumed under it."""
    from halo_lrg.count.local import count_sweep_file
    from halo_lrg.count.streaming import stream_count
    from halo_lrg.science.cuts import get_selection

    base, handler = server
    path = sample["paths"][1]
    data = path.read_bytes()
    handler.files[f"/{path.name}"] = [data, '"s1"']
    starts = [start for start, _n in balanced_parts(len(data), PART, 4, first=PART)]
    handler.delays.update({0: 0.2, starts[2]: 0.2})
    handler.drops[starts[5]] = PART // 2
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    cfg = config.replace(remote={**vars(remote_for(config)), "tmp_dir": str(tmp)},
                         read={"chunk_rows": 500})
    selection = get_selection("desi-lrg", cfg.cuts)
    got = stream_count(f"{base}/{path.name}", cfg, selection, None)
    expected = count_sweep_file(path, selection, 500)
    assert got.bricks.equals(expected.bricks) and got.rows == expected.rows
    assert len(handler.log) == len(starts) + 1  # each part once, and the dropped one resumed
    assert not handler.drops and handler.stats["sent"] <= 1.15 * len(data)
    assert list(tmp.iterdir()) == []
