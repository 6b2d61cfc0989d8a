"""One benchmark case, run in its own process so its peak RSS is its own.

    python -m bench.cases CASE PATH [ARGS...]   -> prints one JSON line

Cases: floor, seed_astropy, fitsio_columns, fast_columns, count_fast, count_fitsio,
checksum (the SHA-256 of the whole file, as a run with a checksum list computes it),
remote_http (ARGS: URL), http_ranges (ARGS: MB/s per connection), sequential (PATH is an
index), spark and pool (PATH is an index; ARGS: cores), spark_tasks (PATH unused; ARGS: cores,
plain|groupby|job), index_scale (PATH a directory for 1,436 small sweeps; ARGS: cores).
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
    from halo_lrg.fits.reader import iter_column_chunks

    chunk_rows = load_config().read.chunk_rows
    started = time.perf_counter()
    rows = sum(len(c["FLUX_Z"]) for c in iter_column_chunks(path, SEED_COLUMNS, chunk_rows,
                                                            raw_strings=("BRICKNAME",)))
    return {"seconds": time.perf_counter() - started, "rows": rows}


def _count(path: str, fast: bool, selection: str = "seed") -> dict:
    # What count_sweep_file imports lazily (fitsio) is imported before the clock starts, as
    # astropy is for the seed: a per-process cost, not a per-file one. Counting needs no
    # pandas; count_sweep, the notebook function, turns its arrays into a DataFrame.
    import fitsio  # noqa: F401

    from halo_lrg.config import load_config
    from halo_lrg.count.local import count_sweep_file
    from halo_lrg.science.cuts import get_selection

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


def checksum(path: str) -> dict:
    """SHA-256 of every byte of the file, as a task computes it for a local input when a
    checksum list is given (`io.fetch.hash_file`); compare with count_fast."""
    from halo_lrg.io.fetch import InputHash, hash_file

    started = time.perf_counter()
    hasher = InputHash()
    hash_file(path, hasher)
    return {"seconds": time.perf_counter() - started, "bytes": hasher.nbytes,
            "sha256": hasher.hexdigest()}


def remote_http(path: str, url: str) -> dict:
    """Fetch + count one sweep from a (throttled) HTTP server, as a task does."""
    from halo_lrg.config import load_config
    from halo_lrg.spark.job import count_one_file

    config = load_config()
    started = time.perf_counter()
    _bricks, status = count_one_file(url, config, None)
    if status.status != "ok":
        raise SystemExit(status.error)
    return {"seconds": time.perf_counter() - started, "rows": status.rows, "lrg": status.lrg}


def _capped_server(path: str, bytes_per_second: float):
    """A loopback server for ``path`` (at ``/<name>``) with byte ranges and an ETag, each
    connection paced by its own token bucket (like one long-haul TCP stream, whose rate is
    its window over the round trip). Returns (server, state): ``state`` counts the body bytes
    sent and takes ``drop_at`` (a file offset: the response that reaches it is cut there,
    once)."""
    import http.server
    import io
    import re
    import socket
    import struct
    import threading

    size = os.path.getsize(path)
    etag = f'"{size:x}-{os.stat(path).st_mtime_ns:x}"'
    state = {"sent": 0, "drop_at": None, "lock": threading.Lock()}
    block, burst = 16 * 1024, 64 * 1024

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            first, last, status = 0, size - 1, 200
            wanted = re.match(r"bytes=(\d+)-(\d*)$", self.headers.get("Range") or "")
            pinned = self.headers.get("If-Range")
            if wanted and (pinned is None or pinned == etag):
                first = int(wanted.group(1))
                last = min(int(wanted.group(2)), size - 1) if wanted.group(2) else size - 1
                status = 206
            self.send_response(status)
            if status == 206:
                self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
            self.send_header("Content-Length", str(last - first + 1))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", etag)
            self.end_headers()
            with state["lock"]:
                drop = state["drop_at"]
                if drop is not None and first <= drop <= last:
                    state["drop_at"] = None
                    last = drop - 1
                else:
                    drop = None
            tokens, clock = float(burst), time.perf_counter()
            with open(path, "rb") as source:
                at = first
                while at <= last:
                    n = min(block, last + 1 - at)
                    now = time.perf_counter()
                    tokens = min(burst, tokens + (now - clock) * bytes_per_second)
                    clock = now
                    if tokens < n:  # this connection's bucket is empty: wait for n tokens
                        time.sleep((n - tokens) / bytes_per_second)
                        continue
                    tokens -= n
                    self.wfile.write(os.pread(source.fileno(), n, at))
                    at += n
                    with state["lock"]:
                        state["sent"] += n
            if drop is not None:  # the connection breaks: a reset, so whatever the client
                # had not read yet is lost, as on a real network
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
                self.connection.close()
                self.wfile = io.BytesIO()  # nothing left to flush
                self.close_connection = True

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, state


def http_ranges(path: str, mb_per_second: str = "16") -> dict:
    """``halo_lrg.io.http.download`` of ``path`` from a loopback server that caps each
    connection at B MB/s: one stream (``remote.http_parts`` = 1) against 4 ranged parts
    (the default; parts of ``remote.http_part_bytes``, or an eighth of a file smaller than 8
    of them), then each again with a connection cut at 90% of the file, which resumes.
    Reports seconds, throughput in units of B, and the extra bytes (sent by the server) and
    time a cut costs."""
    import filecmp
    import tempfile

    from halo_lrg.config import load_config
    from halo_lrg.io import http as http_source

    rate = float(mb_per_second) * 1e6
    size = os.path.getsize(path)
    server, state = _capped_server(path, rate)
    url = f"http://127.0.0.1:{server.server_address[1]}/{os.path.basename(path)}"
    config = load_config()
    # The default part size, or an eighth of a smaller file (--quick): two rounds of 4 parts.
    part = min(config.remote.http_part_bytes, max(1 << 20, -(-size // 8)))
    config = config.replace(remote={"http_part_bytes": part})
    out: dict = {"bytes": size, "mb_per_second": float(mb_per_second),
                 "http_part_bytes": part}
    try:
        with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(path))) as work:
            for name, parts, cut in (("one", 1, False), ("parts", 4, False),
                                     ("one_cut", 1, True), ("parts_cut", 4, True)):
                remote = config.replace(remote={"http_parts": parts}).remote
                dest = os.path.join(work, name)
                with state["lock"]:
                    state["sent"] = 0
                    state["drop_at"] = int(size * 0.9) if cut else None
                started = time.perf_counter()
                assert http_source.download(url, dest, remote) == size
                out[f"{name}_seconds"] = time.perf_counter() - started
                out[f"{name}_sent"] = state["sent"]
                if not filecmp.cmp(dest, path, shallow=False):
                    raise SystemExit(f"{name}: the downloaded bytes differ from the file")
                os.remove(dest)
    finally:
        server.shutdown()
        server.server_close()
    for name in ("one", "parts"):
        out[f"{name}_rate_b"] = size / out[f"{name}_seconds"] / rate
        out[f"{name}_cut_extra_bytes"] = out[f"{name}_cut_sent"] / size - 1
        out[f"{name}_cut_extra_time"] = out[f"{name}_cut_seconds"] / out[f"{name}_seconds"] - 1
    out["seconds"] = out["parts_seconds"]
    return out


def _descendants_cpu() -> dict[str, float]:
    """CPU seconds so far of this process's descendants, split into the Spark JVM and its
    Python workers, the workers' also into user and system (kernel) time (Linux /proc; zeros
    elsewhere). Workers live as long as the session."""
    tick = os.sysconf("SC_CLK_TCK")
    table = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 1:].split()
        table[int(entry)] = (int(fields[1]), comm, int(fields[11]) / tick, int(fields[12]) / tick)
    cpu = {"jvm": 0.0, "workers_user": 0.0, "workers_sys": 0.0}
    parents = {os.getpid()}
    while parents:
        children = {pid for pid, (ppid, *_rest) in table.items() if ppid in parents}
        for pid in children:
            _ppid, comm, user, system = table[pid]
            if comm == "java":
                cpu["jvm"] += user + system
            else:
                cpu["workers_user"] += user
                cpu["workers_sys"] += system
        parents = children
    cpu["workers"] = cpu["workers_user"] + cpu["workers_sys"]
    return cpu


def _cpu_since(before: dict[str, float]) -> dict[str, float]:
    after = _descendants_cpu()
    return {f"{k}_cpu": after[k] - before[k] for k in before}


def spark(index: str, cores: str) -> dict:
    """The whole job in local mode. ``startup``: the session (JVM, one Python worker per
    core) up. ``seconds``: the session's first job, over all the files: cold, so it pays the
    JVM's JIT warm-up and the workers' first imports. ``warm_seconds``: the same job again."""
    import tempfile
    from pathlib import Path

    from halo_lrg.config import load_config
    from halo_lrg.spark.run import JobSpec, run_job
    from halo_lrg.spark.session import get_spark

    # The worker tuning is opt-in; this case measures the local product with it on.
    config = load_config().replace(run={"master": f"local[{cores}]", "progress_interval": 0.5,
                                        "tune_python_workers": True})
    started = time.perf_counter()
    session = get_spark(config.run)
    session.range(int(cores), numPartitions=int(cores)).mapInPandas(
        lambda batches: (b for b in batches), "id long").collect()
    startup = time.perf_counter() - started
    runs = []
    with tempfile.TemporaryDirectory() as scratch:
        for attempt in ("cold", "warm"):
            before = _descendants_cpu()
            begun = time.perf_counter()
            result = run_job(session, JobSpec(index, str(Path(scratch, attempt)), config),
                             emit=lambda _l: None)
            runs.append({"seconds": time.perf_counter() - begun, **_cpu_since(before),
                         "result": result})
    session.stop()
    cold, warm = runs
    result = cold.pop("result")
    # The JVM is another process: this is the Python driver's own peak.
    return {**cold, "startup": startup, "warm_seconds": warm["seconds"],
            "warm_jvm_cpu": warm["jvm_cpu"], "rows": result.rows, "lrg": result.lrg,
            "files": len(result.files), "task_seconds": [f.seconds for f in result.files]}


TASK_ROWS = 400  # what a task returns for one DR10 sweep: ~400 bricks


def _stand_in_partition(batches, tuned: bool):
    """A task returning what a file's task returns (400 brick rows and a status row), at
    no reading cost: what is left is Spark's own cost per task."""
    import numpy as np

    from halo_lrg.count.local import SweepCount
    from halo_lrg.spark import tuning as workertune
    from halo_lrg.spark.job import FileResult, _partials_frame

    if tuned:
        workertune.install()
    for batch in batches:
        for index in batch["id"]:
            uri = f"/bench/sweep-{int(index):04d}.fits"
            names = np.array([f"{k:04d}p{int(index) % 1000:03d}" for k in range(TASK_ROWS)])
            ones = np.ones(TASK_ROWS, np.int64)
            counts = SweepCount(uri, names, ones, ones, TASK_ROWS, TASK_ROWS, TASK_ROWS, 0.0)
            yield _partials_frame(uri, counts, FileResult(uri, "ok", 1, 1, 1, 0.0))


