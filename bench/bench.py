"""halo-lrg benchmarks: ratios measured in one run on one machine -> docs/benchmarks.md.

    python -m bench.bench [--rows 2000000] [--repeat 3] [--quick] [--bandwidth 40]
                          [--conn-bandwidth 16]
    python -m bench.bench --only cost    # DR10 south's time and cost from the last
                                         # run's measurements (docs/benchmarks.json)

Every case runs in a fresh process (peak RSS is the case's own) on the same generated
DR10-schema sweep, page cache warm, median of --repeat runs. This machine is shared and
noisy: read the ratios, not the absolute times.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from bench.cases import SEVERAL_SELECTIONS

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "bench" / "data"
# Real sweeps hold ~1.5e5 objects per deg²: the benchmark files have real brick counts.
OBJECT_DENSITY = 150_000.0

# The cost model is halo_lrg.aws.estimate's (what `halo-lrg submit` prints before launching):
# its per-task S3 rate, network caps and prices are the assumptions; the data set's are here,
# from a third-party inventory's spot checks (docs/benchmarks.md names it).
DR10_SOUTH_FILES = 1436
DR10_SOUTH_BYTES = 1.6e12           # 1.4-1.8 TB estimated: the middle
DR10_SOUTH_LARGEST = 4.0e6 * 505    # sweep-000m005-005p000, ~4M objects of 505 bytes
COST_NODES = (2, 4, 8)              # core nodes in the table
COST_INSTANCES = ("m5.xlarge", "m5.2xlarge")  # core types; the master keeps the config's
COST_HEADING = "## DR10 south: estimated time and cost"
# What earlier generators titled the section, replaced by `--only cost` too.
COST_HEADINGS = (COST_HEADING, "## Cost model")


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    import numpy

    return (f"{platform.node()}: {os.cpu_count()} cores ({cpu}), {memory:.0f} GiB RAM, "
            f"Linux {platform.release()}, Python {platform.python_version()}, "
            f"numpy {numpy.__version__}")


def sweep(rows: int, seed: int = 11) -> Path:
    """A generated sweep of ``rows`` rows, reused across runs."""
    from halo_lrg.survey.names import SweepBox
    from halo_lrg.survey.synth import generate_sweep

    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"sweep-150p000-155p005-{rows}.fits"
    marker = path.with_suffix(".ok")
    if not (path.exists() and marker.exists()):
        print(f"generating {path.name} ({rows:,} rows, {rows * 505 / 1e9:.2f} GB)...",
              flush=True)
        generate_sweep(path, SweepBox(150, 155, 0, 5), rows, seed,
                       object_density=OBJECT_DENSITY)
        marker.write_text("ok\n")
    return path


def shuffled_copy(path: Path, seed: int = 1) -> Path:
    """The same rows in random order, reused across runs."""
    import fitsio
    import numpy as np

    target = path.with_name(path.stem + "-shuffled.fits")
    marker = target.with_suffix(".ok")
    if not (target.exists() and marker.exists()):
        print(f"shuffling {path.name}...", flush=True)
        data = fitsio.read(str(path), ext="SWEEP")
        data = data[np.random.default_rng(seed).permutation(len(data))]
        fitsio.write(str(target), data, extname="SWEEP", clobber=True)
        del data
        marker.write_text("ok\n")
    warm(target)
    return target


def run_case(case: str, path: Path, *args: str, repeat: int = 3) -> dict:
    results = []
    for _ in range(repeat):
        done = subprocess.run([sys.executable, "-m", "bench.cases", case, str(path), *args],
                              capture_output=True, text=True, cwd=REPO)
        if done.returncode != 0:
            raise SystemExit(f"case {case} failed:\n{done.stderr[-2000:]}")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    summary = median_summary(results)
    print(f"  {case:<15} {summary['seconds']:8.3f} s  {summary['peak_rss_mb']:7.0f} MB RSS",
          flush=True)
    return summary


def run_pair(case: str, path: Path, first: tuple[str, ...], second: tuple[str, ...],
             pairs: int) -> tuple[dict, dict, list[float]]:
    """``case`` with arguments ``first`` and with ``second``, run alternately (first, second,
    then second, first, ...) ``pairs`` times: each pair's runs are seconds apart, so a drift
    of this shared machine's speed moves both alike. Returns each side's summary (medians)
    and every pair's ratio, second / first."""
    runs: dict[tuple[str, ...], list[dict]] = {first: [], second: []}
    for n in range(pairs):
        for args in ((first, second) if n % 2 == 0 else (second, first)):
            runs[args].append(run_case(case, path, *args, repeat=1))
    ratios = [b["seconds"] / a["seconds"] for a, b in zip(runs[first], runs[second])]
    return median_summary(runs[first]), median_summary(runs[second]), ratios


def median_summary(results: list[dict]) -> dict:
    """The first run's result with every scalar timing replaced by the median of the runs'."""
    summary = dict(results[0])
    for key, value in results[0].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            summary[key] = statistics.median(r[key] for r in results)
    return summary


class ThrottledHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files at a fixed bandwidth (bytes/s, class attribute)."""

    bandwidth = 40e6

    def log_message(self, *args):
        pass

    def copyfile(self, source, outputfile):
        block = 256 * 1024
        started = time.perf_counter()
        sent = 0
        while True:
            data = source.read(block)
            if not data:
                break
            outputfile.write(data)
            sent += len(data)
            ahead = sent / self.bandwidth - (time.perf_counter() - started)
            if ahead > 0:
                time.sleep(ahead)


def throttled_server(root: Path, bandwidth: float):
    import functools

    handler = type("Throttled", (ThrottledHandler,), {"bandwidth": bandwidth})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def warm(path: Path) -> None:
    subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)


def now() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("cost",),
                        help="only this section, from the measurements already in the "
                             "--out JSON (cost: DR10 south's time and cost, no measuring)")
    parser.add_argument("--rows", type=int, default=int(os.environ.get("BENCH_ROWS", 2_000_000)))
    parser.add_argument("--repeat", type=int, default=int(os.environ.get("BENCH_REPEAT", 3)))
    parser.add_argument("--bandwidth", type=float, default=40.0, help="remote case, MB/s")
    parser.add_argument("--conn-bandwidth", type=float, default=16.0,
                        help="ranged HTTP case: MB/s of each connection")
    # Files for the Spark comparison (hard links of one file: no extra disk). A real run has
    # hundreds of files a core; 96 on 2 cores is 48, enough that a cold job's one-off costs
    # (JIT, workers' first imports) do not swamp what is compared, per-file work.
    parser.add_argument("--spark-files", type=int, default=96)
    # The Spark comparison varies more from round to round than the single-file cases.
    parser.add_argument("--spark-rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="small files, one repeat")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md")
    args = parser.parse_args()
    if args.only == "cost":
        return only_cost(args.out)
    if args.quick:
        args.rows, args.repeat, args.spark_rounds = 300_000, 1, 1
    small_rows, large_rows = args.rows // 4, args.rows * 2

    main_file = sweep(args.rows)
    size = main_file.stat().st_size
    warm(main_file)
    print(f"{main_file.name}: {args.rows:,} rows, {size / 1e6:.0f} MB", flush=True)
    r = {case: run_case(case, main_file, repeat=args.repeat) for case in (
        "floor", "seed_astropy", "fitsio_columns", "fast_columns", "count_fitsio",
        "count_fast", "count_desi", "checksum")}
    if r["seed_astropy"]["lrg"] != r["count_fast"]["lrg"]:
        raise SystemExit("seed approach and count_sweep disagree on the LRG count")
    # The same rows in random order (a user's catalogue, merged files): no cliff.
    r["count_shuffled"] = run_case("count_fast", shuffled_copy(main_file), repeat=args.repeat)
    # Several selections in one read against one. A ratio of two times, each ~0.3 s: run as
    # pairs, alternately, and the median of the pairs' ratios taken, so that a slow or fast
    # stretch of this shared machine moves both sides of a pair (a ratio of two medians of
    # three read 1.17x in one run and 1.21x in the next).
    r["selections_one"], r["selections_several"], ratios = run_pair(
        "count_selections", main_file, ("seed",), (SEVERAL_SELECTIONS,),
        pairs=2 * args.repeat + 1)
    r["selections_ratios"] = ratios

    print("memory flatness", flush=True)
    small, large = sweep(small_rows), sweep(large_rows)
    warm(small)
    warm(large)
    flat = {n: run_case("count_fast", p, repeat=args.repeat) for n, p in
            ((small_rows, small), (large_rows, large))}

    print("spark local end to end", flush=True)
    cores = os.cpu_count() or 1
    spark_dir = DATA / "spark"
    shutil.rmtree(spark_dir, ignore_errors=True)
    spark_dir.mkdir()
    names = []
    for k in range(args.spark_files):  # same bytes, distinct files: one task each
        target = spark_dir / f"sweep-{150 + 5 * k:03d}p000-{155 + 5 * k:03d}p005.fits"
        os.link(main_file, target)
        names.append(str(target))
    (spark_dir / "index.txt").write_text("\n".join(names) + "\n")
    # This machine's speed drifts by tens of percent within minutes: Σ per-file time, the
    # Spark job and the plain pool are measured side by side, round after round, and each
    # round's ratios are taken within that round.
    index = spark_dir / "index.txt"
    rounds = [{"sequential": run_case("sequential", index, repeat=1),
               "spark": run_case("spark", index, str(cores), repeat=1),
               "pool": run_case("pool", index, str(cores), repeat=1)}
              for _ in range(args.spark_rounds)]
    spark = spark_summary(rounds, cores)
    spark["tasks"] = {variant: run_case("spark_tasks", spark_dir, str(cores), variant,
                                        repeat=args.repeat)
                      for variant in ("plain", "groupby", "job")}

    print(f"remote at {args.bandwidth:g} MB/s", flush=True)
    remote_root = DATA / "www"
    shutil.rmtree(remote_root, ignore_errors=True)
    remote_root.mkdir()
    os.link(small, remote_root / small.name)
    server = throttled_server(remote_root, args.bandwidth * 1e6)
    url = f"http://127.0.0.1:{server.server_address[1]}/{small.name}"
    remote = run_case("remote_http", small, url, repeat=args.repeat)
    server.shutdown()

    print(f"index of {1436} small files", flush=True)
    scale = run_case("index_scale", DATA / "index1436", str(cores), repeat=1)

    print(f"HTTP ranges at {args.conn_bandwidth:g} MB/s per connection", flush=True)
    ranged = run_case("http_ranges", small, str(args.conn_bandwidth), repeat=args.repeat)

    raw = {"rows": args.rows, "bytes": size, "cases": r, "memory_flatness": flat,
           "spark": spark, "remote": remote, "bandwidth_mb_s": args.bandwidth,
           "http_ranges": ranged, "index_scale": scale,
           "machine": machine(), "measured_at": now()}
    # Last, from this run's measurements: DR10 south's time and cost (no measuring here).
    raw["cost"] = cost_model(raw)
    report = render(args, size, r, flat, small_rows, large_rows, spark, cores,
                    remote, small.stat().st_size, ranged, scale, raw["cost"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    args.out.with_suffix(".json").write_text(json.dumps(raw, indent=2, default=str) + "\n")
    print(f"-> {args.out}")
    return 0


def cost_model(raw: dict) -> dict:
    """DR10 south's time and cost on 2, 4 and 8 core nodes, from S3 and from NERSC, by
    halo_lrg.aws.estimate fed with a run's measurements (``raw``: the benchmarks JSON) where
    this machine measures them and its labelled assumptions otherwise. Pure computation."""
    from halo_lrg.aws.emr import spark_resources
    from halo_lrg.aws.estimate import S3, cluster_groups, estimate, https_source
    from halo_lrg.config import load_config

    try:
        count, ranged, file_bytes = (raw["cases"]["count_fast"], raw["http_ranges"],
                                     raw["bytes"])
        measured = {
            "cpu_mb_s": file_bytes / 1e6 / count["seconds"],  # one core, counting only
            "file_mb": file_bytes / 1e6, "count_seconds": count["seconds"],
            "cap_mb_s": ranged["mb_per_second"], "one_rate_b": ranged["one_rate_b"],
            "parts_rate_b": ranged["parts_rate_b"],
            "parts_gain": ranged["parts_rate_b"] / ranged["one_rate_b"],
            "ranged_mb": ranged["bytes"] / 1e6,
            "measured_at": raw.get("measured_at", ""), "machine": raw.get("machine", "")}
    except KeyError as exc:
        raise SystemExit(f"benchmarks JSON: no measurement {exc} (the count_fast and "
                         "http_ranges cases): run `make bench`") from None
    config = load_config(env={})  # the shipped defaults, whatever this shell exports
    host_connections = config.remote.max_connections_per_host
    sources = {"S3": S3, "NERSC": https_source(measured["parts_gain"], host_connections)}
    rest = (DR10_SOUTH_BYTES - DR10_SOUTH_LARGEST) / (DR10_SOUTH_FILES - 1)
    sizes = [int(DR10_SOUTH_LARGEST)] + [int(rest)] * (DR10_SOUTH_FILES - 1)
    rows = []
    for key, source in sources.items():
        for instance_type in COST_INSTANCES:
            for nodes in COST_NODES:
                emr = config.replace(emr={"core_instance_type": instance_type,
                                          "core_count": nodes, "task_count": 0}).emr
                groups = cluster_groups(emr, spark_resources(emr))
                result = estimate(sizes, groups, source, cpu_mb_s=measured["cpu_mb_s"])
                slots = sum(g.count * g.tasks_per_node for g in groups)
                rows.append({"source": key, "master": emr.instance_type,
                             "instance_type": instance_type, "nodes": nodes,
                             "tasks": min(slots, DR10_SOUTH_FILES),
                             "task_mb_s": result.task_mb_s, "rate_mb_s": result.rate_mb_s,
                             "limit": result.limit, "read_seconds": result.read_seconds,
                             "seconds": result.seconds, "hourly_usd": result.hourly_usd,
                             "cost_usd": result.cost_usd,
                             "cpu_share": result.rate_mb_s / (slots * measured["cpu_mb_s"])})
    return {"measured": measured, "computed_at": now(), "rows": rows,
            "files": DR10_SOUTH_FILES, "bytes": DR10_SOUTH_BYTES,
            "largest_bytes": DR10_SOUTH_LARGEST, "host_connections": host_connections,
            "sources": {key: {"name": s.name, "task_mb_s": s.task_mb_s, "basis": s.basis,
                              "note": "; ".join(s.notes)} for key, s in sources.items()}}


def markdown_table(header: str, align: str, rows: list) -> str:
    """A markdown table: ``header`` and ``align`` as their lines read, then one line a row."""
    return "\n".join([header, align] + ["| " + " | ".join(row) + " |" for row in rows])


def render_cost(cost: dict) -> str:
    """docs/benchmarks.md's section for :func:`cost_model`'s result."""
    from halo_lrg.aws.estimate import (
        LIMIT_CPU,
        LIMIT_HOST_CONNECTIONS,
        NERSC_CONNECTION_MB_S,
        PRICES,
        PRICES_SOURCE,
        STARTUP_SECONDS,
        TASK_READ_MB_S,
        network_mb_s,
    )
    from halo_lrg.aws.progress import human_duration

    m, rows = cost["measured"], cost["rows"]
    nersc, connections = cost["sources"]["NERSC"], cost["host_connections"]
    types = dict.fromkeys([rows[0]["master"], *COST_INSTANCES])
    measured = markdown_table("| figure | value | case |", "|---|---:|---|", [
        ("one core's counting rate",
         f"{m['cpu_mb_s']:,.0f} MB/s ({1e3 / m['cpu_mb_s']:.2f} ms CPU a MB)",
         f"`count_sweep` (seed cuts), {m['file_mb']:,.0f} MB in {m['count_seconds']:.3f} s"),
        (f"one connection, the server capping each at B = {m['cap_mb_s']:g} MB/s",
         f"{m['one_rate_b']:.2f} B", f"HTTP ranges, one stream, {m['ranged_mb']:,.0f} MB"),
        ("4 ranged parts, the same server",
         f"{m['parts_rate_b']:.2f} B: **{m['parts_gain']:.2f}x** one stream",
         "HTTP ranges, `remote.http_parts` = 4"),
    ])
    assumed = markdown_table("| figure | value | source |", "|---|---:|---|", [
        ("DR10 south",
         f"{cost['files']:,} sweeps, {cost['bytes'] / 1e12:.1f} TB, largest "
         f"{cost['largest_bytes'] / 1e9:.1f} GB",
         "reference facts §1, from a third-party inventory's spot checks: 0.70-1.87 GB a "
         "file, 1.4-1.8 TB in all (the middle taken: the time scales with it); the largest, "
         "`sweep-000m005-005p000`, ~4M objects x 505 B"),
        ("one task reading S3 in-region", f"{TASK_READ_MB_S:g} MB/s",
         "a single streamed GET (`TASK_READ_MB_S`); halo-lrg's 8 ranged GETs a file can do "
         "better"),
        ("one HTTPS connection, us-east-1 to portal.nersc.gov",
         f"{NERSC_CONNECTION_MB_S:g} MB/s",
         "a long-haul TCP stream is bounded by its window over the round trip (ESnet "
         "fasterdata): 3-6 MB over ~70 ms coast to coast is 45-90 MB/s at best, loss keeps "
         "it lower; no figure is published for the portal (`NERSC_CONNECTION_MB_S`)"),
        ("connections to one host, a node", f"{connections}",
         "halo-lrg's own limit, `remote.max_connections_per_host` (polite to a public "
         "portal)"),
        ("node baseline network",
         ", ".join(f"{t} {network_mb_s(t):g} MB/s" for t in COST_INSTANCES),
         "EC2 instance-type tables, \"Network specifications\" (1.25 / 2.5 Gbit/s "
         "sustained; bursts last minutes)"),
        ("a node-hour, EC2 + EMR",
         ", ".join(f"{t} ${PRICES[t].ec2:g} + ${PRICES[t].emr:g}" for t in types),
         PRICES_SOURCE),
        ("provisioning and bootstrap", f"{STARTUP_SECONDS / 60:.0f} min",
         "billed on every node: EMR clusters take 5-15 min to reach RUNNING, plus the "
         "bootstrap's pip install (`STARTUP_SECONDS`)"),
    ])
    table = markdown_table(
        "| source | core type | core nodes | tasks at once | MB/s a task | MB/s | limit "
        "| wall time | $/h | cost |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|---:|",
        [(row["source"], row["instance_type"], str(row["nodes"]), str(row["tasks"]),
          f"{row['task_mb_s']:,.0f}", f"{row['rate_mb_s']:,.0f}", row["limit"],
          f"{human_duration(row['seconds'])} ({row['seconds'] / 3600:.2f} h)",
          f"${row['hourly_usd']:.2f}", f"**${row['cost_usd']:,.2f}**") for row in rows])
    limits = sorted({row["limit"] for row in rows})
    if LIMIT_CPU in limits:
        cpu = "The CPU binds where it is named: a core counts slower than the source delivers."
    else:
        cpu = (f"The CPU never does: the cores count at most "
               f"{max(row['cpu_share'] for row in rows):.1%} of the time "
               f"({m['cpu_mb_s']:,.0f} MB/s a core).")
    s3 = [row for row in rows if row["source"] == "S3"]
    fastest = min(s3, key=lambda row: row["seconds"])
    slowest = max(s3, key=lambda row: row["seconds"])
    cheapest = min(s3, key=lambda row: row["cost_usd"])
    dearest = max(s3, key=lambda row: row["cost_usd"])
    capped = [row for row in rows if row["limit"] == LIMIT_HOST_CONNECTIONS]
    host = (f" Where \"{LIMIT_HOST_CONNECTIONS}\" binds, a node's {connections} connections "
            f"to the portal ({connections * NERSC_CONNECTION_MB_S:g} MB/s) carry less than "
            "its network: a higher `remote.max_connections_per_host` would be faster, at "
            "the portal's expense." if capped else "")
    notes = "\n".join(textwrap.fill(note, 92, initial_indent="* ", subsequent_indent="  ")
                      for note in (
        f"Limits that bind here: {', '.join(limits)}. {cpu}",
        f"From S3: {human_duration(slowest['seconds'])} ({slowest['nodes']} x "
        f"{slowest['instance_type']}) down to {human_duration(fastest['seconds'])} "
        f"({fastest['nodes']} x {fastest['instance_type']}) for ${cheapest['cost_usd']:,.2f} "
        f"to ${dearest['cost_usd']:,.2f}: reading takes the same node-hours however many "
        "nodes share it; the start-up is paid on every node, and the master for the whole "
        "run.",
        "From NERSC, the rate of one connection is assumed (above) and the parts' gain "
        "measured against a local server capping each connection, not over the long-haul "
        f"path; {nersc['note']}.{host}",
        "Not counted: copying the sweeps to S3 first and storing them there, and request "
        "charges."))
    when = f" (measured {m['measured_at']})" if m.get("measured_at") else ""
    nersc_rate = (f"{NERSC_CONNECTION_MB_S:g} x {m['parts_gain']:.2f} (measured) = "
                  f"{nersc['task_mb_s']:,.0f} MB/s")
    return f"""{COST_HEADING}

