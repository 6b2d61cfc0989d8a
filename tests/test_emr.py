"""`halo-lrg submit / status / fetch` against moto's EMR and S3 (mock_aws, no network)."""

from __future__ import annotations

import ast
import json
import zipfile

import boto3
import pytest
from click.testing import CliRunner
from moto import mock_aws

from halo_lrg import __version__
from halo_lrg.aws.emr import (
    INSTANCE_SHAPES,
    EmrConfigError,
    artifact_uris,
    check_settings,
    run_job_flow_request,
    spark_resources,
)
from halo_lrg.cli import main
from halo_lrg.config import load_config

BUCKET = "halo-emr-test"
FLAGS = ["--region", "us-east-1", "--sweep-index-s3", f"s3://{BUCKET}/sweeps.txt",
         "--output-prefix", f"s3://{BUCKET}/run1", "--code-prefix", f"s3://{BUCKET}/code",
         "--log-uri", f"s3://{BUCKET}/logs"]


def emr_settings(**changes):
    base = {"sweep_index_s3": f"s3://{BUCKET}/sweeps.txt", "output_prefix": f"s3://{BUCKET}/run1",
            "code_prefix": f"s3://{BUCKET}/code", "log_uri": f"s3://{BUCKET}/logs"}
    return load_config().replace(emr={**base, **changes}).emr


@pytest.fixture
def aws(monkeypatch, built_wheel):
    """moto's AWS, a bucket, and `submit` using the session's wheel (no rebuild)."""
    monkeypatch.setattr("halo_lrg.aws.launch.ensure_wheel", lambda **_kw: built_wheel)
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
        yield


def moto_step(cluster_id):
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.emr.models import emr_backends

    return emr_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].clusters[cluster_id].steps[0]


def stage_result(prefix="run1"):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/lrg_counts_per_brick/part-00000.csv",
                  Body=b"brickname,lrg_count\n1501p025,7\n")
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/manifest.json", Body=b'{"state": "complete"}')


def invoke(*args):
    return CliRunner().invoke(main, list(args))


# --- the request -------------------------------------------------------------------------------

def test_request_is_a_transient_spark_cluster_with_one_step():
    emr = emr_settings(spot=True, core_count=3, task_count=2)
    uris = artifact_uris(emr, f"halo_lrg-{__version__}-py3-none-any.whl")
    request = run_job_flow_request(emr, uris, ["--index", emr.sweep_index_s3])
    assert request["ReleaseLabel"] == "emr-7.13.0"
    assert request["Applications"] == [{"Name": "Spark"}]
    assert request["Instances"]["KeepJobFlowAliveWhenNoSteps"] is False
    master, core, task = request["Instances"]["InstanceGroups"]
    # --spot puts only task nodes on spot: the driver and the ApplicationMaster never are.
    assert master["Market"] == core["Market"] == "ON_DEMAND" and task["Market"] == "SPOT"
    assert core["InstanceCount"] == 3 and task["InstanceCount"] == 2
    assert request["BootstrapActions"][0]["ScriptBootstrapAction"]["Path"] == uris["bootstrap"]
    (step,) = request["Steps"]
    args = step["HadoopJarStep"]["Args"]
    assert step["HadoopJarStep"]["Jar"] == "command-runner.jar"
    assert args[:7] == ["spark-submit", "--deploy-mode", "client", "--master", "yarn",
                        "--py-files", uris["wheel"]]
    assert uris["wheel"].endswith(f"halo_lrg-{__version__}-py3-none-any.whl")
    assert args[args.index(uris["job"]) + 1:] == ["--index", emr.sweep_index_s3]
    env = request["Configurations"][0]["Configurations"][0]["Properties"]
    assert env["PYSPARK_PYTHON"] == "/usr/bin/python3.11"
    assert request["LogUri"] == emr.log_uri and request["AutoTerminationPolicy"]["IdleTimeout"]


@pytest.mark.parametrize("instance_type",
                         sorted(t for t, s in INSTANCE_SHAPES.items() if s.yarn_mb))
