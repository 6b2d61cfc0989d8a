"""Hardening of remote reads: ETag-pinned ranged S3 GETs, short writes, verified sizes,
out-of-order parts, logged retries, and S3 URIs without a key. S3 is moto's server on loopback;
the seams are a client (a thin wrapper over the real one) and a write function, both passed
as parameters."""

from __future__ import annotations

import logging
import os
import threading
import time

import pytest

from halo_lrg.io import s3 as s3mod
from halo_lrg.io.fetch import SourceError, local_copy
from halo_lrg.io.retry import TransientError, with_retries
from halo_lrg.io.uri import split_s3_uri

BUCKET = "halo-hardening"
PART = 1000


def payload(size: int, seed: int) -> bytes:
    return bytes((i * 7 + seed) % 251 for i in range(size))


@pytest.fixture
def remote(config, s3_endpoint):
    """Small parts, millisecond backoff, the moto endpoint."""
    return config.replace(remote={"s3_part_bytes": PART, "s3_max_concurrency": 4,
                                  "max_attempts": 3, "backoff_base_seconds": 0.001,
                                  "backoff_max_seconds": 0.005,
                                  "s3_endpoint_url": s3_endpoint}).remote


class Wrapped:
    """The real client, with a hook before each ranged GET (``before(start, kwargs)`` may
    change the kwargs or the world) and one after (``after(start, response)``). Records every
    GET's kwargs."""

    def __init__(self, real, before=None, after=None):
        self.real, self.before, self.after = real, before, after
        self.gets = []
        self.lock = threading.Lock()

    def head_object(self, **kwargs):
        return self.real.head_object(**kwargs)

    def get_object(self, **kwargs):
        start = int(kwargs["Range"].split("=")[1].split("-")[0])
        with self.lock:
            self.gets.append(dict(kwargs))
        if self.before is not None:
            self.before(start, kwargs)
        response = self.real.get_object(**kwargs)
        if self.after is not None:
            response = self.after(start, response)
        return response

    def starts(self):
        return [int(g["Range"].split("=")[1].split("-")[0]) for g in self.gets]


class Body:
    def __init__(self, data: bytes):
        self.data = data

    def read(self):
        return self.data


# --- 1. ranged GETs pinned to the ETag ----------------------------------------------------------

def test_every_part_is_pinned_to_the_etag_of_one_head(s3, remote, tmp_path):
    data = payload(3500, 1)
    s3.put_object(Bucket=BUCKET, Key="a.fits", Body=data)
    etag = s3.head_object(Bucket=BUCKET, Key="a.fits")["ETag"]
    wrapped = Wrapped(s3mod.client(remote))
    dest = tmp_path / "a.fits"
    size, got_etag = s3mod.fetch_parts(f"s3://{BUCKET}/a.fits", str(dest), remote,
                                       lambda _n: None, s3=wrapped)
    assert (size, got_etag) == (len(data), etag) and dest.read_bytes() == data
    assert sorted(wrapped.starts()) == [0, 1000, 2000, 3000]
    assert all(g["IfMatch"] == etag for g in wrapped.gets)


def replace_before_part(s3, key, start_of_part, new):
    """A ``before`` hook that replaces the object (same size) just before the given part's
    GET, once."""
    done = []

    def before(start, _kwargs):
        if start == start_of_part and not done:
            done.append(1)
            s3.put_object(Bucket=BUCKET, Key=key, Body=new)

    return before


def test_object_replaced_mid_download_is_refused_never_mixed(s3, remote, tmp_path):
    """moto honours If-Match on ranged GETs: the part after the replacement gets 412, which is
    a permanent error naming the old ETag; not retried, no later part fetched, file gone."""
    old, new = payload(3500, 1), payload(3500, 2)
    s3.put_object(Bucket=BUCKET, Key="a.fits", Body=old)
    etag = s3.head_object(Bucket=BUCKET, Key="a.fits")["ETag"].strip('"')
    cfg_remote = _with(remote, s3_max_concurrency=1)  # parts strictly one after another
    wrapped = Wrapped(s3mod.client(cfg_remote),
                      before=replace_before_part(s3, "a.fits", 1000, new))
    seen = []
    dest = tmp_path / "a.fits"
    with pytest.raises(s3mod.ObjectChangedError,
                       match=rf"changed during download \(ETag was {etag}\)"):
        s3mod.fetch_parts(f"s3://{BUCKET}/a.fits", str(dest), cfg_remote, seen.append,
                          s3=wrapped)
    assert wrapped.starts() == [0, 1000]  # the 412 is not retried; parts 2 and 3 never asked
    assert max(seen, default=0) <= 1000  # only the old version's first part was ever reported
    assert not dest.exists()


