"""Durable runs: per-file partials stored as files complete, resumed after a kill, reused only
when a recount would be identical; --no-resume and --retry-failed."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import ClassVar

import pytest
from click.testing import CliRunner

from halo_lrg.cli import main
from halo_lrg.config import load_config
from halo_lrg.io.fetch import InputIdentity
from halo_lrg.spark.job import file_task, read_partial
from halo_lrg.spark.run import JobSpec, run_job
from halo_lrg.survey.names import SweepBox, parse_sweep_name, sweep_name
from halo_lrg.survey.synth import generate_sample, generate_sweep, write_defect
from test_http_ranges import fresh, loopback

ROWS = 2000


# --- a server that counts what is fetched ------------------------------------------------------

class CountingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a directory, counting GETs of .fits paths (HEADs are not reads), each held
    ``delay`` seconds before it is answered."""

    gets: ClassVar[dict] = {}
    delay: ClassVar[float] = 0.0
    lock = threading.Lock()

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path.endswith(".fits"):
            with self.lock:
                self.gets[self.path] = self.gets.get(self.path, 0) + 1
            if self.delay:
                time.sleep(self.delay)
        super().do_GET()


@pytest.fixture
def served(tmp_path):
    """(base URL, served directory, handler class) of a loopback HTTP server."""
    root = tmp_path / "www"
    root.mkdir()
    handler = fresh(CountingHandler, gets={}, delay=0.0)
    with loopback(functools.partial(handler, directory=str(root))) as base:
        yield base, root, handler


def sweeps(directory: Path, files: int, seed: int = 3) -> list[Path]:
    return [Path(s.path) for s in generate_sample(directory, files=files, rows=ROWS, seed=seed)]


def write_index(path: Path, entries) -> Path:
    path.write_text("".join(f"{e}\n" for e in entries))
    return path


def invoke(*args: str):
    return CliRunner().invoke(main, ["run", *args], catch_exceptions=False)


def clean_csv(spark, config, paths, out: Path) -> bytes:
    """The CSV of a fresh run over local copies of the same files."""
    index = write_index(out.parent / f"{out.name}-index.txt", paths)
    run_job(spark, JobSpec(str(index), str(out), config.replace(run={"resume": False})),
            emit=lambda _line: None)
    return (out / "lrg_counts_per_brick" / "part-00000.csv").read_bytes()


def partial_files(out: Path) -> list[Path]:
    folder = out / "_partials"
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".")) \
        if folder.exists() else []


def manifest(out: Path, name: str = "manifest.json") -> dict:
    return json.loads((out / name).read_text())


def settled(seen: set, look, quiet: float = 2.0, limit: float = 60.0) -> set:
    """``look()`` once it has not changed for ``quiet`` seconds."""
    deadline, since = time.monotonic() + limit, time.monotonic()
    while time.monotonic() - since < quiet and time.monotonic() < deadline:
        time.sleep(0.1)
        now = look()
        if now != seen:
            seen, since = now, time.monotonic()
    return seen


def gets(handler) -> dict:
    with handler.lock:
        return dict(handler.gets)


# --- (a) killed after K of N files -------------------------------------------------------------

