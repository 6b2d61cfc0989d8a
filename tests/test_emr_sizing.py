"""EMR executor sizing: every executor requested and the YARN ApplicationMaster fit, on every
instance type of the table; manual sizing; spot as a TASK group; networking fields."""

from __future__ import annotations

import json

import boto3
import pytest
from click.testing import CliRunner
from moto import mock_aws

from halo_lrg.aws.emr import (
    INSTANCE_SHAPES,
    MAX_EXECUTOR_CORES,
    YARN_ALLOCATION_MB,
    EmrConfigError,
    artifact_uris,
    check_settings,
    round_up,
    run_job_flow_request,
    spark_resources,
)
from halo_lrg.cli import main
from halo_lrg.config import load_config
from test_emr import BUCKET, FLAGS

#: The vCPU rule: executors x cores use every vCPU of every core node; none is kept for the
#: ApplicationMaster (an idle JVM; YARN schedules by memory alone, set in the request).
AM_RESERVED_CORES = 0


def emr_settings(**changes):
    base = {"sweep_index_s3": f"s3://{BUCKET}/sweeps.txt", "output_prefix": f"s3://{BUCKET}/run1",
            "code_prefix": f"s3://{BUCKET}/code", "log_uri": f"s3://{BUCKET}/logs"}
    return load_config().replace(emr={**base, **changes}).emr


def yarn_for(instance_type):
    """The table's YARN memory; for types whose EMR default is unconfirmed (None) an arbitrary
    test input (3/4 of the RAM), passed as --yarn-memory-mb: the arithmetic is what's tested."""
    shape = INSTANCE_SHAPES[instance_type]
    return shape.yarn_mb or shape.memory_gib * 1024 * 3 // 4


def request_for(emr):
    uris = artifact_uris(emr, "halo_lrg-0-py3-none-any.whl")
    return run_job_flow_request(emr, uris, ["--index", emr.sweep_index_s3])


def submit_args(request):
    """The spark-submit flags of the step, as {flag or conf key: value}."""
    args = request["Steps"][0]["HadoopJarStep"]["Args"]
    flags = {}
    for flag, value in zip(args, args[1:]):
        if flag == "--conf":
            key, _, conf_value = value.partition("=")
            flags[key] = conf_value
        elif flag.startswith("--"):
            flags[flag] = value
    return flags


def spark_defaults(request):
    (conf,) = [c for c in request["Configurations"] if c["Classification"] == "spark-defaults"]
    return conf["Properties"]


def classification(request, name):
    found = [c for c in request["Configurations"] if c["Classification"] == name]
    return found[0]["Properties"] if found else None


def place(capacities, am_node, container, am_container, executors, order):
    """YARN-like first fit: the AM first, then each executor on the first node (in ``order``)
    with room. Returns executors per node; fails if one does not fit anywhere."""
    free = list(capacities)
    free[am_node] -= am_container
    assert free[am_node] >= 0
    placed = [0] * len(capacities)
    for _ in range(executors):
        node = next((n for n in order if free[n] >= container), None)
        assert node is not None, f"an executor does not fit: free {free}, needs {container}"
        free[node] -= container
        placed[node] += 1
    return placed


def assert_request_agrees(request, resources):
    conf = spark_defaults(request)
    assert {k: conf[k] for k in resources.spark_defaults()} == resources.spark_defaults()
    flags = submit_args(request)
    assert flags["--executor-cores"] == conf["spark.executor.cores"] == str(
        resources.executor_cores)
    assert flags["--executor-memory"] == conf["spark.executor.memory"] == (
        f"{resources.executor_memory_mb}m")
    assert flags["--num-executors"] == conf["spark.executor.instances"] == str(
        resources.executor_instances)
    assert flags["--driver-memory"] == conf["spark.driver.memory"]
    for key in ("spark.executor.memoryOverhead", "spark.yarn.am.memory",
                "spark.yarn.am.memoryOverhead"):
        assert flags[key] == conf[key]
    assert conf["spark.executor.memoryOverhead"] == f"{resources.executor_overhead_mb}m"
    assert conf["spark.yarn.am.memory"] == f"{resources.am_memory_mb}m"  # explicit, not Spark's
    assert conf["spark.dynamicAllocation.enabled"] == "false"