def test_a_store_that_ignores_if_match_is_caught_by_the_response_etag(s3, remote,
                                                                      tmp_path):
    old, new = payload(3500, 1), payload(3500, 2)
    s3.put_object(Bucket=BUCKET, Key="a.fits", Body=old)

    def ignore_if_match(start, kwargs):
        kwargs.pop("IfMatch", None)
        if start == 1000:
            s3.put_object(Bucket=BUCKET, Key="a.fits", Body=new)

    cfg_remote = _with(remote, s3_max_concurrency=1)
    wrapped = Wrapped(s3mod.client(cfg_remote), before=ignore_if_match)
    with pytest.raises(s3mod.ObjectChangedError, match="changed during download"):
        s3mod.fetch_parts(f"s3://{BUCKET}/a.fits", str(tmp_path / "a"), cfg_remote,
                          lambda _n: None, s3=wrapped)
    assert not (tmp_path / "a").exists()


def test_download_is_pinned_too_and_keeps_nothing_when_the_object_changes(s3, remote,
                                                                          tmp_path):
    old, new = payload(3500, 1), payload(3500, 2)
    s3.put_object(Bucket=BUCKET, Key="a.fits", Body=old)
    etag = s3.head_object(Bucket=BUCKET, Key="a.fits")["ETag"]
    plain = Wrapped(s3mod.client(remote))
    dest = tmp_path / "a.fits"
    assert s3mod.download(f"s3://{BUCKET}/a.fits", str(dest), remote, s3=plain) == len(old)
    assert dest.read_bytes() == old
    assert plain.gets and all(g["IfMatch"] == etag for g in plain.gets)
    dest.unlink()
    cfg_remote = _with(remote, s3_max_concurrency=1)
    changing = Wrapped(s3mod.client(cfg_remote),
                       before=replace_before_part(s3, "a.fits", 2000, new))
    with pytest.raises(s3mod.ObjectChangedError,
                       match=rf"ETag was {etag.strip(chr(34))}"):
        s3mod.download(f"s3://{BUCKET}/a.fits", str(dest), cfg_remote, s3=changing)
    assert changing.starts() == [0, 1000, 2000] and not dest.exists()


def test_local_copy_reports_a_changed_object_as_a_permanent_source_error(s3, remote,
                                                                         config, tmp_path,
                                                                         monkeypatch):
    s3.put_object(Bucket=BUCKET, Key="a.fits", Body=payload(3500, 1))
    cfg = config.replace(remote={**{k: getattr(remote, k) for k in (
        "s3_part_bytes", "max_attempts", "backoff_base_seconds", "backoff_max_seconds",
        "s3_endpoint_url")}, "s3_max_concurrency": 1, "tmp_dir": str(tmp_path)})
    real = s3mod.client(cfg.remote)
    wrapped = Wrapped(real, before=replace_before_part(s3, "a.fits", 1000,
                                                       payload(3500, 2)))
    monkeypatch.setattr(s3mod, "client", lambda _remote: wrapped)
    changed = r"^s3://halo-hardening/a\.fits: the object changed during download \(ETag was "
    with pytest.raises(SourceError, match=changed + r"[0-9a-f]+\)") as info, \
            local_copy(f"s3://{BUCKET}/a.fits", cfg):
        pass
    assert info.value.transient is False
    assert list(tmp_path.iterdir()) == []


def _with(remote, **changes):
    import dataclasses

    return dataclasses.replace(remote, **changes)


# --- 2. short writes ------------------------------------------------------------------------

