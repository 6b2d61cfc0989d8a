"""Talking to AWS for an EMR run: find or build the wheel, size the inputs, upload the
artefacts, launch, poll (with the job's progress), and fetch a complete result."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Union

from halo_lrg import __version__
from halo_lrg.config import Config
from halo_lrg.io.output import (
    COUNTS_DIR,
    COUNTS_FILE,
    MANIFEST_FILE,
    PROGRESS_FILE,
    IncompleteResult,
    OutputError,
    OutputLocation,
    check_complete,
)
from halo_lrg.io.uri import is_s3, scheme_of, split_s3_uri

PROJECT_ROOT = Path(__file__).resolve().parents[3]
WHEEL_NAME = f"halo_lrg-{__version__}-py3-none-any.whl"
STEP_DONE = {"COMPLETED", "CANCELLED", "FAILED", "INTERRUPTED"}
CLUSTER_DONE = {"TERMINATED", "TERMINATED_WITH_ERRORS"}
#: What the wheel is built from in a source checkout: a dist/ wheel older than any of these
#: is rebuilt.
WHEEL_SOURCES = ("src/halo_lrg", "pyproject.toml")
#: A _progress.json last written this long before the cluster was created belongs to an
#: earlier run with the same output prefix.
STALE_PROGRESS_SECONDS = 60
NO_WHEEL = ("pip wheel --no-deps halo-lrg -w dist/ (or `make wheel` in a checkout), then "
            "pass --wheel dist/" + WHEEL_NAME)


class LaunchError(RuntimeError):
    """An EMR operation failed; one line saying what and, where known, why."""


def aws_session(profile: Optional[str], region: str) -> Any:
    import boto3
    from botocore.exceptions import ProfileNotFound

    try:
        return boto3.session.Session(profile_name=profile or None, region_name=region)
    except ProfileNotFound as exc:
        raise LaunchError(str(exc)) from None


def _aws(action: str, call: Callable[[], Any]) -> Any:
    """Run one AWS call, turning SDK exceptions into a one-line LaunchError."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        return call()
    except NoCredentialsError:
        raise LaunchError(f"{action}: no AWS credentials found (set AWS_PROFILE or "
                          "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or use --profile)") from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise LaunchError(f"{action}: {error.get('Code')}: {error.get('Message')}") from None
    except BotoCoreError as exc:
        raise LaunchError(f"{action}: {exc}") from None


