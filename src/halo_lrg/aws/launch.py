"""Talking to AWS for an EMR run: build and upload the artefacts, launch, poll, fetch."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from halo_lrg import __version__
from halo_lrg.aws.emr import artifact_uris, bootstrap_script
from halo_lrg.config import EmrConfig
from halo_lrg.io.output import COUNTS_DIR, COUNTS_FILE, MANIFEST_FILE
from halo_lrg.io.uri import split_s3_uri

PROJECT_ROOT = Path(__file__).resolve().parents[3]
WHEEL_NAME = f"halo_lrg-{__version__}-py3-none-any.whl"
STEP_DONE = {"COMPLETED", "CANCELLED", "FAILED", "INTERRUPTED"}
CLUSTER_DONE = {"TERMINATED", "TERMINATED_WITH_ERRORS"}


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


def project_file(relative: str) -> Path:
    path = PROJECT_ROOT / relative
    if not path.exists():
        raise LaunchError(f"{path} not found: run `halo-lrg submit` from a halo-lrg source "
                          "checkout (it uploads jobs/ and builds the wheel)")
    return path


def ensure_wheel(dist: Optional[Path] = None, emit: Callable[[str], None] = print) -> Path:
    """dist/halo_lrg-<version>-py3-none-any.whl, built first if dist/ lacks this version."""
    dist = dist or PROJECT_ROOT / "dist"
    wheel = dist / WHEEL_NAME
    if wheel.exists():
        return wheel
    project_file("pyproject.toml")
    emit(f"building {WHEEL_NAME} ...")
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
               "--no-build-isolation", "-w", str(dist), str(PROJECT_ROOT)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0 or not wheel.exists():
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise LaunchError(f"building the wheel failed ({shlex.join(command)}): {tail[0]}")
    return wheel


def upload_artifacts(session: Any, emr: EmrConfig, wheel: Path,
                     emit: Callable[[str], None] = print) -> dict[str, str]:
    """Wheel, job script, debug script and bootstrap to ``emr.code_prefix/<version>/``."""
    s3 = session.client("s3")
    uris = artifact_uris(emr, wheel.name)
    bodies = {"wheel": wheel.read_bytes(),
              "job": project_file("jobs/lrg_density.py").read_bytes(),
              "debug": project_file("jobs/emr_debug.py").read_bytes(),
              "bootstrap": bootstrap_script(emr).encode()}
    for name, uri in uris.items():
        bucket, key = split_s3_uri(uri)
        _aws(f"uploading {uri}",
             lambda b=bucket, k=key, n=name: s3.put_object(Bucket=b, Key=k, Body=bodies[n]))
        emit(f"uploaded {uri}")
    return uris


def launch(session: Any, request: dict[str, Any]) -> str:
    emr = session.client("emr")
    response = _aws("run_job_flow", lambda: emr.run_job_flow(**request))
    return response["JobFlowId"]


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
                         step_failure, step_log, output)


def wait_for(session: Any, cluster_id: str, poll_seconds: float, timeout_seconds: float,
             emit: Callable[[str], None] = print, sleep: Callable[[float], None] = time.sleep,
             clock: Callable[[], float] = time.monotonic) -> ClusterStatus:
    """Poll until the step finishes (or the cluster ends), printing each change of state."""
    started = clock()
    last = None
    while True:
        status = cluster_status(session, cluster_id)
        line = status.line()
        if line != last:
            emit(f"[{clock() - started:7.0f}s] {line}")
            last = line
        if status.finished:
            return status
        if clock() - started > timeout_seconds:
            raise LaunchError(f"{cluster_id}: still {status.state} after "
                              f"{timeout_seconds:.0f} s; check `halo-lrg status {cluster_id}`")
        sleep(poll_seconds)


def fetch_result(session: Any, output_prefix: str, dest: Path) -> list[Path]:
    """Download the counts CSV and manifest from an output prefix into ``dest``."""
    s3 = session.client("s3")
    base = output_prefix.rstrip("/")
    wanted = {f"{COUNTS_DIR}/{COUNTS_FILE}": dest / COUNTS_DIR / COUNTS_FILE,
              MANIFEST_FILE: dest / MANIFEST_FILE}
    fetched = []
    for relative, target in wanted.items():
        bucket, key = split_s3_uri(f"{base}/{relative}")
        target.parent.mkdir(parents=True, exist_ok=True)
        body = _aws(f"downloading {base}/{relative}",
                    lambda b=bucket, k=key: s3.get_object(Bucket=b, Key=k)["Body"].read())
        target.write_bytes(body)
        fetched.append(target)
    return fetched
