"""What an EMR run of halo-lrg looks like: the ``run_job_flow`` request, the Spark step, the
bootstrap script and the executor sizing. Pure functions: nothing here talks to AWS, so
``submit --dry-run`` and the tests see exactly what would be sent.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any, Optional

from halo_lrg import __version__
from halo_lrg.config import EmrConfig
from halo_lrg.io.uri import split_s3_uri

PLACEHOLDER = "CHANGE_ME"


class EmrConfigError(ValueError):
    """A setting the launch needs is missing or wrong; the message says which and how to fix."""


@dataclass(frozen=True)
class InstanceShape:
    vcpus: int
    memory_gib: int
    #: What EMR gives YARN on this type (yarn.nodemanager.resource.memory-mb default).
    yarn_mb: int


# EMR's defaults for the types people use for this job (AWS "Task configuration" tables).
INSTANCE_SHAPES = {
    "m5.xlarge": InstanceShape(4, 16, 12288),
    "m5.2xlarge": InstanceShape(8, 32, 24576),
    "m5.4xlarge": InstanceShape(16, 64, 57344),
    "m6i.xlarge": InstanceShape(4, 16, 12288),
    "m6i.2xlarge": InstanceShape(8, 32, 24576),
    "m6g.xlarge": InstanceShape(4, 16, 12288),
    "m6g.2xlarge": InstanceShape(8, 32, 24576),
    "r5.xlarge": InstanceShape(4, 32, 24576),
    "r5.2xlarge": InstanceShape(8, 64, 57344),
    "c5.2xlarge": InstanceShape(8, 16, 12288),
    "c5.4xlarge": InstanceShape(16, 32, 24576),
}


@dataclass(frozen=True)
class SparkResources:
    executor_cores: int
    executor_memory_mb: int
    executor_overhead_mb: int
    driver_memory_mb: int

    def submit_args(self) -> list[str]:
        return ["--driver-memory", f"{self.driver_memory_mb}m",
                "--executor-cores", str(self.executor_cores),
                "--executor-memory", f"{self.executor_memory_mb}m",
                "--conf", f"spark.executor.memoryOverhead={self.executor_overhead_mb}m"]


def spark_resources(core_type: str, master_type: str) -> SparkResources:
    """One executor per core node using all its cores.

    Each task reads one sweep in row chunks in a Python worker (a few hundred MB whatever the
    file's size) while the JVM side only moves small per-brick partials, so most of the
    container goes to memoryOverhead, where Python workers live, and the heap stays small.
    """
    shape = _shape(core_type)
    usable = int(shape.yarn_mb * 0.95)  # leave YARN a little slack
    heap = max(1024, int(usable * 0.3))
    overhead = usable - heap
    driver = max(1024, int(_shape(master_type).memory_gib * 1024 * 0.25))
    return SparkResources(shape.vcpus, heap, overhead, driver)


def _shape(instance_type: str) -> InstanceShape:
    try:
        return INSTANCE_SHAPES[instance_type]
    except KeyError:
        known = ", ".join(sorted(INSTANCE_SHAPES))
        raise EmrConfigError(f"no memory sizing for instance type {instance_type!r} "
                             f"(known: {known})") from None


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
    _shape(emr.instance_type)
    _shape(emr.core_instance_type)


def bootstrap_script(emr: EmrConfig) -> str:
    """Installs the compiled dependencies for the executors' Python on every node."""
    python = shlex.quote(emr.python)
    packages = " ".join(shlex.quote(p) for p in emr.bootstrap_packages.split())
    return f"""#!/bin/bash
# halo-lrg {__version__} bootstrap: pinned compiled dependencies for {emr.python}.
# The halo_lrg wheel itself travels with spark-submit --py-files (pure Python).
set -euxo pipefail
if ! command -v {python} >/dev/null; then
  sudo dnf install -y "$(basename {python})" "$(basename {python})-pip"
fi
if ! {python} -m pip --version >/dev/null 2>&1; then
  sudo dnf install -y "$(basename {python})-pip"
fi
# fitsio ships manylinux x86_64 wheels only: Graviton (aarch64) nodes compile it.
if [ "$(uname -m)" = "aarch64" ]; then
  sudo dnf install -y gcc "$(basename {python})-devel"
fi
sudo {python} -m pip install --no-cache-dir {packages}
{python} -c "import numpy, pandas, pyarrow, fitsio, boto3; print('deps ok', fitsio.__version__)"
"""


def artifact_uris(emr: EmrConfig, wheel_name: str) -> dict[str, str]:
    """Where ``submit`` puts the wheel, the job script and the bootstrap script."""
    base = f"{emr.code_prefix.rstrip('/')}/{__version__}"
    return {"wheel": f"{base}/{wheel_name}", "job": f"{base}/lrg_density.py",
            "debug": f"{base}/emr_debug.py", "bootstrap": f"{base}/bootstrap.sh"}


def spark_step(name: str, script_uri: str, wheel_uri: str, resources: SparkResources,
               job_args: list[str]) -> dict[str, Any]:
    args = ["spark-submit", "--deploy-mode", "client", "--master", "yarn",
            "--py-files", wheel_uri, *resources.submit_args(), script_uri, *job_args]
    return {"Name": name, "ActionOnFailure": "TERMINATE_CLUSTER",
            "HadoopJarStep": {"Jar": "command-runner.jar", "Args": args}}


def job_args(emr: EmrConfig, selection: Optional[str], max_sweeps: Optional[int],
             footprint: Optional[dict[str, float]], on_error: Optional[str] = None
             ) -> list[str]:
    """The flags of `halo-lrg run` for the EMR step (the job reads and writes S3)."""
    args = ["--index", emr.sweep_index_s3, "--output", emr.output_prefix,
            "--region", emr.region]
    if selection:
        args += ["--selection", selection]
    if on_error:
        args += ["--on-error", on_error]
    if max_sweeps:
        args += ["--max-sweeps", str(max_sweeps)]
    for key, value in (footprint or {}).items():
        args += [f"--{key.replace('_', '-')}", repr(float(value))]
    return args


def run_job_flow_request(emr: EmrConfig, uris: dict[str, str], args: list[str],
                         debug: bool = False) -> dict[str, Any]:
    """The exact ``run_job_flow`` request: a transient cluster with one Spark step."""
    resources = spark_resources(emr.core_instance_type, emr.instance_type)
    if debug:
        step = spark_step("halo-lrg debug", uris["debug"], uris["wheel"], resources,
                          ["--output", emr.output_prefix, "--region", emr.region])
    else:
        step = spark_step("halo-lrg LRG counts", uris["job"], uris["wheel"], resources, args)
    core_market = "SPOT" if emr.spot else "ON_DEMAND"
    return {
        "Name": f"{emr.job_name}{'-debug' if debug else ''}",
        "ReleaseLabel": emr.release_label,
        "LogUri": emr.log_uri,
        "Applications": [{"Name": "Spark"}],
        "Instances": {
            "InstanceGroups": [
                {"Name": "master", "InstanceRole": "MASTER", "Market": "ON_DEMAND",
                 "InstanceType": emr.instance_type, "InstanceCount": 1},
                {"Name": "core", "InstanceRole": "CORE", "Market": core_market,
                 "InstanceType": emr.core_instance_type, "InstanceCount": emr.core_count},
            ],
            # Transient: the cluster ends when its step does.
            "KeepJobFlowAliveWhenNoSteps": False,
            "TerminationProtected": False,
        },
        "BootstrapActions": [{"Name": "halo-lrg dependencies",
                              "ScriptBootstrapAction": {"Path": uris["bootstrap"], "Args": []}}],
        "Steps": [step],
        "Configurations": [
            {"Classification": "spark-env", "Configurations": [
                {"Classification": "export",
                 "Properties": {"PYSPARK_PYTHON": emr.python,
                                "PYSPARK_DRIVER_PYTHON": emr.python}}]},
            {"Classification": "spark-defaults", "Properties": {
                # One sweep per task: never speculate a second copy of a long read.
                "spark.speculation": "false",
                "spark.dynamicAllocation.enabled": "false",
                "spark.executor.instances": str(emr.core_count),
            }},
        ],
        "JobFlowRole": emr.job_flow_role,
        "ServiceRole": emr.service_role,
        "VisibleToAllUsers": True,
        "AutoTerminationPolicy": {"IdleTimeout": emr.idle_timeout_seconds},
        "Tags": [{"Key": "app", "Value": "halo-lrg"},
                 {"Key": "halo-lrg-version", "Value": __version__}],
    }