def _missing(exc: BaseException) -> bool:
    """A ClientError meaning "no such object"."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code")) in {"404", "NoSuchKey", "NotFound"}


# --- the wheel -----------------------------------------------------------------------------------

def in_source_checkout(root: Optional[Path] = None) -> bool:
    """Is this halo_lrg imported from a source checkout (pyproject.toml beside src/)?"""
    root = root or PROJECT_ROOT
    return (root / "pyproject.toml").is_file() and (root / "src" / "halo_lrg").is_dir()


def newer_source(wheel: Path, root: Optional[Path] = None) -> Optional[Path]:
    """A file the wheel is built from that changed after the wheel was (None: up to date).
    Bytecode caches do not count; symlinks (defaults.toml) count by their target."""
    root = root or PROJECT_ROOT
    built = wheel.stat().st_mtime
    for relative in WHEEL_SOURCES:
        path = root / relative
        candidates = [path] if path.is_file() else (
            p for p in path.rglob("*") if "__pycache__" not in p.parts and p.suffix != ".pyc")
        for candidate in candidates:
            try:
                if candidate.is_file() and candidate.stat().st_mtime > built:
                    return candidate
            except OSError:
                continue
    return None


def _build_copy(root: Path, into: Path) -> Path:
    """A clean copy of what the wheel is built from: no stale build/ or egg-info leaks into
    it, and concurrent builds in the checkout cannot collide."""
    source = into / "source"
    source.mkdir()
    for name in ("pyproject.toml", "setup.cfg", "README.md"):
        if (root / name).is_file():
            shutil.copy2(root / name, source / name)
    for pattern in ("LICEN[CS]E*", "COPYING*", "NOTICE*", "AUTHORS*"):
        for path in root.glob(pattern):
            if path.is_file():
                shutil.copy2(path, source / path.name)
    # symlinks=False: defaults.toml (a link to conf/halo-lrg.toml) is copied as the file.
    shutil.copytree(root / "src", source / "src", symlinks=False,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    return source


def ensure_wheel(dist: Optional[Path] = None, emit: Callable[[str], None] = print) -> Path:
    """dist/halo_lrg-<version>-py3-none-any.whl of this checkout, (re)built when missing or
    older than any file under src/halo_lrg or pyproject.toml."""
    dist = dist or PROJECT_ROOT / "dist"
    wheel = dist / WHEEL_NAME
    reason = "missing"
    if wheel.exists():
        newer = newer_source(wheel)
        if newer is None:
            return wheel
        reason = f"older than {newer.relative_to(PROJECT_ROOT)}"
    if not in_source_checkout():
        raise LaunchError(f"cannot build the wheel: {PROJECT_ROOT} is not a halo-lrg source "
                          f"checkout; {NO_WHEEL}")
    emit(f"building {WHEEL_NAME} ({reason}) ...")
    with tempfile.TemporaryDirectory(prefix="halo-lrg-wheel-") as tmp:
        source = _build_copy(PROJECT_ROOT, Path(tmp))
        out = Path(tmp) / "out"
        command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                   "--no-build-isolation", "-w", str(out), str(source)]
        done = subprocess.run(command, capture_output=True, text=True)
        built = out / WHEEL_NAME
        if done.returncode != 0 or not built.exists():
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise LaunchError(f"building the wheel failed ({shlex.join(command)}): {tail[0]}")
        dist.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built, dist / f".{WHEEL_NAME}.tmp")
        os.replace(dist / f".{WHEEL_NAME}.tmp", wheel)
    return wheel


def _record_hash(data: bytes) -> str:
    import base64

    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def wheel_from_installed(dest: Path) -> Path:
    """A pure-Python wheel of the installed halo_lrg (its files as installed, and its
    METADATA), written deterministically: the same installation gives the same bytes, so a
    resubmission reuses its upload."""
    from importlib import metadata

    import halo_lrg

    package_dir = Path(halo_lrg.__file__).resolve().parent
    try:
        meta = metadata.distribution("halo-lrg").read_text("METADATA")
    except metadata.PackageNotFoundError:
        meta = None
    if not meta or not (package_dir / "__init__.py").is_file() or \
            not (package_dir / "defaults.toml").is_file():
        raise LaunchError(f"cannot find the halo-lrg wheel to upload (halo_lrg is not an "
                          f"installed distribution here): {NO_WHEEL}")
    info = f"halo_lrg-{__version__}.dist-info"
    files: list[tuple[str, bytes]] = []
    for path in sorted(package_dir.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            files.append((f"halo_lrg/{path.relative_to(package_dir).as_posix()}",
                          path.read_bytes()))
    files.append((f"{info}/METADATA", meta.encode()))
    files.append((f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: halo-lrg\n"
                                   b"Root-Is-Purelib: true\nTag: py3-none-any\n"))
    record = "".join(f"{name},{_record_hash(body)},{len(body)}\n" for name, body in files)
    files.append((f"{info}/RECORD", (record + f"{info}/RECORD,,\n").encode()))
    dest.mkdir(parents=True, exist_ok=True)
    wheel = dest / WHEEL_NAME
    tmp = dest / f".{WHEEL_NAME}.tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, body in files:
            entry = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, body)
    os.replace(tmp, wheel)
    return wheel


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "halo-lrg"


def locate_wheel(wheel: Optional[Path] = None, emit: Callable[[str], None] = print,
                 cache: Optional[Path] = None) -> Path:
    """The wheel to upload: ``wheel`` (--wheel) as given; in a source checkout dist/'s,
    rebuilt when stale; otherwise one made from the installed distribution."""
    if wheel is not None:
        if not wheel.is_file():
            raise LaunchError(f"--wheel {wheel}: no such file")
        try:
            with zipfile.ZipFile(wheel) as archive:
                if "halo_lrg/__init__.py" not in archive.namelist():
                    raise LaunchError(f"--wheel {wheel}: not a halo-lrg wheel (no "
                                      "halo_lrg/__init__.py inside)")
        except zipfile.BadZipFile:
            raise LaunchError(f"--wheel {wheel}: not a wheel (not a zip file)") from None
        if not wheel.name.endswith(".whl"):
            raise LaunchError(f"--wheel {wheel}: the file name must end in .whl")
        return wheel
    if in_source_checkout():
        return ensure_wheel(emit=emit)
    built = wheel_from_installed(cache or cache_dir())
    emit(f"using {built} (made from the installed halo-lrg {__version__})")
    return built


# --- sizes of the inputs -----------------------------------------------------------------------

def index_sizes(session: Any, index_uri: str, config: Config, footprint: Any = None
                ) -> list[tuple[str, Optional[int]]]:
    """Every sweep the run will read (the index after footprint and ``run.max_sweeps``, as
    the job selects them) with its size: S3 entries by HEAD with the session's credentials,
    http(s) entries by HTTP HEAD, concurrently; None where unknown."""
    from halo_lrg.survey.index import select_inputs

    bucket, key = split_s3_uri(index_uri, require_key=True)
    s3 = session.client("s3")
    body = _aws(f"reading {index_uri}",
                lambda: s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise LaunchError(f"{index_uri}: not UTF-8 text") from None
    uris = select_inputs(text, footprint, config.run.max_sweeps).uris

    def size(uri: str) -> Optional[int]:
        try:
            if is_s3(uri):
                b, k = split_s3_uri(uri, require_key=True)
                return int(s3.head_object(Bucket=b, Key=k)["ContentLength"])
            if scheme_of(uri) in ("http", "https"):
                from halo_lrg.io.http import content_length

                return content_length(uri, config.remote)
        except Exception:  # unknown: counted as the mean; preflight names bad entries
            return None
        return None

    with ThreadPoolExecutor(max_workers=max(1, config.remote.head_concurrency)) as pool:
        return list(zip(uris, pool.map(size, uris)))


# --- uploads ---------------------------------------------------------------------------------

Body = Union[bytes, Path]


def upload(session: Any, uri: str, body: Body) -> bool:
    """Put ``body`` at ``uri`` unless an object of that size is already there (the keys
    carry a content digest, so same key and size is the same upload). True if uploaded."""
    s3 = session.client("s3")
    bucket, key = split_s3_uri(uri, require_key=True)
    size = body.stat().st_size if isinstance(body, Path) else len(body)
    try:
        if int(s3.head_object(Bucket=bucket, Key=key)["ContentLength"]) == size:
            return False
    except Exception:  # absent, or HEAD not allowed: upload
        pass
    if isinstance(body, Path):
        with open(body, "rb") as fh:
            _aws(f"uploading {uri}", lambda: s3.put_object(Bucket=bucket, Key=key, Body=fh))
    else:
        _aws(f"uploading {uri}", lambda: s3.put_object(Bucket=bucket, Key=key, Body=body))
    return True


def upload_artifacts(session: Any, uploads: Sequence[tuple[str, bytes]],
                     emit: Callable[[str], None] = print) -> None:
    """The artefact set (see ``aws.artifacts``), each object skipped if already there."""
    for uri, body in uploads:
        emit(f"uploaded {uri}" if upload(session, uri, body) else f"unchanged {uri}")


def upload_wheelhouse(session: Any, wheels: Sequence[Path], prefix: str,
                      emit: Callable[[str], None] = print) -> None:
    uploaded = sum(upload(session, f"{prefix.rstrip('/')}/{w.name}", w) for w in wheels)
    emit(f"wheelhouse {prefix}: {uploaded} uploaded, {len(wheels) - uploaded} already there")


def launch(session: Any, request: dict[str, Any]) -> str:
    emr = session.client("emr")
    response = _aws("run_job_flow", lambda: emr.run_job_flow(**request))
    return response["JobFlowId"]


# --- status and progress -----------------------------------------------------------------------

@dataclass
class ClusterStatus:
    cluster_id: str
    state: str
    reason: str
    step_id: Optional[str]
    step_state: Optional[str]
    step_failure: Optional[str]
    step_log: Optional[str]
    output_prefix: Optional[str]
    created: Optional[datetime.datetime] = None

    @property
    def finished(self) -> bool:
        return self.step_state in STEP_DONE or self.state in CLUSTER_DONE

    @property
    def succeeded(self) -> bool:
        # RUNNING is not success, nor is a terminated cluster whose step never completed.
        return self.step_state == "COMPLETED"

    def line(self) -> str:
        step = f"step {self.step_state}" if self.step_state else "no step"
        reason = f" ({self.reason})" if self.reason else ""
        return f"{self.cluster_id}: cluster {self.state}{reason}, {step}"


def cluster_status(session: Any, cluster_id: str) -> ClusterStatus:
    emr = session.client("emr")
    cluster = _aws(f"describe_cluster {cluster_id}",
                   lambda: emr.describe_cluster(ClusterId=cluster_id))["Cluster"]
    status = cluster["Status"]
    reason = status.get("StateChangeReason", {}).get("Message", "")
    created = status.get("Timeline", {}).get("CreationDateTime")
    steps = _aws(f"list_steps {cluster_id}",
                 lambda: emr.list_steps(ClusterId=cluster_id)).get("Steps", [])
    step = steps[-1] if steps else None  # list_steps is newest first; ours is the only one
    step_state = step_failure = step_log = output = None
    if step is not None:
        step_state = step["Status"]["State"]
        details = step["Status"].get("FailureDetails") or {}
        if details:
            step_failure = f"{details.get('Reason', '')}: {details.get('Message', '')}".strip(
                ": ")
            step_log = details.get("LogFile")
        log_uri = cluster.get("LogUri", "").replace("s3n://", "s3://").rstrip("/")
        if log_uri and not step_log:
            step_log = f"{log_uri}/{cluster_id}/steps/{step['Id']}/stderr.gz"
        args = step.get("Config", {}).get("Args", [])
        if "--output" in args and args.index("--output") + 1 < len(args):
            output = args[args.index("--output") + 1]
    return ClusterStatus(cluster_id, status["State"], reason, step and step["Id"], step_state,
                         step_failure, step_log, output, created)


def read_progress(session: Any, output_prefix: str) -> Optional[dict[str, Any]]:
    """``<output>/_progress.json`` as written by the running job, or None if there is none."""
    from botocore.exceptions import ClientError

    uri = f"{output_prefix.rstrip('/')}/{PROGRESS_FILE}"
    bucket, key = split_s3_uri(uri, require_key=True)
    s3 = session.client("s3")

    def get() -> Optional[bytes]:
        try:
            return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if _missing(exc):
                return None
            raise

    body = _aws(f"reading {uri}", get)
    if body is None:
        return None
    try:
        progress = json.loads(body)
    except ValueError:
        raise LaunchError(f"{uri}: not JSON") from None
    return progress if isinstance(progress, dict) else None


def is_stale(progress: dict[str, Any], created: Optional[datetime.datetime]) -> bool:
    """Written before the cluster existed: an earlier run's progress at the same prefix."""
    stamp = progress.get("updated_utc")
    if created is None or not isinstance(stamp, str):
        return False
    try:
        updated = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc)
    except ValueError:
        return False
    if created.tzinfo is None:
        created = created.replace(tzinfo=datetime.timezone.utc)
    return (created - updated).total_seconds() > STALE_PROGRESS_SECONDS


