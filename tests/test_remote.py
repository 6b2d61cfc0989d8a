"""Remote inputs and outputs over real protocols on loopback: S3 (moto's server) and HTTP
(a local server that fails the way networks do)."""

from __future__ import annotations

import functools
import http.server
import json
import os
import threading
from pathlib import Path
from typing import ClassVar

import pytest
from click.testing import CliRunner

from halo_lrg.cli import main
from halo_lrg.config import load_config
from halo_lrg.io.fetch import SourceError, local_copy
from halo_lrg.io.retry import TransientError, with_retries
from halo_lrg.spark.run import JobSpec, RunFailed, run_job
from test_http_ranges import fresh, loopback

BUCKET = "halo-test"


def fast_retries(config, **extra):
    """Backoff in milliseconds: the tests exercise retries, not patience."""
    return config.replace(remote={"backoff_base_seconds": 0.01, "backoff_max_seconds": 0.05,
                                  **extra}, run={"progress_interval": 0.2})


# --- servers -----------------------------------------------------------------------------------

class FaultyHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a directory; each .fits path answers 503 first, then cuts the body short once,
    then serves it whole. Records every request."""

    faults = True
    log: ClassVar[list] = []
    state: ClassVar[dict] = {}
    lock = threading.Lock()

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        with self.lock:
            self.log.append(("GET", self.path))
            seen = self.state.get(self.path, 0)
            self.state[self.path] = seen + 1
        target = Path(self.translate_path(self.path))
        if not (self.faults and self.path.endswith(".fits") and target.is_file()):
            return super().do_GET()
        if seen == 0:
            self.send_error(503, "try again")
        elif seen == 1:
            body = target.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 3])
            self.wfile.flush()
            self.connection.shutdown(2)  # the connection drops mid-body
            self.close_connection = True
        else:
            super().do_GET()

    def do_HEAD(self):
        with self.lock:
            self.log.append(("HEAD", self.path))
        super().do_HEAD()


@pytest.fixture
def http_root(tmp_path):
    """A local HTTP server over tmp_path/www; yields (base_url, root dir, handler class)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = fresh(FaultyHandler, log=[], state={}, faults=True)
    with loopback(functools.partial(handler, directory=str(root))) as base:
        yield base, root, handler


def fetch(uri, cfg) -> None:
    """Fetch ``uri`` as a task would, and let go of it at once."""
    with local_copy(uri, cfg):
        pass


def fails_then_skips(spark, config, index, out, message):
    """With on_error=fail the run stops with ``message``; with skip it completes."""
    with pytest.raises(RunFailed, match=message):
        run_job(spark, JobSpec(str(index), str(out), fast_retries(config)),
                emit=lambda _l: None)
    return run_job(spark, JobSpec(str(index), str(out),
                                  fast_retries(config).replace(run={"on_error": "skip"})),
                   emit=lambda _l: None)


def local_counts(spark, config, sample, tmp_path) -> bytes:
    out = tmp_path / "local"
    run_job(spark, JobSpec(str(sample["index"]), str(out), config), emit=lambda _l: None)
    return (out / "lrg_counts_per_brick" / "part-00000.csv").read_bytes()


# --- S3 ----------------------------------------------------------------------------------------

@pytest.mark.spark
def test_s3_index_sweeps_and_output_equal_the_local_run(spark, config, sample, s3, tmp_path):
    expected = local_counts(spark, config, sample, tmp_path)
    uris = []
    for path in sample["paths"]:
        s3.upload_file(str(path), BUCKET, f"sweeps/{path.name}")
        uris.append(f"s3://{BUCKET}/sweeps/{path.name}")
    s3.put_object(Bucket=BUCKET, Key="index.txt", Body="\n".join(uris).encode())
    s3.put_object(Bucket=BUCKET, Key="out/lrg_counts_per_brick/part-00000-stale.csv",
                  Body=b"stale")
    result = run_job(spark, JobSpec(f"s3://{BUCKET}/index.txt", f"s3://{BUCKET}/out",
                                    fast_retries(config)), emit=lambda _l: None)
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="out/")["Contents"])
    partials = [k for k in keys if k.startswith("out/_partials/")]
    assert len(partials) == len(uris)  # one stored partial per file, for a resumed rerun
    assert [k for k in keys if k not in partials] == [
        "out/_SUCCESS", "out/_progress.json", "out/lrg_counts_per_brick/part-00000.csv",
        "out/manifest.json"]
    got = s3.get_object(Bucket=BUCKET, Key="out/lrg_counts_per_brick/part-00000.csv")
    assert got["Body"].read() == expected
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key="out/manifest.json")["Body"].read())
    assert manifest["state"] == "complete"
    assert sorted(f["uri"] for f in manifest["files"]) == sorted(uris)
    assert result.counts_uri == f"s3://{BUCKET}/out/lrg_counts_per_brick/part-00000.csv"