Computed on {cost['computed_at']} as the last step of `make bench`, or alone by
`python -m bench.bench --only cost`, from the measurements in `docs/benchmarks.json`{when}.
The model is `halo_lrg/aws/estimate.py`'s, the one `halo-lrg submit` prints before it
launches; this section feeds it what this machine can measure.

**Measured** (this machine, by the cases above):

{measured}

**Assumed** (labelled in `halo_lrg/aws/estimate.py` and `bench/bench.py`, with sources):

{assumed}

**Formula** (one task per file and per vCPU; a task counts while it downloads):

```
task  = min(the source's rate a task, one core's counting rate)
        S3: {TASK_READ_MB_S:g} MB/s; NERSC: {nersc_rate}
node  = min(tasks x task, node baseline, connections per host x connection)
rate  = Σ over the core nodes (no more tasks at once than files)
time  = max(bytes / rate, largest file / task) + start-up
cost  = time x (master + core nodes) x (EC2 + EMR) $/h
```

Each row's master is the configuration's ({rows[0]['master']}); the core nodes' executors
come from `spark_resources`, as `submit` sizes them (m5.xlarge: 1 executor x 4 cores,
m5.2xlarge: 2 x 4). "limit" names the term that sets the rate.

{table}

{notes}
"""


ROUNDS_HEADER = ("| round | Σ per-file (s) | Σ / cores (s) | Spark job (s) | ratio "
                 "| plain pool (s) | ratio | kernel CPU (s): Σ / Spark / pool |\n"
                 "|---:|---:|---:|---:|---:|---:|---:|---:|")


def spark_summary(rounds: list[dict], cores: int) -> dict:
    """Medians over the rounds; each ratio is computed within its round first."""
    def median(case, key):
        return statistics.median(r[case][key] for r in rounds)

    def ideal(r):  # Σ per-file time / cores, measured in that round
        return r["sequential"]["sum_seconds"] / cores

    def outside_ms(r):  # of a task slot, outside the file's own counting
        spark = r["spark"]
        slots = spark["seconds"] * cores
        return (slots - sum(spark["task_seconds"])) / len(spark["task_seconds"]) * 1000

    rows = [{"sum_per_file": r["sequential"]["sum_seconds"], "ideal": ideal(r),
             "spark": r["spark"]["seconds"], "pool": r["pool"]["seconds"],
             "spark_ratio": r["spark"]["seconds"] / ideal(r),
             "pool_ratio": r["pool"]["seconds"] / ideal(r),
             # Kernel CPU (mostly copying the file out of the page cache) shows the
             # machine's state: it drifts between rounds, and at times in one case only.
             "sys_sequential": r["sequential"]["sys_cpu"],
             "sys_spark": r["spark"]["workers_sys_cpu"],
             "sys_pool": r["pool"]["sys_cpu"],
             "outside_ms": outside_ms(r)} for r in rounds]
    return {
        "rounds": rows,
        "outside_ms": statistics.median(row["outside_ms"] for row in rows),
        "cpu_split": {
            case: {"user": median(case, user), "sys": median(case, sys_)}
            for case, user, sys_ in (("sequential", "user_cpu", "sys_cpu"),
                                     ("spark", "workers_user_cpu", "workers_sys_cpu"),
                                     ("pool", "user_cpu", "sys_cpu"))},
        "spark_ratio": statistics.median(row["spark_ratio"] for row in rows),
        "pool_ratio": statistics.median(row["pool_ratio"] for row in rows),
        "warm_ratio": statistics.median(r["spark"]["warm_seconds"] / ideal(r) for r in rounds),
        "ideal": statistics.median(row["ideal"] for row in rows),
        **{key: median("spark", key) for key in ("seconds", "startup", "warm_seconds",
                                                 "jvm_cpu", "workers_cpu", "warm_jvm_cpu")},
        "pool_seconds": median("pool", "seconds"),
        **{key: statistics.median(statistics.mean(r[case]["task_seconds"]) for r in rounds)
           for key, case in (("per_file", "sequential"), ("per_file_in_spark", "spark"),
                             ("per_file_in_pool", "pool"))},
    }


def only_cost(out: Path) -> int:
    """``--only cost``: DR10 south's time and cost from the measurements already in
    ``out``'s JSON, written into that JSON and in place of its section of ``out``."""
    data = out.with_suffix(".json")
    try:
        raw = json.loads(data.read_text())
        report = out.read_text()
    except (OSError, ValueError) as exc:
        raise SystemExit(f"{data}: no earlier measurements to use ({exc}): run `make bench`"
                         ) from None
    raw["cost"] = cost_model(raw)
    section = render_cost(raw["cost"])
    starts = [report.find(f"\n{heading}") for heading in COST_HEADINGS]
    start = min((at for at in starts if at >= 0), default=-1)
    if start < 0:
        report = report.rstrip("\n") + "\n\n" + section
    else:
        end = report.find("\n## ", start + 1)
        report = (report[:start + 1] + section
                  + (report[end:].lstrip("\n").join(["\n", ""]) if end >= 0 else ""))
    out.write_text(report)
    data.write_text(json.dumps(raw, indent=2, default=str) + "\n")
    for row in raw["cost"]["rows"]:
        print(f"  {row['source']:<5} {row['nodes']} x {row['instance_type']:<10} "
              f"{row['rate_mb_s']:7,.0f} MB/s ({row['limit']}) "
              f"{row['seconds'] / 3600:5.2f} h  ${row['cost_usd']:,.2f}", flush=True)
    print(f"-> {out} ({COST_HEADING[3:]})")
    return 0