def spark_tasks(_unused: str, cores: str, variant: str) -> dict:
    """Spark's own cost per task, with tasks that return a file's partials but read nothing.

    ``plain``: PySpark as it comes, per-brick sums by ``groupBy`` in Spark (as
    ``count_lrgs`` does); ``groupby``: the worker and JVM tuning (``run.tune_python_workers``,
    ``run.local_java_options``), one shuffle partition and no AQE, still summing in Spark;
    ``job``: as the CLI's run does it (partials collected and merged on the driver)."""
    import functools

    from pyspark.sql import functions as F

    from halo_lrg.config import load_config
    from halo_lrg.spark.job import PARTIAL_SCHEMA, collect_partials
    from halo_lrg.spark.session import get_spark

    tuned = variant != "plain"
    run = {"master": f"local[{cores}]"}
    if not tuned:
        run.update(local_java_options="")
    session = get_spark(load_config().replace(run=run).run)
    if variant == "groupby":  # this benchmark's own session: the reduce as small as it gets
        session.conf.set("spark.sql.shuffle.partitions", "1")
        session.conf.set("spark.sql.adaptive.enabled", "false")
    tasks = 200

    def job():
        partials = session.range(tasks, numPartitions=tasks).mapInPandas(
            functools.partial(_stand_in_partition, tuned=tuned), PARTIAL_SCHEMA)
        if variant == "job":
            return collect_partials(partials)
        return partials.groupBy("brickname").agg(F.sum("lrg_count")).toPandas()

    job()  # the session's first job: JVM warm-up, workers started
    before = _descendants_cpu()
    started = time.perf_counter()
    job()
    seconds = time.perf_counter() - started
    cpu = _cpu_since(before)
    session.stop()
    return {"seconds": seconds, "ms_per_task_slot": seconds / tasks * int(cores) * 1000,
            "jvm_ms_per_task": cpu["jvm_cpu"] / tasks * 1000,
            "workers_ms_per_task": cpu["workers_cpu"] / tasks * 1000}