def stingy(limit, calls=None):
    """An os.pwrite that writes at most ``limit`` bytes per call."""
    def write(fd, data, offset):
        if calls is not None:
            calls.append(len(data))
        return os.pwrite(fd, bytes(data[:limit]), offset)

    return write


def test_pwrite_all_continues_short_writes_and_refuses_no_progress(tmp_path):
    path = tmp_path / "f"
    data = payload(1000, 3)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        calls = []
        assert s3mod.pwrite_all(fd, data, 10, stingy(64, calls)) == 1000
        assert len(calls) == 16  # 15 x 64 + 40
        assert os.pread(fd, 1000, 10) == data
        with pytest.raises(OSError, match="write made no progress at offset 5"):
            s3mod.pwrite_all(fd, data, 5, lambda _fd, _d, _o: 0)
    finally:
        os.close(fd)


def test_parts_written_through_a_stingy_writer_are_whole(s3, remote, tmp_path):
    data = payload(3500, 4)
    s3.put_object(Bucket=BUCKET, Key="a.fits", Body=data)
    dest = tmp_path / "a.fits"
    calls = []
    s3mod.fetch_parts(f"s3://{BUCKET}/a.fits", str(dest), remote, lambda _n: None,
                      write=stingy(300, calls))
    assert dest.read_bytes() == data
    assert len(calls) > 4  # the writer really did write in pieces


# --- 3. sizes that mean something --------------------------------------------------------------

def test_a_short_part_is_retried_and_one_that_stays_short_is_refused(s3, remote, tmp_path):
    data = payload(3500, 5)
    s3.put_object(Bucket=BUCKET, Key="a.fits", Body=data)
    cut = []

    def short_once(start, response):
        if start == 1000 and not cut:
            cut.append(1)
            return {**response, "Body": Body(response["Body"].read()[:-1])}
        return response

    wrapped = Wrapped(s3mod.client(remote), after=short_once)
    dest = tmp_path / "a.fits"
    s3mod.fetch_parts(f"s3://{BUCKET}/a.fits", str(dest), remote, lambda _n: None, s3=wrapped)
    assert dest.read_bytes() == data and wrapped.starts().count(1000) == 2

    def always_short(start, response):
        body = response["Body"].read()
        return {**response, "Body": Body(body[:-1] if start == 1000 else body)}

    wrapped = Wrapped(s3mod.client(remote), after=always_short)
    seen = []
    with pytest.raises(TransientError, match=r"short part: 999 of 1,000 bytes at 1,000 .*"
                                             r"gave up after 3 attempts"):
        s3mod.fetch_parts(f"s3://{BUCKET}/a.fits", str(dest), remote, seen.append, s3=wrapped)
    assert wrapped.starts().count(1000) == 3
    assert all(n <= 1000 for n in seen) and not dest.exists()


def test_a_part_with_the_wrong_content_range_is_not_accepted(s3, remote, tmp_path):
    """Right length, wrong place (or another object's total): the size of the body alone
    would have passed."""
    data = payload(3500, 6)
    s3.put_object(Bucket=BUCKET, Key="a.fits", Body=data)
    wrong = []

    def shifted_once(start, response):
        if start == 2000 and not wrong:
            wrong.append(1)
            return {**response, "ContentRange": "bytes 1000-1999/3500"}
        return response

    wrapped = Wrapped(s3mod.client(remote), after=shifted_once)
    dest = tmp_path / "a.fits"
    s3mod.fetch_parts(f"s3://{BUCKET}/a.fits", str(dest), remote, lambda _n: None, s3=wrapped)
    assert dest.read_bytes() == data and wrapped.starts().count(2000) == 2

    def other_total(start, response):
        return {**response, "ContentRange": response["ContentRange"].replace("/3500", "/4000")}

    wrapped = Wrapped(s3mod.client(remote), after=other_total)
    with pytest.raises(s3mod.ObjectChangedError):
        s3mod.fetch_parts(f"s3://{BUCKET}/a.fits", str(dest), remote, lambda _n: None,
                          s3=wrapped)


