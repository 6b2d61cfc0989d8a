"""`halo-lrg submit / status / fetch` against moto's AWS (mock_aws, no network): the
configuration that reaches the cluster, preflight, uploads keyed by content, the wheelhouse,
the estimate, progress while the job runs, and fetching only complete results. The pure
models (estimate, progress line, wheel staleness, wheelhouse pins) are tested here too."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner

from halo_lrg import __version__
from halo_lrg.cli import main
from halo_lrg.config import load_config
from test_http_ranges import loopback

REGION = "us-east-1"
BUCKET = "halo-submit-test"
FLAGS = ["--region", REGION, "--sweep-index-s3", f"s3://{BUCKET}/sweeps.txt",
         "--output-prefix", f"s3://{BUCKET}/run1", "--code-prefix", f"s3://{BUCKET}/code",
         "--log-uri", f"s3://{BUCKET}/logs"]
#: The sweeps the emr_account fixture (tests/conftest.py) puts beside the index.
SWEEPS = [f"sweeps/sweep-{k:03d}p000-{k + 5:03d}p005.fits" for k in (0, 5, 10)]
PINS = load_config(env={}).emr.bootstrap_packages.split()


@pytest.fixture
def account(monkeypatch, built_wheel, emr_account):
    """What a first-time user has after the README's set-up: the default EMR roles, a
    bucket, three sweeps and their index; `submit` uses the session's wheel (no rebuild)."""
    monkeypatch.setattr("halo_lrg.aws.launch.ensure_wheel", lambda **_kw: built_wheel)
    monkeypatch.setenv("HALO_LRG_EMR__POLL_INTERVAL_SECONDS", "0")
    for name in list(os.environ):
        if name.startswith("HALO_LRG_") and name != "HALO_LRG_EMR__POLL_INTERVAL_SECONDS":
            monkeypatch.delenv(name)
    return emr_account


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def cluster_of(result) -> str:
    assert result.exit_code == 0, result.output
    return result.output.split("cluster ")[1].split()[0]


def keys(s3, prefix: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
                  .get("Contents", []))


def clusters() -> list[str]:
    return [c["Id"] for c in boto3.client("emr", region_name=REGION).list_clusters()["Clusters"]]


def moto_step(cluster_id):
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.emr.models import emr_backends

    return emr_backends[DEFAULT_ACCOUNT_ID][REGION].clusters[cluster_id].steps[0]


def stage_result(s3, complete=True, csv=b"brickname,lrg_count\n1501p025,7\n", sha=None):
    s3.put_object(Bucket=BUCKET, Key="run1/lrg_counts_per_brick/part-00000.csv", Body=csv)
    manifest = {"state": "complete", "counts_sha256": sha or hashlib.sha256(csv).hexdigest()}
    s3.put_object(Bucket=BUCKET, Key="run1/manifest.json", Body=json.dumps(manifest).encode())
    if complete:
        s3.put_object(Bucket=BUCKET, Key="run1/_SUCCESS", Body=b"")