def test_executor_memory_fits_the_node(instance_type):
    # The full invariant, for every type and core count, is in test_emr_sizing.py.
    resources = spark_resources(emr_settings(core_instance_type=instance_type))
    shape = INSTANCE_SHAPES[instance_type]
    assert (resources.executors_per_node * resources.executor_container_mb
            + resources.am_container_mb <= shape.yarn_mb)
    assert resources.executor_overhead_mb > resources.executor_memory_mb  # Python lives there
    assert resources.executors_per_node * resources.executor_cores == shape.vcpus


def test_bootstrap_installs_the_pinned_packages_for_the_executors_python():
    from halo_lrg.aws.emr import bootstrap_script

    script = bootstrap_script(emr_settings())
    assert script.startswith("#!/bin/bash")
    assert "sudo /usr/bin/python3.11 -m pip install --no-cache-dir" in script
    for pin in ("fitsio==1.4.2", "numpy==", "pandas==", "pyarrow=="):
        assert pin in script


@pytest.mark.parametrize("changes,message", [
    ({"code_prefix": "s3://CHANGE_ME/code"}, r"emr.code_prefix is not set .*--code-prefix"),
    ({"service_role": ""}, r"emr.service_role is not set"),
    ({"output_prefix": "/tmp/out"}, r"emr.output_prefix must be an s3://bucket/"),
    ({"log_uri": "s3://ab/logs"}, r"emr.log_uri must be an s3://bucket/"),
    ({"release_label": "emr-6.15.0"}, r"needs EMR 7.x"),
    ({"core_instance_type": "x9.huge"}, r"no memory sizing for instance type 'x9.huge'"),
])
def test_bad_settings_are_refused_with_what_to_do(changes, message):
    with pytest.raises(EmrConfigError, match=message):
        check_settings(emr_settings(**changes))


def test_dry_run_prints_the_request_and_touches_nothing(monkeypatch):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key)  # no credentials needed: nothing is called
    result = invoke("submit", *FLAGS, "--dry-run", "--selection", "desi-lrg", "--max-sweeps",
                    "5", "--ra-min", "150", "--ra-max", "160", "--on-error", "skip")
    assert result.exit_code == 0, result.output
    request = json.loads(result.output)
    args = request["Steps"][0]["HadoopJarStep"]["Args"]
    assert args[-14:] == ["--selection", "desi-lrg", "--on-error", "skip", "--max-sweeps", "5",
                          "--ra-min", "150.0", "--ra-max", "160.0",
                          "--dec-min", "-90.0", "--dec-max", "90.0"]


def test_placeholders_refused_in_one_line():
    result = invoke("submit", "--dry-run")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: emr.code_prefix is not set ('s3://CHANGE_ME/halo-lrg/code'): pass "
        "--code-prefix, set HALO_LRG_EMR__CODE_PREFIX, or put it in a --config file"]


# --- against moto ------------------------------------------------------------------------------

def test_submit_uploads_artefacts_and_creates_the_cluster(aws):
    result = invoke("submit", *FLAGS, "--core-count", "3")
    assert result.exit_code == 0, result.output
    cluster_id = result.output.split("cluster ")[1].split()[0]
    s3 = boto3.client("s3", region_name="us-east-1")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET,
                                                       Prefix="code/")["Contents"])
    assert keys == [f"code/{__version__}/{name}" for name in (
        "bootstrap.sh", "emr_debug.py", f"halo_lrg-{__version__}-py3-none-any.whl",
        "lrg_density.py")]
    emr = boto3.client("emr", region_name="us-east-1")
    cluster = emr.describe_cluster(ClusterId=cluster_id)["Cluster"]
    assert cluster["ReleaseLabel"] == "emr-7.13.0" and cluster["Name"] == "halo-lrg"
    assert [a["Name"] for a in cluster["Applications"]] == ["Spark"]
    (step,) = emr.list_steps(ClusterId=cluster_id)["Steps"]
    assert f"s3://{BUCKET}/code/{__version__}/halo_lrg-{__version__}-py3-none-any.whl" in (
        step["Config"]["Args"])
    actions = emr.list_bootstrap_actions(ClusterId=cluster_id)["BootstrapActions"]
    assert actions[0]["ScriptPath"] == f"s3://{BUCKET}/code/{__version__}/bootstrap.sh"


