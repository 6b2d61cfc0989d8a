"""EMR hello-world: proves the cluster can run halo-lrg before a long job is spent on it.

Checks, printing one line each: Spark RDDs work; numpy, fitsio, pyarrow, pandas and halo_lrg
import on the executors (and which Python runs there); the step can write to and read back
from the output prefix on S3; memory and CPU on driver and executors.

    spark-submit --py-files halo_lrg-X-py3-none-any.whl emr_debug.py --output s3://b/p

Self-contained on purpose (it imports nothing of halo_lrg's at the top): it must report a
broken installation, not die of it. Package data (``halo_lrg/aws/jobs/``) that ``submit
--debug`` uploads; ``jobs/emr_debug.py`` in a checkout runs this same code.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time


def executor_report(_partition):
    import importlib

    versions = {}
    for name in ("numpy", "fitsio", "pyarrow", "pandas", "boto3", "halo_lrg"):
        try:
            versions[name] = getattr(importlib.import_module(name), "__version__", "?")
        except Exception as exc:  # report, don't crash: this is a diagnosis
            versions[name] = f"MISSING ({type(exc).__name__}: {exc})"
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    yield {"host": platform.node(), "python": sys.version.split()[0],
           "executable": sys.executable, "cpus": os.cpu_count(),
           "memory_gib": round(pages / 2**30, 1), **versions}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True, help="s3://bucket/prefix to probe")
    parser.add_argument("--region", default=None)
    args = parser.parse_args()

    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName("halo-lrg-debug").getOrCreate()
    sc = spark.sparkContext
    print(f"driver: python {sys.version.split()[0]} ({sys.executable}), "
          f"spark {spark.version}, master {sc.master}")
    total = sc.parallelize(range(1000), 8).map(lambda x: x * x).sum()
    print(f"rdd: sum of squares 0..999 = {total} ({'ok' if total == 332833500 else 'WRONG'})")
    failures = 0
    for report in sc.parallelize(range(sc.defaultParallelism), sc.defaultParallelism) \
            .mapPartitions(executor_report).collect():
        print(f"executor: {report}")
        failures += sum("MISSING" in str(v) for v in report.values())

    import boto3

    bucket, _, prefix = args.output[len("s3://"):].partition("/")
    key = f"{prefix.rstrip('/')}/_halo_lrg_debug/{int(time.time())}.txt".lstrip("/")
    s3 = boto3.client("s3", region_name=args.region)
    s3.put_object(Bucket=bucket, Key=key, Body=b"halo-lrg debug\n")
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    s3.delete_object(Bucket=bucket, Key=key)
    print(f"s3: wrote, read back and deleted s3://{bucket}/{key}: "
          f"{'ok' if body == b'halo-lrg debug' + bytes([10]) else 'MISMATCH'}")
    spark.stop()
    if failures:
        print(f"{failures} missing package(s) on executors: check the bootstrap log")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
