"""What an EMR run looks like, pure: the run_job_flow request, the bootstrap script in both
modes, the settings refused, `submit --dry-run`, and the wheel. The flows against moto's AWS
(submit, status, fetch) are in test_emr_submit.py."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from halo_lrg import __version__
from halo_lrg.aws.emr import (
    INSTANCE_SHAPES,
    EmrConfigError,
    artifact_uris,
    bootstrap_script,
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


def invoke(*args):
    return CliRunner().invoke(main, list(args))


# --- the request -------------------------------------------------------------------------------

def test_request_is_a_transient_spark_cluster_with_one_step():
    emr = emr_settings(spot=True, core_count=3, task_count=2)
    base = f"s3://{BUCKET}/code/{__version__}-0123456789ab"
    uris = {"wheel": f"{base}/halo_lrg-{__version__}-py3-none-any.whl",
            "job": f"{base}/lrg_density.py", "debug": f"{base}/emr_debug.py",
            "bootstrap": f"{base}/bootstrap.sh", "config": f"{base}/halo-lrg.toml"}
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


def test_bootstrap_text_in_both_modes():
    pypi = bootstrap_script(emr_settings())
    assert pypi.startswith("#!/bin/bash") and "set -euxo pipefail" in pypi
    assert "PYTHON=/usr/bin/python3.11" in pypi
    assert ("PACKAGES=(numpy==1.26.4 pandas==2.2.3 pyarrow==17.0.0 fitsio==1.4.2 click==8.1.7 "
            "boto3==1.35.99)") in pypi
    assert "WHEELHOUSE=''" in pypi and "REGION=us-east-1" in pypi
    assert '"$PYTHON" -m pip install --no-cache-dir "${PACKAGES[@]}"' in pypi
    assert "@" not in pypi.replace("${PACKAGES[@]}", "")  # every placeholder filled
    uri = f"s3://{BUCKET}/code/wheelhouse/0123456789ab/"
    offline = bootstrap_script(emr_settings(), wheelhouse_uri=uri)
    assert f"WHEELHOUSE={uri}" in offline
    assert ('aws s3 cp --recursive --only-show-errors --region "$REGION" "$WHEELHOUSE" '
            '"$wheels"') in offline
    assert '--no-index --find-links "$wheels" "${PACKAGES[@]}"' in offline
    # Values are shell-quoted, never spliced in raw.
    odd = bootstrap_script(emr_settings(python="/opt/my python/bin/python3.11"))
    assert "PYTHON='/opt/my python/bin/python3.11'" in odd


def _run_bootstrap(script: str, tmp_path: Path) -> list[str]:
    """Run the bootstrap with sudo, dnf, aws, uname and the node's Python replaced by stubs
    that log their arguments; returns the log."""
    stubs, log = tmp_path / "bin", tmp_path / "calls.log"
    stubs.mkdir(parents=True)
    stub = {"sudo": 'exec "$@"',
            "dnf": 'echo "dnf $*" >> "$LOG"',
            "uname": "echo x86_64",
            # aws s3 cp --recursive ... SRC DEST: "copies" one wheel into DEST
            "aws": 'echo "aws $*" >> "$LOG"; touch "${@: -1}/numpy-1.26.4-cp311.whl"',
            "python3.11": 'echo "python $*" >> "$LOG"'}
    for name, body in stub.items():
        (stubs / name).write_text(f"#!/bin/bash\n{body}\n")
        (stubs / name).chmod(0o755)
    script = script.replace("PYTHON=/usr/bin/python3.11", f"PYTHON={stubs}/python3.11")
    (tmp_path / "bootstrap.sh").write_text(script)
    env = {"PATH": f"{stubs}:/usr/bin:/bin", "LOG": str(log), "TMPDIR": str(tmp_path)}
    done = subprocess.run(["bash", str(tmp_path / "bootstrap.sh")], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return log.read_text().splitlines()


def test_bootstrap_installs_from_pypi_or_from_the_wheelhouse_alone(tmp_path):
    pins = emr_settings().bootstrap_packages
    calls = _run_bootstrap(bootstrap_script(emr_settings()), tmp_path / "pypi")
    assert f"python -m pip install --no-cache-dir {pins}" in calls
    assert not [c for c in calls if c.startswith(("aws", "dnf"))]  # PyPI only
    uri = f"s3://{BUCKET}/code/wheelhouse/0123456789ab/"
    calls = _run_bootstrap(bootstrap_script(emr_settings(), uri), tmp_path / "offline")
    (copy,) = [c for c in calls if c.startswith("aws ")]
    assert copy.startswith(f"aws s3 cp --recursive --only-show-errors --region us-east-1 {uri} ")
    wheels = copy.split()[-1]
    assert f"python -m pip install --no-cache-dir --no-index --find-links {wheels} {pins}" in (
        calls)
    assert not os.path.exists(wheels)  # the copied wheels are removed again


def test_artefacts_are_keyed_by_the_content_of_the_whole_set(built_wheel):
    from halo_lrg.aws.artifacts import artifact_set

    emr = emr_settings()
    wheel = built_wheel.read_bytes()
    artifacts = artifact_set(built_wheel.name, wheel, bootstrap_script(emr), "[cuts]\n")
    assert len(artifacts.digest) == 12
    assert artifact_uris(emr, built_wheel.name, artifacts.digest) == artifacts.uris(
        emr.code_prefix)
    assert artifacts.uris(emr.code_prefix)["config"] == (
        f"s3://{BUCKET}/code/{__version__}-{artifacts.digest}/halo-lrg.toml")
    for changed in (artifact_set(built_wheel.name, wheel + b"\0", bootstrap_script(emr),
                                 "[cuts]\n"),
                    artifact_set(built_wheel.name, wheel, bootstrap_script(emr), "[run]\n"),
                    artifact_set(built_wheel.name, wheel,
                                 bootstrap_script(emr, "s3://b/wheelhouse/x/"), "[cuts]\n")):
        assert changed.digest != artifacts.digest
    same = artifact_set(built_wheel.name, wheel, bootstrap_script(emr), "[cuts]\n")
    assert same.digest == artifacts.digest


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


def test_dry_run_prints_the_request_and_touches_nothing(monkeypatch, built_wheel):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key)  # no credentials needed: nothing is called
    result = CliRunner().invoke(main, [
        "submit", *FLAGS, "--dry-run", "--wheel", str(built_wheel), "--selection", "desi-lrg",
        "--max-sweeps", "5", "--ra-min", "150", "--ra-max", "160", "--on-error", "skip"])
    assert result.exit_code == 0, result.output
    request = json.loads(result.stdout)
    args = request["Steps"][0]["HadoopJarStep"]["Args"]
    job = args.index(next(a for a in args if a.endswith("/lrg_density.py")))
    base = args[job].rsplit("/", 1)[0]
    assert base.startswith(f"s3://{BUCKET}/code/{__version__}-")
    # The science settings travel in the configuration file, the footprint as flags.
    assert args[job + 1:] == ["--config", f"{base}/halo-lrg.toml",
                              "--index", f"s3://{BUCKET}/sweeps.txt",
                              "--output", f"s3://{BUCKET}/run1",
                              "--ra-min", "150.0", "--ra-max", "160.0",
                              "--dec-min", "-90.0", "--dec-max", "90.0"]
    assert args[args.index("--py-files") + 1] == f"{base}/{built_wheel.name}"


def test_placeholders_refused_in_one_line():
    result = invoke("submit", "--dry-run")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: emr.code_prefix is not set ('s3://CHANGE_ME/halo-lrg/code'): pass "
        "--code-prefix, set HALO_LRG_EMR__CODE_PREFIX, or put it in a --config file"]


# --- the wheel -----------------------------------------------------------------------------------

def test_wheel_is_pure_python_for_3_9_and_carries_its_data(built_wheel):
    with zipfile.ZipFile(built_wheel) as wheel:
        names = wheel.namelist()
        metadata = wheel.read(f"halo_lrg-{__version__}.dist-info/METADATA").decode()
        tag = wheel.read(f"halo_lrg-{__version__}.dist-info/WHEEL").decode()
        assert "Requires-Python: >=3.9" in metadata
        assert "Tag: py3-none-any" in tag and "Root-Is-Purelib: true" in tag
        assert "halo_lrg/survey/data/dr10_sweep_columns.csv" in names
        # What submit uploads from an installed halo-lrg: the step scripts and bootstrap.
        for name in ("jobs/lrg_density.py", "jobs/emr_debug.py", "bootstrap.sh"):
            assert f"halo_lrg/aws/{name}" in names
        defaults = wheel.read("halo_lrg/defaults.toml").decode()
        assert defaults.startswith("# halo-lrg default configuration")  # the file, not a link
        for name in names:
            if name.endswith(".py"):  # every module parses as Python 3.9
                ast.parse(wheel.read(name).decode(), filename=name, feature_version=(3, 9))
        assert not [n for n in names if n.endswith((".so", ".pyd"))]
