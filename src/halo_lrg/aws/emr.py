"""What an EMR run of halo-lrg looks like: the ``run_job_flow`` request, the Spark step, the
bootstrap script and the executor sizing. Pure functions: nothing here talks to AWS, so
``submit --dry-run`` and the tests see exactly what would be sent.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any, Optional

from halo_lrg import __version__
from halo_lrg.config import Config, EmrConfig
from halo_lrg.io.uri import split_s3_uri

PLACEHOLDER = "CHANGE_ME"


class EmrConfigError(ValueError):
    """A setting the launch needs is missing or wrong; the message says which and how to fix."""


@dataclass(frozen=True)
class InstanceShape:
    vcpus: int
    memory_gib: int
    #: What EMR gives YARN on this type (its default yarn.nodemanager.resource.memory-mb), or
    #: None where that default could not be confirmed from EMR's published tables.
    yarn_mb: Optional[int]


# vCPUs and memory: the EC2 instance-type tables (docs.aws.amazon.com/ec2/latest/instancetypes:
# gp.html, co.html, mo.html). yarn_mb: EMR Release Guide, "Task configuration", default
# yarn.nodemanager.resource.memory-mb per instance type (checked in the awsdocs/amazon-emr-
# release-guide copy of emr-hadoop-task-config.md, which lists c5, m5 and r5; the same tables
# give yarn.scheduler.minimum-allocation-mb = 32 for every type listed).
# UNCONFIRMED: EMR's default YARN memory for m6i, m7i, m6g, m7g, r6i, r7i, r6g, r7g, c6i and
# c7i could not be confirmed from a published table here, so it is None rather than a guess:
# those types size with --yarn-memory-mb (the value from EMR's "Task configuration" page, or
# /etc/hadoop/conf/yarn-site.xml on a node). c5 has no 8xlarge (c5 goes 4xlarge -> 9xlarge).
INSTANCE_SHAPES = {
    # General purpose: 4 GiB per vCPU.
    "m5.xlarge": InstanceShape(4, 16, 12288),
    "m5.2xlarge": InstanceShape(8, 32, 24576),
    "m5.4xlarge": InstanceShape(16, 64, 57344),
    "m5.8xlarge": InstanceShape(32, 128, 122880),
    **{f"{family}.{size}": InstanceShape(vcpus, vcpus * 4, None)
       for family in ("m6i", "m7i", "m6g", "m7g")
       for size, vcpus in (("xlarge", 4), ("2xlarge", 8), ("4xlarge", 16), ("8xlarge", 32))},
    # Memory optimized: 8 GiB per vCPU.
    "r5.xlarge": InstanceShape(4, 32, 24576),
    "r5.2xlarge": InstanceShape(8, 64, 57344),
    "r5.4xlarge": InstanceShape(16, 128, 122880),
    "r5.8xlarge": InstanceShape(32, 256, 253952),
    **{f"{family}.{size}": InstanceShape(vcpus, vcpus * 8, None)
       for family in ("r6i", "r7i", "r6g", "r7g")
       for size, vcpus in (("xlarge", 4), ("2xlarge", 8), ("4xlarge", 16), ("8xlarge", 32))},
    # Compute optimized: 2 GiB per vCPU.
    "c5.xlarge": InstanceShape(4, 8, 6144),
    "c5.2xlarge": InstanceShape(8, 16, 12288),
    "c5.4xlarge": InstanceShape(16, 32, 24576),
    **{f"{family}.{size}": InstanceShape(vcpus, vcpus * 2, None)
       for family in ("c6i", "c7i")
       for size, vcpus in (("xlarge", 4), ("2xlarge", 8), ("4xlarge", 16), ("8xlarge", 32))},
}

#: The sizes EMR takes for an EBS volume of a node (``emr.ebs_gb``): at least 5 GB on core
#: nodes (Management Guide, "Instance storage"), at most 1024 GiB (API reference,
#: VolumeSpecification.SizeInGB).
EBS_MIN_GIB, EBS_MAX_GIB = 5, 1024
#: yarn.scheduler.minimum-allocation-mb on EMR: YARN rounds every container up to a multiple.
YARN_ALLOCATION_MB = 32
#: The client-mode ApplicationMaster, set explicitly (Spark's defaults: 512m and
#: max(384m, 10%)) so the sizing never depends on them.
AM_MEMORY_MB = 512
AM_OVERHEAD_MB = 384
#: Cores per executor at most: several executors on larger nodes (see spark_resources).
MAX_EXECUTOR_CORES = 4
#: Share of an executor's container given to the JVM heap (at least MIN_HEAP_MB, at most
#: MAX_HEAP_PER_CORE_MB a core); the rest is memoryOverhead.
HEAP_FRACTION = 0.3
MIN_HEAP_MB = 1024
MAX_HEAP_PER_CORE_MB = 1024
MIN_OVERHEAD_MB = 384
MANUAL_SIZING = ("--yarn-memory-mb N (the type's yarn.nodemanager.resource.memory-mb), "
                 "--executors-per-node N and --executor-cores N, optionally --executor-memory "
                 "(config emr.yarn_memory_mb, emr.executors_per_node, emr.executor_cores, "
                 "emr.executor_memory)")


def round_up(mb: int, step: int = YARN_ALLOCATION_MB) -> int:
    return -(-mb // step) * step


def round_down(mb: int, step: int = YARN_ALLOCATION_MB) -> int:
    return mb // step * step


@dataclass(frozen=True)
class SparkResources:
    """Executor and ApplicationMaster sizes, and how many executors each node type holds."""

    executor_cores: int
    executor_memory_mb: int  #: JVM heap
    executor_overhead_mb: int  #: memoryOverhead: the Python workers live here
    executors_per_node: int  #: per core node, the ApplicationMaster's node included
    core_count: int
    yarn_memory_mb: int  #: what YARN offers per core node
    node_vcpus: int  #: per core node
    task_executors_per_node: int
    task_count: int
    task_yarn_memory_mb: int
    task_node_vcpus: int
    driver_memory_mb: int
    am_memory_mb: int = AM_MEMORY_MB
    am_overhead_mb: int = AM_OVERHEAD_MB

    @property
    def executor_container_mb(self) -> int:
        """What YARN allocates per executor: heap + overhead, rounded up to its step."""
        return round_up(self.executor_memory_mb + self.executor_overhead_mb)

    @property
    def am_container_mb(self) -> int:
        return round_up(self.am_memory_mb + self.am_overhead_mb)

    @property
    def executor_instances(self) -> int:
        return (self.executors_per_node * self.core_count
                + self.task_executors_per_node * self.task_count)

    def spark_defaults(self) -> dict[str, str]:
        """The sizing as spark-defaults properties (the cluster's, and the step's flags)."""
        return {"spark.driver.memory": f"{self.driver_memory_mb}m",
                "spark.executor.cores": str(self.executor_cores),
                "spark.executor.memory": f"{self.executor_memory_mb}m",
                "spark.executor.memoryOverhead": f"{self.executor_overhead_mb}m",
                "spark.executor.instances": str(self.executor_instances),
                "spark.yarn.am.memory": f"{self.am_memory_mb}m",
                "spark.yarn.am.memoryOverhead": f"{self.am_overhead_mb}m"}

    def submit_args(self) -> list[str]:
        conf = self.spark_defaults()
        return ["--driver-memory", conf["spark.driver.memory"],
                "--executor-cores", conf["spark.executor.cores"],
                "--executor-memory", conf["spark.executor.memory"],
                "--num-executors", conf["spark.executor.instances"],
                "--conf", f"spark.executor.memoryOverhead={conf['spark.executor.memoryOverhead']}",
                "--conf", f"spark.yarn.am.memory={conf['spark.yarn.am.memory']}",
                "--conf", f"spark.yarn.am.memoryOverhead={conf['spark.yarn.am.memoryOverhead']}"]


def spark_resources(emr: EmrConfig) -> SparkResources:
    """Executors that fill every core node, the ApplicationMaster's included.

    In client mode the driver runs on the master, but YARN's ApplicationMaster (512 MB heap +
    384 MB overhead = 896 MB, rounded up to YARN's 32 MB step) takes a container on a core node
    (the master runs no NodeManager). So every core node gets the same k executors, sized so
    that k of them *plus* the ApplicationMaster fit in the node's YARN memory Y:

        container = round_down((Y - 896) / k, 32)      k x container + 896 <= Y

    and no node has room for a (k+1)-th (true of every type in the table; the tests check it),
    so the k x core_count executors requested land k on every core node whatever order YARN
    fills them in. spark.executor.instances is exactly that (plus the task nodes' executors),
    and spark.yarn.am.memory is set explicitly so the arithmetic never depends on Spark's
    default.

    Cores: one task per vCPU, and all of a node's vCPUs go to executors (k x cores = vCPUs);
    none is kept for the ApplicationMaster, an idle JVM that only negotiates containers (the
    request sets YARN's DefaultResourceCalculator, so YARN schedules by memory alone and the
    vCPU rule is ours). Executors get the largest divisor of the node's vCPUs up to 4 cores:
    one executor per xlarge node, two per 2xlarge, four per 4xlarge, eight per 8xlarge.
    Several smaller executors rather than one per node: smaller JVM heaps (shorter GC
    pauses), the usual <= 4-5 concurrent streams per JVM for HDFS-client/S3 throughput, and
    a smaller blast radius (a lost executor loses at most 4 in-flight sweeps, not a node's).
    4 divides every vCPU count in the table, so no vCPU idles (5 would).

    Memory: each task reads one sweep in row chunks in a Python worker (a few hundred MB
    whatever the file's size) while the JVM side only moves small per-brick partials, so most
    of the container goes to memoryOverhead, where Python workers live, and the heap stays
    modest: 30 % of the container, at least 1 GB and at most 1 GB per core.

    Task nodes (no ApplicationMaster) hold as many such executors as fit their YARN memory
    and vCPUs. With the core type (the default) that is exactly k per node too; a task type
    with more memory per vCPU than the core type keeps memory room YARN may fill with extra
    executors, so its count is then a plan rather than a guarantee.

    Manual settings (yarn_memory_mb, executors_per_node, executor_cores, executor_memory)
    replace the table's numbers one by one; an instance type the table does not know needs
    the first three.
    """
    core_type = emr.core_instance_type
    shape = INSTANCE_SHAPES.get(core_type)
    yarn_mb = emr.yarn_memory_mb or (shape.yarn_mb if shape else None)
    if shape is None and not (emr.yarn_memory_mb and emr.executors_per_node
                              and emr.executor_cores):
        raise EmrConfigError(f"no memory sizing for instance type {core_type!r} in halo-lrg's "
                             f"table: size it by hand with {MANUAL_SIZING}")
    if not yarn_mb:
        raise EmrConfigError(
            f"EMR's default YARN memory for {core_type} is not confirmed in halo-lrg's table: "
            f"pass --yarn-memory-mb N (its yarn.nodemanager.resource.memory-mb, from EMR's "
            f"'Task configuration' page or /etc/hadoop/conf/yarn-site.xml on a node)")
    cores, per_node = emr.executor_cores, emr.executors_per_node
    if shape is not None:
        vcpus = shape.vcpus
        if not cores:
            cores = (max(1, vcpus // per_node) if per_node else
                     max(c for c in range(1, MAX_EXECUTOR_CORES + 1) if vcpus % c == 0))
        per_node = per_node or max(1, vcpus // cores)
    else:
        vcpus = per_node * cores
    am_container = round_up(AM_MEMORY_MB + AM_OVERHEAD_MB)
    container = round_down((yarn_mb - am_container) // per_node)
    if container < MIN_HEAP_MB + MIN_OVERHEAD_MB:
        raise EmrConfigError(
            f"{per_node} executors per node and the ApplicationMaster ({am_container} MB) do "
            f"not fit {yarn_mb} MB of YARN memory ({container} MB each, under "
            f"{MIN_HEAP_MB + MIN_OVERHEAD_MB}): use fewer --executors-per-node")
    if emr.executor_memory:
        heap = parse_memory_mb(emr.executor_memory)
        if container - heap < MIN_OVERHEAD_MB:
            raise EmrConfigError(
                f"--executor-memory {emr.executor_memory} leaves less than {MIN_OVERHEAD_MB} "
                f"MB of the {container} MB executor container for memoryOverhead (Python "
                f"workers): give the heap less, or use fewer --executors-per-node")
    else:
        heap = min(max(MIN_HEAP_MB, round_down(int(container * HEAP_FRACTION))),
                   MAX_HEAP_PER_CORE_MB * cores)
    task_per_node = task_yarn = task_vcpus = 0
    if emr.task_count:
        task_type = emr.task_instance_type or core_type
        if task_type == core_type:
            task_yarn, task_vcpus = yarn_mb, vcpus
        else:
            task_shape = INSTANCE_SHAPES.get(task_type)
            if task_shape is None or task_shape.yarn_mb is None:
                raise EmrConfigError(
                    f"task instance type {task_type!r} has no confirmed YARN memory in "
                    f"halo-lrg's table: use the core type for task nodes "
                    f"(--task-instance-type '') or one of {_confirmed_types()}")
            task_yarn, task_vcpus = task_shape.yarn_mb, task_shape.vcpus
        task_per_node = min(task_yarn // container, task_vcpus // cores)
        if task_per_node < 1:
            raise EmrConfigError(
                f"task instance type {task_type} cannot hold one executor ({container} MB, "
                f"{cores} cores): pick a larger task type")
    return SparkResources(
        executor_cores=cores, executor_memory_mb=heap, executor_overhead_mb=container - heap,
        executors_per_node=per_node, core_count=emr.core_count, yarn_memory_mb=yarn_mb,
        node_vcpus=vcpus, task_executors_per_node=task_per_node, task_count=emr.task_count,
        task_yarn_memory_mb=task_yarn, task_node_vcpus=task_vcpus,
        driver_memory_mb=driver_memory_mb(emr.instance_type))


def driver_memory_mb(master_type: str) -> int:
    """The client-mode driver runs on the master: a quarter of its memory, at least 1 GB."""
    shape = INSTANCE_SHAPES.get(master_type)
    if shape is None:
        raise EmrConfigError(f"no memory sizing for instance type {master_type!r} (master): "
                             f"use one of {_confirmed_types()} or another type of the table")
    return max(1024, shape.memory_gib * 1024 // 4)


def parse_memory_mb(value: str) -> int:
    """Spark-style memory ("2g", "2048m", "2048" = MB) in MB."""
    match = re.fullmatch(r"\s*(\d+)\s*([mMgG]?)[bB]?\s*", value)
    if not match or int(match.group(1)) == 0:
        raise EmrConfigError(f"executor memory {value!r}: expected e.g. 2g or 2048m")
    return int(match.group(1)) * (1024 if match.group(2).lower() == "g" else 1)


def _confirmed_types() -> str:
    return ", ".join(sorted(t for t, s in INSTANCE_SHAPES.items() if s.yarn_mb))


def _items(values: tuple[str, ...]) -> list[str]:
    return [v.strip() for v in values if v.strip()]


def parse_tags(values: tuple[str, ...]) -> list[dict[str, str]]:
    tags = []
    for item in _items(values):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise EmrConfigError(f"tag {item!r}: expected KEY=VALUE")
        tags.append({"Key": key.strip(), "Value": value.strip()})
    return tags


def check_settings(emr: EmrConfig) -> None:
    """Refuse placeholders and malformed values before anything is uploaded or launched."""
    for name in ("code_prefix", "output_prefix", "log_uri", "sweep_index_s3", "service_role",
                 "job_flow_role", "region", "release_label"):
        value = getattr(emr, name)
        if not value or PLACEHOLDER in value:
            flag = "--" + name.replace("_", "-")
            raise EmrConfigError(
                f"emr.{name} is not set ({value!r}): pass {flag}, set "
                f"HALO_LRG_EMR__{name.upper()}, or put it in a --config file")
    for name in ("code_prefix", "output_prefix", "log_uri", "sweep_index_s3"):
        value = getattr(emr, name)
        try:
            split_s3_uri(value)
        except ValueError:
            raise EmrConfigError(
                f"emr.{name} must be an s3://bucket/... URI, got {value!r}") from None
    if not emr.release_label.startswith("emr-7."):
        raise EmrConfigError(f"release {emr.release_label!r}: halo-lrg needs EMR 7.x "
                             "(Spark 3.5, Python 3.11 for fitsio wheels)")
    if emr.core_count < 1:
        raise EmrConfigError(f"core_count must be at least 1, got {emr.core_count}")
    for name in ("task_count", "yarn_memory_mb", "executors_per_node", "executor_cores",
                 "ebs_gb"):
        if getattr(emr, name) < 0:
            raise EmrConfigError(f"emr.{name} must not be negative, got {getattr(emr, name)}")
    if emr.ebs_gb and not EBS_MIN_GIB <= emr.ebs_gb <= EBS_MAX_GIB:
        raise EmrConfigError(f"emr.ebs_gb must be 0 (EMR's default storage) or {EBS_MIN_GIB} "
                             f"to {EBS_MAX_GIB} GiB (EMR's limits for a core node's volume), "
                             f"got {emr.ebs_gb}")
    if emr.spot and not emr.task_count:
        raise EmrConfigError(
            "--spot puts task nodes on spot, and there are none: add --task-count N (master "
            "and core nodes stay on-demand: they hold the driver and the ApplicationMaster)")
    if emr.subnet_id and not emr.subnet_id.startswith("subnet-"):
        raise EmrConfigError(f"emr.subnet_id must look like subnet-..., got {emr.subnet_id!r}")
    groups = [emr.master_security_group, emr.core_security_group,
              *emr.additional_master_security_groups, *emr.additional_core_security_groups]
    for group in _items(tuple(groups)):
        if not group.startswith("sg-"):
            raise EmrConfigError(f"security group {group!r}: expected an id like sg-...")
    parse_tags(emr.tags)
    spark_resources(emr)


def bootstrap_script(emr: EmrConfig, wheelhouse_uri: str = "") -> str:
    """Installs the compiled dependencies for the executors' Python on every node: from PyPI,
    or with ``wheelhouse_uri`` (an s3:// prefix of wheels) from S3 alone. The template is
    package data (``halo_lrg/aws/bootstrap.sh``); the values are shell-quoted into it."""
    from halo_lrg.aws.artifacts import package_file

    values = {"@VERSION@": __version__, "@PYTHON@": shlex.quote(emr.python),
              "@PACKAGES@": " ".join(shlex.quote(p) for p in emr.bootstrap_packages.split()),
              "@WHEELHOUSE@": shlex.quote(wheelhouse_uri),
              "@REGION@": shlex.quote(emr.region)}
    script = package_file("bootstrap.sh").decode()
    for placeholder, value in values.items():
        script = script.replace(placeholder, value)
    return script


def cluster_config(config: Config) -> Config:
    """The configuration the step runs with: the launching machine's, except what only
    means something there. ``remote.profile`` names a local credentials profile (the nodes
    use their instance profile), and an unset ``remote.region`` becomes the cluster's."""
    return config.replace(remote={"profile": "",
                                  "region": config.remote.region or config.emr.region})


#: Stands for the digest of an artefact set not built yet (a request examined on its own).
UNKNOWN_DIGEST = "0" * 12


def artifact_uris(emr: EmrConfig, wheel_name: str, digest: str = UNKNOWN_DIGEST
                  ) -> dict[str, str]:
    """Where ``submit`` puts each artefact of a set whose content digest is ``digest``:
    ``<code-prefix>/<version>-<digest>/<name>`` (``aws.artifacts`` computes the digest)."""
    from halo_lrg.aws.artifacts import artifact_names, base_uri

    base = base_uri(emr.code_prefix, digest)
    return {role: f"{base}/{name}" for role, name in artifact_names(wheel_name).items()}


def spark_step(name: str, script_uri: str, wheel_uri: str, resources: SparkResources,
               job_args: list[str]) -> dict[str, Any]:
    args = ["spark-submit", "--deploy-mode", "client", "--master", "yarn",
            "--py-files", wheel_uri, *resources.submit_args(), script_uri, *job_args]
    return {"Name": name, "ActionOnFailure": "TERMINATE_CLUSTER",
            "HadoopJarStep": {"Jar": "command-runner.jar", "Args": args}}


def job_args(emr: EmrConfig, config_uri: str,
             footprint: Optional[dict[str, float]] = None) -> list[str]:
    """The flags of `halo-lrg run` for the EMR step: the configuration file ``submit``
    uploaded (every setting, the science flags included, lives there), where to read and
    write, and the footprint (not a configuration key)."""
    args = ["--config", config_uri, "--index", emr.sweep_index_s3,
            "--output", emr.output_prefix]
    for key, value in (footprint or {}).items():
        args += [f"--{key.replace('_', '-')}", repr(float(value))]
    return args


def instance_groups(emr: EmrConfig) -> list[dict[str, Any]]:
    """Master and core on-demand always; spot capacity only as a TASK group.

    The master holds the client-mode driver and the core nodes the YARN ApplicationMaster (and
    HDFS): losing either loses the run, so neither is ever spot. Task nodes run executors only
    (their loss costs retried tasks, not the run).
    """
    def group(name: str, role: str, market: str, instance_type: str,
              count: int) -> dict[str, Any]:
        config: dict[str, Any] = {"Name": name, "InstanceRole": role, "Market": market,
                                  "InstanceType": instance_type, "InstanceCount": count}
        if emr.ebs_gb:
            config["EbsConfiguration"] = {"EbsBlockDeviceConfigs": [{
                "VolumeSpecification": {"VolumeType": "gp3", "SizeInGB": emr.ebs_gb},
                "VolumesPerInstance": 1}]}
        return config

    groups = [group("master", "MASTER", "ON_DEMAND", emr.instance_type, 1),
              group("core", "CORE", "ON_DEMAND", emr.core_instance_type, emr.core_count)]
    if emr.task_count:
        groups.append(group("task", "TASK", "SPOT" if emr.spot else "ON_DEMAND",
                            emr.task_instance_type or emr.core_instance_type, emr.task_count))
    return groups


def run_job_flow_request(emr: EmrConfig, uris: dict[str, str], args: list[str],
                         debug: bool = False) -> dict[str, Any]:
    """The exact ``run_job_flow`` request: a transient cluster with one Spark step."""
    resources = spark_resources(emr)
    if debug:
        step = spark_step("halo-lrg debug", uris["debug"], uris["wheel"], resources,
                          ["--output", emr.output_prefix, "--region", emr.region])
    else:
        step = spark_step("halo-lrg LRG counts", uris["job"], uris["wheel"], resources, args)
    instances: dict[str, Any] = {
        "InstanceGroups": instance_groups(emr),
        # Transient: the cluster ends when its step does.
        "KeepJobFlowAliveWhenNoSteps": False,
        "TerminationProtected": False,
    }
    # Without a subnet EMR launches in the region's default VPC.
    for key, value in (("Ec2SubnetId", emr.subnet_id), ("Ec2KeyName", emr.key_name),
                       ("EmrManagedMasterSecurityGroup", emr.master_security_group),
                       ("EmrManagedSlaveSecurityGroup", emr.core_security_group)):
        if value.strip():
            instances[key] = value.strip()
    for key, values in (("AdditionalMasterSecurityGroups", emr.additional_master_security_groups),
                        ("AdditionalSlaveSecurityGroups", emr.additional_core_security_groups)):
        if _items(values):
            instances[key] = _items(values)
    configurations: list[dict[str, Any]] = [
        {"Classification": "spark-env", "Configurations": [
            {"Classification": "export",
             "Properties": {"PYSPARK_PYTHON": emr.python,
                            "PYSPARK_DRIVER_PYTHON": emr.python}}]},
        {"Classification": "spark-defaults", "Properties": {
            # One sweep per task: never speculate a second copy of a long read.
            "spark.speculation": "false",
            "spark.dynamicAllocation.enabled": "false",
            **resources.spark_defaults(),
        }},
        # YARN schedules by memory alone (the Hadoop default, set explicitly): the sizing's
        # vCPU rule (one task per vCPU, the ApplicationMaster's node included) is then ours.
        {"Classification": "capacity-scheduler", "Properties": {
            "yarn.scheduler.capacity.resource-calculator":
                "org.apache.hadoop.yarn.util.resource.DefaultResourceCalculator"}},
    ]
    if emr.task_count:
        # EMR 6.x and later leave YARN node labels off, so an ApplicationMaster could land on
        # a (spot) task node. Keep it on core nodes; executors still run anywhere.
        configurations.append({"Classification": "yarn-site", "Properties": {
            "yarn.node-labels.enabled": "true",
            "yarn.node-labels.am.default-node-label-expression": "CORE"}})
    tags = {"app": "halo-lrg", "halo-lrg-version": __version__}
    tags.update({tag["Key"]: tag["Value"] for tag in parse_tags(emr.tags)})
    return {
        "Name": f"{emr.job_name}{'-debug' if debug else ''}",
        "ReleaseLabel": emr.release_label,
        "LogUri": emr.log_uri,
        "Applications": [{"Name": "Spark"}],
        "Instances": instances,
        "BootstrapActions": [{"Name": "halo-lrg dependencies",
                              "ScriptBootstrapAction": {"Path": uris["bootstrap"], "Args": []}}],
        "Steps": [step],
        "Configurations": configurations,
        "JobFlowRole": emr.job_flow_role,
        "ServiceRole": emr.service_role,
        "VisibleToAllUsers": True,
        "AutoTerminationPolicy": {"IdleTimeout": emr.idle_timeout_seconds},
        "Tags": [{"Key": key, "Value": value} for key, value in tags.items()],
    }