@pytest.mark.spark
def test_a_run_killed_after_k_files_resumes_with_the_rest(spark, config, served, tmp_path):
    base, root, handler = served
    n, k = 6, 2
    paths = sweeps(root, n)
    index = write_index(tmp_path / "index.txt", [f"{base}/{p.name}" for p in paths])
    expected = clean_csv(spark, config, paths, tmp_path / "clean")
    out = tmp_path / "out"
    handler.delay = 0.6  # per file: the kill lands between two files' partials
    with open(tmp_path / "killed-run.log", "wb") as log:
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("halo-lrg")), "run", "--index", str(index),
             "--output", str(out), "--master", "local[1]"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 180
            while len(partial_files(out)) < k:
                assert proc.poll() is None, (tmp_path / "killed-run.log").read_text()
                assert time.monotonic() < deadline, "no partials appeared"
                time.sleep(0.02)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)  # the driver, its JVM and Python workers
            proc.wait()
    # A Python worker outside the killed group may finish the file it is reading (and the
    # rest of its task's files) before it finds the JVM gone: what it stores is whole and
    # valid, and the rerun must reuse it too. Wait until nothing more appears.
    stored = settled({p.name for p in partial_files(out)}, lambda: {
        p.name for p in partial_files(out)})
    assert k <= len(stored) < n
    assert not (out / "_SUCCESS").exists() and not (out / "manifest.json").exists()
    for path in (out / "_partials").iterdir():  # whole JSON documents, never a torn write
        if not path.name.startswith("."):
            json.loads(path.read_text())

    handler.delay = 0.0
    handler.gets.clear()
    result = invoke("--index", str(index), "--output", str(out))
    assert result.exit_code == 0, result.output
    fetched = gets(handler)
    assert sum(fetched.values()) == n - len(stored)  # only the files without a partial
    reused = {f["uri"] for f in manifest(out)["files"] if f["reused"]}
    assert len(reused) == len(stored)
    assert not {f"/{Path(uri).name}" for uri in reused} & set(fetched)
    assert (out / "lrg_counts_per_brick" / "part-00000.csv").read_bytes() == expected
    assert manifest(out)["totals"]["files_reused"] == len(stored)
    assert f"reused: {len(stored)} file(s) from stored partials" in result.output


# --- (b) a changed input is counted again ------------------------------------------------------

@pytest.mark.spark
def test_a_changed_input_is_recounted_not_reused(spark, config, tmp_path):
    paths = sweeps(tmp_path / "data", 3)
    index = write_index(tmp_path / "index.txt", paths)
    out = tmp_path / "out"
    assert invoke("--index", str(index), "--output", str(out)).exit_code == 0
    before = {p.name for p in partial_files(out)}
    changed = paths[1]
    box = parse_sweep_name(changed.name)
    size = changed.stat().st_size
    generate_sweep(changed, box, ROWS, seed=99)  # same name, same size, other objects
    assert changed.stat().st_size == size
    result = invoke("--index", str(index), "--output", str(out))
    assert result.exit_code == 0, result.output
    files = {Path(f["uri"]).name: f for f in manifest(out)["files"]}
    assert [name for name, f in files.items() if not f["reused"]] == [changed.name]
    assert files[changed.name]["partial"] == "saved"
    assert (out / "lrg_counts_per_brick" / "part-00000.csv").read_bytes() == \
        clean_csv(spark, config, paths, tmp_path / "clean")
    after = {p.name for p in partial_files(out)}
    assert before < after and len(after - before) == 1  # the stale one is left, unused


def test_the_key_covers_input_selection_footprint_and_version(config):
    from halo_lrg.science.footprint import Footprint

    identity = InputIdentity("/d/sweep-150p000-155p005.fits", 1000, modified="1")
    key = file_task(identity, None, config, None).partial_key
    variants = [
        file_task(InputIdentity(identity.uri, 1001, modified="1"), None, config, None),
        file_task(InputIdentity(identity.uri, 1000, modified="2"), None, config, None),
        file_task(InputIdentity("/e/sweep-150p000-155p005.fits", 1000, modified="1"), None,
                  config, None),
        file_task(identity, "ab" * 32, config, None),
        file_task(identity, None, config.replace(cuts={"lrg_z_mag_max": 20.0}), None),
        file_task(identity, None, config.replace(cuts={"selection": "desi-lrg"}), None),
        file_task(identity, None, config, Footprint(150, 151, 0, 1)),
    ]
    keys = [t.partial_key for t in variants]
    assert key.startswith("sweep-150p000-155p005.fits-") and key not in keys
    assert len(set(keys)) == len(keys)
    # what does not change a count does not change the key
    assert file_task(identity, None, config.replace(read={"chunk_rows": 7}), None
                     ).partial_key == key
    # an input whose identity is unknown is never stored nor reused
    unknown = file_task(InputIdentity(identity.uri, 1000), None, config, None)
    assert (unknown.partial_key, unknown.partial_header) == (None, None)