def sequential(index: str) -> dict:
    """Σ per-file time: the Spark case's files counted one after another in one process, each
    as the job's tasks count it (imports, configuration and a first file done before the
    clock, as in the pool)."""
    from pathlib import Path

    files = Path(index).read_text().split()
    _pool_init()
    _pool_count(files[0])
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    seconds = [_pool_count(path) for path in files]
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {"seconds": elapsed, "sum_seconds": sum(seconds), "task_seconds": seconds,
            "user_cpu": after.ru_utime - before.ru_utime,
            "sys_cpu": after.ru_stime - before.ru_stime}


_POOL: dict = {}  # per counting process (a pool worker, or the sequential case's one)


def _pool_init() -> None:
    import fitsio  # noqa: F401
    import pandas  # noqa: F401

    from halo_lrg.config import load_config
    from halo_lrg.spark.job import count_one_file  # noqa: F401  (imported off the clock)

    # The Spark case's configuration: a file is counted as its tasks count it (the seed
    # selection, north/south resolution tallied as run.resolve = "auto" does by default).
    _POOL.update(config=load_config())


def _pool_count(path: str) -> float:
    """One file counted as a task of the Spark case counts it (``count_one_file``), without
    what only the job adds (partials, the status row, progress): its seconds."""
    from halo_lrg.spark.job import count_one_file

    started = time.perf_counter()
    _counts, status = count_one_file(path, _POOL["config"], None)
    if status.status != "ok":
        raise RuntimeError(status.error)
    return time.perf_counter() - started


