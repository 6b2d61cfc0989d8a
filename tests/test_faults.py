"""Faults a run survives (issue "Durable runs", section 3): a Python worker that dies, an
executor JVM killed mid-run, S3 refusing the result's PUTs, a full disk under the result.

Either the run completes with the counts of a clean run, or it fails with one line and the
previous complete result (CSV, manifest, ``_SUCCESS``) stays byte for byte as it was.

The test session has ONE SparkSession (tests/conftest.py); runs that need another master
(``local[2]`` rewritten with retries by ``get_spark``, ``local-cluster``) run in a subprocess
from a small driver script, whose footprint class (pickled by value, as ``__main__``) carries
the fault to the workers: nothing in halo_lrg has a fault seam.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional
from urllib.parse import urlparse

import pytest

from halo_lrg.io.output import (
    COUNTS_DIR,
    COUNTS_FILE,
    OutputError,
    OutputLocation,
    check_complete,
    manifest_bytes,
    output_location,
)
from halo_lrg.science.footprint import Footprint
from halo_lrg.spark.run import JobSpec, RunFailed, run_job
from halo_lrg.spark.session import with_task_attempts

CSV = f"{COUNTS_DIR}/{COUNTS_FILE}"
RESULT = (CSV, "manifest.json", "_SUCCESS")
BUCKET = "halo-faults"


def quiet(_line: str) -> None:
    pass


def write_index(path: Path, entries) -> Path:
    path.write_text("".join(f"{e}\n" for e in entries))
    return path


def result_bytes(out: Path) -> dict[str, Optional[bytes]]:
    """The result's files (None: missing)."""
    return {name: (out / name).read_bytes() if (out / name).exists() else None
            for name in RESULT}


def clean_csv(spark, config, index: Path, out: Path, footprint=None) -> bytes:
    run_job(spark, JobSpec(str(index), str(out), config, footprint=footprint), emit=quiet)
    return (out / CSV).read_bytes()


def python_env() -> dict[str, str]:
    """This interpreter for the driver and the workers (its venv has halo_lrg)."""
    return {**os.environ, "PYSPARK_PYTHON": sys.executable,
            "PYSPARK_DRIVER_PYTHON": sys.executable}


# --- 1. local masters retry a task whose worker dies -------------------------------------------

@pytest.mark.parametrize(("given", "expected"), [
    ("local", "local[1,2]"),
    ("local[2]", "local[2,2]"),
    ("local[*]", "local[*,2]"),
    ("local[16]", "local[16,2]"),
    ("local[2,5]", "local[2,5]"),  # its own failure count stands
    ("local[*, 3]", "local[*, 3]"),
    ("local-cluster[2,1,1024]", "local-cluster[2,1,1024]"),  # maxFailures applies there
    ("spark://host:7077", "spark://host:7077"),
    ("yarn", "yarn"),
])
def test_local_masters_without_a_failure_count_get_task_attempts(given, expected):
    assert with_task_attempts(given, 2) == expected


def test_one_attempt_leaves_the_master_and_fewer_is_refused():
    assert with_task_attempts("local[2]", 1) == "local[2]"
    assert with_task_attempts("local", 4) == "local[1,4]"
    with pytest.raises(ValueError, match="local_task_attempts must be at least 1, got 0"):
        with_task_attempts("local[2]", 0)


def test_the_default_is_two_attempts(config):
    assert config.run.local_task_attempts == 2


