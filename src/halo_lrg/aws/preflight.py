"""Checks ``submit`` runs before it uploads or launches anything.

A cluster costs money from the moment it starts, and a mistake found by the job (an output
prefix it may not write, a sweep it cannot read) is found after bootstrapping, often after
hours. Each check here is one cheap call from the launching machine; all of them run (a user
fixes every problem in one go), and each failure is one line naming the check and the fix.

What the launching credentials can do is not what the cluster's instance profile can do: the
S3 checks prove the locations exist and are writable by *you*; the step's own first write
(``_progress.json``, within seconds of the job starting) proves it for the instance profile.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable, Optional

from halo_lrg.config import EmrConfig, RemoteConfig
from halo_lrg.io.uri import http_hosts, is_s3, scheme_of, split_s3_uri
from halo_lrg.survey.index import parse_index

#: How many index entries are HEAD-checked (first, last and evenly spaced between).
SAMPLE_ENTRIES = 8
MARKER = "_halo_lrg_preflight"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        mark = "ok  " if self.ok else "FAIL"
        fix = f" — fix: {self.fix}" if self.fix and not self.ok else ""
        return f"{mark} {self.name}: {self.detail}{fix}"


def _aws_error(exc: BaseException) -> str:
    """One line from a botocore error: its code and message."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        return f"{error.get('Code', 'Error')}: {error.get('Message') or 'request failed'}"
    return f"{type(exc).__name__}: {exc}"


