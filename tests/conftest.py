"""Shared fixtures: ONE SparkSession for the whole test session, and generated sweeps."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Spark's Python workers inherit the environment the JVM starts with, so everything they need
# is set before the session exists: this interpreter (not the system python3), and dummy AWS
# credentials so no test can ever reach a real account (tests talk to moto on loopback).
os.environ["PYSPARK_PYTHON"] = sys.executable
os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                   "AWS_SECURITY_TOKEN": "testing", "AWS_SESSION_TOKEN": "testing",
                   "AWS_DEFAULT_REGION": "us-east-1",
                   # never let the credential chain probe the EC2 metadata address
                   "AWS_EC2_METADATA_DISABLED": "true"}.items():
    os.environ[key] = value
for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "HALO_LRG_CONFIG"):
    os.environ.pop(key, None)
for key in [k for k in os.environ if k.startswith("HALO_LRG_")]:
    os.environ.pop(key)


@pytest.fixture(scope="session")
def config():
    from halo_lrg.config import load_config

    return load_config()


@pytest.fixture(scope="session")
def spark(config):
    from halo_lrg.spark.session import get_spark

    run = config.replace(run={"master": "local[2]", "driver_memory": "1g"}).run
    session = get_spark(run)
    yield session
    session.stop()


@pytest.fixture(scope="session")
def sample(tmp_path_factory) -> dict:
    """Three small generated DR10 sweeps stacked in Dec (bricks straddle their edges)."""
    from halo_lrg.survey.synth import generate_sample

    outdir = tmp_path_factory.mktemp("sample")
    summaries = generate_sample(outdir, files=3, rows=6000, seed=7)
    return {"dir": Path(outdir), "index": Path(outdir) / "index.txt",
            "paths": [Path(s.path) for s in summaries], "summaries": summaries}


@pytest.fixture(scope="session")
def defects(tmp_path_factory) -> dict:
    """One file of each defect kind the pipeline must survive, by kind."""
    from halo_lrg.survey.synth import write_defect

    outdir = tmp_path_factory.mktemp("defects")
    kinds = {"not-fits": "sweep-000p000-005p005.fits",
             "truncated": "sweep-005p000-010p005.fits",
             "missing-column": "sweep-010p000-015p005.fits",
             "empty": "sweep-015p000-020p005.fits"}
    paths = {}
    for kind, name in kinds.items():
        paths[kind] = Path(outdir) / name
        write_defect(paths[kind], kind)
    return paths


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory) -> Path:
    """The package's wheel, built once per session into a temp dist/ (as `make wheel` does)."""
    from halo_lrg.aws.launch import ensure_wheel

    return ensure_wheel(tmp_path_factory.mktemp("dist"), emit=lambda _line: None)


# --- S3 on loopback: moto's server speaks the real wire protocol -------------------------------

@pytest.fixture(scope="session")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(request, s3_endpoint, monkeypatch):
    """A fresh bucket (the test module's ``BUCKET``); AWS_ENDPOINT_URL points the SDK (and,
    through config, Spark's tasks) at the server."""
    import boto3

    bucket = getattr(request.module, "BUCKET", "halo-test")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    client = boto3.client("s3", region_name="us-east-1", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket=bucket)
    yield client
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=item["Key"])
    client.delete_bucket(Bucket=bucket)


# --- an AWS account as a first-time user sets it up, in moto ----------------------------------

EMR_REGION = "us-east-1"
#: Three sweeps (1,000, 2,000 and 3,000 bytes) that `emr_account` puts beside their index.
ACCOUNT_SWEEPS = [f"sweeps/sweep-{k:03d}p000-{k + 5:03d}p005.fits" for k in (0, 5, 10)]


@pytest.fixture
def emr_account(request):
    """moto's AWS with what `aws emr create-default-roles` makes, the test module's
    ``BUCKET``, three sweeps under sweeps/ and their index s3://BUCKET/sweeps.txt; yields
    the S3 client."""
    import boto3
    from moto import mock_aws

    bucket = request.module.BUCKET
    trust = '{"Version": "2012-10-17", "Statement": []}'
    with mock_aws():
        iam = boto3.client("iam", region_name=EMR_REGION)
        iam.create_role(RoleName="EMR_DefaultRole", AssumeRolePolicyDocument=trust)
        iam.create_role(RoleName="EMR_EC2_DefaultRole", AssumeRolePolicyDocument=trust)
        iam.create_instance_profile(InstanceProfileName="EMR_EC2_DefaultRole")
        s3 = boto3.client("s3", region_name=EMR_REGION)
        s3.create_bucket(Bucket=bucket)
        for size, name in zip((1000, 2000, 3000), ACCOUNT_SWEEPS):
            s3.put_object(Bucket=bucket, Key=name, Body=b"x" * size)
        s3.put_object(Bucket=bucket, Key="sweeps.txt",
                      Body="".join(f"s3://{bucket}/{n}\n" for n in ACCOUNT_SWEEPS).encode())
        yield s3