def ranged_targets(ranged: dict) -> list[tuple[str, str, bool]]:
    """The ranged-HTTP case's targets: 4 parts against one stream, each connection capped at
    B; a connection cut at 90% of the file, resumed."""
    b, mb = ranged["mb_per_second"], ranged["bytes"] / 1e6
    cuts = {mode: (ranged[f"{mode}_cut_extra_bytes"], ranged[f"{mode}_cut_extra_time"])
            for mode in ("one", "parts")}
    return [
        (f"HTTP, each connection capped at B = {b:g} MB/s: 4 ranged parts ≥ 3.5 B",
         f"{ranged['parts_rate_b']:.2f} B ({ranged['parts_seconds']:.1f} s; one stream "
         f"{ranged['one_rate_b']:.2f} B, {ranged['one_seconds']:.1f} s; {mb:.0f} MB file, "
         f"{ranged['http_part_bytes'] / 2**20:.1f} MiB parts)", ranged["parts_rate_b"] >= 3.5),
        ("HTTP connection cut at 90% of the file: ≤ 15% extra bytes and time (resumed, not "
         "restarted)",
         "; ".join(f"{label}: +{cuts[mode][0]:.1%} bytes, {cuts[mode][1]:+.1%} time"
                   for mode, label in (("one", "one stream"), ("parts", "4 parts"))),
         all(extra <= 0.15 for pair in cuts.values() for extra in pair)),
    ]