def progress_of(session: Any, status: ClusterStatus,
                output_prefix: Optional[str] = None) -> Optional[str]:
    """The progress line of this cluster's step, or None (no file yet, an earlier run's
    file, or one that cannot be read: progress never stops a caller that polls)."""
    from halo_lrg.aws.progress import progress_line

    prefix = output_prefix or status.output_prefix
    if not prefix:
        return None
    try:
        progress = read_progress(session, prefix)
    except LaunchError:
        return None
    if progress is None or is_stale(progress, status.created):
        return None
    return progress_line(progress)


def wait_for(session: Any, cluster_id: str, poll_seconds: float, timeout_seconds: float,
             emit: Callable[[str], None] = print, sleep: Callable[[float], None] = time.sleep,
             clock: Callable[[], float] = time.monotonic,
             progress: Optional[Callable[[ClusterStatus], Optional[str]]] = None
             ) -> ClusterStatus:
    """Poll until the step finishes (or the cluster ends), printing each change of state and,
    with ``progress``, each change of the job's progress line."""
    started = clock()
    last = last_progress = None
    while True:
        status = cluster_status(session, cluster_id)
        line = status.line()
        if line != last:
            emit(f"[{clock() - started:7.0f}s] {line}")
            last = line
        if progress is not None:
            now = progress(status)
            if now and now != last_progress:
                emit(f"[{clock() - started:7.0f}s] {now}")
                last_progress = now
        if status.finished:
            return status
        if clock() - started > timeout_seconds:
            raise LaunchError(f"{cluster_id}: still {status.state} after "
                              f"{timeout_seconds:.0f} s; check `halo-lrg status {cluster_id}`")
        sleep(poll_seconds)