CRASH_ONCE_DRIVER = '''
"""halo-lrg's run on get_spark's local[2], with a footprint whose first use kills its worker."""
import dataclasses
import logging
import os
import sys

from halo_lrg.config import load_config
from halo_lrg.science.footprint import Footprint
from halo_lrg.spark.run import JobSpec, RunFailed, run_job
from halo_lrg.spark.session import get_spark


@dataclasses.dataclass(frozen=True)
class CrashOnce(Footprint):
    """The whole sky; the first ``contains`` of the run (the marker file decides, created
    atomically) ends its Python worker mid-task, as an out-of-memory kill would."""

    marker: str = ""

    def contains(self, ra, dec):
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return super().contains(ra, dec)
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        os._exit(1)


logging.basicConfig(level=logging.WARNING)
logging.getLogger("halo_lrg.spark.session").setLevel(logging.INFO)
index, out, marker = sys.argv[1:4]
config = load_config().replace(run={"master": "local[2]", "driver_memory": "1g",
                                    "progress_interval": 0.2})
spark = get_spark(config.run)
print("master:", spark.sparkContext.master, flush=True)
try:
    run_job(spark, JobSpec(index, out, config, footprint=CrashOnce(marker=marker)))
except RunFailed as exc:
    print(f"Error: {exc}", flush=True)
    sys.exit(1)
finally:
    spark.stop()
'''


@pytest.mark.spark
def test_a_python_worker_that_dies_once_is_retried_with_the_same_counts(spark, config, sample,
                                                                        tmp_path):
    driver = tmp_path / "crash_once.py"
    driver.write_text(CRASH_ONCE_DRIVER)
    marker, out = tmp_path / "crashed", tmp_path / "out"
    done = subprocess.run([sys.executable, str(driver), str(sample["index"]), str(out),
                           str(marker)], capture_output=True, text=True, env=python_env(),
                          timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "master: local[2,2]" in done.stdout  # get_spark gave local[2] a second attempt
    assert "master local[2] -> local[2,2]: a task whose worker dies is tried up to 2 " \
           "times (run.local_task_attempts)" in done.stderr  # and said so
    assert marker.exists()  # a worker did die mid-task...
    assert "Python worker exited unexpectedly" in done.stderr  # ...and Spark saw it
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["state"] == "complete"
    assert [f["status"] for f in manifest["files"]] == ["ok"] * len(sample["paths"])
    expected = clean_csv(spark, config, sample["index"], tmp_path / "clean", Footprint())
    assert (out / CSV).read_bytes() == expected
    check_complete(OutputLocation(str(out), config))


# --- 2. an executor JVM killed mid-run -----------------------------------------------------------

SLOW_DRIVER = '''
"""halo-lrg's run under spark-submit, with a footprint that holds each task until told."""
import dataclasses
import os
import sys
import time

from halo_lrg.config import load_config
from halo_lrg.science.footprint import Footprint
from halo_lrg.spark.run import JobSpec, RunFailed, run_job
from halo_lrg.spark.session import get_spark


@dataclasses.dataclass(frozen=True)
class HeldUntilTold(Footprint):
    """The whole sky; each ``contains`` leaves ``<worker pid>.running`` in ``signals`` and
    waits there until ``signals/go`` exists."""

    signals: str = ""

    def contains(self, ra, dec):
        open(os.path.join(self.signals, f"{os.getpid()}.running"), "w").close()
        deadline = time.monotonic() + 240
        while not os.path.exists(os.path.join(self.signals, "go")):
            if time.monotonic() > deadline:
                raise TimeoutError("never told to go")
            time.sleep(0.05)
        return super().contains(ra, dec)


index, out, signals = sys.argv[1:4]
config = load_config().replace(run={"progress_interval": 0.2})
spark = get_spark(config.run)
print("master:", spark.sparkContext.master, flush=True)
try:
    run_job(spark, JobSpec(index, out, config, footprint=HeldUntilTold(signals=signals)))
except RunFailed as exc:
    print(f"Error: {exc}", flush=True)
    sys.exit(1)
finally:
    spark.stop()
'''


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[1])