def render(args, size, r, flat, small_rows, large_rows, spark, cores, remote,
           remote_size, ranged, scale, cost) -> str:
    from halo_lrg.config import load_config

    mb = size / 1e6
    chunk_rows = load_config().read.chunk_rows  # what the cases ran with

    def row(name, case, note=""):
        s = r[case]["seconds"]
        return (f"| {name} | {s:.3f} | {args.rows / s / 1e6:.2f} | {mb / s:,.0f} | "
                f"{r[case]['peak_rss_mb']:,.0f} | {note} |")

    seed, ours, floor = r["seed_astropy"], r["count_fast"], r["floor"]
    speedup = seed["seconds"] / ours["seconds"]
    memory_ratio = ours["peak_rss_mb"] / seed["peak_rss_mb"]
    floor_ratio = ours["seconds"] / floor["seconds"]
    flat_diff = abs(flat[large_rows]["peak_rss_mb"] - flat[small_rows]["peak_rss_mb"]) / \
        flat[small_rows]["peak_rss_mb"]
    remote_rate = remote_size / 1e6 / remote["seconds"]
    checksum_ratio = r["checksum"]["seconds"] / ours["seconds"]
    shuffled_time = r["count_shuffled"]["seconds"] / ours["seconds"]
    shuffled_rss = r["count_shuffled"]["peak_rss_mb"] / ours["peak_rss_mb"]
    selections_ratio = statistics.median(r["selections_ratios"])
    files = args.spark_files

    def verdict(ok):
        return "**met**" if ok else "**missed**"

    small_rss, large_rss = flat[small_rows]["peak_rss_mb"], flat[large_rows]["peak_rss_mb"]
    targets = [
        ("count_sweep ≥ 5x faster than the seed's approach", f"{speedup:.1f}x",
         speedup >= 5),
        ("count_sweep peak RSS ≤ 1/15 of the seed's (whole process, imports included)",
         f"{memory_ratio:.3f} ({ours['peak_rss_mb']:,.0f} vs {seed['peak_rss_mb']:,.0f} MB)",
         memory_ratio <= 1 / 15),
        ("shuffled rows: count_sweep within 1.1x of the grouped rows' time and memory",
         f"{shuffled_time:.2f}x time ({r['count_shuffled']['seconds']:.3f} vs "
         f"{ours['seconds']:.3f} s), {shuffled_rss:.2f}x memory",
         shuffled_time <= 1.1 and shuffled_rss <= 1.1),
        (f"{scale['files']:,}-file index: driver and Spark overhead ≤ 15 ms a file "
         f"({cores} cores, default settings)", f"{scale['overhead_ms_per_file']:.1f} ms a file "
         f"(job {scale['seconds']:.1f} s, files' own counting {scale['counting_seconds']:.1f} s; "
         f"small files read several to a task: {scale.get('tasks', '?')} tasks, "
         "run.pack_bytes)",
         scale["overhead_ms_per_file"] <= 15),
        (f"planning {scale['files']:,} remote entries (HEADs, local server) ≤ 10 s",
         f"{scale['plan_remote_seconds']:.2f} s (local paths {scale['plan_local_seconds']:.2f} s)",
         scale["plan_remote_seconds"] <= 10),
        ("count_sweep within 8x of the read floor", f"{floor_ratio:.1f}x", floor_ratio <= 8),
        (f"peak RSS flat: {small_rows:,} vs {large_rows:,} rows differ < 30%",
         f"{small_rss:,.0f} vs {large_rss:,.0f} MB ({flat_diff:.0%})", flat_diff < 0.3),
        ("Spark local end to end ≤ 1.25 x Σ per-file / cores + session start",
         f"{spark['spark_ratio']:.2f} x: the session's first job on {files} files "
         f"{spark['seconds']:.2f} s vs Σ per-file / cores {spark['ideal']:.2f} s "
         f"(median of {args.spark_rounds} rounds' ratios); session start "
         f"{spark['startup']:.1f} s "
         "apart", spark["spark_ratio"] <= 1.25),
        ("4 selections (seed, desi-lrg-south, desi-lrg-north, z20p2) in one read ≤ 1.2x one "
         "(seed)",
         f"{selections_ratio:.2f}x: median of {len(r['selections_ratios'])} pairs run "
         f"alternately ({min(r['selections_ratios']):.2f}-{max(r['selections_ratios']):.2f}); "
         f"medians {r['selections_several']['seconds']:.3f} vs "
         f"{r['selections_one']['seconds']:.3f} s",
         selections_ratio <= 1.2),
        ("SHA-256 of a local file ≤ 10% of count_sweep's time (else: hashed only when a "
         "checksum list is given)",
         f"{checksum_ratio:.0%} ({r['checksum']['seconds']:.3f} vs {ours['seconds']:.3f} s, "
         f"{mb / r['checksum']['seconds']:,.0f} MB/s)", checksum_ratio <= 0.10),
        (f"remote throttled to B = {args.bandwidth:g} MB/s gives ≥ 0.85 B",
         f"{remote_rate:.1f} MB/s = {remote_rate / args.bandwidth:.2f} B "
         f"({remote_size / 1e6:.0f} MB file)", remote_rate >= 0.85 * args.bandwidth),
        *ranged_targets(ranged),
    ]
    rounds_table = "\n".join(
        f"| {k} | {x['sum_per_file']:.2f} | {x['ideal']:.2f} | {x['spark']:.2f} | "
        f"{x['spark_ratio']:.2f}x | {x['pool']:.2f} | {x['pool_ratio']:.2f}x | "
        f"{x['sys_sequential']:.1f} / {x['sys_spark']:.1f} / {x['sys_pool']:.1f} |"
        for k, x in enumerate(spark["rounds"], start=1))
    cpu_split = ", ".join(
        f"{label} {spark['cpu_split'][case]['user']:.1f} / {spark['cpu_split'][case]['sys']:.1f} s"
        for case, label in (("sequential", "one after another"), ("spark", "Spark's workers"),
                            ("pool", "the pool")))
    tasks_table = "\n".join(
        f"| `{name}` | {t['ms_per_task_slot']:.1f} | {t['jvm_ms_per_task']:.1f} | "
        f"{t['workers_ms_per_task']:.1f} |" for name, t in spark["tasks"].items())
    targets_table = "\n".join(["| target | measured | |", "|---|---|---|"] + [
        f"| {name} | {value} | {verdict(ok)} |" for name, value, ok in targets])

    return f"""# Benchmarks

Measured by `make bench` (`python -m bench.bench`) on {time.strftime('%Y-%m-%d %H:%M UTC',
                                                           time.gmtime())}.

Machine: {machine()}.

File: a generated DR10-schema sweep, {args.rows:,} rows x 505 bytes = {mb:,.0f} MB, real
brick density (1.5e5 objects/deg²). Each case ran {args.repeat}x in a fresh process with the
page cache warm; times are medians. This machine is shared and noisy: **the ratios are the
result**, measured in one run.

## Reading and counting one file

| case | seconds | Mrows/s | MB/s | peak RSS (MB) | note |
|---|---:|---:|---:|---:|---|
{row("read floor (`cat > /dev/null`)", "floor", "every byte, sequentially")}
{row("seed: astropy whole table + cuts + counts", "seed_astropy", "Table.read(memmap=False)")}
{row("fitsio column-selective read alone", "fitsio_columns", "7 seed columns, one call")}
{row("fast path read alone", "fast_columns", "numpy views of row chunks")}
{row("count_sweep, fitsio path", "count_fitsio", "the reference path")}
{row("**count_sweep** (seed cuts)", "count_fast", "fast path, the default")}
{row("count_sweep, the same rows shuffled", "count_shuffled", "no order to exploit")}
{row("count_sweep (desi-lrg cuts)", "count_desi", "18 columns + RELEASE")}
{row("SHA-256 of the whole file", "checksum", "what a checksum list costs a local input")}

## Targets

{targets_table}

## Spark local mode: where the time goes

{files} hard links of the file above ({files} tasks) on {cores} cores, each round measuring,
one after another: Σ per-file time (each file in turn in one process, counted as the job's
tasks count it: `count_one_file` with the job's configuration, so with the north/south
tally `run.resolve = "auto"` adds), the Spark job (a fresh session; its first job over all
the files, so it pays the JVM's JIT warm-up and the workers' first imports), and the same
files through {cores} plain Python processes (no Spark). Ratios are to Σ per-file / cores
within the same round.

{ROUNDS_HEADER}
{rounds_table}

* **Spark's first job: {spark['spark_ratio']:.2f}x** Σ per-file / cores; the same job again
  in that session (JIT warm, workers' imports done): {spark['warm_ratio']:.2f}x; the plain
  pool: {spark['pool_ratio']:.2f}x. Session start (JVM and one Python worker per core, not
  in those times): {spark['startup']:.1f} s.
* Mean time per file: alone {spark['per_file']:.3f} s, in the pool
  {spark['per_file_in_pool']:.3f} s, in Spark's tasks {spark['per_file_in_spark']:.3f} s.
  {cores} files read at once share the machine's memory bandwidth and L3 cache; with
  `read.chunk_rows` = {chunk_rows} (~{chunk_rows * 700 / 1e6:.0f} MB a task) they barely slow
  each other.
* Each task slot spends {spark['outside_ms']:.0f} ms a file outside the file's own counting
  (job start and end, the JVM's work between tasks, the partials' conversion):
  (Spark job x cores - Σ its tasks' counting time) / files.
* CPU in the first job: the JVM {spark['jvm_cpu']:.2f} s, the Python workers
  {spark['workers_cpu']:.2f} s; in the warm job, the JVM {spark['warm_jvm_cpu']:.2f} s.
* User / kernel CPU of the counting processes (medians): {cpu_split}.
  Kernel time is mostly the page cache copied into the read buffer (`cat` pays the same).
  On this VM its cost per byte has drifted by up to 2x between runs, at times in Spark's
  workers only (5.6 s against 12.0 s for 96 files in an earlier run, which then took the
  Spark ratio to 1.7x); the rounds' last column shows whether a run was in that state.

Spark's own cost per task, with tasks returning what a file's task returns (400 brick rows
and a status row) but reading nothing, 200 tasks after a first job:

| variant | ms of a task slot | JVM CPU ms a task | Python workers' CPU ms a task |
|---|---:|---:|---:|
{tasks_table}

`plain` is PySpark as it comes (its defaults: C2 JIT, code generation, adaptive execution,
200 shuffle partitions), summing per brick with `groupBy` in Spark; `groupby` adds the
worker and JVM tuning (`run.tune_python_workers`, opt-in, and `run.local_java_options`; see
`halo_lrg/spark/tuning.py`), one shuffle partition and no adaptive execution; `job` is what
the CLI's run does: the same, with the per-file partials (already one row per brick)
collected in one stage and summed on the driver, so no task does a partial aggregation or a
shuffle write.

{render_cost(cost)}"""


if __name__ == "__main__":
    sys.exit(main())