def test_a_partial_is_read_only_when_its_header_matches(config):
    import numpy as np

    from halo_lrg.count.local import SweepCount
    from halo_lrg.io.output import partial_bytes
    from halo_lrg.spark.job import FileResult, partial_record

    identity = InputIdentity("/d/s.fits", 10, modified="5")
    task = file_task(identity, None, config, None)
    counts = SweepCount("/d/s.fits", np.array(["1500p000", "1501p000"]), np.array([7, 3]),
                        np.array([2, 0]), rows=10, objects=10, lrg=2, seconds=0.5)
    status = FileResult("/d/s.fits", "ok", 10, 10, 2, 0.5, sha256="cd" * 32)
    data = partial_bytes(partial_record(task, counts, status))
    # the same record is the same bytes, whatever the attempt took
    assert partial_bytes(partial_record(task, counts, FileResult(
        "/d/s.fits", "ok", 10, 10, 2, 9.9, sha256="cd" * 32))) == data
    result, frame = read_partial(data, task, "/d/s.fits", 10)
    assert result.reused and result.rows == 10 and result.lrg == 2
    assert result.sha256 == "cd" * 32 and result.partial == "reused"
    assert frame["brickname"].tolist() == ["1500p000", "1501p000"]
    assert frame["lrg_count"].tolist() == [2, 0]
    other = file_task(InputIdentity("/d/s.fits", 10, modified="6"), None, config, None)
    assert read_partial(data, other, "/d/s.fits", 10) is None
    assert read_partial(data[:-20], task, "/d/s.fits", 10) is None  # torn: not used


# --- (c) --no-resume reads everything ----------------------------------------------------------

@pytest.mark.spark
def test_no_resume_reads_every_file_and_resume_none(spark, config, served, tmp_path):
    base, root, handler = served
    paths = sweeps(root, 3)
    index = write_index(tmp_path / "index.txt", [f"{base}/{p.name}" for p in paths])
    out = tmp_path / "out"
    assert invoke("--index", str(index), "--output", str(out)).exit_code == 0
    first = (out / "lrg_counts_per_brick" / "part-00000.csv").read_bytes()
    assert sum(gets(handler).values()) == 3
    handler.gets.clear()
    result = invoke("--index", str(index), "--output", str(out))  # resumed: nothing read
    assert result.exit_code == 0, result.output
    assert gets(handler) == {}
    assert manifest(out)["resume"] == "resume"
    assert manifest(out)["totals"]["files_reused"] == 3
    result = invoke("--index", str(index), "--output", str(out), "--no-resume")
    assert result.exit_code == 0, result.output
    assert gets(handler) == {f"/{p.name}": 1 for p in paths}
    assert manifest(out)["resume"] == "off"
    assert not any(f["reused"] for f in manifest(out)["files"])
    assert (out / "lrg_counts_per_brick" / "part-00000.csv").read_bytes() == first


# --- (d) --retry-failed ------------------------------------------------------------------------

@pytest.mark.spark
def test_retry_failed_reads_only_the_file_that_failed(spark, config, served, tmp_path):
    base, root, handler = served
    paths = sweeps(root, 3)
    bad_box = SweepBox(160.0, 165.0, 0.0, 5.0)
    bad = root / sweep_name(bad_box)
    write_defect(bad, "truncated")
    index = write_index(tmp_path / "index.txt", [f"{base}/{p.name}" for p in [*paths, bad]])
    out = tmp_path / "out"
    result = invoke("--index", str(index), "--output", str(out), "--on-error", "skip")
    assert result.exit_code == 3, result.output
    failed = [f["uri"] for f in manifest(out)["files"] if f["status"] == "failed"]
    assert failed == [f"{base}/{bad.name}"]

    generate_sweep(bad, bad_box, ROWS, seed=5)  # fixed
    handler.gets.clear()
    result = invoke("--index", str(index), "--output", str(out), "--retry-failed")
    assert result.exit_code == 0, result.output
    assert gets(handler) == {f"/{bad.name}": 1}
    record = manifest(out)
    assert record["state"] == "complete" and record["resume"] == "retry-failed"
    assert record["totals"]["files_reused"] == 3
    assert (out / "lrg_counts_per_brick" / "part-00000.csv").read_bytes() == \
        clean_csv(spark, config, [*paths, bad], tmp_path / "clean")