@pytest.mark.spark
def test_s3_missing_key_fails_with_the_uri_or_is_skipped(spark, config, sample, s3, tmp_path):
    good = f"s3://{BUCKET}/sweeps/{sample['paths'][0].name}"
    s3.upload_file(str(sample["paths"][0]), BUCKET, f"sweeps/{sample['paths'][0].name}")
    missing = f"s3://{BUCKET}/sweeps/sweep-000p000-005p005.fits"
    index = tmp_path / "index.txt"
    index.write_text(f"{good}\n{missing}\n")
    result = fails_then_skips(spark, config, index, tmp_path / "out", rf"^{missing}: 404")
    assert [f.uri for f in result.failed] == [missing]


def test_s3_download_verifies_and_cleans_up(config, sample, s3, tmp_path):
    path = sample["paths"][0]
    s3.upload_file(str(path), BUCKET, "a.fits")
    cfg = config.replace(remote={"tmp_dir": str(tmp_path / "tmp"), "s3_part_bytes": 1 << 20,
                                 "s3_endpoint_url": os.environ["AWS_ENDPOINT_URL"]})
    (tmp_path / "tmp").mkdir()
    with local_copy(f"s3://{BUCKET}/a.fits", cfg) as local:
        assert Path(local).read_bytes() == path.read_bytes()  # ranged, concurrent parts
    assert list((tmp_path / "tmp").iterdir()) == []
    with pytest.raises(RuntimeError), local_copy(f"s3://{BUCKET}/a.fits", cfg):
        raise RuntimeError("the read failed")
    assert list((tmp_path / "tmp").iterdir()) == []


def test_s3_errors_are_one_line_and_name_the_uri(config, s3, monkeypatch):
    with pytest.raises(SourceError, match=r"^s3://halo-test/nope\.fits: 404"):
        fetch(f"s3://{BUCKET}/nope.fits", config)
    with pytest.raises(SourceError, match=r"bucket names have at least 3 characters"):
        fetch("s3://ab/key.fits", config)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    cfg = config.replace(remote={"profile": "", "region": "eu-west-1"})  # a new client
    with pytest.raises(SourceError, match="no AWS credentials found"):
        fetch(f"s3://{BUCKET}/x.fits", cfg)


def test_endpoint_resolution_follows_the_sdk_order(monkeypatch):
    from halo_lrg.io.s3 import endpoint_url

    remote = load_config().remote
    assert endpoint_url(remote, env={}) is None
    assert endpoint_url(remote, env={"AWS_ENDPOINT_URL": "http://a"}) == "http://a"
    assert endpoint_url(remote, env={"AWS_ENDPOINT_URL": "http://a",
                                     "AWS_ENDPOINT_URL_S3": "http://s3"}) == "http://s3"
    configured = load_config().replace(remote={"s3_endpoint_url": "http://c"}).remote
    assert endpoint_url(configured, env={"AWS_ENDPOINT_URL_S3": "http://s3"}) == "http://c"


# --- HTTP --------------------------------------------------------------------------------------