# --- the invariant -----------------------------------------------------------------------------

@pytest.mark.parametrize("core_count", [1, 2, 5])
@pytest.mark.parametrize("instance_type", sorted(INSTANCE_SHAPES))
def test_every_executor_and_the_application_master_fit(instance_type, core_count):
    shape = INSTANCE_SHAPES[instance_type]
    yarn = yarn_for(instance_type)
    emr = emr_settings(core_instance_type=instance_type, core_count=core_count,
                       yarn_memory_mb=0 if shape.yarn_mb else yarn)
    r = spark_resources(emr)
    per_node, container, am = r.executors_per_node, r.executor_container_mb, r.am_container_mb

    # Containers as YARN allocates them: rounded up to its 32 MB step.
    assert YARN_ALLOCATION_MB == 32
    assert container == round_up(r.executor_memory_mb + r.executor_overhead_mb)
    assert container % 32 == 0 and am % 32 == 0
    assert am == 896  # 512 MB + 384 MB overhead
    assert r.yarn_memory_mb == yarn
    # Memory, per core node: the AM's node holds its k executors and the AM; no node has room
    # for a (k+1)-th, so k per node is the only way the k x core_count executors can land.
    assert per_node >= 1
    assert per_node * container + am <= yarn
    assert per_node * container <= yarn
    assert yarn // container == per_node and (yarn - am) // container == per_node
    # Cores: one task per vCPU, every vCPU used (AM_RESERVED_CORES kept for the AM's node).
    cores = r.executor_cores
    assert 1 <= cores <= MAX_EXECUTOR_CORES
    assert shape.vcpus - AM_RESERVED_CORES <= per_node * cores <= shape.vcpus
    # Python workers live in memoryOverhead: generous; the heap modest.
    assert r.executor_overhead_mb > r.executor_memory_mb >= 1024
    assert r.executor_overhead_mb >= 384
    # Every core node gets executors, whichever node the AM lands on and however YARN fills.
    assert r.executor_instances == per_node * core_count
    nodes = list(range(core_count))
    for am_node in nodes:
        for order in (nodes, nodes[::-1], nodes[am_node:] + nodes[:am_node]):
            placed = place([yarn] * core_count, am_node, container, am,
                           r.executor_instances, order)
            assert placed == [per_node] * core_count
    # The request says the same thing.
    request = request_for(emr)
    assert_request_agrees(request, r)
    assert request["Instances"]["InstanceGroups"][1]["InstanceCount"] == core_count


def test_default_cluster_uses_both_nodes():
    """The bug this sizing fixes: 2 x m5.xlarge ran one executor, the AM's node none."""
    r = spark_resources(emr_settings())
    assert (r.executors_per_node, r.executor_cores, r.executor_instances) == (1, 4, 2)
    assert r.executor_container_mb + r.am_container_mb <= 12288
    assert (r.executor_memory_mb, r.executor_overhead_mb) == (3392, 8000)


@pytest.mark.parametrize("instance_type, per_node", [
    ("m5.xlarge", 1), ("m5.2xlarge", 2), ("r5.4xlarge", 4), ("m5.8xlarge", 8)])
def test_larger_nodes_run_several_four_core_executors(instance_type, per_node):
    r = spark_resources(emr_settings(core_instance_type=instance_type))
    assert (r.executors_per_node, r.executor_cores) == (per_node, 4)


@pytest.mark.parametrize("instance_type",
                         sorted(t for t, s in INSTANCE_SHAPES.items() if s.yarn_mb is None))
def test_unconfirmed_yarn_memory_is_asked_for_not_guessed(instance_type):
    with pytest.raises(EmrConfigError) as error:
        check_settings(emr_settings(core_instance_type=instance_type))
    message = str(error.value)
    assert "\n" not in message
    assert f"EMR's default YARN memory for {instance_type} is not confirmed" in message
    assert "--yarn-memory-mb" in message


# --- an unknown type and sizing by hand -------------------------------------------------------