def pool(index: str, cores: str) -> dict:
    """The Spark case's files through ``cores`` plain Python processes, no Spark: what this
    machine does in parallel, against which Spark's own overhead shows."""
    import multiprocessing
    from pathlib import Path

    files = Path(index).read_text().split()
    with multiprocessing.get_context("fork").Pool(int(cores), initializer=_pool_init) as workers:
        workers.map(_pool_count, files[:int(cores)], chunksize=1)  # a first file, off the clock
        before = _descendants_cpu()
        started = time.perf_counter()
        seconds = list(workers.imap_unordered(_pool_count, files, chunksize=1))
        elapsed = time.perf_counter() - started
        cpu = _cpu_since(before)
    return {"seconds": elapsed, "task_seconds": seconds,
            "user_cpu": cpu["workers_user_cpu"], "sys_cpu": cpu["workers_sys_cpu"]}


#: The several-selections case: three built-in selections and a variant (z20p2: the seed
#: selection at z < 20.2), counted in one read of the file.
SEVERAL_SELECTIONS = "seed,desi-lrg-south,desi-lrg-north,z20p2"


def count_selections(path: str, names: str = "seed", resolve: str = "off") -> dict:
    """count_sweep_file of one selection or several in the same read (ARGS: names,
    comma-separated, e.g. SEVERAL_SELECTIONS; then ``on`` to tally north/south resolution as
    a run's tasks do by default): compare several selections' time with one's."""
    import fitsio  # noqa: F401  (imported off the clock, as in _count)

    from halo_lrg.config import load_config
    from halo_lrg.count.local import count_sweep_file
    from halo_lrg.science.cuts import get_selections

    config = load_config().replace(
        selections={"z20p2": {"base": "seed", "lrg_z_mag_max": 20.2}})
    selections = get_selections(names, config.cuts, config.selections)
    started = time.perf_counter()
    result = count_sweep_file(path, selections, config.read.chunk_rows, True,
                              resolve=resolve == "on")
    return {"seconds": time.perf_counter() - started, "rows": result.rows,
            "lrg": result.lrg, "selections": len(selections),
            "lrg_by_selection": list(result.lrg_by_selection)}

