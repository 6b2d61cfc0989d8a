"""`submit`'s preflight against moto: every check runs, each failure names itself and the fix."""

from __future__ import annotations

import boto3
import pytest

from halo_lrg.aws.preflight import run_checks, sample
from halo_lrg.config import load_config

REGION = "us-east-1"
BUCKET = "halo-preflight"


def settings(**changes):
    base = {"region": REGION, "sweep_index_s3": f"s3://{BUCKET}/sweeps.txt",
            "output_prefix": f"s3://{BUCKET}/run1", "code_prefix": f"s3://{BUCKET}/code",
            "log_uri": f"s3://{BUCKET}/logs"}
    return load_config().replace(emr={**base, **changes})


@pytest.fixture
def account(emr_account):
    """A fresh account with what `aws emr create-default-roles` makes, a bucket, an index of
    three sweeps that exist, and a subnet."""
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    return {"session": boto3.session.Session(region_name=REGION), "subnet": subnet,
            "s3": emr_account}


def checks_of(account, config, types=("m5.xlarge",), subnet=""):
    results = run_checks(account["session"], config.emr, config.remote, types, subnet)
    return {c.name: c for c in results}


def test_a_ready_account_passes_every_check(account):
    checks = checks_of(account, settings(), subnet=account["subnet"])
    assert [name for name, c in checks.items() if not c.ok] == []
    assert set(checks) == {"credentials", "service role", "instance profile", "release label",
                           "instance types", "subnet", "sweep index", "output prefix",
                           "log prefix", "code prefix"}
    # the markers are gone again: preflight leaves nothing behind
    keys = [o["Key"] for o in account["s3"].list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert not [k for k in keys if "_halo_lrg_preflight" in k]


def test_every_problem_is_reported_at_once_with_its_fix(account):
    account["s3"].put_object(Bucket=BUCKET, Key="sweeps.txt", Body=(
        f"s3://{BUCKET}/sweeps/sweep-000p000-005p005.fits\n"
        f"s3://{BUCKET}/sweeps/sweep-999p000-005p005.fits\n"
        "/home/me/sweep-010p000-015p005.fits\n").encode())
    config = settings(service_role="NoSuchRole", release_label="emr-7.99.0",
                      output_prefix="s3://no-such-bucket-here/run1")
    checks = checks_of(account, config, types=("m5.xlarge", "m5.nonsense"),
                       subnet="subnet-00000000")
    failed = {name: c for name, c in checks.items() if not c.ok}
    assert set(failed) == {"service role", "release label", "instance types", "subnet",
                           "sweep index", "output prefix"}
    assert "NoSuchEntity" in failed["service role"].detail
    assert "create-default-roles" in failed["service role"].line()
    assert "emr-7.99.0 is not offered" in failed["release label"].detail
    assert "--release-label emr-7." in failed["release label"].fix
    assert "m5.nonsense" in failed["instance types"].detail
    assert "sweep-999p000" in failed["sweep index"].detail
    assert "(and 1 more)" in failed["sweep index"].detail  # the local path too
    assert "NoSuchBucket" in failed["output prefix"].detail
    assert failed["output prefix"].line().startswith("FAIL output prefix: ")


def test_an_index_that_is_missing_or_a_bare_bucket_is_named(account):
    missing = checks_of(account, settings(sweep_index_s3=f"s3://{BUCKET}/nope.txt"))
    assert "NoSuchKey" in missing["sweep index"].detail
    bare = checks_of(account, settings(sweep_index_s3=f"s3://{BUCKET}"))
    assert "no object key" in bare["sweep index"].detail


def test_the_sample_covers_both_ends_and_the_middle():
    entries = [f"e{i}" for i in range(100)]
    picked = sample(entries, 8)
    assert picked[0] == "e0" and picked[-1] == "e99" and len(set(picked)) == 8
    assert sample(entries[:3], 8) == entries[:3]