def command_of(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as fh:
        return fh.read().replace(b"\0", b" ").decode(errors="replace")


def executor_jvm_of(worker: int) -> int:
    """The CoarseGrainedExecutorBackend JVM above a Python worker (worker → daemon → JVM)."""
    pid = worker
    while pid > 1:
        if "CoarseGrainedExecutorBackend" in command_of(pid):
            return pid
        pid = parent_of(pid)
    raise AssertionError(f"no executor JVM above Python worker {worker}")


def private_spark_home(tmp_path: Path) -> Path:
    """pip pyspark's SPARK_HOME seen through links: a local cluster writes its work/ under
    SPARK_HOME, here instead of into site-packages."""
    import pyspark

    real = Path(pyspark.__file__).parent
    home = tmp_path / "spark-home"
    home.mkdir()
    for entry in ("bin", "jars", "python", "sbin", "conf", "data"):
        if (real / entry).exists():
            (home / entry).symlink_to(real / entry)
    return home


@pytest.mark.spark
@pytest.mark.slow
def test_an_executor_jvm_killed_mid_run_gives_the_same_counts(spark, config, sample, tmp_path):
    driver = tmp_path / "held.py"
    driver.write_text(SLOW_DRIVER)
    signals, out = tmp_path / "signals", tmp_path / "out"
    signals.mkdir()
    submit = Path(sys.executable).with_name("spark-submit")
    env = {**python_env(), "SPARK_HOME": str(private_spark_home(tmp_path))}
    log_path = tmp_path / "spark-submit.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [str(submit), "--master", "local-cluster[2,1,1024]",
             "--conf", "spark.ui.enabled=false",
             "--conf", "spark.executor.extraJavaOptions=-XX:TieredStopAtLevel=1",
             "--driver-java-options", "-XX:TieredStopAtLevel=1",
             str(driver), str(sample["index"]), str(out), str(signals)],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not (running := sorted(signals.glob("*.running"))):
            assert proc.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, "no task started"
            time.sleep(0.05)
        executor = executor_jvm_of(int(running[0].name.split(".")[0]))
        assert parent_of(executor) == proc.pid  # one of this run's executors
        os.kill(executor, signal.SIGKILL)  # while it runs a task
        (signals / "go").touch()
        returncode = proc.wait(timeout=240)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = log_path.read_text()
    assert returncode == 0, text[-3000:]
    assert "master: local-cluster[2,1,1024]" in text
    assert "Lost executor" in text and "exited with code 137" in text  # the kill was seen
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["state"] == "complete"
    assert [f["status"] for f in manifest["files"]] == ["ok"] * len(sample["paths"])
    expected = clean_csv(spark, config, sample["index"], tmp_path / "clean", Footprint())
    assert (out / CSV).read_bytes() == expected


# --- 3. S3 refusing the result's PUTs ------------------------------------------------------------

def fast_retries(config, **remote):
    return config.replace(remote={"backoff_base_seconds": 0.01, "backoff_max_seconds": 0.05,
                                  **remote}, run={"progress_interval": 0.2})


class _Body:
    """The ``raw`` of a botocore AWSResponse: what ``.content`` streams."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_kwargs):
        yield self.data


@contextlib.contextmanager
def failing_puts(config, output_uri: str, times: Optional[int],
                 objects: tuple[str, ...] = (f"{COUNTS_DIR}/", "manifest.json")):
    """S3 answers 500 InternalError to the first ``times`` PUTs (every one: None) of each
    of the result's ``objects`` at ``output_uri`` (names or ``dir/`` prefixes), through a
    ``before-send`` handler on halo_lrg's cached client: the driver writes the result, so
    this process's client is the one used (the tasks' partials go through their own). Yields
    the paths refused, in order."""
    from botocore.awsrequest import AWSResponse

    from halo_lrg.io.fetch import with_resolved_endpoint
    from halo_lrg.io.s3 import client

    prefix = urlparse(output_uri).path.strip("/")
    bucket = urlparse(output_uri).netloc
    targets = tuple(f"/{bucket}/{prefix}/{name}" for name in objects)
    refused: list[str] = []

    def refuse(request, **_kwargs):
        path = urlparse(request.url).path
        if not any(path.startswith(t) for t in targets):
            return None
        if times is not None and refused.count(path) >= times:
            return None
        refused.append(path)
        body = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>'
                b"<Message>We encountered an internal error. Please try again.</Message>"
                b"<RequestId>faults</RequestId></Error>")
        return AWSResponse(request.url, 500, {"Content-Type": "application/xml",
                                              "Content-Length": str(len(body))}, _Body(body))

    events = client(with_resolved_endpoint(config).remote).meta.events
    events.register("before-send.s3.PutObject", refuse, unique_id="test-faults-refuse")
    try:
        yield refused
    finally:
        events.unregister("before-send.s3.PutObject", unique_id="test-faults-refuse")


def s3_result(s3, prefix: str) -> dict[str, Optional[bytes]]:
    """The result's objects (None: missing)."""
    listed = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/")
              .get("Contents", [])}
    return {name: s3.get_object(Bucket=BUCKET, Key=f"{prefix}/{name}")["Body"].read()
            if f"{prefix}/{name}" in listed else None for name in RESULT}