@pytest.mark.spark
def test_http_faults_are_survived_and_equal_the_local_run(spark, config, sample, http_root,
                                                          tmp_path):
    base, root, handler = http_root
    expected = local_counts(spark, config, sample, tmp_path)
    for path in sample["paths"]:
        (root / path.name).write_bytes(path.read_bytes())
    (root / "index.txt").write_text("".join(f"{base}/{p.name}\n" for p in sample["paths"]))
    out = tmp_path / "out"
    run_job(spark, JobSpec(f"{base}/index.txt", str(out), fast_retries(config)),
            emit=lambda _l: None)
    assert (out / "lrg_counts_per_brick" / "part-00000.csv").read_bytes() == expected
    gets = [p for m, p in handler.log if m == "GET" and p.endswith(".fits")]
    for path in sample["paths"]:  # 503, then a short body, then the whole file
        assert gets.count(f"/{path.name}") == 3


@pytest.mark.spark
def test_http_404_is_a_clear_error_or_skipped(spark, config, sample, http_root, tmp_path):
    base, root, _handler = http_root
    (root / sample["paths"][0].name).write_bytes(sample["paths"][0].read_bytes())
    index = tmp_path / "index.txt"
    index.write_text(f"{base}/{sample['paths'][0].name}\n{base}/sweep-000p000-005p005.fits\n")
    result = fails_then_skips(spark, config, index, tmp_path / "out",
                              r"sweep-000p000-005p005\.fits: HTTP 404 .*no such file")
    assert len(result.failed) == 1 and "HTTP 404" in result.failed[0].error


def test_truncated_download_is_never_kept(config, sample, http_root, tmp_path):
    base, root, handler = http_root
    (root / "a.fits").write_bytes(sample["paths"][0].read_bytes())
    handler.state["/a.fits"] = 1  # the next GET cuts the body short
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    cfg = fast_retries(config, max_attempts=1, tmp_dir=str(tmp))
    with pytest.raises(SourceError, match=r"a\.fits: connection lost|a\.fits: short body"):
        fetch(f"{base}/a.fits", cfg)
    assert list(tmp.iterdir()) == []  # nothing partial left to be read later


def test_retries_are_bounded_and_permanent_errors_are_not_retried():
    remote = load_config().replace(remote={"max_attempts": 3}).remote
    calls = []

    def flaky():
        calls.append(1)
        raise TransientError("HTTP 503")

    with pytest.raises(TransientError, match="gave up after 3 attempts"):
        with_retries(flaky, remote, "x", sleep=lambda _s: None)
    assert len(calls) == 3
    calls.clear()

    def forbidden():
        calls.append(1)
        raise PermissionError("HTTP 403")

    with pytest.raises(PermissionError):
        with_retries(forbidden, remote, "x", sleep=lambda _s: None)
    assert len(calls) == 1


# --- footprint and `halo-lrg index` ------------------------------------------------------------

@pytest.mark.spark
def test_footprint_drops_files_before_download_and_objects_outside(spark, config, sample,
                                                                   http_root, tmp_path):
    base, root, handler = http_root
    handler.faults = False
    for path in sample["paths"]:
        (root / path.name).write_bytes(path.read_bytes())
    index = tmp_path / "index.txt"
    index.write_text("".join(f"{base}/{p.name}\n" for p in sample["paths"]))
    box = sample["summaries"][0].box  # 150-155 x 0-5; the others are at Dec 5-10 / RA 155+
    runner = CliRunner()
    result = runner.invoke(main, ["run", "--index", str(index), "--output",
                                  str(tmp_path / "out"), "--ra-min", "150.5", "--ra-max", "152",
                                  "--dec-min", "1", "--dec-max", "4"])
    assert result.exit_code == 0, result.output
    assert "2 sweep(s) outside the footprint skipped" in result.output
    fetched = {p for m, p in handler.log if m == "GET"}
    assert fetched == {f"/{sample['paths'][0].name}"}
    names = [line.split(",")[0] for line in
             (tmp_path / "out/lrg_counts_per_brick/part-00000.csv").read_text().split()[1:]]
    from halo_lrg.science.bricks import brick_table

    bricks = brick_table(names)
    assert (bricks["ra2"] > 150.5).all() and (bricks["ra1"] < 152).all()
    assert (bricks["dec2"] > 1).all() and (bricks["dec1"] < 4).all() and box.dec_min == 0