def test_status_reports_step_state_and_where_its_log_is(aws):
    cluster_id = invoke("submit", *FLAGS).output.split("cluster ")[1].split()[0]
    result = invoke("status", cluster_id)
    assert "step RUNNING" in result.output  # RUNNING is not success
    moto_step(cluster_id).state = "FAILED"
    result = invoke("status", cluster_id)
    assert result.exit_code == 0 and "step FAILED" in result.output
    step_id = boto3.client("emr", region_name="us-east-1").list_steps(
        ClusterId=cluster_id)["Steps"][0]["Id"]
    assert f"step log: s3://{BUCKET}/logs/{cluster_id}/steps/{step_id}/stderr.gz" in (
        result.output)
    assert f"output: s3://{BUCKET}/run1" in result.output


def test_fetch_by_cluster_or_prefix(aws, tmp_path):
    cluster_id = invoke("submit", *FLAGS).output.split("cluster ")[1].split()[0]
    stage_result()
    result = invoke("fetch", cluster_id, str(tmp_path / "a"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "a/lrg_counts_per_brick/part-00000.csv").read_text().endswith(",7\n")
    result = invoke("fetch", "--output-prefix", f"s3://{BUCKET}/run1", str(tmp_path / "b"))
    assert result.exit_code == 0 and (tmp_path / "b/manifest.json").exists()
    result = invoke("fetch", "--output-prefix", f"s3://{BUCKET}/nope", str(tmp_path / "c"))
    assert result.exit_code == 1 and "NoSuchKey" in result.output


@pytest.mark.parametrize("outcome", ["COMPLETED", "FAILED"])
def test_submit_wait_fetches_on_success_and_points_at_logs_on_failure(aws, monkeypatch,
                                                                     tmp_path, outcome):
    import halo_lrg.aws.launch as launcher

    real_launch = launcher.launch

    def launch_and_finish(session, request):  # the cluster "runs" its step at once
        cluster_id = real_launch(session, request)
        moto_step(cluster_id).state = outcome
        stage_result()
        return cluster_id

    monkeypatch.setattr(launcher, "launch", launch_and_finish)
    monkeypatch.setenv("HALO_LRG_EMR__POLL_INTERVAL_SECONDS", "0")
    result = invoke("submit", *FLAGS, "--wait", "--dest", str(tmp_path / "got"))
    if outcome == "COMPLETED":
        assert result.exit_code == 0, result.output
        assert "step COMPLETED" in result.output
        assert (tmp_path / "got/lrg_counts_per_brick/part-00000.csv").exists()
    else:
        assert result.exit_code == 1
        last = result.output.strip().splitlines()[-1]
        assert "step FAILED" in last and f"log: s3://{BUCKET}/logs/" in last


def test_missing_credentials_and_bad_profile_are_one_line(aws, monkeypatch):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    result = invoke("submit", *FLAGS)
    assert result.exit_code == 1
    assert "no AWS credentials found" in result.output.strip().splitlines()[-1]
    result = invoke("status", "j-123", "--profile", "nosuchprofile")
    assert result.exit_code == 1 and "nosuchprofile" in result.output


# --- the wheel -----------------------------------------------------------------------------------

def test_wheel_is_pure_python_for_3_9_and_carries_its_data(built_wheel):
    with zipfile.ZipFile(built_wheel) as wheel:
        names = wheel.namelist()
        metadata = wheel.read(f"halo_lrg-{__version__}.dist-info/METADATA").decode()
        tag = wheel.read(f"halo_lrg-{__version__}.dist-info/WHEEL").decode()
        assert "Requires-Python: >=3.9" in metadata
        assert "Tag: py3-none-any" in tag and "Root-Is-Purelib: true" in tag
        assert "halo_lrg/survey/data/dr10_sweep_columns.csv" in names
        defaults = wheel.read("halo_lrg/defaults.toml").decode()
        assert defaults.startswith("# halo-lrg default configuration")  # the file, not a link
        for name in names:
            if name.endswith(".py"):  # every module parses as Python 3.9
                ast.parse(wheel.read(name).decode(), filename=name, feature_version=(3, 9))
        assert not [n for n in names if n.endswith((".so", ".pyd"))]