@pytest.mark.spark
def test_a_result_put_failing_once_with_500_is_retried(spark, config, sample, s3, tmp_path):
    cfg = fast_retries(config)
    out = f"s3://{BUCKET}/once"
    with failing_puts(cfg, out, times=1) as refused:
        result = run_job(spark, JobSpec(str(sample["index"]), out, cfg), emit=quiet)
    assert refused == [f"/{BUCKET}/once/{CSV}", f"/{BUCKET}/once/manifest.json"]
    assert result.state == "complete"
    assert s3_result(s3, "once")[CSV] == clean_csv(spark, config, sample["index"],
                                                   tmp_path / "clean")
    check_complete(output_location(out, cfg))


@pytest.mark.spark
def test_result_puts_failing_for_good_leave_the_previous_result(spark, config, sample, s3):
    cfg = fast_retries(config, max_attempts=2)
    out = f"s3://{BUCKET}/kept"
    index = f"s3://{BUCKET}/index.txt"
    s3.put_object(Bucket=BUCKET, Key="index.txt",
                  Body="".join(f"{p}\n" for p in sample["paths"][:2]).encode())
    run_job(spark, JobSpec(index, out, cfg), emit=quiet)  # the previous result: 2 files
    previous = s3_result(s3, "kept")
    s3.put_object(Bucket=BUCKET, Key="index.txt",
                  Body="".join(f"{p}\n" for p in sample["paths"]).encode())
    with failing_puts(cfg, out, times=None) as refused, pytest.raises(RunFailed) as info:
        run_job(spark, JobSpec(index, out, cfg), emit=quiet)
    assert refused and all(path == f"/{BUCKET}/kept/{CSV}" for path in refused)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"cannot write the result: {out}/{CSV}: InternalError"), message
    assert "gave up after 2 attempts" in message
    assert s3_result(s3, "kept") == previous  # CSV, manifest and _SUCCESS as they were
    assert len(check_complete(output_location(out, cfg))["files"]) == 2


# --- 4. the local disk fills up while the result is written --------------------------------------

@pytest.mark.spark
def test_a_full_disk_fails_in_one_line_and_keeps_the_previous_result(spark, config, sample,
                                                                    tmp_path, monkeypatch):
    """ENOSPC from fsync (where ext4's delayed allocation or NFS report it) for every write
    with data under the output, as on a full disk; files the tasks write (partials, other
    processes) are not affected."""
    out = tmp_path / "out"
    two = write_index(tmp_path / "two.txt", sample["paths"][:2])
    run_job(spark, JobSpec(str(two), str(out), config), emit=quiet)
    previous = result_bytes(out)
    real_fsync = os.fsync

    def full_disk_fsync(fd):
        where = os.readlink(f"/proc/self/fd/{fd}")
        if where.startswith(f"{out}{os.sep}") and os.fstat(fd).st_size > 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full_disk_fsync)
    with pytest.raises(RunFailed) as info:
        run_job(spark, JobSpec(str(sample["index"]), str(out), config), emit=quiet)
    monkeypatch.undo()
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"cannot write the result: {out}/"), message
    assert "No space left on device" in message
    assert result_bytes(out) == previous
    assert len(check_complete(OutputLocation(str(out), config))["files"]) == 2
    # nothing half-written left behind (temp files and staging directories are hidden)
    assert not [p.name for p in out.iterdir() if p.name.startswith(f".{COUNTS_DIR}")
                or p.name.startswith(".manifest.json") or p.name.startswith("._SUCCESS")]