def test_the_full_size_is_reported_only_for_bytes_really_written(s3, remote, tmp_path):
    """The file is sized up front, so its length on disk proves nothing: a disk that accepts
    no bytes must fail the download, not report a prefix of zeros."""
    s3.put_object(Bucket=BUCKET, Key="a.fits", Body=payload(3500, 7))
    seen = []
    with pytest.raises(OSError, match="write made no progress"):
        s3mod.fetch_parts(f"s3://{BUCKET}/a.fits", str(tmp_path / "a"), remote, seen.append,
                          write=lambda _fd, _data, _offset: 0)
    assert seen == [] and not (tmp_path / "a").exists()


def test_final_size_is_reported_after_every_byte_is_on_disk(s3, remote, tmp_path):
    data = payload(3500, 8)
    s3.put_object(Bucket=BUCKET, Key="a.fits", Body=data)
    dest = tmp_path / "a.fits"
    at_final = []

    def progress(n):
        if n == len(data):
            at_final.append(dest.read_bytes())

    s3mod.fetch_parts(f"s3://{BUCKET}/a.fits", str(dest), remote, progress, write=stingy(128))
    assert at_final == [data]


def test_an_empty_object_reports_zero_once(s3, remote, tmp_path):
    s3.put_object(Bucket=BUCKET, Key="empty.fits", Body=b"")
    seen = []
    assert s3mod.download_parts_in_order(f"s3://{BUCKET}/empty.fits", str(tmp_path / "e"),
                                         remote, seen.append) == 0
    assert seen == [0] and (tmp_path / "e").read_bytes() == b""


# --- 4. out-of-order parts ----------------------------------------------------------------------