@pytest.mark.spark
def test_retry_failed_refuses_to_count_anything_else(spark, config, tmp_path):
    paths = sweeps(tmp_path / "data", 2)
    index = write_index(tmp_path / "index.txt", paths)
    out = tmp_path / "out"
    result = invoke("--index", str(index), "--output", str(out), "--retry-failed")
    assert result.exit_code == 1 and "--retry-failed: no previous run at" in result.output
    assert not (out / "_last_failure.json").exists()  # nothing was run, nothing recorded
    assert invoke("--index", str(index), "--output", str(out)).exit_code == 0
    result = invoke("--index", str(index), "--output", str(out), "--retry-failed")
    assert result.exit_code == 0, result.output  # nothing failed: everything reused
    assert manifest(out)["totals"]["files_reused"] == 2
    generate_sweep(paths[0], parse_sweep_name(paths[0].name), ROWS, seed=42)  # changed
    previous = (out / "manifest.json").read_bytes()
    result = invoke("--index", str(index), "--output", str(out), "--retry-failed")
    assert result.exit_code == 1
    assert f"--retry-failed: {paths[0]} did not fail in the previous run" in result.output
    assert (out / "manifest.json").read_bytes() == previous
    result = invoke("--index", str(index), "--output", str(out), "--retry-failed",
                    "--no-resume")
    assert result.exit_code == 2 and "cannot be combined with --no-resume" in result.output


def test_resume_is_configured_in_run(tmp_path):
    assert load_config().run.resume is True
    assert load_config(env={"HALO_LRG_RUN__RESUME": "false"}).run.resume is False


# --- on S3: tasks store partials with one PUT each; the driver lists and loads them -----------

@pytest.mark.spark
def test_partials_on_s3_are_written_by_tasks_and_reused(spark, config, tmp_path, monkeypatch):
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)  # the tasks get it through config
        monkeypatch.setenv("HALO_LRG_REMOTE__STREAM_REMOTE", "false")  # download, hash, count
        s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint)
        s3.create_bucket(Bucket="halo-resume")
        paths = sweeps(tmp_path / "data", 2)
        uris = []
        for path in paths:
            s3.upload_file(str(path), "halo-resume", f"sweeps/{path.name}")
            uris.append(f"s3://halo-resume/sweeps/{path.name}")
        index = write_index(tmp_path / "index.txt", uris)
        out = "s3://halo-resume/out"
        assert invoke("--index", str(index), "--output", out).exit_code == 0
        stored = sorted(o["Key"] for o in s3.list_objects_v2(
            Bucket="halo-resume", Prefix="out/_partials/")["Contents"])
        assert len(stored) == 2 and all(k.endswith(".json") for k in stored)
        first = s3.get_object(Bucket="halo-resume",
                              Key="out/lrg_counts_per_brick/part-00000.csv")["Body"].read()
        result = invoke("--index", str(index), "--output", out)
        assert result.exit_code == 0, result.output
        record = json.loads(s3.get_object(Bucket="halo-resume",
                                          Key="out/manifest.json")["Body"].read())
        assert record["totals"]["files_reused"] == 2
        assert [f["sha256"] for f in record["files"]] == [  # S3 downloads are hashed
            hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
        assert s3.get_object(Bucket="halo-resume", Key="out/lrg_counts_per_brick/"
                             "part-00000.csv")["Body"].read() == first
    finally:
        server.stop()