ON_A_FULL_TMPFS = '''
import errno, hashlib, json, os, sys
from halo_lrg.config import load_config
from halo_lrg.io.output import OutputError, OutputLocation, manifest_bytes

root = sys.argv[1]
out = OutputLocation(os.path.join(root, "out"), load_config())
def publish(csv):
    manifest = {"counts_sha256": hashlib.sha256(csv).hexdigest()}
    out.publish(csv, manifest_bytes(manifest), {"lrg_density.csv": b"density\\n"})
def result():
    names = ("lrg_counts_per_brick/part-00000.csv", "manifest.json", "_SUCCESS",
             "lrg_density.csv")
    return {n: open(os.path.join(out.root, n), "rb").read().hex() for n in names}
publish(b"brickname,lrg_count\\n1500p000,1\\n")
before = result()
with open(os.path.join(root, "filler"), "wb", buffering=0) as fh:
    try:
        while True:
            fh.write(b"x" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
error = None
try:
    publish(b"brickname,lrg_count\\n1500p000,2\\n1501p000,5\\n")
except OutputError as exc:
    error = str(exc)
print(json.dumps({"error": error, "unchanged": result() == before,
                  "names": sorted(os.listdir(out.root))}))
'''


def tmpfs_works(where: Path) -> bool:
    """Can this user mount a tmpfs in a private user+mount namespace (unshare -rm)?"""
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c",
                            f"mount -t tmpfs -o size=64k tmpfs '{where}'"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


def test_a_really_full_tmpfs_keeps_the_previous_result(tmp_path):
    """The same on a real full filesystem: a 1 MiB tmpfs in a private mount namespace
    (skipped where user namespaces or mounting are not allowed)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if not tmpfs_works(mount):
        pytest.skip("cannot mount a tmpfs in a user namespace here (unshare -rm)")
    script = tmp_path / "full.py"
    script.write_text(ON_A_FULL_TMPFS)
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", 'mount -t tmpfs -o size=1m tmpfs "$1" && shift && '
         'exec "$@"', "sh", str(mount), sys.executable, str(script), str(mount)],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["error"] is not None, "publishing on a full disk did not fail"
    assert "\n" not in report["error"]
    assert report["error"].startswith(f"{mount}/out/"), report["error"]
    assert "No space left on device" in report["error"]
    assert report["unchanged"]
    assert report["names"] == ["_SUCCESS", COUNTS_DIR, "lrg_density.csv", "manifest.json"]


def test_a_publish_that_fails_on_s3_after_the_csv_says_there_is_no_result(config, s3):
    """Past the CSV's PUT the previous result is gone (S3 has no rename): no _SUCCESS, and
    the message says so, never a CSV and manifest of two runs passed off as one."""
    cfg = fast_retries(config, max_attempts=1)
    out = f"s3://{BUCKET}/later"
    location = output_location(out, cfg)
    old = b"brickname,lrg_count\n1500p000,1\n"
    location.publish(old, manifest_bytes({"counts_sha256": hashlib.sha256(old).hexdigest()}))
    check_complete(location)
    new = b"brickname,lrg_count\n1500p000,2\n"
    with failing_puts(cfg, out, times=None, objects=("manifest.json",)), \
            pytest.raises(OutputError) as info:
        location.publish(new, manifest_bytes({"counts_sha256": "x"}))  # the CSV lands
    assert "\n" not in str(info.value)
    assert str(info.value).endswith(f"{out} has no complete result now (_SUCCESS missing)")
    assert "_SUCCESS" not in {o["Key"].rsplit("/", 1)[-1] for o in
                              s3.list_objects_v2(Bucket=BUCKET, Prefix="later/")["Contents"]}
