"""The shipping itself: the wheel, and nothing else of halo-lrg, runs the job under
spark-submit on a two-executor local cluster, as it does on EMR.

Local and standalone masters import only .zip/.egg/.jar from --py-files (YARN also takes
.whl), so the wheel's bytes travel under a .zip name here; EMR gets the .whl itself.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.spark]
REPO = Path(__file__).resolve().parents[1]
RUNTIME_DEPS = ["numpy", "pandas", "pyarrow", "fitsio", "boto3", "click", "pyspark==3.5.*"]


@pytest.fixture(scope="module")
def bare_venv(tmp_path_factory) -> Path:
    """A fresh venv with the runtime dependencies but without halo_lrg."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *RUNTIME_DEPS], check=True)
    found = subprocess.run([str(python), "-c", "import halo_lrg"], capture_output=True)
    assert found.returncode != 0, "the bare venv must not see halo_lrg"
    yield venv
    shutil.rmtree(venv, ignore_errors=True)


def spark_submit(venv: Path, wheel_zip: Path, *args: str,
                 extra_env: Optional[dict] = None) -> subprocess.CompletedProcess:
    python = str(venv / "bin" / "python")
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"),
           "PYSPARK_PYTHON": python, "PYSPARK_DRIVER_PYTHON": python,
           **({"JAVA_HOME": os.environ["JAVA_HOME"]} if "JAVA_HOME" in os.environ else {}),
           **(extra_env or {})}
    return subprocess.run(
        [str(venv / "bin" / "spark-submit"), "--master", "local-cluster[2,1,1024]",
         "--py-files", str(wheel_zip), str(REPO / "jobs" / "lrg_density.py"), *args],
        capture_output=True, text=True, env=env, timeout=600)


def test_wheel_runs_the_job_on_a_local_cluster_like_the_local_run(
        bare_venv, built_wheel, spark, config, sample, defects, tmp_path):
    from halo_lrg.spark.run import JobSpec, run_job

    wheel_zip = tmp_path / built_wheel.name.replace(".whl", ".zip")
    shutil.copyfile(built_wheel, wheel_zip)
    done = spark_submit(bare_venv, wheel_zip, "--index", str(sample["index"]),
                        "--output", str(tmp_path / "cluster"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "on local-cluster[2,1,1024]" in done.stdout  # spark-submit's master, not ours
    run_job(spark, JobSpec(str(sample["index"]), str(tmp_path / "local"), config),
            emit=lambda _line: None)
    csv = "lrg_counts_per_brick/part-00000.csv"
    assert (tmp_path / "cluster" / csv).read_bytes() == (tmp_path / "local" / csv).read_bytes()

    # A bad input under spark-submit: non-zero exit, the last word one line naming the file.
    index = tmp_path / "bad.txt"
    index.write_text(f"{sample['paths'][0]}\n{defects['truncated']}\n")
    done = spark_submit(bare_venv, wheel_zip, "--index", str(index), "--output",
                        str(tmp_path / "bad"))
    assert done.returncode == 1
    # spark-submit merges the Python driver's stderr into its stdout; the JVM logs on stderr.
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith(f"Error: {defects['truncated']}: truncated"), last
    assert "Traceback" not in done.stdout + done.stderr
    assert "Exception" not in done.stdout + done.stderr


def test_emr_debug_step_runs_with_only_the_wheel(bare_venv, built_wheel, tmp_path):
    """The `submit --debug` step script, as EMR runs it: Spark, executor imports, S3."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint).create_bucket(
            Bucket="halo-debug")
        wheel_zip = tmp_path / built_wheel.name.replace(".whl", ".zip")
        shutil.copyfile(built_wheel, wheel_zip)
        python = str(bare_venv / "bin" / "python")
        env = {"PATH": f"{bare_venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path),
               "PYSPARK_PYTHON": python, "PYSPARK_DRIVER_PYTHON": python,
               "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
               "AWS_SECRET_ACCESS_KEY": "testing", "AWS_EC2_METADATA_DISABLED": "true",
               **({"JAVA_HOME": os.environ["JAVA_HOME"]} if "JAVA_HOME" in os.environ else {})}
        done = subprocess.run(
            [str(bare_venv / "bin" / "spark-submit"), "--master", "local[2]", "--py-files",
             str(wheel_zip), str(REPO / "jobs" / "emr_debug.py"), "--output",
             "s3://halo-debug/run", "--region", "us-east-1"],
            capture_output=True, text=True, env=env, timeout=300)
    finally:
        server.stop()
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "rdd: sum of squares 0..999 = 332833500 (ok)" in done.stdout
    assert "executor: {" in done.stdout and "MISSING" not in done.stdout
    assert "'halo_lrg': '0.1.0'" in done.stdout  # imported from the shipped zip
    assert "s3: wrote, read back and deleted s3://halo-debug/run/_halo_lrg_debug/" in done.stdout


def test_the_step_counts_with_the_configuration_submit_uploads(bare_venv, built_wheel, sample,
                                                               tmp_path):
    """What `submit` ships reaches the job: the step's arguments (`job_args`) on a
    two-executor local cluster read `--config` from S3 (moto's server), and the run's
    manifest shows the non-default settings."""
    import boto3
    from moto.server import ThreadedMotoServer

    from halo_lrg.aws.emr import cluster_config, job_args
    from halo_lrg.config import load_config, to_toml

    config = load_config(env={}).replace(
        cuts={"lrg_z_mag_max": 20.0, "lrg_min_r_minus_z": 0.55, "lrg_min_z_minus_w1": 0.9},
        read={"chunk_rows": 3000}, run={"on_error": "skip"},
        emr={"sweep_index_s3": str(sample["index"]), "output_prefix": str(tmp_path / "out")})
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        creds = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
                 "AWS_SECRET_ACCESS_KEY": "testing", "AWS_EC2_METADATA_DISABLED": "true"}
        s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=creds["AWS_ENDPOINT_URL"],
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        s3.create_bucket(Bucket="halo-config")
        s3.put_object(Bucket="halo-config", Key="code/halo-lrg.toml",
                      Body=to_toml(cluster_config(config)).encode())
        wheel_zip = tmp_path / built_wheel.name.replace(".whl", ".zip")
        shutil.copyfile(built_wheel, wheel_zip)
        done = spark_submit(bare_venv, wheel_zip,
                            *job_args(config.emr, "s3://halo-config/code/halo-lrg.toml"),
                            extra_env=creds)
    finally:
        server.stop()
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["selection"]["parameters"] == {
        "lrg_z_mag_max": 20.0, "lrg_min_r_minus_z": 0.55, "lrg_min_z_minus_w1": 0.9}
    shipped = manifest["config"]
    assert shipped["cuts"]["lrg_min_r_minus_z"] == 0.55 and shipped["read"]["chunk_rows"] == 3000
    assert shipped["run"]["on_error"] == "skip" and shipped["remote"]["region"] == "us-east-1"