def test_unknown_type_is_refused_in_one_line_naming_the_manual_flags():
    with pytest.raises(EmrConfigError) as error:
        check_settings(emr_settings(core_instance_type="x9.huge"))
    message = str(error.value)
    assert "\n" not in message and "x9.huge" in message
    for flag in ("--yarn-memory-mb", "--executors-per-node", "--executor-cores",
                 "--executor-memory"):
        assert flag in message
    result = CliRunner().invoke(main, ["submit", *FLAGS, "--dry-run",
                                       "--core-instance-type", "x9.huge"])
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert line.startswith("Error: no memory sizing for instance type 'x9.huge'")


def test_manual_sizing_flags_bypass_the_table():
    result = CliRunner().invoke(main, [
        "submit", *FLAGS, "--dry-run", "--core-instance-type", "x9.huge", "--core-count", "3",
        "--yarn-memory-mb", "20000", "--executors-per-node", "2", "--executor-cores", "3",
        "--executor-memory", "2g"])
    assert result.exit_code == 0, result.output
    request = json.loads(result.output)
    conf = spark_defaults(request)
    container = (20000 - 896) // 2 // 32 * 32  # 9536
    assert conf["spark.executor.memory"] == "2048m"
    assert conf["spark.executor.memoryOverhead"] == f"{container - 2048}m"
    assert conf["spark.executor.cores"] == "3"
    assert conf["spark.executor.instances"] == "6"
    assert 2 * container + 896 <= 20000
    flags = submit_args(request)
    assert (flags["--executor-memory"], flags["--executor-cores"], flags["--num-executors"]) == (
        "2048m", "3", "6")
    r = spark_resources(emr_settings(core_instance_type="x9.huge", core_count=3,
                                     yarn_memory_mb=20000, executors_per_node=2,
                                     executor_cores=3, executor_memory="2g"))
    assert_request_agrees(request, r)