def test_max_sweeps_caps_after_filtering_and_unparsed_names_warn():
    from halo_lrg.science.footprint import Footprint
    from halo_lrg.survey.index import select_inputs

    text = "\n".join(["sweep-150p000-155p005.fits", "sweep-200p000-205p005.fits",
                      "sweep-150p005-155p010.fits", "custom.fits"])
    chosen = select_inputs(text, Footprint(140, 160, 0, 10), max_sweeps=2)
    assert chosen.outside_footprint == ["sweep-200p000-205p005.fits"]
    assert chosen.uris == ["sweep-150p000-155p005.fits", "sweep-150p005-155p010.fits"]
    assert chosen.capped == ["custom.fits"] and chosen.unparsed_names == ["custom.fits"]


def test_index_command_lists_only_existing_boxes_in_the_footprint(sample, http_root, tmp_path):
    base, root, _handler = http_root
    for path in sample["paths"]:
        (root / path.name).write_bytes(b"x")
    (root / "sweep-150p000-155p005-pz.fits").write_bytes(b"side file, not a sweep")
    (root / "README.txt").write_text("hello")
    out = tmp_path / "sweeps.txt"
    runner = CliRunner()
    result = runner.invoke(main, ["index", "--ra-min", "150", "--ra-max", "155", "--dec-min",
                                  "0", "--dec-max", "20", "--base-url", f"{base}/",
                                  "--output", str(out)])
    assert result.exit_code == 0, result.output
    # 150-155 x 0-10 exist in the listing; 150-155 x 10-20 does not (the survey "skipped" it).
    assert out.read_text().splitlines() == [f"{base}/sweep-150p000-155p005.fits",
                                            f"{base}/sweep-150p005-155p010.fits"]
    assert "2 of 3 sweep(s) meet the footprint" in result.output
    listing = tmp_path / "listing.html"
    listing.write_text('<a href="sweep-150p000-155p005.fits">x</a>')
    result = runner.invoke(main, ["index", "--listing", str(listing), "--base-url",
                                  "https://example.invalid/sweep/10.1", "--output",
                                  str(tmp_path / "b.txt")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "b.txt").read_text() == (
        "https://example.invalid/sweep/10.1/sweep-150p000-155p005.fits\n")


# --- counting while downloading ----------------------------------------------------------------

def test_streamed_count_equals_the_local_count(config, sample, http_root, tmp_path):
    from halo_lrg.count.local import count_sweep_file
    from halo_lrg.count.streaming import stream_count
    from halo_lrg.science.cuts import get_selection

    base, root, _handler = http_root
    path = sample["paths"][1]
    (root / path.name).write_bytes(path.read_bytes())
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    cfg = fast_retries(config, tmp_dir=str(tmp)).replace(read={"chunk_rows": 1000})
    selection = get_selection("desi-lrg", cfg.cuts)
    got = stream_count(f"{base}/{path.name}", cfg, selection, None)  # 503, cut, then whole
    expected = count_sweep_file(path, selection, 1000)
    assert got.bricks.equals(expected.bricks) and got.rows == expected.rows
    assert list(tmp.iterdir()) == []


def test_a_download_that_fails_before_the_reader_looks_is_reported_as_itself(
        config, http_root, tmp_path, monkeypatch):
    """Whatever the order of the download thread and the reader, a 404 is reported as a 404:
    here the download fails (and removes its file) before the reader has read anything."""
    from halo_lrg.count.streaming import GrowingDownload, stream_count
    from halo_lrg.science.cuts import get_selection

    base, _root, handler = http_root
    handler.faults = False

    def start_and_finish(self):
        threading.Thread.start(self)
        self.join()

    monkeypatch.setattr(GrowingDownload, "start", start_and_finish)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    cfg = fast_retries(config, tmp_dir=str(tmp))
    with pytest.raises(SourceError, match=r"sweep-000p000-005p005\.fits: HTTP 404 .*no such file"):
        stream_count(f"{base}/sweep-000p000-005p005.fits", cfg,
                     get_selection("seed", cfg.cuts), None)
    assert list(tmp.iterdir()) == []


@pytest.mark.parametrize("kind,message", [
    ("truncated", r"bad\.fits: truncated: the header needs"),  # never counted
    ("missing-column", r"bad\.fits: missing column FLUX_W1"),  # stops the download early
])
def test_streaming_fails_cleanly_on_a_bad_file(config, sample, defects, http_root, tmp_path,
                                               kind, message):
    from halo_lrg.count.streaming import stream_count
    from halo_lrg.fits.reader import SweepError
    from halo_lrg.science.cuts import get_selection

    base, root, handler = http_root
    handler.faults = False
    if kind == "truncated":  # the server's own copy is cut short
        data = sample["paths"][0].read_bytes()
        (root / "bad.fits").write_bytes(data[: len(data) * 2 // 3])
    else:
        (root / "bad.fits").write_bytes(defects[kind].read_bytes())
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    cfg = fast_retries(config, tmp_dir=str(tmp))
    with pytest.raises(SweepError, match=message):
        stream_count(f"{base}/bad.fits", cfg, get_selection("seed", cfg.cuts), None)
    assert list(tmp.iterdir()) == []


def test_tables_the_stream_parser_does_not_cover_fall_back_to_fitsio(config, http_root,
                                                                     tmp_path):
    import fitsio
    import numpy as np

    from halo_lrg.count.local import count_sweep_file
    from halo_lrg.count.streaming import stream_count
    from halo_lrg.science.cuts import get_selection

    base, root, handler = http_root
    handler.faults = False
    data = np.zeros(50, dtype=[("BRICKNAME", "S8"), ("FLUX_R", ">f4"), ("FLUX_Z", ">f4"),
                               ("FLUX_W1", ">f4"), ("MW_TRANSMISSION_R", ">f4"),
                               ("MW_TRANSMISSION_Z", ">f4"), ("MW_TRANSMISSION_W1", ">f4"),
                               ("NOBS", "u2")])  # uint16: stored scaled (TZERO)
    data["BRICKNAME"] = b"1501p025"
    data["FLUX_Z"], data["FLUX_R"], data["FLUX_W1"] = 10.0, 1.0, 100.0
    for band in ("R", "Z", "W1"):
        data[f"MW_TRANSMISSION_{band}"] = 1.0
    fitsio.write(str(root / "scaled.fits"), data, extname="SWEEP")
    cfg = fast_retries(config, tmp_dir=str(tmp_path))
    selection = get_selection("seed", cfg.cuts)
    got = stream_count(f"{base}/scaled.fits", cfg, selection, None)
    assert got.bricks.equals(count_sweep_file(root / "scaled.fits", selection, 10).bricks)
    assert got.lrg == 50


def test_s3_streamed_count_follows_out_of_order_parts(config, sample, s3, tmp_path):
    from halo_lrg.count.local import count_sweep_file
    from halo_lrg.count.streaming import stream_count
    from halo_lrg.science.cuts import get_selection

    path = sample["paths"][2]
    s3.upload_file(str(path), BUCKET, "p.fits")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    # Small parts and chunks: many ranged GETs complete out of order while the reader waits
    # on the contiguous prefix.
    cfg = config.replace(remote={"s3_endpoint_url": os.environ["AWS_ENDPOINT_URL"],
                                 "s3_part_bytes": 100_003, "s3_max_concurrency": 6,
                                 "tmp_dir": str(tmp)}, read={"chunk_rows": 500})
    selection = get_selection("desi-lrg", cfg.cuts)
    got = stream_count(f"s3://{BUCKET}/p.fits", cfg, selection, None)
    expected = count_sweep_file(path, selection, 500)
    assert got.bricks.equals(expected.bricks) and got.rows == expected.rows
    assert list(tmp.iterdir()) == []
    with pytest.raises(SourceError, match=r"s3://halo-test/none\.fits: 404"):
        stream_count(f"s3://{BUCKET}/none.fits", cfg, selection, None)
    assert list(tmp.iterdir()) == []