def _run(name: str, fix: str, call: Callable[[], str]) -> Check:
    """A check: ``call`` returns the success detail or raises."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return Check(name, True, call())
    except _Failed as failure:
        return Check(name, False, str(failure), failure.fix or fix)
    except (ClientError, BotoCoreError) as exc:
        return Check(name, False, _aws_error(exc), fix)
    except ValueError as exc:  # a malformed URI, named by its message
        return Check(name, False, str(exc), fix)


class _Failed(Exception):
    def __init__(self, message: str, fix: str = "") -> None:
        super().__init__(message)
        self.fix = fix


def sample(items: Sequence[str], count: int = SAMPLE_ENTRIES) -> list[str]:
    """First, last and evenly spaced entries: a mistake in an index is rarely in one line."""
    if len(items) <= count:
        return list(items)
    step = (len(items) - 1) / (count - 1)
    return [items[round(i * step)] for i in range(count)]


def check_credentials(session: Any) -> Check:
    def call() -> str:
        return f"as {session.client('sts').get_caller_identity()['Arn']}"

    return _run("credentials", "aws configure, AWS_PROFILE or --profile", call)


def check_roles(session: Any, emr: EmrConfig) -> list[Check]:
    iam = session.client("iam")
    create = "aws emr create-default-roles (or name existing ones with " \
             "--config keys emr.service_role / emr.job_flow_role)"
    return [
        _run("service role", create,
             lambda: f"{iam.get_role(RoleName=emr.service_role)['Role']['Arn']}"),
        _run("instance profile", create,
             lambda: iam.get_instance_profile(
                 InstanceProfileName=emr.job_flow_role)["InstanceProfile"]["Arn"]),
    ]


def check_release(session: Any, emr: EmrConfig) -> Check:
    def call() -> str:
        client = session.client("emr")
        labels, token = [], None
        while True:
            page = client.list_release_labels(**({"NextToken": token} if token else {}))
            labels += page.get("ReleaseLabels", [])
            token = page.get("NextToken")
            if not token:
                break
        if emr.release_label not in labels:
            newest = sorted((lb for lb in labels if lb.startswith("emr-7.")),
                            key=lambda lb: [int(p) for p in lb[4:].split(".")])[-1:]
            raise _Failed(f"{emr.release_label} is not offered in {emr.region}",
                          f"--release-label {newest[0]}" if newest else "")
        return f"{emr.release_label} offered in {emr.region}"

    return _run("release label", "--release-label emr-7.x offered in the region", call)


def check_instance_types(session: Any, types: Sequence[str], region: str) -> Check:
    wanted = sorted({t for t in types if t})

    def call() -> str:
        offered = session.client("ec2").describe_instance_type_offerings(
            LocationType="region",
            Filters=[{"Name": "instance-type", "Values": wanted}])["InstanceTypeOfferings"]
        missing = sorted(set(wanted) - {o["InstanceType"] for o in offered})
        if missing:
            raise _Failed(f"{', '.join(missing)} not offered in {region}")
        return f"{', '.join(wanted)} offered in {region}"

    return _run("instance types", "choose types offered in the region (aws ec2 "
                "describe-instance-type-offerings)", call)


#: A default route's targets that carry traffic out of the VPC (describe_route_tables' keys):
#: an internet gateway (``igw-``, a public subnet), a NAT gateway, a NAT instance (or its
#: network interface), a transit gateway.
_EGRESS_TARGETS = ("GatewayId", "NatGatewayId", "InstanceId", "NetworkInterfaceId",
                   "TransitGatewayId")


@dataclass(frozen=True)
class SubnetRoutes:
    """What a subnet's route table lets its nodes reach, for an EMR cluster (EMR Management
    Guide, "Amazon VPC options": every node reaches S3 through an internet gateway, a NAT or
    an S3 gateway endpoint; anything else on the internet, PyPI or an https:// portal, needs
    an internet gateway or a NAT)."""

    table: str  #: the route table (the subnet's own, else its VPC's main table)
    egress: str  #: the 0.0.0.0/0 route's target, "" when there is none
    s3_endpoint: str  #: an S3 gateway endpoint on the table, "" when there is none

    @property
    def public(self) -> bool:
        return self.egress.startswith("igw-")


def subnet_routes(ec2: Any, subnet_id: str, vpc_id: str, region: str
                  ) -> Optional[SubnetRoutes]:
    """The routes of ``subnet_id``: its explicitly associated table, else the VPC's main one
    (a subnet without an association uses it); None when this account sees neither: a
    subnet shared from another account's VPC, whose route tables are the owner's, which
    participants cannot view (VPC User Guide, "Share your VPC subnets")."""
    tables = ec2.describe_route_tables(Filters=[
        {"Name": "association.subnet-id", "Values": [subnet_id]}])["RouteTables"]
    if not tables:
        tables = ec2.describe_route_tables(Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "association.main", "Values": ["true"]}])["RouteTables"]
    if not tables:
        return None
    table = tables[0]
    egress = ""
    for route in table.get("Routes", []):
        if route.get("DestinationCidrBlock") != "0.0.0.0/0" or route.get("State") == "blackhole":
            continue
        egress = next((route[key] for key in _EGRESS_TARGETS
                       if str(route.get(key, "")) not in ("", "local")), "")
    endpoints = ec2.describe_vpc_endpoints(Filters=[
        {"Name": "vpc-id", "Values": [vpc_id]},
        {"Name": "service-name", "Values": [f"com.amazonaws.{region}.s3"]},
        {"Name": "vpc-endpoint-type", "Values": ["Gateway"]}])["VpcEndpoints"]
    s3_endpoint = next((e["VpcEndpointId"] for e in endpoints
                        if table["RouteTableId"] in e.get("RouteTableIds", [])), "")
    return SubnetRoutes(table["RouteTableId"], egress, s3_endpoint)


def check_subnet(session: Any, subnet_id: str, region: str = "",
                 internet_needs: Sequence[str] = ()) -> Check:
    """The subnet exists, its nodes reach S3 (the code, the logs, the results), and the
    internet too when ``internet_needs`` says what needs it (PyPI, https:// sweeps)."""
    from botocore.exceptions import ClientError

    def call() -> str:
        ec2 = session.client("ec2")
        subnet = ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"][0]
        where = f"{subnet_id} in {subnet['AvailabilityZone']} ({subnet['VpcId']})"
        try:
            routes = subnet_routes(ec2, subnet_id, subnet["VpcId"],
                                   region or session.region_name)
        except ClientError as exc:  # what cannot be checked does not stop a launch
            return (f"{where}: routes not checked ({_aws_error(exc)}; allow "
                    "ec2:DescribeRouteTables and ec2:DescribeVpcEndpoints to check them)")
        if routes is None:
            return (f"{where}: its route table is not visible to this account (a shared "
                    "VPC's stays its owner's), so what the nodes reach is not checked")
        if not routes.egress and not routes.s3_endpoint:
            raise _Failed(
                f"{where}: route table {routes.table} has no default route (0.0.0.0/0) and no "
                "S3 gateway endpoint, so the nodes cannot reach S3 (the code, the logs, the "
                "results)", f"add an S3 gateway endpoint to {routes.table}, or a 0.0.0.0/0 "
                "route to a NAT gateway, or use a public subnet")
        if not routes.egress and internet_needs:
            raise _Failed(
                f"{where}: no route to the internet (route table {routes.table} has no "
                f"0.0.0.0/0 route; S3 through {routes.s3_endpoint}), which "
                f"{' and '.join(internet_needs)} need",
                f"a 0.0.0.0/0 route to a NAT gateway in {routes.table}, or a public subnet; "
                "or --wheelhouse and sweeps copied to S3")
        if routes.public:
            return f"{where}: public (0.0.0.0/0 via {routes.egress})"
        if routes.egress:
            return f"{where}: private, 0.0.0.0/0 via {routes.egress}"
        return f"{where}: private without internet, S3 through {routes.s3_endpoint}"

    return _run("subnet", "--subnet-id of a subnet in this region", call)


def check_writable(session: Any, name: str, prefix: str) -> Check:
    """Put a marker under ``prefix``, then delete it and confirm it is gone."""
    def call() -> str:
        bucket, key = split_s3_uri(prefix)
        marker = "/".join(p for p in (key.rstrip("/"), MARKER, uuid.uuid4().hex) if p)
        s3 = session.client("s3")
        s3.put_object(Bucket=bucket, Key=marker, Body=b"halo-lrg preflight\n")
        s3.delete_object(Bucket=bucket, Key=marker)
        return f"{prefix}: writable and deletable"

    return _run(name, f"create the bucket, or grant s3:PutObject and s3:DeleteObject on "
                      f"{prefix}/*", call)


def _index_entries(session: Any, index_uri: str) -> list[str]:
    bucket, key = split_s3_uri(index_uri, require_key=True)
    body = session.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    try:
        return parse_index(body.decode("utf-8"), index_uri)[0]
    except UnicodeDecodeError:
        raise _Failed(f"{index_uri}: not UTF-8 text") from None


def index_reader(session: Any, index_uri: str) -> Callable[[], list[str]]:
    """The index's entries, read from S3 at the first call and kept for the next ones (the
    checks that read it share one GET)."""
    return functools.lru_cache(maxsize=1)(functools.partial(_index_entries, session,
                                                            index_uri))


def check_index(session: Any, index_uri: str, remote: RemoteConfig,
                read_index: Optional[Callable[[], list[str]]] = None) -> Check:
    """The index is readable, and a sample of its entries exist where a cluster can read.
    ``read_index``: its entries (default: read now)."""
    read_index = read_index or index_reader(session, index_uri)

    def call() -> str:
        entries = read_index()
        if not entries:
            raise _Failed(f"{index_uri}: no sweep entries", "list one sweep URI per line")
        problems = [p for p in (_entry_problem(session, e, remote) for e in sample(entries))
                    if p]
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise _Failed(f"{problems[0]}{more}",
                          "fix the index (halo-lrg index writes one from a listing)")
        return f"{index_uri}: {len(entries)} entries, {min(len(entries), SAMPLE_ENTRIES)} " \
               "sampled and found"

    return _run("sweep index", "upload the index (one sweep URI per line)", call)


def _entry_problem(session: Any, entry: str, remote: RemoteConfig) -> Optional[str]:
    from botocore.exceptions import BotoCoreError, ClientError

    scheme = scheme_of(entry)
    try:
        if is_s3(entry):
            bucket, key = split_s3_uri(entry, require_key=True)
            session.client("s3").head_object(Bucket=bucket, Key=key)
        elif scheme in ("http", "https"):
            from halo_lrg.io.http import content_length

            content_length(entry, remote)
        else:
            return f"{entry}: a cluster cannot read a local path (use s3:// or https://)"
    except (ClientError, BotoCoreError) as exc:
        return f"{entry}: {_aws_error(exc)}"
    except Exception as exc:  # HTTP errors, malformed URIs: named with the entry
        return f"{entry}: {exc}"
    return None


def internet_needs(read_index: Callable[[], Sequence[str]], wheelhouse: bool) -> list[str]:
    """What a cluster reaches on the internet, beyond S3: PyPI for the bootstrap's packages
    (unless a wheelhouse brings them from S3), and the hosts of the index's http(s) entries
    (``read_index``: :func:`index_reader`'s). An index that cannot be read adds nothing here
    (its own check says why)."""
    needs = [] if wheelhouse else ["the bootstrap's pip install from PyPI (no --wheelhouse)"]
    try:
        entries = read_index()
    except Exception:
        return needs
    hosts = http_hosts(entries)
    if hosts:
        needs.append(f"the index's http(s) entries ({', '.join(hosts[:3])}"
                     f"{', ...' if len(hosts) > 3 else ''})")
    return needs


def run_checks(session: Any, emr: EmrConfig, remote: RemoteConfig,
               instance_types: Sequence[str], subnet_id: str = "",
               wheelhouse: bool = False) -> list[Check]:
    """Every check, in order; none stops the others. ``wheelhouse``: the bootstrap installs
    from S3, not PyPI (what the subnet must reach)."""
    checks = [check_credentials(session), *check_roles(session, emr), check_release(session, emr),
              check_instance_types(session, instance_types, emr.region)]
    read_index = index_reader(session, emr.sweep_index_s3)
    if subnet_id:
        checks.append(check_subnet(session, subnet_id, emr.region,
                                   internet_needs(read_index, wheelhouse)))
    checks += [check_index(session, emr.sweep_index_s3, remote, read_index),
               check_writable(session, "output prefix", emr.output_prefix),
               check_writable(session, "log prefix", emr.log_uri),
               check_writable(session, "code prefix", emr.code_prefix)]
    return checks
