"""Creating the SparkSession: local by default, whatever spark-submit says under it."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
from typing import Any, Optional

from halo_lrg.config import RunConfig

log = logging.getLogger(__name__)

#: Spark's own patterns (SparkContext.createTaskScheduler): ``local[N]`` / ``local[*]``, and
#: ``local[N, F]`` with its failure count.
_LOCAL_N = re.compile(r"local\[([0-9]+|\*)\]")
_LOCAL_N_F = re.compile(r"local\[([0-9]+|\*)\s*,\s*([0-9]+)\]")


class SparkSetupError(RuntimeError):
    """Spark cannot start here; the message says what to install or set."""


def check_java() -> str:
    """Path of the ``java`` Spark will use, or a one-line :class:`SparkSetupError`."""
    java_home = os.environ.get("JAVA_HOME")
    java = os.path.join(java_home, "bin", "java") if java_home else shutil.which("java")
    if not java or not os.path.exists(java):
        where = f"JAVA_HOME={java_home} has no bin/java" if java_home else "no java on PATH"
        raise SparkSetupError(f"Spark needs Java 17 (or 11), but {where}: install a JDK "
                              "(e.g. `apt-get install openjdk-17-jre-headless`) or set JAVA_HOME")
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SparkSetupError(f"cannot run {java} -version: {exc}") from None
    text = out.stderr or out.stdout
    if out.returncode != 0:
        raise SparkSetupError(f"{java} -version failed: {text.strip().splitlines()[:1]}")
    return java


def launched_by_spark_submit() -> bool:
    """spark-submit starts the JVM first and hands its gateway to this Python driver; its
    --master and --conf then hold, and this process must not override them."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def with_task_attempts(master: str, attempts: int) -> str:
    """``master`` with ``attempts`` tries per task when it is a local master without its own
    count: ``local`` → ``local[1,F]``, ``local[N]`` → ``local[N,F]``, ``local[*]`` →
    ``local[*,F]``. Local mode otherwise tries each task once (``spark.task.maxFailures`` is
    ignored there), so one Python worker that dies fails the run. ``local[N,F]``, cluster
    masters (``local-cluster[...]``, ``spark://``, ``yarn``) and ``attempts == 1`` are left
    as given; ``attempts < 1`` is a :class:`ValueError`."""
    if attempts < 1:
        raise ValueError(f"run.local_task_attempts must be at least 1, got {attempts}")
    stripped = master.strip()
    if attempts == 1 or _LOCAL_N_F.fullmatch(stripped):
        return master
    if stripped == "local":
        return f"local[1,{attempts}]"
    match = _LOCAL_N.fullmatch(stripped)
    return f"local[{match.group(1)},{attempts}]" if match else master


def get_spark(run: RunConfig, master: Optional[str] = None) -> Any:
    """The SparkSession for a run.

    ``master`` (a flag) wins; else spark-submit's master when it launched us; else
    ``run.master`` from the configuration (``local[*]``). For local masters the Python
    workers are pointed at this interpreter, so they see the same installed packages, and a
    master without a failure count gets ``run.local_task_attempts`` tries per task
    (:func:`with_task_attempts`; logged).
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise SparkSetupError("pyspark is not installed: pip install 'halo-lrg[spark]' "
                              "(pyspark 3.5, as on EMR 7)") from None
    under_submit = launched_by_spark_submit()
    builder = SparkSession.builder.appName(run.app_name)
    chosen = master or ("" if under_submit else run.master)
    if chosen:
        try:
            retrying = with_task_attempts(chosen, run.local_task_attempts)
        except ValueError as exc:
            raise SparkSetupError(str(exc)) from None
        if retrying != chosen:
            log.info("master %s -> %s: a task whose worker dies is tried up to %d times "
                     "(run.local_task_attempts)", chosen, retrying, run.local_task_attempts)
            chosen = retrying
        builder = builder.master(chosen)
    if chosen.startswith("local") and not under_submit:
        check_java()
        # Without this, executors run `python3` from PATH and miss this venv's packages.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        builder = builder.config("spark.driver.memory", run.driver_memory)
        if run.local_java_options:
            builder = builder.config("spark.driver.extraJavaOptions", run.local_java_options)
        builder = builder.config("spark.ui.enabled", "false")
    conf = {
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
    }
    for key, value in conf.items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # Py4J / Java start-up failures: keep the user's last line short
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = chosen or "from spark-submit"
        raise SparkSetupError(f"Spark failed to start (master {where}): {first}") from None
    # WARN, not ERROR: lost executors and killed workers must reach the log (a step's stderr).
    spark.sparkContext.setLogLevel("WARN")
    return spark


def stop_session() -> None:
    """Stop the active SparkSession, if any (the end of a spark-submit job)."""
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    if session is not None:
        session.stop()
