"""``halo-lrg submit``, ``status`` and ``fetch``: the job on a transient EMR cluster."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import click

from halo_lrg.cli.options import (
    CONTEXT_SETTINGS,
    apply_science_options,
    get_config,
    override,
    science_options,
)
from halo_lrg.config import Config


def _errors():
    from halo_lrg.aws.emr import EmrConfigError
    from halo_lrg.aws.launch import LaunchError
    from halo_lrg.aws.wheelhouse import WheelhouseError

    return (EmrConfigError, LaunchError, WheelhouseError)


@click.command("submit", context_settings=CONTEXT_SETTINGS)
@click.option("--region", default=None, help="AWS region [config emr.region].")
@click.option("--sweep-index-s3", default=None, metavar="S3_URI",
              help="The sweep index on S3 (one sweep URI per line; s3:// or https://).")
@click.option("--output-prefix", default=None, metavar="S3_URI",
              help="Where the job writes lrg_counts_per_brick/ and manifest.json.")
@click.option("--code-prefix", default=None, metavar="S3_URI",
              help="Where the wheel, step scripts, bootstrap script and configuration are "
              "uploaded (under <version>-<content digest>/).")
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
@click.option("--ebs-gb", type=click.IntRange(min=5, max=1024), default=None,
              help="One gp3 EBS volume per node, GiB, instead of EMR's default storage "
              "(xlarge: 2 x 32 GiB, 2xlarge: 4 x 32, 4xlarge: 4 x 64, 8xlarge: 4 x 128). "
              "Tasks stage what they read there; submit checks it fits.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE",
              help="Cluster tag (repeatable; replaces config emr.tags).")
@science_options
@click.option("--checksums", default=None, metavar="S3_URI|URL",
              help="A sha256sum list, as `halo-lrg run --checksums` takes (e.g. the one "
              "`halo-lrg index` saves, uploaded): the cluster checks every input's SHA-256 "
              "against it. s3:// or http(s):// only: the nodes cannot read a local path "
              "[config run.checksums].")
@click.option("--profile", default=None, help="AWS named profile for credentials.")
@click.option("--wheel", "wheel_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, metavar="PATH",
              help="Upload this halo-lrg wheel [a checkout's dist/ wheel, rebuilt when "
              "older than src/; else one made from the installed halo-lrg].")
@click.option("--wheelhouse", type=click.Path(file_okay=False, path_type=Path), default=None,
              metavar="DIR", help="Nodes without PyPI (private subnet, no NAT): upload the "
              "pinned dependency wheels in DIR (pip-downloaded into it for the nodes' "
              "Python 3.11 / x86_64 if it lacks any) and install them from S3 only.")
@click.option("--max-cost", type=click.FloatRange(min=0), default=None, metavar="USD",
              help="Refuse to launch when the estimated cost exceeds USD (or cannot be "
              "estimated).")
@click.option("--preflight", "preflight_only", is_flag=True,
              help="Only run the checks (credentials, roles, release, instance types, "
              "subnet, index, prefixes), then the estimate and the nodes' disks (and "
              "--max-cost): exit 1 where submit would refuse. Uploads and launches nothing.")
@click.option("--skip-preflight", is_flag=True,
              help="Launch without the checks a normal submit runs first (experts).")
@click.option("--dry-run", is_flag=True,
              help="Print the exact run_job_flow request as JSON; no AWS call at all.")
@click.option("--wait", is_flag=True,
              help="Poll until the step ends, printing its progress; fetch the result on "
              "success into --dest.")
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
                   tags: tuple[str, ...], checksums: Optional[str], profile: Optional[str],
                   wheel_path: Optional[Path], wheelhouse: Optional[Path],
                   max_cost: Optional[float], preflight_only: bool, skip_preflight: bool,
                   dry_run: bool, wait: bool, dest: Path, debug: bool, **science: Any) -> None:
    """Run the LRG count on a transient EMR cluster (it terminates when the step ends).

    \b
    In order:
      1. the settings are checked (placeholders, URIs, sizing) and the configuration the
         step will run with is resolved: defaults < --config < HALO_LRG_* < flags;
      2. preflight: the checks of --preflight (skip with --skip-preflight);
      3. the estimate: input bytes (HEAD of each index entry), cluster shape, time and
         cost (--max-cost USD refuses to launch above it), and the nodes' disks: what
         their tasks stage at once must fit (else it refuses, naming the --ebs-gb that
         would);
      4. uploads to <code-prefix>/<version>-<digest>/: the wheel, the step scripts, the
         bootstrap script and halo-lrg.toml (the configuration); unchanged objects are
         skipped, a changed one is a new digest;
      5. run_job_flow with one spark-submit step: lrg_density.py --config <that toml>.

    \b
    Example:
      halo-lrg submit --region us-east-1 --sweep-index-s3 s3://my-bucket/sweeps.txt \\
          --output-prefix s3://my-bucket/run1 --code-prefix s3://my-bucket/code \\
          --log-uri s3://my-bucket/logs --preflight
      halo-lrg submit ... --core-count 4 --selection desi-lrg --max-cost 5 --wait
      halo-lrg submit ... --task-count 8 --spot --subnet-id subnet-0abc --wheelhouse wheels/

    \b
    Every science flag of `halo-lrg run` (--selection, --resolve/--no-resolve, thresholds,
    --on-error, --max-sweeps, footprint, --checksums...: the options both list) is taken
    here and reaches the step through the uploaded configuration (the footprint as step
    flags). The rest of `run`'s flags do not apply:
      --index, --output    here --sweep-index-s3, --output-prefix
      --master             the step runs on the cluster's YARN
      --region             here the cluster's region (--region), also the step's AWS region
                           unless config remote.region says otherwise
      --config             give it to the group: halo-lrg --config FILE submit ...; the
                           effective configuration is what is uploaded
      --resume/--no-resume config run.resume (uploaded): a resubmission to the same
                           --output-prefix reuses the stored partials
      --retry-failed       resubmit to the same --output-prefix: resuming counts only
                           the files without a partial, i.e. the failed ones
      --with-density       not written on the cluster: run `halo-lrg density` on the
                           fetched CSV
      --format             config output.formats (uploaded); `fetch` and --wait download
                           the CSV and manifest only
    """
    from halo_lrg.aws.artifacts import artifact_set
    from halo_lrg.aws.emr import (
        bootstrap_script,
        check_settings,
        cluster_config,
        job_args,
        run_job_flow_request,
    )
    from halo_lrg.aws.launch import (
        aws_session,
        fetch_result,
        launch,
        locate_wheel,
        progress_of,
        upload_artifacts,
        upload_wheelhouse,
        wait_for,
    )
    from halo_lrg.aws.wheelhouse import check_nodes, prepare, wheelhouse_uri
    from halo_lrg.config import to_toml

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
    config, footprint = apply_science_options(config, **science)
    config = override(config, run={"checksums": checksums})
    _check_cluster_readable(config.run.checksums, flagged=checksums is not None)
    emr = config.emr
    if preflight_only and (dry_run or skip_preflight):
        raise click.UsageError("--preflight checks and launches nothing: it takes neither "
                               "--dry-run nor --skip-preflight")

    def emit(line: str) -> None:
        if not dry_run:  # --dry-run prints the request alone (it may still build the wheel)
            click.echo(line)

    try:
        check_settings(emr)
        if preflight_only:
            session = aws_session(profile, emr.region)
            checks = _preflight(session, config, verbose=True,
                                wheelhouse=wheelhouse is not None)
            failed = [c for c in checks if not c.ok]
            if failed:
                raise click.ClickException(f"preflight: {len(failed)} of {len(checks)} "
                                           "checks failed (each FAIL line says how to fix it)")
            click.echo(f"preflight: all {len(checks)} checks passed")
            if not debug:  # what submit would refuse on next: the cost, the disks
                _estimate(session, config, footprint, max_cost)
            return
        wheelhouse_prefix = ""
        if wheelhouse is not None:
            check_nodes(emr)
            wheelhouse_prefix = wheelhouse_uri(emr)
        wheel = locate_wheel(wheel_path, emit=emit)
        artifacts = artifact_set(wheel.name, wheel.read_bytes(),
                                 bootstrap_script(emr, wheelhouse_prefix),
                                 to_toml(cluster_config(config)))
        uris = artifacts.uris(emr.code_prefix)
        args = job_args(emr, uris["config"], footprint.to_dict() if footprint else None)
        request = run_job_flow_request(emr, uris, args, debug)
        if dry_run:
            click.echo(json.dumps(request, indent=2))
            return
        session = aws_session(profile, emr.region)
        if not skip_preflight:
            checks = _preflight(session, config, verbose=False,
                                wheelhouse=wheelhouse is not None)
            failed = [c for c in checks if not c.ok]
            if failed:
                raise click.ClickException(
                    f"preflight: {len(failed)} of {len(checks)} checks failed; nothing was "
                    "uploaded or launched (fix them, or --skip-preflight)")
            click.echo(f"preflight: all {len(checks)} checks passed")
        if not debug:
            _estimate(session, config, footprint, max_cost)
        if wheelhouse is not None:
            wheels = prepare(emr, wheelhouse, emit=click.echo)
            upload_wheelhouse(session, wheels, wheelhouse_prefix, emit=click.echo)
        upload_artifacts(session, artifacts.uploads(emr.code_prefix), emit=click.echo)
        cluster_id = launch(session, request)
        click.echo(f"cluster {cluster_id} started in {emr.region}: "
                   f"halo-lrg status {cluster_id}")
        if not wait:
            return
        status = wait_for(session, cluster_id, emr.poll_interval_seconds,
                          emr.wait_timeout_seconds, emit=click.echo,
                          progress=None if debug else
                          lambda s: progress_of(session, s, emr.output_prefix))
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


def _check_cluster_readable(checksums: str, flagged: bool) -> None:
    """The step reads ``run.checksums`` on the cluster: a local path there is another
    machine's, so it is refused here (a usage error for ``--checksums``), before anything is
    uploaded or launched."""
    from halo_lrg.io.uri import scheme_of

    if not checksums or scheme_of(checksums) != "file":
        return
    message = (f"{checksums}: a local checksum list, which the cluster cannot read; upload "
               "it (aws s3 cp) and give its s3:// URI")
    if flagged:
        raise click.BadParameter(message, param_hint="'--checksums'")
    raise click.ClickException(f"run.checksums = {message}")


def _preflight(session: Any, config: Config, verbose: bool, wheelhouse: bool = False
               ) -> list[Any]:
    """Every preflight check; prints each line (``verbose``) or only the failures.
    ``wheelhouse``: the nodes install from S3 (what the subnet must reach)."""
    from halo_lrg.aws.preflight import run_checks

    emr = config.emr
    types = [emr.instance_type, emr.core_instance_type]
    if emr.task_count:
        types.append(emr.task_instance_type or emr.core_instance_type)
    checks = run_checks(session, emr, config.remote, types, emr.subnet_id.strip(), wheelhouse)
    for check in checks:
        if verbose or not check.ok:
            click.echo(check.line())
    return checks


def _estimate(session: Any, config: Config, footprint: Any, max_cost: Optional[float]
              ) -> None:
    """Print what the run will cost; refuse (ClickException) above --max-cost."""
    from halo_lrg.aws.emr import spark_resources
    from halo_lrg.aws.estimate import cluster_groups, estimate, source_for
    from halo_lrg.aws.launch import LaunchError, index_sizes

    emr = config.emr
    try:
        entries = index_sizes(session, emr.sweep_index_s3, config, footprint)
    except LaunchError as exc:
        click.echo(f"estimate: unavailable ({exc})")
        if max_cost is not None:
            raise click.ClickException(f"--max-cost {max_cost:g}: no estimate to compare "
                                       "with, so not launching") from None
        return
    sizes = [size for _uri, size in entries]
    groups = cluster_groups(emr, spark_resources(emr))
    result = estimate(sizes, groups, source_for([uri for uri, _size in entries], config.remote))
    click.echo("estimate (assumptions: halo_lrg/aws/estimate.py):")
    for line in result.lines():
        click.echo(f"  {line}")
    _check_disks(config, groups, sizes)
    if max_cost is None:
        return
    if result.cost_usd is None:
        raise click.ClickException(f"--max-cost {max_cost:g}: the cost could not be "
                                   "estimated (see the notes above), so not launching")
    if result.cost_usd > max_cost:
        raise click.ClickException(
            f"estimated cost ${result.cost_usd:,.2f} exceeds --max-cost {max_cost:g}: not "
            "launching (fewer --max-sweeps, a footprint, or a higher --max-cost)")


def _check_disks(config: Config, groups: Any, sizes: list[Optional[int]]) -> None:
    """Print whether the inputs a node's tasks stage at once fit its disks (halo_lrg.aws.
    disk); refuse (ClickException) when they would not. Pieces are planned as the job plans
    them: files over run.split_bytes in row ranges, files whole with a checksum list. (An
    HTTP server that sends no byte ranges makes a split file's tasks stage it whole, which
    only reading from it reveals: the check assumes the ranges.)"""
    from halo_lrg.aws.disk import staging_fits, staging_problem
    from halo_lrg.spark.plan import split_files

    known = [size for size in sizes if size is not None]
    if not known:
        click.echo("  disk:    not checked: no input's size is known")
        return
    split_bytes = 0 if config.run.checksums else config.run.split_bytes
    piece = max(p.bytes or 0 for p in split_files(known, split_bytes))
    fits = staging_fits(groups, piece, config.emr.ebs_gb)
    for fit in fits:
        click.echo(f"  disk:    {fit.line()}")
    if len(known) < len(sizes):
        click.echo(f"  disk:    {len(sizes) - len(known)} inputs of unknown size not counted")
    problem = staging_problem(fits)
    if problem:
        raise click.ClickException(f"{problem}. Not launching.")


@click.command("status", context_settings=CONTEXT_SETTINGS)
@click.argument("cluster_id")
@click.option("--region", default=None, help="AWS region [config emr.region].")
@click.option("--profile", default=None, help="AWS named profile for credentials.")
@click.pass_context
def status_command(ctx: click.Context, cluster_id: str, region: Optional[str],
                   profile: Optional[str]) -> None:
    """Cluster and step state of an EMR run, the job's progress, why it failed, and where
    the step's stderr is.

    \b
    Example:
      halo-lrg status j-2AXXXXXXGAPLF
      j-2AXXXXXXGAPLF: cluster RUNNING, step RUNNING
      progress: files 120/1436 (2 failed), 3.1e8 rows, 41,230 LRGs, 210 GB of 1.5 TB, ETA 1h12m
    """
    from halo_lrg.aws.launch import (
        LaunchError,
        aws_session,
        cluster_status,
        is_stale,
        read_progress,
    )
    from halo_lrg.aws.progress import progress_line

    emr = override(get_config(ctx), emr={"region": region}).emr
    try:
        session = aws_session(profile, emr.region)
        status = cluster_status(session, cluster_id)
    except _errors() as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(status.line())
    if status.step_failure:
        click.echo(f"failure: {status.step_failure}")
    if status.step_log:
        click.echo(f"step log: {status.step_log}")
    if not status.output_prefix:
        return
    click.echo(f"output: {status.output_prefix}")
    try:
        progress = read_progress(session, status.output_prefix)
    except LaunchError as exc:
        click.echo(f"progress: unavailable ({exc})")
        return
    if progress is None:
        click.echo("progress: none yet (the job writes _progress.json about every 30 s "
                   "once it runs)")
    elif is_stale(progress, status.created):
        click.echo("progress: none yet for this cluster (the _progress.json there is an "
                   "earlier run's)")
    else:
        click.echo(f"progress: {progress_line(progress)}")


@click.command("fetch", context_settings=CONTEXT_SETTINGS)
@click.argument("target", nargs=-1, required=True)
@click.option("--output-prefix", default=None, metavar="S3_URI",
              help="Fetch from this prefix instead of a cluster's step output.")
@click.option("--region", default=None, help="AWS region [config emr.region].")
@click.option("--profile", default=None, help="AWS named profile for credentials.")
@click.pass_context
def fetch_command(ctx: click.Context, target: tuple[str, ...], output_prefix: Optional[str],
                  region: Optional[str], profile: Optional[str]) -> None:
    """Download a complete run's CSV and manifest: CLUSTER_ID DEST, or --output-prefix
    S3_URI DEST. A result without _SUCCESS, or whose CSV its manifest does not describe, is
    refused with the reason (the run failed, is still running, or was interrupted).

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
