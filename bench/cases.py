"""One benchmark case, run in its own process so its peak RSS is its own.

    python -m bench.cases CASE PATH [ARGS...]   -> prints one JSON line

Cases: floor, seed_astropy, fitsio_columns, fast_columns, count_fast, count_fitsio,
remote_http (ARGS: URL), spark and pool (PATH is an index; ARGS: cores), spark_tasks (PATH
unused; ARGS: cores, on|off).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

SEED_COLUMNS = ["BRICKNAME", "FLUX_R", "FLUX_Z", "FLUX_W1", "MW_TRANSMISSION_R",
                "MW_TRANSMISSION_Z", "MW_TRANSMISSION_W1"]


def peak_rss_mb() -> float:
    """Peak resident memory of this process. VmHWM belongs to the address space, which
    execve replaces: unlike ru_maxrss, it does not inherit the parent's high-water mark."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def floor(path: str) -> dict:
    """Read every byte sequentially, as `cat > /dev/null` does."""
    started = time.perf_counter()
    subprocess.run(["cat", path], stdout=subprocess.DEVNULL, check=True)
    return {"seconds": time.perf_counter() - started}


def seed_astropy(path: str) -> dict:
    """The seed's approach: astropy loads the whole table, then the default cuts and counts."""
    import numpy as np
    from astropy.table import Table

    started = time.perf_counter()
    table = Table.read(path, hdu=1, memmap=False)

    def mag(band):
        flux = np.asarray(table[f"FLUX_{band}"]) / np.asarray(table[f"MW_TRANSMISSION_{band}"])
        with np.errstate(all="ignore"):
            return 22.5 - 2.5 * np.log10(np.where(flux > 0, flux, np.nan))

    r, z, w1 = mag("R"), mag("Z"), mag("W1")
    lrg = (z < 20.4) & (r - z > 0.4) & (z - w1 > 0.8)
    names = np.char.strip(np.asarray(table["BRICKNAME"]).astype(str))
    unique, inverse = np.unique(names, return_inverse=True)
    counts = np.bincount(inverse, weights=lrg, minlength=unique.size)
    return {"seconds": time.perf_counter() - started, "rows": len(table),
            "lrg": int(counts.sum())}


def fitsio_columns(path: str) -> dict:
    import fitsio

    started = time.perf_counter()
    data = fitsio.read(path, ext=1, columns=SEED_COLUMNS)
    return {"seconds": time.perf_counter() - started, "rows": len(data)}


def fast_columns(path: str) -> dict:
    from halo_lrg.config import load_config
    from halo_lrg.reader import iter_column_chunks

    chunk_rows = load_config().read.chunk_rows
    started = time.perf_counter()
    rows = sum(len(c["FLUX_Z"]) for c in iter_column_chunks(path, SEED_COLUMNS, chunk_rows,
                                                            raw_strings=("BRICKNAME",)))
    return {"seconds": time.perf_counter() - started, "rows": rows}


def _count(path: str, fast: bool, selection: str = "seed") -> dict:
    # What count_sweep imports lazily (fitsio, pandas for the result) is imported before the
    # clock starts, as astropy is for the seed: a per-process cost, not a per-file one.
    import fitsio  # noqa: F401
    import pandas  # noqa: F401

    from halo_lrg.config import load_config
    from halo_lrg.count import count_sweep_file
    from halo_lrg.cuts import get_selection

    config = load_config()
    started = time.perf_counter()
    result = count_sweep_file(path, get_selection(selection, config.cuts),
                              config.read.chunk_rows, fast)
    return {"seconds": time.perf_counter() - started, "rows": result.rows, "lrg": result.lrg}


def count_fast(path: str) -> dict:
    return _count(path, True)


def count_fitsio(path: str) -> dict:
    return _count(path, False)


def count_desi(path: str) -> dict:
    return _count(path, True, "desi-lrg")


def remote_http(path: str, url: str) -> dict:
    """Fetch + count one sweep from a (throttled) HTTP server, as a task does."""
    from halo_lrg.config import load_config
    from halo_lrg.pipeline import count_one_file

    config = load_config()
    started = time.perf_counter()
    _bricks, status = count_one_file(url, config, None)
    if status.status != "ok":
        raise SystemExit(status.error)
    return {"seconds": time.perf_counter() - started, "rows": status.rows, "lrg": status.lrg}