def test_progress_is_a_contiguous_prefix_when_later_parts_finish_first(s3, remote,
                                                                       tmp_path):
    data = payload(5500, 9)  # 6 parts, all in flight at once
    s3.put_object(Bucket=BUCKET, Key="a.fits", Body=data)
    cfg_remote = _with(remote, s3_max_concurrency=6)
    delays = {0: 0.6, 1000: 0.3, 3000: 0.45}
    lock = threading.Lock()
    covered = bytearray(len(data))  # 1 where bytes have really been written
    finish_order = []

    def write(fd, chunk, offset):
        n = os.pwrite(fd, chunk, offset)
        with lock:
            covered[offset:offset + n] = b"\x01" * n
            if offset + n == min((offset // PART + 1) * PART, len(data)):
                finish_order.append(offset // PART * PART)
        return n

    seen = []

    def progress(n):
        with lock:
            assert all(covered[:n]), f"reported {n:,} past a part not yet written"
        assert not seen or n >= seen[-1], "the prefix went backwards"
        assert n == len(data) or n % PART == 0, "not a part boundary"
        seen.append(n)

    wrapped = Wrapped(s3mod.client(cfg_remote),
                      before=lambda start, _kw: time.sleep(delays.get(start, 0)))
    dest = tmp_path / "a.fits"
    s3mod.fetch_parts(f"s3://{BUCKET}/a.fits", str(dest), cfg_remote, progress, s3=wrapped,
                      write=write)
    # the later parts really did finish first, and the earliest last
    assert set(finish_order[:3]) == {2000, 4000, 5000} and finish_order[3:] == [1000, 3000, 0]
    assert seen[-1] == len(data) and seen.count(len(data)) == 1
    assert dest.read_bytes() == data


def test_a_reader_that_gives_up_stops_the_other_parts(s3, remote, tmp_path):
    s3.put_object(Bucket=BUCKET, Key="a.fits", Body=payload(5500, 10))
    cfg_remote = _with(remote, s3_max_concurrency=1)
    wrapped = Wrapped(s3mod.client(cfg_remote),
                      before=lambda _s, _kw: time.sleep(0.05))

    class GaveUp(Exception):
        pass

    def progress(n):
        raise GaveUp(n)

    with pytest.raises(GaveUp):
        s3mod.fetch_parts(f"s3://{BUCKET}/a.fits", str(tmp_path / "a"), cfg_remote, progress,
                          s3=wrapped)
    assert len(wrapped.gets) <= 2  # the first part, at most one already started
    assert not (tmp_path / "a").exists()


# --- 5. retries are logged ----------------------------------------------------------------------

def test_each_retry_is_logged_with_what_attempt_cause_and_wait(config, caplog):
    remote = config.replace(remote={"max_attempts": 3, "backoff_base_seconds": 0.2,
                                    "backoff_max_seconds": 0.2}).remote
    calls, slept, heard = [], [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise TransientError(f"HTTP 503 number {len(calls)}", retry_after=0.2)
        return "ok"

    with caplog.at_level(logging.WARNING, logger="halo_lrg.io.retry"):
        assert with_retries(flaky, remote, "s3://b/k.fits", on_retry=heard.append,
                            sleep=slept.append) == "ok"
    records = [r for r in caplog.records if r.name == "halo_lrg.io.retry"]
    assert [r.levelno for r in records] == [logging.WARNING] * 2
    assert slept == [0.2, 0.2]
    assert [r.getMessage() for r in records] == [
        "s3://b/k.fits: attempt 1 of 3 failed (HTTP 503 number 1); retrying in 0.20 s",
        "s3://b/k.fits: attempt 2 of 3 failed (HTTP 503 number 2); retrying in 0.20 s"]
    assert heard == ["s3://b/k.fits: HTTP 503 number 1; retry 1/2 in 0.2 s",
                     "s3://b/k.fits: HTTP 503 number 2; retry 2/2 in 0.2 s"]


def test_a_retried_part_is_logged_with_its_range(s3, remote, tmp_path, caplog):
    s3.put_object(Bucket=BUCKET, Key="a.fits", Body=payload(2500, 11))
    cut = []

    def short_once(start, response):
        if start == 2000 and not cut:
            cut.append(1)
            return {**response, "Body": Body(b"")}
        return response

    with caplog.at_level(logging.WARNING, logger="halo_lrg.io.retry"):
        s3mod.fetch_parts(f"s3://{BUCKET}/a.fits", str(tmp_path / "a"), remote,
                          lambda _n: None, s3=Wrapped(s3mod.client(remote), after=short_once))
    [record] = [r for r in caplog.records if r.name == "halo_lrg.io.retry"]
    assert record.getMessage().startswith(
        f"s3://{BUCKET}/a.fits (bytes 2000-2499): attempt 1 of 3 failed (short part: 0 of 500 "
        "bytes at 2,000); retrying in ")


# --- 6. S3 URIs that name no object --------------------------------------------------------------

def test_split_s3_uri_can_require_a_key():
    assert split_s3_uri("s3://bucket") == ("bucket", "")  # callers that want a prefix
    assert split_s3_uri("s3://bucket/k.fits", require_key=True) == ("bucket", "k.fits")
    for uri in ("s3://bucket", "s3://bucket/"):
        with pytest.raises(ValueError, match=rf"^{uri}: no object key$"):
            split_s3_uri(uri, require_key=True)


def test_object_operations_on_a_bare_bucket_fail_at_once(config, tmp_path, monkeypatch,
                                                         caplog):
    def no_client(_remote):
        raise AssertionError("no request should be made")

    monkeypatch.setattr(s3mod, "client", no_client)
    remote = config.remote
    operations = [
        lambda: s3mod.head("s3://bucket", remote),
        lambda: s3mod.download("s3://bucket", str(tmp_path / "d"), remote),
        lambda: s3mod.download_parts_in_order("s3://bucket/", str(tmp_path / "d"), remote,
                                              lambda _n: None),
        lambda: s3mod.read_bytes("s3://bucket", remote),
        lambda: s3mod.put_bytes("s3://bucket", b"x", remote),
        lambda: s3mod.delete("s3://bucket", remote),
    ]
    with caplog.at_level(logging.WARNING, logger="halo_lrg.io.retry"):
        for operation in operations:
            with pytest.raises(s3mod.S3Error, match=r"^no object key$"):
                operation()
        cfg = config.replace(remote={"tmp_dir": str(tmp_path)})
        with pytest.raises(SourceError, match=r"^s3://bucket: no object key$") as info, \
                local_copy("s3://bucket", cfg):
            pass
    assert info.value.transient is False
    assert not [r for r in caplog.records if r.name == "halo_lrg.io.retry"]  # never retried
    assert list(tmp_path.iterdir()) == []
