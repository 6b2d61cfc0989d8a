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

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable, Optional

from halo_lrg.config import EmrConfig, RemoteConfig
from halo_lrg.io.uri import is_s3, scheme_of, split_s3_uri
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


def check_subnet(session: Any, subnet_id: str) -> Check:
    def call() -> str:
        subnet = session.client("ec2").describe_subnets(SubnetIds=[subnet_id])["Subnets"][0]
        return f"{subnet_id} in {subnet['AvailabilityZone']} ({subnet['VpcId']})"

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


def check_index(session: Any, index_uri: str, remote: RemoteConfig) -> Check:
    """The index is readable, and a sample of its entries exist where a cluster can read."""
    def call() -> str:
        bucket, key = split_s3_uri(index_uri, require_key=True)
        body = session.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        try:
            entries, _duplicates = parse_index(body.decode("utf-8"), index_uri)
        except UnicodeDecodeError:
            raise _Failed(f"{index_uri}: not UTF-8 text") from None
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


def run_checks(session: Any, emr: EmrConfig, remote: RemoteConfig,
               instance_types: Sequence[str], subnet_id: str = "") -> list[Check]:
    """Every check, in order; none stops the others."""
    checks = [check_credentials(session), *check_roles(session, emr), check_release(session, emr),
              check_instance_types(session, instance_types, emr.region)]
    if subnet_id:
        checks.append(check_subnet(session, subnet_id))
    checks += [check_index(session, emr.sweep_index_s3, remote),
               check_writable(session, "output prefix", emr.output_prefix),
               check_writable(session, "log prefix", emr.log_uri),
               check_writable(session, "code prefix", emr.code_prefix)]
    return checks