INDEX_FILES = 1436  # DR10 south's sweeps


def index_scale(directory: str, cores: str) -> dict:
    """A DR10-south-sized index (1,436 small sweeps): the driver's planning time for a local
    and a remote index (HEADs against a local server), and the Spark job's overhead per file
    beyond the files' own counting, (job x cores - Σ task seconds) / files."""
    import http.server
    import tempfile
    import threading
    from pathlib import Path

    from halo_lrg.config import load_config
    from halo_lrg.spark.run import JobSpec, plan_inputs, run_job
    from halo_lrg.spark.session import get_spark
    from halo_lrg.survey.names import sweep_name
    from halo_lrg.survey.synth import generate_sweep, sample_boxes

    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    names = []
    for k, box in enumerate(sample_boxes(INDEX_FILES, 0.0, -60.0)):
        path = root / sweep_name(box)
        if not path.exists():
            generate_sweep(path, box, 200, seed=k)
        names.append(path.name)
    local_index = root / "index.txt"
    local_index.write_text("".join(f"{root / n}\n" for n in names))
    config = load_config().replace(run={"master": f"local[{cores}]", "progress_interval": 1.0,
                                        "resume": False, "resolve": "off"})

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    remote_index = root / "remote.txt"
    base = f"http://127.0.0.1:{server.server_address[1]}"
    remote_index.write_text("".join(f"{base}/{n}\n" for n in names))
    with tempfile.TemporaryDirectory() as scratch:
        timings = {}
        for label, index in (("local", local_index), ("remote", remote_index)):
            started = time.perf_counter()
            inputs, sizes = plan_inputs(JobSpec(str(index), scratch, config))
            timings[f"plan_{label}_seconds"] = time.perf_counter() - started
            assert len(inputs.uris) == INDEX_FILES and None not in sizes
        server.shutdown()
        session = get_spark(config.run)
        session.range(int(cores), numPartitions=int(cores)).mapInPandas(
            lambda batches: (b for b in batches), "id long").collect()
        started = time.perf_counter()
        result = run_job(session, JobSpec(str(local_index), str(Path(scratch) / "out"), config),
                         emit=lambda _l: None)
        seconds = time.perf_counter() - started
        session.stop()
    counting = sum(f.seconds for f in result.files)
    return {**timings, "seconds": seconds, "files": len(result.files),
            "tasks": result.plan["tasks"], "counting_seconds": counting,
            "overhead_ms_per_file": (seconds * int(cores) - counting) / len(result.files) * 1e3}


CASES = {f.__name__: f for f in (floor, seed_astropy, fitsio_columns, fast_columns, count_fast,
                                 count_fitsio, count_desi, checksum, remote_http, http_ranges,
                                 spark, pool, spark_tasks, sequential)}
CASES[count_selections.__name__] = count_selections
CASES[index_scale.__name__] = index_scale

if __name__ == "__main__":
    case, path, *args = sys.argv[1:]
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    out = CASES[case](path, *args)
    out["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(out))