def spark(index: str, cores: str) -> dict:
    """The whole job in local mode, with what a session pays once timed apart from the run:
    the JVM and one Python worker per core starting (``startup``), then the job's first run
    in the session, on one file per core (``warmup``: the JVM compiling Spark's code paths and
    the query's generated code, each worker importing fitsio and halo_lrg)."""
    import tempfile
    from pathlib import Path

    from halo_lrg.config import load_config
    from halo_lrg.pipeline import JobSpec, run_job
    from halo_lrg.spark import get_spark

    config = load_config().replace(run={"master": f"local[{cores}]", "progress_interval": 0.5})
    started = time.perf_counter()
    session = get_spark(config.run)
    session.range(int(cores), numPartitions=int(cores)).mapInPandas(
        lambda batches: (b for b in batches), "id long").collect()
    startup = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as scratch:
        warmup_index = Path(scratch, "warmup.txt")
        warmup_index.write_text("\n".join(Path(index).read_text().split()[:int(cores)]) + "\n")
        begun = time.perf_counter()
        run_job(session, JobSpec(str(warmup_index), str(Path(scratch, "warmup")), config),
                emit=lambda _l: None)
        warmup = time.perf_counter() - begun
        begun = time.perf_counter()
        result = run_job(session, JobSpec(index, str(Path(scratch, "run")), config),
                         emit=lambda _l: None)
        seconds = time.perf_counter() - begun
    session.stop()
    # The JVM is another process: this is the Python driver's own peak.
    return {"seconds": seconds, "startup": startup, "warmup": warmup, "rows": result.rows,
            "lrg": result.lrg, "task_seconds": [f.seconds for f in result.files]}


def _noop_partition(batches, tuned: bool):
    if tuned:
        from halo_lrg import workertune

        workertune.install()
    yield from batches


def spark_tasks(_unused: str, cores: str, tuned: str) -> dict:
    """Spark's own cost per task: ``mapInPandas`` tasks that do nothing, with the worker and
    JVM tuning of ``run.tune_python_workers`` / ``run.local_java_options`` off or on."""
    import functools

    from halo_lrg.config import load_config
    from halo_lrg.spark import get_spark

    on = tuned == "on"
    run = {"master": f"local[{cores}]"}
    if not on:
        run.update(tune_python_workers=False, local_java_options="")
    session = get_spark(load_config().replace(run=run).run)
    tasks = 200

    def job():
        session.range(tasks, numPartitions=tasks).mapInPandas(
            functools.partial(_noop_partition, tuned=on), "id long").collect()

    job()  # the session's first job: JVM warm-up, workers started
    started = time.perf_counter()
    job()
    seconds = time.perf_counter() - started
    session.stop()
    return {"seconds": seconds, "ms_per_task_slot": seconds / tasks * int(cores) * 1000}


_POOL: dict = {}  # per pool process: the configuration and selection, loaded once


def _pool_init() -> None:
    import fitsio  # noqa: F401
    import pandas  # noqa: F401

    from halo_lrg.config import load_config
    from halo_lrg.cuts import get_selection

    config = load_config()
    _POOL.update(chunk_rows=config.read.chunk_rows, selection=get_selection("seed", config.cuts))


def _pool_count(path: str) -> float:
    from halo_lrg.count import count_sweep_file

    started = time.perf_counter()
    count_sweep_file(path, _POOL["selection"], _POOL["chunk_rows"], True)
    return time.perf_counter() - started


def pool(index: str, cores: str) -> dict:
    """The Spark case's files through ``cores`` plain Python processes, no Spark: what this
    machine does in parallel, against which Spark's own overhead shows."""
    import multiprocessing
    from pathlib import Path

    files = Path(index).read_text().split()
    with multiprocessing.get_context("fork").Pool(int(cores), initializer=_pool_init) as workers:
        workers.map(_pool_count, files[:int(cores)], chunksize=1)  # as the Spark warm-up
        started = time.perf_counter()
        seconds = list(workers.imap_unordered(_pool_count, files, chunksize=1))
        elapsed = time.perf_counter() - started
    return {"seconds": elapsed, "task_seconds": seconds}


CASES = {f.__name__: f for f in (floor, seed_astropy, fitsio_columns, fast_columns, count_fast,
                                 count_fitsio, count_desi, remote_http, spark, pool,
                                 spark_tasks)}

if __name__ == "__main__":
    case, path, *args = sys.argv[1:]
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    out = CASES[case](path, *args)
    out["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(out))
