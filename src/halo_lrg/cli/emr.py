"""``halo-lrg submit``, ``status`` and ``fetch``: the job on a transient EMR cluster."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import click

from halo_lrg.cli.options import (
    CONTEXT_SETTINGS,
    footprint_options,
    get_config,
    make_footprint,
    override,
)
from halo_lrg.science.cuts import SELECTION_NAMES


def _errors():
    from halo_lrg.aws.emr import EmrConfigError
    from halo_lrg.aws.launch import LaunchError

    return (EmrConfigError, LaunchError)


@click.command("submit", context_settings=CONTEXT_SETTINGS)
@click.option("--region", default=None, help="AWS region [config emr.region].")
@click.option("--sweep-index-s3", default=None, metavar="S3_URI",
              help="The sweep index on S3 (one sweep URI per line; s3:// or https://).")
@click.option("--output-prefix", default=None, metavar="S3_URI",
              help="Where the job writes lrg_counts_per_brick/ and manifest.json.")
@click.option("--code-prefix", default=None, metavar="S3_URI",
              help="Where the wheel, job script and bootstrap script are uploaded.")
@click.option("--log-uri", default=None, metavar="S3_URI", help="EMR logs (step stderr...).")
@click.option("--release-label", default=None, help="EMR release [emr-7.13.0].")
@click.option("--instance-type", default=None, help="Master instance type [m5.xlarge].")
@click.option("--core-instance-type", default=None, help="Core instance type [m5.xlarge].")
@click.option("--core-count", type=click.IntRange(min=1), default=None,
              help="Number of core nodes [2].")
@click.option("--spot/--on-demand", default=None, help="Task nodes (--task-count) on spot; "
              "master and core nodes always stay on-demand (driver, YARN ApplicationMaster) "
              "[on-demand].")
@click.option("--task-count", type=click.IntRange(min=0), default=None,
              help="Task nodes: executors only, the ApplicationMaster stays on core [0].")
@click.option("--task-instance-type", default=None,
              help="Task node type [the core type].")
@click.option("--yarn-memory-mb", type=click.IntRange(min=1), default=None,
              help="Size by hand: YARN memory per core node (the type's "
              "yarn.nodemanager.resource.memory-mb) [from halo-lrg's instance table].")
@click.option("--executors-per-node", type=click.IntRange(min=1), default=None,
              help="Size by hand: executors per core node [vCPUs / executor cores].")
@click.option("--executor-cores", type=click.IntRange(min=1), default=None,
              help="Size by hand: cores per executor [largest divisor of the vCPUs <= 4].")
@click.option("--executor-memory", default=None, metavar="SIZE",
              help="Size by hand: JVM heap per executor, e.g. 2g; the rest of its share of the "
              "node is memoryOverhead (Python workers) [30%, 1 GB to 1 GB per core].")
@click.option("--subnet-id", default=None, help="EC2 subnet (Instances.Ec2SubnetId) [the "
              "default VPC].")
@click.option("--key-name", default=None, help="EC2 key pair for SSH to the nodes.")
@click.option("--master-security-group", default=None, metavar="SG",
              help="EMR-managed security group of the master.")
@click.option("--core-security-group", default=None, metavar="SG",
              help="EMR-managed security group of core and task nodes.")
@click.option("--additional-master-security-group", multiple=True, metavar="SG",
              help="Additional master security group (repeatable).")
@click.option("--additional-core-security-group", multiple=True, metavar="SG",
              help="Additional core/task security group (repeatable).")
@click.option("--ebs-gb", type=click.IntRange(min=1), default=None,
              help="gp3 EBS volume per node, GiB [EMR's default storage].")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE",
              help="Cluster tag (repeatable; replaces config emr.tags).")
@click.option("--max-sweeps", type=click.IntRange(min=0), default=None,
              help="Read at most N sweeps (smoke tests).")
@footprint_options
@click.option("--selection", type=click.Choice(SELECTION_NAMES), default=None,
              help="LRG selection [config cuts.selection].")
@click.option("--on-error", type=click.Choice(["fail", "skip"]), default=None,
              help="What the job does with an unusable sweep [config run.on_error: fail].")
@click.option("--profile", default=None, help="AWS named profile for credentials.")
@click.option("--dry-run", is_flag=True,
              help="Print the exact run_job_flow request as JSON; upload and launch nothing.")
@click.option("--wait", is_flag=True,
              help="Poll until the step ends; fetch the result on success into --dest.")
@click.option("--dest", type=click.Path(file_okay=False, path_type=Path),
              default=Path("outputs/emr"), show_default=True,
              help="Where --wait downloads the CSV and manifest.")
@click.option("--debug", is_flag=True, help="Run the hello-world debug step instead of the "
              "job: Spark, executor imports, S3 read/write, Python and memory.")
@click.pass_context
def submit_command(ctx: click.Context, region: Optional[str], sweep_index_s3: Optional[str],
                   output_prefix: Optional[str], code_prefix: Optional[str],
                   log_uri: Optional[str], release_label: Optional[str],
                   instance_type: Optional[str], core_instance_type: Optional[str],
                   core_count: Optional[int], spot: Optional[bool], task_count: Optional[int],
                   task_instance_type: Optional[str], yarn_memory_mb: Optional[int],
                   executors_per_node: Optional[int], executor_cores: Optional[int],
                   executor_memory: Optional[str], subnet_id: Optional[str],
                   key_name: Optional[str], master_security_group: Optional[str],
                   core_security_group: Optional[str],
                   additional_master_security_group: tuple[str, ...],
                   additional_core_security_group: tuple[str, ...], ebs_gb: Optional[int],
                   tags: tuple[str, ...], max_sweeps: Optional[int],
                   ra_min: Optional[float], ra_max: Optional[float], dec_min: Optional[float],
                   dec_max: Optional[float], selection: Optional[str],
                   on_error: Optional[str], profile: Optional[str], dry_run: bool, wait: bool,
                   dest: Path, debug: bool) -> None:
    """Run the LRG count on a transient EMR cluster (it terminates when the step ends).

    Builds the wheel if dist/ lacks this version, uploads it with jobs/lrg_density.py and a
    bootstrap script (pinned numpy, pandas, pyarrow, fitsio for the executors' Python 3.11)
    to --code-prefix, then calls run_job_flow with one spark-submit step.

    \b
    Example:
      halo-lrg submit --region us-east-1 --sweep-index-s3 s3://my-bucket/sweeps.txt \\
          --output-prefix s3://my-bucket/run1 --code-prefix s3://my-bucket/code \\
          --log-uri s3://my-bucket/logs --core-count 4 --wait
      halo-lrg submit ... --task-count 8 --spot --subnet-id subnet-0abc --tag team=astro
    """
    from halo_lrg.aws.emr import check_settings, job_args, run_job_flow_request
    from halo_lrg.aws.launch import (
        WHEEL_NAME,
        aws_session,
        ensure_wheel,
        fetch_result,
        launch,
        upload_artifacts,
        wait_for,
    )

    config = override(get_config(ctx), emr={
        "region": region, "sweep_index_s3": sweep_index_s3, "output_prefix": output_prefix,
        "code_prefix": code_prefix, "log_uri": log_uri, "release_label": release_label,
        "instance_type": instance_type, "core_instance_type": core_instance_type,
        "core_count": core_count, "spot": spot, "task_count": task_count,
        "task_instance_type": task_instance_type, "yarn_memory_mb": yarn_memory_mb,
        "executors_per_node": executors_per_node, "executor_cores": executor_cores,
        "executor_memory": executor_memory, "subnet_id": subnet_id, "key_name": key_name,
        "master_security_group": master_security_group,
        "core_security_group": core_security_group,
        "additional_master_security_groups": additional_master_security_group or None,
        "additional_core_security_groups": additional_core_security_group or None,
        "ebs_gb": ebs_gb, "tags": tags or None})
    emr = config.emr
    footprint = make_footprint(ra_min, ra_max, dec_min, dec_max)
    try:
        check_settings(emr)
        args = job_args(emr, selection, max_sweeps, footprint.to_dict() if footprint else None,
                        on_error)
        if dry_run:
            from halo_lrg.aws.emr import artifact_uris

            request = run_job_flow_request(emr, artifact_uris(emr, WHEEL_NAME), args, debug)
            click.echo(json.dumps(request, indent=2))
            return
        session = aws_session(profile, emr.region)
        wheel = ensure_wheel(emit=click.echo)
        uris = upload_artifacts(session, emr, wheel, emit=click.echo)
        cluster_id = launch(session, run_job_flow_request(emr, uris, args, debug))
        click.echo(f"cluster {cluster_id} started in {emr.region}: "
                   f"halo-lrg status {cluster_id}")
        if not wait:
            return
        status = wait_for(session, cluster_id, emr.poll_interval_seconds,
                          emr.wait_timeout_seconds, emit=click.echo)
        if not status.succeeded:
            raise click.ClickException(
                f"{cluster_id}: step {status.step_state or 'never ran'}"
                f"{': ' + status.step_failure if status.step_failure else ''}; "
                f"log: {status.step_log or emr.log_uri}")
        if debug:
            click.echo(f"debug step completed; its output: {status.step_log}"
                       .replace("stderr.gz", "stdout.gz"))
            return
        for path in fetch_result(session, emr.output_prefix, dest):
            click.echo(f"fetched {path}")
    except _errors() as exc:
        raise click.ClickException(str(exc)) from None


@click.command("status", context_settings=CONTEXT_SETTINGS)
@click.argument("cluster_id")
@click.option("--region", default=None, help="AWS region [config emr.region].")
@click.option("--profile", default=None, help="AWS named profile for credentials.")
@click.pass_context
def status_command(ctx: click.Context, cluster_id: str, region: Optional[str],
                   profile: Optional[str]) -> None:
    """Cluster and step state of an EMR run, why it failed, and where the step's stderr is.

    \b
    Example:
      halo-lrg status j-2AXXXXXXGAPLF
    """
    from halo_lrg.aws.launch import aws_session, cluster_status

    emr = override(get_config(ctx), emr={"region": region}).emr
    try:
        status = cluster_status(aws_session(profile, emr.region), cluster_id)
    except _errors() as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(status.line())
    if status.step_failure:
        click.echo(f"failure: {status.step_failure}")
    if status.step_log:
        click.echo(f"step log: {status.step_log}")
    if status.output_prefix:
        click.echo(f"output: {status.output_prefix}")


@click.command("fetch", context_settings=CONTEXT_SETTINGS)
@click.argument("target", nargs=-1, required=True)
@click.option("--output-prefix", default=None, metavar="S3_URI",
              help="Fetch from this prefix instead of a cluster's step output.")
@click.option("--region", default=None, help="AWS region [config emr.region].")
@click.option("--profile", default=None, help="AWS named profile for credentials.")
@click.pass_context
def fetch_command(ctx: click.Context, target: tuple[str, ...], output_prefix: Optional[str],
                  region: Optional[str], profile: Optional[str]) -> None:
    """Download a run's CSV and manifest: CLUSTER_ID DEST, or --output-prefix S3_URI DEST.

    \b
    Examples:
      halo-lrg fetch j-2AXXXXXXGAPLF results/
      halo-lrg fetch --output-prefix s3://my-bucket/run1 results/
    """
    from halo_lrg.aws.launch import aws_session, cluster_status, fetch_result

    expected = 1 if output_prefix else 2
    if len(target) != expected:
        raise click.UsageError("give CLUSTER_ID DEST, or --output-prefix S3_URI DEST")
    dest = Path(target[-1])
    emr = override(get_config(ctx), emr={"region": region}).emr
    try:
        session = aws_session(profile, emr.region)
        prefix = output_prefix
        if prefix is None:
            status = cluster_status(session, target[0])
            if not status.output_prefix:
                raise click.ClickException(f"{target[0]}: no halo-lrg step output found")
            prefix = status.output_prefix
        for path in fetch_result(session, prefix, dest):
            click.echo(f"fetched {path}")
    except _errors() as exc:
        raise click.ClickException(str(exc)) from None
