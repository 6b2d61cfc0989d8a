"""`submit`'s preflight against moto: every check runs, each failure names itself and the fix."""

from __future__ import annotations

import boto3
import pytest

from halo_lrg.aws.preflight import (
    check_subnet,
    index_reader,
    internet_needs,
    run_checks,
    sample,
)
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
    three sweeps that exist, and a public subnet (its VPC's main route table sends 0.0.0.0/0
    to an internet gateway, as a default VPC's does)."""
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    ec2.create_route(RouteTableId=main_table(ec2, vpc), DestinationCidrBlock="0.0.0.0/0",
                     GatewayId=igw)
    return {"session": boto3.session.Session(region_name=REGION), "subnet": subnet,
            "s3": emr_account, "ec2": ec2, "vpc": vpc, "igw": igw}


def main_table(ec2, vpc):
    return ec2.describe_route_tables(Filters=[
        {"Name": "vpc-id", "Values": [vpc]},
        {"Name": "association.main", "Values": ["true"]}])["RouteTables"][0]["RouteTableId"]


def private_subnet(account, cidr, nat=False, s3_endpoint=False):
    """A subnet with a route table of its own: no default route, unless ``nat`` (0.0.0.0/0
    to a NAT gateway); ``s3_endpoint``: an S3 gateway endpoint on the table."""
    ec2, vpc = account["ec2"], account["vpc"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=cidr)["Subnet"]["SubnetId"]
    table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.associate_route_table(RouteTableId=table, SubnetId=subnet)
    if nat:
        allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
        gateway = ec2.create_nat_gateway(SubnetId=account["subnet"], AllocationId=allocation)
        ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0",
                         NatGatewayId=gateway["NatGateway"]["NatGatewayId"])
    if s3_endpoint:
        ec2.create_vpc_endpoint(VpcId=vpc, ServiceName=f"com.amazonaws.{REGION}.s3",
                                VpcEndpointType="Gateway", RouteTableIds=[table])
    return subnet


def checks_of(account, config, types=("m5.xlarge",), subnet="", wheelhouse=False):
    results = run_checks(account["session"], config.emr, config.remote, types, subnet,
                         wheelhouse)
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


def test_a_public_subnet_reaches_s3_and_the_internet(account):
    subnet = checks_of(account, settings(), subnet=account["subnet"])["subnet"]
    assert subnet.ok and f"public (0.0.0.0/0 via {account['igw']})" in subnet.detail


def test_a_private_subnet_with_a_nat_gateway_reaches_both(account):
    subnet = private_subnet(account, "10.0.2.0/24", nat=True)
    check = checks_of(account, settings(), subnet=subnet)["subnet"]
    assert check.ok and "private, 0.0.0.0/0 via nat-" in check.detail


def test_a_subnet_that_reaches_nothing_fails_before_a_cluster_would(account):
    subnet = private_subnet(account, "10.0.2.0/24")
    check = checks_of(account, settings(), subnet=subnet, wheelhouse=True)["subnet"]
    assert not check.ok
    assert "no default route (0.0.0.0/0) and no S3 gateway endpoint" in check.detail
    assert "cannot reach S3" in check.detail and "S3 gateway endpoint" in check.fix


def test_a_private_subnet_with_only_an_s3_endpoint_needs_a_wheelhouse_and_s3_sweeps(account):
    subnet = private_subnet(account, "10.0.2.0/24", s3_endpoint=True)
    # Packages from S3 and sweeps on S3: nothing on the internet is needed.
    check = checks_of(account, settings(), subnet=subnet, wheelhouse=True)["subnet"]
    assert check.ok and "private without internet, S3 through vpce-" in check.detail
    # The bootstrap's pip install from PyPI needs the internet.
    check = checks_of(account, settings(), subnet=subnet)["subnet"]
    assert not check.ok and "no route to the internet" in check.detail
    assert "pip install from PyPI" in check.detail and "--wheelhouse" in check.fix
    # So do sweeps on a portal (the subnet check alone: the index's own check would HEAD it).
    account["s3"].put_object(Bucket=BUCKET, Key="web.txt", Body=(
        b"https://portal.nersc.gov/cfs/cosmo/data/legacysurvey/dr10/south/sweep/10.1/"
        b"sweep-000p000-005p005.fits\n"))
    needs = internet_needs(index_reader(account["session"], f"s3://{BUCKET}/web.txt"),
                           wheelhouse=True)
    assert needs == ["the index's http(s) entries (portal.nersc.gov)"]
    check = check_subnet(account["session"], subnet, REGION, needs)
    assert not check.ok and "which the index's http(s) entries (portal.nersc.gov) need" \
        in check.detail


def test_the_checks_read_the_index_once(account, monkeypatch):
    from botocore.client import BaseClient

    real, reads = BaseClient._make_api_call, []

    def call(self, operation, params):
        if operation == "GetObject" and params.get("Key") == "sweeps.txt":
            reads.append(params["Key"])
        return real(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", call)
    checks = checks_of(account, settings(), subnet=account["subnet"])
    assert checks["subnet"].ok and checks["sweep index"].ok
    assert reads == ["sweeps.txt"]


def answer_route_tables(monkeypatch, answer):
    """DescribeRouteTables answered by ``answer()`` (moto answers every other call)."""
    from botocore.client import BaseClient

    real = BaseClient._make_api_call

    def call(self, operation, params):
        return answer() if operation == "DescribeRouteTables" else real(self, operation,
                                                                         params)

    monkeypatch.setattr(BaseClient, "_make_api_call", call)


def test_routes_that_cannot_be_read_are_said_unchecked_not_failed(account, monkeypatch):
    # A participant in a shared VPC sees the subnet but not the owner's route tables.
    answer_route_tables(monkeypatch, lambda: {"RouteTables": []})
    check = checks_of(account, settings(), subnet=account["subnet"])["subnet"]
    assert check.ok and "route table is not visible to this account" in check.detail

    # Credentials without the permission: the check says so and what to allow.
    from botocore.exceptions import ClientError

    def refuse():
        raise ClientError({"Error": {"Code": "UnauthorizedOperation",
                                     "Message": "not authorized"}}, "DescribeRouteTables")

    answer_route_tables(monkeypatch, refuse)
    check = checks_of(account, settings(), subnet=account["subnet"])["subnet"]
    assert check.ok and "routes not checked (UnauthorizedOperation" in check.detail
    assert "allow ec2:DescribeRouteTables and ec2:DescribeVpcEndpoints" in check.detail


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