def test_manual_settings_replace_the_table_one_by_one():
    r = spark_resources(emr_settings(core_instance_type="m5.4xlarge", executors_per_node=2))
    assert (r.executors_per_node, r.executor_cores) == (2, 8)  # 16 vCPUs over 2 executors
    assert 2 * r.executor_container_mb + r.am_container_mb <= 57344
    r = spark_resources(emr_settings(core_instance_type="r5.xlarge", executor_memory="2048m"))
    assert r.executor_memory_mb == 2048
    assert r.executor_memory_mb + r.executor_overhead_mb == round_up((24576 - 896) // 32 * 32)
    r = spark_resources(emr_settings(core_instance_type="m6g.2xlarge", yarn_memory_mb=24576))
    assert (r.executors_per_node, r.executor_cores, r.yarn_memory_mb) == (2, 4, 24576)


@pytest.mark.parametrize("changes, message", [
    ({"executor_memory": "12g"}, r"leaves less than 384 MB of the 11392 MB executor"),
    ({"executor_memory": "lots"}, r"expected e.g. 2g"),
    ({"executors_per_node": 9}, r"9 executors per node and the ApplicationMaster"),
    ({"core_instance_type": "x9.huge", "yarn_memory_mb": 12288},
     r"no memory sizing for instance type 'x9.huge'"),
    ({"instance_type": "x9.huge"}, r"no memory sizing for instance type 'x9.huge' \(master\)"),
])
def test_impossible_manual_sizing_is_refused(changes, message):
    with pytest.raises(EmrConfigError, match=message):
        check_settings(emr_settings(**changes))


# --- spot: a TASK group; core nodes (and the AM) on-demand ------------------------------------

def test_spot_is_a_task_group_and_the_application_master_stays_on_core():
    emr = emr_settings(spot=True, task_count=3)
    request = request_for(emr)
    groups = {g["InstanceRole"]: g for g in request["Instances"]["InstanceGroups"]}
    assert groups["MASTER"]["Market"] == groups["CORE"]["Market"] == "ON_DEMAND"
    assert groups["TASK"]["Market"] == "SPOT"
    assert groups["TASK"]["InstanceCount"] == 3
    assert groups["TASK"]["InstanceType"] == groups["CORE"]["InstanceType"] == "m5.xlarge"
    # EMR 6.x/7.x leave YARN node labels off: the request turns them on so the AM is on core.
    assert classification(request, "yarn-site") == {
        "yarn.node-labels.enabled": "true",
        "yarn.node-labels.am.default-node-label-expression": "CORE"}
    r = spark_resources(emr)
    assert r.task_executors_per_node == r.executors_per_node == 1
    assert r.executor_instances == 2 * 1 + 3 * 1
    assert spark_defaults(request)["spark.executor.instances"] == "5"
    assert_request_agrees(request, r)


def test_no_task_nodes_no_node_labels_and_on_demand_task_nodes():
    request = request_for(emr_settings())
    assert [g["InstanceRole"] for g in request["Instances"]["InstanceGroups"]] == [
        "MASTER", "CORE"]
    assert classification(request, "yarn-site") is None
    assert classification(request, "capacity-scheduler") == {
        "yarn.scheduler.capacity.resource-calculator":
            "org.apache.hadoop.yarn.util.resource.DefaultResourceCalculator"}
    request = request_for(emr_settings(task_count=2))  # --on-demand task nodes
    assert request["Instances"]["InstanceGroups"][2]["Market"] == "ON_DEMAND"


def test_spot_without_task_nodes_is_refused():
    with pytest.raises(EmrConfigError, match=r"--spot puts task nodes on spot.*--task-count"):
        check_settings(emr_settings(spot=True))
    result = CliRunner().invoke(main, ["submit", *FLAGS, "--dry-run", "--spot"])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1


def test_task_nodes_of_another_type_hold_what_fits():
    emr = emr_settings(task_count=2, task_instance_type="r5.2xlarge", spot=True)
    r = spark_resources(emr)
    shape = INSTANCE_SHAPES["r5.2xlarge"]
    # Same executor shape everywhere; a task node has no AM, and is bounded by its vCPUs too.
    assert r.task_executors_per_node == 2
    assert r.task_executors_per_node * r.executor_container_mb <= shape.yarn_mb
    assert r.task_executors_per_node * r.executor_cores <= shape.vcpus
    assert r.executor_instances == 2 * 1 + 2 * 2
    request = request_for(emr)
    assert request["Instances"]["InstanceGroups"][2]["InstanceType"] == "r5.2xlarge"
    with pytest.raises(EmrConfigError, match=r"task instance type 'm7g.xlarge' has no confirmed"):
        check_settings(emr_settings(task_count=1, task_instance_type="m7g.xlarge"))


# --- networking and account --------------------------------------------------------------------

NETWORK = {"subnet_id": "subnet-0abc", "key_name": "astro-key",
           "master_security_group": "sg-0master", "core_security_group": "sg-0core",
           "additional_master_security_groups": ("sg-0extra1",),
           "additional_core_security_groups": ("sg-0extra2", "sg-0extra3"),
           "ebs_gb": 200, "tags": ("team=astro", "cost-center=cosmo=1")}


def test_networking_fields_are_in_the_request():
    request = request_for(emr_settings(task_count=1, **NETWORK))
    instances = request["Instances"]
    assert instances["Ec2SubnetId"] == "subnet-0abc"
    assert instances["Ec2KeyName"] == "astro-key"
    assert instances["EmrManagedMasterSecurityGroup"] == "sg-0master"
    assert instances["EmrManagedSlaveSecurityGroup"] == "sg-0core"
    assert instances["AdditionalMasterSecurityGroups"] == ["sg-0extra1"]
    assert instances["AdditionalSlaveSecurityGroups"] == ["sg-0extra2", "sg-0extra3"]
    assert len(instances["InstanceGroups"]) == 3
    for group in instances["InstanceGroups"]:
        assert group["EbsConfiguration"] == {"EbsBlockDeviceConfigs": [{
            "VolumeSpecification": {"VolumeType": "gp3", "SizeInGB": 200},
            "VolumesPerInstance": 1}]}
    assert request["Tags"] == [{"Key": "app", "Value": "halo-lrg"},
                               {"Key": "halo-lrg-version", "Value": request["Tags"][1]["Value"]},
                               {"Key": "team", "Value": "astro"},
                               {"Key": "cost-center", "Value": "cosmo=1"}]


def test_without_networking_settings_the_request_leaves_them_to_emr():
    instances = request_for(emr_settings())["Instances"]
    for key in ("Ec2SubnetId", "Ec2KeyName", "EmrManagedMasterSecurityGroup",
                "EmrManagedSlaveSecurityGroup", "AdditionalMasterSecurityGroups",
                "AdditionalSlaveSecurityGroups"):
        assert key not in instances  # the default VPC and EMR's own groups
    assert all("EbsConfiguration" not in g for g in instances["InstanceGroups"])


def test_networking_flags_reach_the_request():
    result = CliRunner().invoke(main, [
        "submit", *FLAGS, "--dry-run", "--subnet-id", "subnet-0abc", "--key-name", "k",
        "--master-security-group", "sg-1", "--core-security-group", "sg-2",
        "--additional-master-security-group", "sg-3",
        "--additional-core-security-group", "sg-4", "--additional-core-security-group", "sg-5",
        "--ebs-gb", "64", "--tag", "team=astro", "--tag", "run=dr10",
        "--task-count", "2", "--task-instance-type", "m5.2xlarge", "--spot"])
    assert result.exit_code == 0, result.output
    request = json.loads(result.output)
    instances = request["Instances"]
    assert (instances["Ec2SubnetId"], instances["Ec2KeyName"]) == ("subnet-0abc", "k")
    assert instances["EmrManagedMasterSecurityGroup"] == "sg-1"
    assert instances["EmrManagedSlaveSecurityGroup"] == "sg-2"
    assert instances["AdditionalMasterSecurityGroups"] == ["sg-3"]
    assert instances["AdditionalSlaveSecurityGroups"] == ["sg-4", "sg-5"]
    assert {t["Key"]: t["Value"] for t in request["Tags"]}["run"] == "dr10"
    task = instances["InstanceGroups"][2]
    assert (task["InstanceRole"], task["Market"], task["InstanceType"],
            task["InstanceCount"]) == ("TASK", "SPOT", "m5.2xlarge", 2)
    assert task["EbsConfiguration"]["EbsBlockDeviceConfigs"][0]["VolumeSpecification"] == {
        "VolumeType": "gp3", "SizeInGB": 64}


@pytest.mark.parametrize("changes, message", [
    ({"subnet_id": "vpc-123"}, r"subnet_id must look like subnet-"),
    ({"core_security_group": "default"}, r"security group 'default'"),
    ({"additional_master_security_groups": ("sg-1", "web")}, r"security group 'web'"),
    ({"tags": ("team",)}, r"tag 'team': expected KEY=VALUE"),
    ({"tags": ("=x",)}, r"expected KEY=VALUE"),
])
def test_malformed_networking_settings_are_refused(changes, message):
    with pytest.raises(EmrConfigError, match=message):
        check_settings(emr_settings(**changes))


def test_moto_run_job_flow_accepts_the_request():
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-east-1")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        groups = [ec2.create_security_group(GroupName=name, Description=name,
                                            VpcId=vpc)["GroupId"]
                  for name in ("master", "core", "extra")]
        emr = emr_settings(
            subnet_id=subnet, key_name="astro-key", master_security_group=groups[0],
            core_security_group=groups[1], additional_core_security_groups=(groups[2],),
            ebs_gb=100, tags=("team=astro",), task_count=2, spot=True)
        check_settings(emr)
        client = boto3.client("emr", region_name="us-east-1")
        cluster_id = client.run_job_flow(**request_for(emr))["JobFlowId"]
        cluster = client.describe_cluster(ClusterId=cluster_id)["Cluster"]
        attributes = cluster["Ec2InstanceAttributes"]
        assert attributes["Ec2SubnetId"] == subnet
        assert attributes["Ec2KeyName"] == "astro-key"
        assert attributes["EmrManagedMasterSecurityGroup"] == groups[0]
        assert attributes["EmrManagedSlaveSecurityGroup"] == groups[1]
        assert attributes["AdditionalSlaveSecurityGroups"] == [groups[2]]
        assert {"Key": "team", "Value": "astro"} in cluster["Tags"]
        markets = {g["InstanceGroupType"]: g["Market"]
                   for g in client.list_instance_groups(ClusterId=cluster_id)["InstanceGroups"]}
        assert markets == {"MASTER": "ON_DEMAND", "CORE": "ON_DEMAND", "TASK": "SPOT"}