# --- fetching ------------------------------------------------------------------------------------

class _SessionOutput(OutputLocation):
    """An S3 output prefix read with the session's credentials, for ``check_complete``; it
    keeps what it read, so the result is downloaded once."""

    def __init__(self, uri: str, session: Any) -> None:
        split_s3_uri(uri)
        self.uri = uri.rstrip("/")
        self.s3 = session.client("s3")
        self.read: dict[str, bytes] = {}

    def read_file(self, name: str) -> bytes:
        from botocore.exceptions import ClientError

        uri = self.uri_of(name)
        bucket, key = split_s3_uri(uri, require_key=True)
        try:
            body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if _missing(exc):
                raise FileNotFoundError(uri) from None
            raise
        self.read[name] = body
        return body


def fetch_result(session: Any, output_prefix: str, dest: Path) -> list[Path]:
    """Download the counts CSV and manifest of the complete result at ``output_prefix`` into
    ``dest``; an incomplete one (no ``_SUCCESS``, or a CSV its manifest does not describe) is
    refused with the reason, and nothing is written."""
    output = _SessionOutput(output_prefix, session)
    try:
        _aws(f"reading {output.uri}", lambda: check_complete(output))
    except IncompleteResult as exc:
        raise LaunchError(f"not fetching: {exc}") from None
    except FileNotFoundError as exc:
        raise LaunchError(f"not fetching: {output.uri}: has _SUCCESS but no {exc} "
                          "(the result is damaged: rerun the job)") from None
    except (OutputError, ValueError) as exc:
        raise LaunchError(f"not fetching: {output.uri}: {exc}") from None
    fetched = []
    for relative in (f"{COUNTS_DIR}/{COUNTS_FILE}", MANIFEST_FILE):
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(output.read[relative])
        fetched.append(target)
    return fetched