def stage_progress(s3, done, failed=0, rows=1234, lrg=56, state="running", eta=75.0,
                   updated=None):
    progress = {"state": state, "files_total": 3, "files_done": done,
                "files_ok": done - failed, "files_failed": failed, "rows": rows, "lrg": lrg,
                "bytes_done": 1000 * done, "bytes_total": 6000, "elapsed_seconds": 10.0,
                "eta_seconds": eta,
                "updated_utc": updated or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    s3.put_object(Bucket=BUCKET, Key="run1/_progress.json", Body=json.dumps(progress).encode())


# --- configuration reaches the cluster, artefacts keyed by content ---------------------------

def test_the_effective_configuration_is_uploaded_and_passed_to_the_step(account, tmp_path,
                                                                        monkeypatch):
    user = tmp_path / "mine.toml"
    user.write_text("[cuts]\nlrg_z_mag_max = 19.0\nlrg_min_r_minus_z = 0.3\n"
                    "lrg_min_z_minus_w1 = 0.9\n[remote]\nprofile = \"laptop\"\n")
    monkeypatch.setenv("HALO_LRG_CUTS__LRG_MIN_R_MINUS_Z", "0.5")  # env beats the file
    result = invoke("--config", str(user), "submit", *FLAGS, "--z-mag-max", "20.1",
                    "--chunk-rows", "4096", "--on-error", "skip", "--max-sweeps", "2",
                    "--dec-min=-10")
    cluster_id = cluster_of(result)
    code = keys(account, "code/")
    digest = code[0].split("/")[1]
    assert digest.startswith(f"{__version__}-") and len(digest) == len(__version__) + 13
    assert code == [f"code/{digest}/{name}" for name in (
        "bootstrap.sh", "emr_debug.py", "halo-lrg.toml",
        f"halo_lrg-{__version__}-py3-none-any.whl", "lrg_density.py")]
    toml = account.get_object(Bucket=BUCKET, Key=f"code/{digest}/halo-lrg.toml")["Body"].read()
    config = load_config(env={}, data=toml)
    # defaults < --config file < HALO_LRG_* < flags
    assert config.cuts.lrg_z_mag_max == 20.1 and config.cuts.lrg_min_r_minus_z == 0.5
    assert config.cuts.lrg_min_z_minus_w1 == 0.9 and config.read.chunk_rows == 4096
    assert config.run.on_error == "skip" and config.run.max_sweeps == 2
    assert config.emr.output_prefix == f"s3://{BUCKET}/run1"
    # Only what cannot mean anything on a node is changed: its credentials and region.
    assert config.remote.profile == "" and config.remote.region == REGION
    (step,) = boto3.client("emr", region_name=REGION).list_steps(ClusterId=cluster_id)["Steps"]
    args = step["Config"]["Args"]
    assert args[args.index("--config") + 1] == f"s3://{BUCKET}/code/{digest}/halo-lrg.toml"
    assert args[args.index("--dec-min") + 1] == "-10.0"
    assert "--selection" not in args  # one source: the file
    # The step scripts are the package data, byte for byte.
    from halo_lrg.aws.artifacts import job_script

    for name in ("lrg_density.py", "emr_debug.py"):
        body = account.get_object(Bucket=BUCKET, Key=f"code/{digest}/{name}")["Body"].read()
        assert body == job_script(name)
    repo = Path(__file__).resolve().parents[1]
    assert b"run_job_script" in (repo / "jobs" / "lrg_density.py").read_bytes()


def uploaded_config(s3):
    """The configuration the (only) submission uploaded for its step."""
    (key,) = [k for k in keys(s3, "code/") if k.endswith("/halo-lrg.toml")]
    return load_config(env={}, data=s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())


@pytest.mark.parametrize("flag, mode", [("--no-resolve", "off"), ("--resolve", "on"),
                                        (None, "auto")])
def test_north_south_resolution_and_the_checksum_list_reach_the_step(account, flag, mode):
    listing = f"s3://{BUCKET}/lists/dr9_north_south_sweep_9.0.sha256sum"
    result = invoke("submit", *FLAGS, *([flag] if flag else []), "--checksums", listing)
    cluster_id = cluster_of(result)
    config = uploaded_config(account)
    assert config.run.resolve == mode and config.run.checksums == listing
    (step,) = boto3.client("emr", region_name=REGION).list_steps(ClusterId=cluster_id)["Steps"]
    args = step["Config"]["Args"]
    # one source: the uploaded file carries them, the step gets only --config
    assert not {"--resolve", "--no-resolve", "--checksums"} & set(args)


def test_unchanged_artefacts_are_not_uploaded_again_and_a_new_wheel_is_a_new_set(
        account, built_wheel, tmp_path):
    first = invoke("submit", *FLAGS)
    cluster_of(first)
    assert first.output.count("uploaded s3://") == 5
    again = invoke("submit", *FLAGS)
    cluster_of(again)
    assert again.output.count("unchanged s3://") == 5 and "uploaded s3://" not in again.output
    changed = tmp_path / built_wheel.name
    changed.write_bytes(built_wheel.read_bytes())
    with zipfile.ZipFile(changed, "a") as wheel:
        wheel.writestr("halo_lrg/_patched.py", "X = 1\n")
    third = invoke("submit", *FLAGS, "--wheel", str(changed))
    cluster_of(third)
    sets = {k.split("/")[1] for k in keys(account, "code/")}
    assert len(sets) == 2  # the changed wheel went to a directory of its own
    assert third.output.count("uploaded s3://") == 5
    with_flag = invoke("submit", *FLAGS, "--selection", "desi-lrg")  # a changed config too
    cluster_of(with_flag)
    assert len({k.split("/")[1] for k in keys(account, "code/")}) == 3


def test_a_bad_wheel_path_is_refused_in_one_line(account, tmp_path):
    result = invoke("submit", *FLAGS, "--wheel", str(tmp_path / "nope.whl"))
    assert result.exit_code == 1 and "--wheel" in result.output and "no such file" in (
        result.output)
    (tmp_path / "junk.whl").write_bytes(b"not a zip")
    result = invoke("submit", *FLAGS, "--wheel", str(tmp_path / "junk.whl"))
    assert result.exit_code == 1 and "not a wheel" in result.output
    assert clusters() == []


# --- preflight -------------------------------------------------------------------------------

def test_preflight_runs_the_checks_then_what_submit_refuses_on_and_launches_nothing(account):
    result = invoke("submit", *FLAGS, "--preflight")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("ok   credentials: as arn:aws:")
    passed = lines.index("preflight: all 9 checks passed")
    assert lines[passed + 1] == "estimate (assumptions: halo_lrg/aws/estimate.py):"
    assert lines[-1].startswith("  disk:    core m5.xlarge: 4 tasks x ") and \
        lines[-1].endswith(": fits")
    assert keys(account, "code/") == [] and clusters() == []
    result = invoke("submit", *FLAGS, "--preflight", "--max-cost", "0.01")
    assert result.exit_code == 1 and "exceeds --max-cost 0.01" in result.output
    assert keys(account, "code/") == [] and clusters() == []
    boto3.client("iam", region_name=REGION).delete_role(RoleName="EMR_DefaultRole")
    result = invoke("submit", *FLAGS, "--preflight")
    assert result.exit_code == 1
    assert "FAIL service role: NoSuchEntity" in result.output
    assert "fix: aws emr create-default-roles" in result.output
    assert result.output.strip().splitlines()[-1] == (
        "Error: preflight: 1 of 9 checks failed (each FAIL line says how to fix it)")


@pytest.mark.parametrize("flag", ["--dry-run", "--skip-preflight"])
def test_preflight_takes_no_flag_that_contradicts_it(account, flag):
    result = invoke("submit", *FLAGS, "--preflight", flag)
    assert result.exit_code == 2 and "--preflight checks and launches nothing" in result.output


def test_preflight_asks_a_private_subnet_for_the_internet_only_without_a_wheelhouse(
        account, tmp_path):
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    table = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]}])
    ec2.create_vpc_endpoint(VpcId=vpc, ServiceName=f"com.amazonaws.{REGION}.s3",
                            VpcEndpointType="Gateway",
                            RouteTableIds=[table["RouteTables"][0]["RouteTableId"]])
    flags = [*FLAGS, "--subnet-id", subnet, "--preflight"]
    result = invoke("submit", *flags)
    assert result.exit_code == 1
    assert f"FAIL subnet: {subnet} in " in result.output
    assert "no route to the internet" in result.output and "PyPI" in result.output
    result = invoke("submit", *flags, "--wheelhouse", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "private without internet, S3 through vpce-" in result.output


def test_a_failing_check_stops_submit_before_any_upload(account):
    account.delete_object(Bucket=BUCKET, Key=SWEEPS[1])
    result = invoke("submit", *FLAGS, "--release-label", "emr-7.99.0")
    assert result.exit_code == 1
    failed = [line for line in result.output.splitlines() if line.startswith("FAIL")]
    assert [f.split(":")[0] for f in failed] == ["FAIL release label", "FAIL sweep index"]
    assert "ok   " not in result.output  # a normal submit lists the failures only
    assert "nothing was uploaded or launched" in result.output
    assert keys(account, "code/") == [] and clusters() == []
    # --skip-preflight launches anyway; the missing sweep's size counts as the mean.
    result = invoke("submit", *FLAGS, "--skip-preflight")
    cluster_of(result)
    assert "preflight" not in result.output
    assert "input:   3 sweeps, 6 KB (1 of unknown size counted as the mean)" in result.output


def test_dry_run_makes_no_aws_call_at_all(account, monkeypatch):
    def refuse(*_args, **_kwargs):
        raise AssertionError("dry-run called AWS")

    monkeypatch.setattr("halo_lrg.aws.launch.aws_session", refuse)
    result = invoke("submit", *FLAGS, "--dry-run")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["Name"] == "halo-lrg"
    assert keys(account, "code/") == [] and clusters() == []


# --- cost and time ----------------------------------------------------------------------------

def test_the_estimate_is_printed_and_max_cost_refuses_to_launch(account):
    result = invoke("submit", *FLAGS, "--max-cost", "0.01")
    assert result.exit_code == 1
    assert "  input:   3 sweeps, 6 KB, read from S3 in-region" in result.output
    assert ("  cluster: 1 master m5.xlarge + 2 core m5.xlarge x 1 executor x 4 cores "
            "= 8 tasks at once") in result.output
    assert "m5.xlarge $0.192/h EC2 + $0.048/h EMR" in result.output
    assert "$0.72/h for 3 nodes" in result.output and "cost:    about $0.12" in result.output
    assert result.output.strip().splitlines()[-1] == (
        "Error: estimated cost $0.12 exceeds --max-cost 0.01: not launching (fewer "
        "--max-sweeps, a footprint, or a higher --max-cost)")
    assert keys(account, "code/") == [] and clusters() == []
    cluster_of(invoke("submit", *FLAGS, "--max-cost", "1"))


def test_an_index_of_http_entries_is_estimated_at_the_hosts_rate(account, tmp_path):
    for size, name in zip((1000, 2000, 3000), SWEEPS):
        (tmp_path / Path(name).name).write_bytes(b"x" * size)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    with loopback(handler) as base:
        account.put_object(Bucket=BUCKET, Key="sweeps.txt", Body="".join(
            f"{base}/{Path(name).name}\n" for name in SWEEPS).encode())
        result = invoke("submit", *FLAGS, "--max-cost", "0.01")
    assert result.exit_code == 1
    assert "  input:   3 sweeps, 6 KB, read from 127.0.0.1 over HTTP" in result.output
    assert "  rate:    100 MB/s a task (assumed 25 MB/s a connection" in result.output
    assert "8 connections per host 200 MB/s" in result.output
    assert "note:    4 ranged parts a file assume the host answers byte ranges" in result.output
    assert clusters() == []


def test_the_nodes_disks_are_checked_against_the_largest_piece_before_launching(
        account, tmp_path, monkeypatch):
    """3 GB sweeps (sparse files: HEAD tells their size, no disk is used) on m5.xlarge: EMR's
    default 2 x 32 GiB volumes hold 4 tasks' worth; one 5 GiB volume does not, unless the
    files are split in row ranges (run.split_bytes), which the job reads piece by piece."""
    for name in SWEEPS:
        with open(tmp_path / Path(name).name, "wb") as sparse:
            sparse.truncate(3_000_000_000)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    with loopback(handler) as base:
        account.put_object(Bucket=BUCKET, Key="sweeps.txt", Body="".join(
            f"{base}/{Path(name).name}\n" for name in SWEEPS).encode())
        result = invoke("submit", *FLAGS, "--skip-preflight")
        cluster_of(result)
        uploaded = keys(account, "code/")
        assert ("  disk:    core m5.xlarge: 4 tasks x 3 GB = 12 GB staged at worst, on one "
                "volume's 28.8 GB usable (EMR's default 2 x 32 GiB for *.xlarge; 90% full is "
                "YARN's limit, 2 GiB kept): fits") in result.output

        result = invoke("submit", *FLAGS, "--skip-preflight", "--ebs-gb", "5")
        assert result.exit_code == 1
        assert result.output.strip().splitlines()[-1] == (
            "Error: the inputs staged at once would overfill a node's disk. core m5.xlarge: 4 "
            "tasks x 3 GB = 12 GB staged at worst, on one volume's 2.68 GB usable (--ebs-gb 5: "
            "one 5 GiB volume; 90% full is YARN's limit, 2 GiB kept): DOES NOT FIT. Use "
            "--ebs-gb 15 or more, or split big files into smaller pieces (run.split_bytes). "
            "Not launching.")
        assert len(clusters()) == 1 and keys(account, "code/") == uploaded

        monkeypatch.setenv("HALO_LRG_RUN__SPLIT_BYTES", str(256 << 20))
        result = invoke("submit", *FLAGS, "--skip-preflight", "--ebs-gb", "5")
        cluster_of(result)
        assert "4 tasks x 250 MB = 1 GB staged at worst" in result.output
        # A checksum list makes every file read whole (its SHA-256 is of the whole file).
        result = invoke("submit", *FLAGS, "--skip-preflight", "--ebs-gb", "5",
                        "--checksums", f"s3://{BUCKET}/sums.sha256")
        assert result.exit_code == 1 and "4 tasks x 3 GB" in result.output
    assert len(clusters()) == 2


def test_an_unpriced_instance_type_omits_the_cost_with_a_note(account):
    flags = [*FLAGS, "--core-instance-type", "m6i.xlarge", "--yarn-memory-mb", "12288"]
    result = invoke("submit", *flags, "--max-cost", "100")
    assert result.exit_code == 1
    assert "note:    no price for m6i.xlarge in halo-lrg's table" in result.output
    assert "the cost could not be estimated" in result.output and clusters() == []
    assert "cost:" not in result.output
    cluster_of(invoke("submit", *flags))  # without --max-cost it launches


# --- progress, status, wait, fetch -----------------------------------------------------------

def test_status_shows_the_jobs_progress(account):
    cluster_id = cluster_of(invoke("submit", *FLAGS))
    result = invoke("status", cluster_id)
    assert result.exit_code == 0 and "step RUNNING" in result.output
    assert "progress: none yet" in result.output
    stage_progress(account, done=2, failed=1)
    result = invoke("status", cluster_id)
    assert ("progress: files 2/3 (1 failed), 1,234 rows, 56 LRGs, 2 KB of 6 KB, ETA 1m"
            in result.output)
    stage_progress(account, done=3, updated="2020-01-01T00:00:00Z")
    result = invoke("status", cluster_id)
    assert "the _progress.json there is an earlier run's" in result.output


def test_submit_wait_prints_progress_when_it_changes_then_fetches(account, monkeypatch,
                                                                  tmp_path):
    import halo_lrg.aws.launch as launcher

    real_status = launcher.cluster_status
    polls = []

    def status_as_the_job_runs(session, cluster_id):
        polls.append(cluster_id)
        if len(polls) in (1, 2):
            stage_progress(account, done=1, rows=2_500_000)
        elif len(polls) == 3:
            stage_progress(account, done=2, rows=5_000_000)
        else:
            moto_step(cluster_id).state = "COMPLETED"
            stage_progress(account, done=3, rows=7_000_000, state="complete", eta=None)
            stage_result(account)
        return real_status(session, cluster_id)

    monkeypatch.setattr(launcher, "cluster_status", status_as_the_job_runs)
    result = invoke("submit", *FLAGS, "--wait", "--dest", str(tmp_path / "got"))
    assert result.exit_code == 0, result.output
    progress = [line.split("] ", 1)[1] for line in result.output.splitlines()
                if "] files " in line]
    assert progress == [
        "files 1/3, 2.5e6 rows, 56 LRGs, 1 KB of 6 KB, ETA 1m",
        "files 2/3, 5.0e6 rows, 56 LRGs, 2 KB of 6 KB, ETA 1m",
        "files 3/3, 7.0e6 rows, 56 LRGs, 3 KB of 6 KB, complete"]
    assert "step COMPLETED" in result.output
    assert (tmp_path / "got/lrg_counts_per_brick/part-00000.csv").read_text().endswith(",7\n")


def test_submit_wait_points_at_the_log_when_the_step_fails(account, monkeypatch, tmp_path):
    import halo_lrg.aws.launch as launcher

    real_launch = launcher.launch

    def launch_and_fail(session, request):
        cluster_id = real_launch(session, request)
        moto_step(cluster_id).state = "FAILED"
        return cluster_id

    monkeypatch.setattr(launcher, "launch", launch_and_fail)
    result = invoke("submit", *FLAGS, "--wait", "--dest", str(tmp_path / "got"))
    assert result.exit_code == 1
    last = result.output.strip().splitlines()[-1]
    assert "step FAILED" in last and f"log: s3://{BUCKET}/logs/" in last
    assert not (tmp_path / "got").exists()


def test_fetch_takes_only_a_complete_result(account, tmp_path):
    cluster_id = cluster_of(invoke("submit", *FLAGS))
    stage_result(account, complete=False)
    result = invoke("fetch", cluster_id, str(tmp_path / "a"))
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"Error: not fetching: s3://{BUCKET}/run1: no complete result (_SUCCESS missing: the "
        "run failed, is running, or was interrupted while publishing; see manifest.json / "
        "_last_failure.json)")
    assert not (tmp_path / "a").exists()
    stage_result(account, sha="0" * 64)
    result = invoke("fetch", "--output-prefix", f"s3://{BUCKET}/run1", str(tmp_path / "b"))
    assert result.exit_code == 1 and "the CSV is not the one its manifest describes" in (
        result.output)
    stage_result(account)
    result = invoke("fetch", cluster_id, str(tmp_path / "c"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "c/lrg_counts_per_brick/part-00000.csv").read_text().endswith(",7\n")
    assert json.loads((tmp_path / "c/manifest.json").read_text())["state"] == "complete"
    result = invoke("fetch", "--output-prefix", f"s3://{BUCKET}/nope", str(tmp_path / "d"))
    assert result.exit_code == 1 and "_SUCCESS missing" in result.output


def test_missing_credentials_and_bad_profile_are_named(account, monkeypatch):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    result = invoke("submit", *FLAGS)
    assert result.exit_code == 1
    assert "FAIL credentials: NoCredentialsError" in result.output
    assert "fix: aws configure, AWS_PROFILE or --profile" in result.output
    result = invoke("status", "j-123", "--profile", "nosuchprofile")
    assert result.exit_code == 1 and "nosuchprofile" in result.output


# --- the wheelhouse ----------------------------------------------------------------------------

def fake_wheels(directory: Path, pins=PINS) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for pin in pins:
        name, version = pin.split("==")
        (directory / f"{name}-{version}-cp311-cp311-manylinux2014_x86_64.whl").write_bytes(
            pin.encode())
    (directory / "six-1.16.0-py2.py3-none-any.whl").write_bytes(b"six")  # a dependency


def test_wheelhouse_is_uploaded_and_the_bootstrap_installs_from_it(account, tmp_path):
    from halo_lrg.aws.wheelhouse import wheelhouse_uri

    fake_wheels(tmp_path / "wh")
    result = invoke("submit", *FLAGS, "--wheelhouse", str(tmp_path / "wh"))
    cluster_of(result)
    prefix = wheelhouse_uri(load_config(env={}).replace(emr={
        "code_prefix": f"s3://{BUCKET}/code"}).emr)
    assert f"wheelhouse {prefix}: 7 uploaded, 0 already there" in result.output
    wheels = keys(account, prefix.split(f"{BUCKET}/")[1])
    assert len(wheels) == 7 and any(w.endswith("/fitsio-1.4.2-cp311-cp311-manylinux2014_x86_64"
                                                ".whl") for w in wheels)
    boot = [k for k in keys(account, "code/") if k.endswith("/bootstrap.sh")]
    script = account.get_object(Bucket=BUCKET, Key=boot[0])["Body"].read().decode()
    assert f"WHEELHOUSE={prefix}" in script and "--no-index --find-links" in script
    again = invoke("submit", *FLAGS, "--wheelhouse", str(tmp_path / "wh"))
    assert "7 already there" in again.output


def test_wheelhouse_downloads_missing_pins_and_refuses_graviton(tmp_path):
    from halo_lrg.aws.wheelhouse import WheelhouseError, download_command, missing_pins, prepare

    emr = load_config(env={}).emr
    command = download_command(emr, tmp_path / "wh", python="python")
    assert command[:3] == ["python", "-m", "pip"] and command[3] == "download"
    assert "--only-binary=:all:" in command
    assert command[command.index("--python-version") + 1] == "3.11"
    assert [command[i + 1] for i, c in enumerate(command) if c == "--platform"] == [
        "manylinux_2_28_x86_64", "manylinux2014_x86_64"]
    assert command[-len(PINS):] == PINS
    calls = []

    def pip(cmd, **_kwargs):  # what pip download would leave in --dest
        calls.append(cmd)
        fake_wheels(Path(cmd[cmd.index("--dest") + 1]))
        return subprocess.CompletedProcess(cmd, 0, "", "")

    fake_wheels(tmp_path / "wh", PINS[:2])
    wheels = prepare(emr, tmp_path / "wh", emit=lambda _l: None, run=pip)
    assert len(calls) == 1 and len(wheels) == 7
    prepare(emr, tmp_path / "wh", emit=lambda _l: None, run=pip)
    assert len(calls) == 1  # complete: nothing downloaded
    assert missing_pins(["Fitsio==1.4.2", "click"], [Path("fitsio-1.4.2-cp311.whl")]) == [
        "click"]
    graviton = dataclasses.replace(emr, core_instance_type="m7g.xlarge")
    with pytest.raises(WheelhouseError, match=r"m7g\.xlarge is Graviton"):
        prepare(graviton, tmp_path / "wh", run=pip)

    def broken(cmd, **_kwargs):
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution\n")

    with pytest.raises(WheelhouseError, match="No matching distribution"):
        prepare(emr, tmp_path / "empty", emit=lambda _l: None, run=broken)


# --- the wheel: rebuilt when stale, or made from the installed halo-lrg ----------------------

def test_a_wheel_older_than_any_source_file_is_stale(tmp_path):
    from halo_lrg.aws.launch import newer_source

    (tmp_path / "src/halo_lrg/__pycache__").mkdir(parents=True)
    (tmp_path / "pyproject.toml").write_text("")
    module = tmp_path / "src/halo_lrg/mod.py"
    module.write_text("")
    wheel = tmp_path / "w.whl"
    wheel.write_bytes(b"")
    past = time.time() - 100
    for path in (tmp_path / "pyproject.toml", module):
        os.utime(path, (past, past))
    assert newer_source(wheel, tmp_path) is None
    (tmp_path / "src/halo_lrg/__pycache__/mod.cpython-311.pyc").write_bytes(b"")
    assert newer_source(wheel, tmp_path) is None  # bytecode does not count
    os.utime(module, None)
    os.utime(wheel, (past - 10, past - 10))
    assert newer_source(wheel, tmp_path) == module


def test_outside_a_checkout_the_wheel_is_made_from_the_installed_package(tmp_path,
                                                                          monkeypatch):
    import halo_lrg.aws.launch as launcher

    monkeypatch.setattr(launcher, "PROJECT_ROOT", tmp_path / "site-packages")
    wheel = launcher.locate_wheel(None, emit=lambda _l: None, cache=tmp_path / "a")
    again = launcher.locate_wheel(None, emit=lambda _l: None, cache=tmp_path / "b")
    assert wheel.name == f"halo_lrg-{__version__}-py3-none-any.whl"
    assert wheel.read_bytes() == again.read_bytes()  # deterministic: same upload digest
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert f"halo_lrg-{__version__}.dist-info/METADATA" in names
    assert "halo_lrg/aws/jobs/lrg_density.py" in names and not [
        n for n in names if "__pycache__" in n]
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); import halo_lrg, halo_lrg.config; "
             "from halo_lrg.aws.artifacts import job_script; "
             "assert halo_lrg.__file__.startswith(sys.argv[1]), halo_lrg.__file__; "
             "print(halo_lrg.config.load_config(env={}).cuts.selection, "
             "len(job_script('lrg_density.py')))")
    done = subprocess.run([sys.executable, "-c", probe, str(wheel)], capture_output=True,
                          text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    from halo_lrg.aws.artifacts import job_script

    assert done.stdout.split() == ["seed", str(len(job_script("lrg_density.py")))]

    from importlib import metadata

    def nothing_installed(_name):
        raise metadata.PackageNotFoundError("halo-lrg")

    monkeypatch.setattr(metadata, "distribution", nothing_installed)
    with pytest.raises(launcher.LaunchError) as error:
        launcher.locate_wheel(None, emit=lambda _l: None, cache=tmp_path / "c")
    message = str(error.value)
    assert "\n" not in message and "pip wheel --no-deps halo-lrg" in message
    assert "--wheel dist/" in message


# --- the pure models -----------------------------------------------------------------------------

def test_progress_line():
    from halo_lrg.aws.progress import progress_line

    line = progress_line({"state": "running", "files_total": 1436, "files_done": 120,
                          "files_failed": 2, "rows": 312_000_000, "lrg": 41230,
                          "bytes_done": 210e9, "bytes_total": 1.5e12, "eta_seconds": 4320})
    assert line == ("files 120/1436 (2 failed), 3.1e8 rows, 41,230 LRGs, 210 GB of 1.5 TB, "
                    "ETA 1h12m")
    assert progress_line({"files_total": 3, "files_done": 0}) == "files 0/3, 0 rows, 0 LRGs"
    assert progress_line({"state": "failed", "files_total": 3, "files_done": 3,
                          "files_failed": 3, "eta_seconds": None}).endswith(", failed")


def test_estimate_model():
    from halo_lrg.aws.estimate import NodeGroup, Sizes, estimate, node_rate_mb_s, nodes_for

    assert Sizes.of([100, None, 300]) == Sizes(3, 600.0, 1, 300.0)
    assert node_rate_mb_s("m5.xlarge", 4) == 156.25  # 4 x 90 capped by 1.25 Gbit/s
    assert node_rate_mb_s("m5.4xlarge", 16) == 625.0
    groups = [NodeGroup("MASTER", "m5.xlarge", 1), NodeGroup("CORE", "m5.xlarge", 2, 1, 4)]
    result = estimate([1.6e12 / 1436] * 1436, groups)
    assert result.rate_mb_s == 312.5
    assert result.read_seconds == pytest.approx(1.6e12 / 1e6 / 312.5)
    assert result.hourly_usd == pytest.approx(0.72)
    assert result.cost_usd == pytest.approx(0.72 * (5120 + 600) / 3600)
    # The tail: one huge file takes as long as one task needs for it.
    tail = estimate([9e9, 1e6], groups)
    assert tail.read_seconds == pytest.approx(9e9 / 1e6 / 90)
    # Fewer files than task slots: the idle slots read nothing.
    assert estimate([1e9, 1e9], groups).rate_mb_s == 180.0  # two tasks at 90 MB/s
    spot = estimate([1e9], [*groups, NodeGroup("TASK", "m5.xlarge", 2, 1, 4, spot=True)])
    assert any("upper bound" in note for note in spot.notes)
    unknown = estimate([None, None], groups)
    assert unknown.read_seconds is None and unknown.cost_usd is None
    assert nodes_for(1.6e12, 3600, 156.25) == 3


def test_cluster_config_drops_only_what_means_nothing_on_a_node():
    from halo_lrg.aws.emr import cluster_config

    config = load_config(env={}).replace(remote={"profile": "laptop"}, cuts={"selection":
                                                                              "desi-lrg"})
    shipped = cluster_config(config)
    assert shipped.remote.profile == "" and shipped.remote.region == "us-east-1"
    assert shipped.cuts == config.cuts and shipped.emr == config.emr
    explicit = cluster_config(config.replace(remote={"region": "eu-west-1"}))
    assert explicit.remote.region == "eu-west-1"
