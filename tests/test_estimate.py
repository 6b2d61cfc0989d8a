"""The time-and-cost model (halo_lrg.aws.estimate) as a specification: which limit sets a
run's pace, how time and cost move with the number of nodes, that the master is paid for,
and the sources it reads from (S3 in-region, a public HTTPS portal)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from halo_lrg.aws.emr import spark_resources
from halo_lrg.aws.estimate import (
    LIMIT_CPU,
    LIMIT_HOST_CONNECTIONS,
    LIMIT_LARGEST_FILE,
    LIMIT_NODE_NETWORK,
    LIMIT_TASK_NETWORK,
    NERSC_CONNECTION_MB_S,
    PRICES,
    S3,
    STARTUP_SECONDS,
    TASK_READ_MB_S,
    NodeGroup,
    Source,
    cluster_groups,
    estimate,
    https_source,
    network_mb_s,
    node_limit,
    source_for,
)
from halo_lrg.config import load_config

#: Types in both tables (price and network), with their vCPUs.
PRICED = {"m5.xlarge": 4, "m5.2xlarge": 8, "m5.4xlarge": 16, "r5.xlarge": 4, "c5.xlarge": 4}
DR10 = [1.6e12 / 1436] * 1436


def cluster(nodes: int, instance_type: str = "m5.xlarge", tasks: int = 4,
            master: str = "m5.xlarge") -> list[NodeGroup]:
    return [NodeGroup("MASTER", master, 1), NodeGroup("CORE", instance_type, nodes, 1, tasks)]


def test_the_node_baseline_binds_when_the_tasks_could_read_more():
    # 4 tasks x 90 MB/s = 360 MB/s against m5.xlarge's 1.25 Gbit/s = 156.25 MB/s.
    assert node_limit("m5.xlarge", 4, 90.0, LIMIT_TASK_NETWORK) == (156.25, LIMIT_NODE_NETWORK)
    result = estimate(DR10, cluster(2))
    assert result.limit == LIMIT_NODE_NETWORK and result.rate_mb_s == 312.5


def test_the_tasks_network_binds_below_the_node_baseline():
    # One task a node: 90 MB/s, under the node's 156.25 MB/s.
    result = estimate(DR10, cluster(3, tasks=1))
    assert result.limit == LIMIT_TASK_NETWORK and result.rate_mb_s == 270.0


def test_cpu_binds_when_a_core_counts_slower_than_the_source_delivers():
    result = estimate(DR10, cluster(2, tasks=1), cpu_mb_s=30.0)
    assert result.limit == LIMIT_CPU
    assert result.task_mb_s == 30.0 and result.rate_mb_s == 60.0
    assert "one core counting" in next(line for line in result.lines()
                                       if line.startswith("rate:"))
    # A core faster than the network changes nothing.
    fast = estimate(DR10, cluster(2, tasks=1), cpu_mb_s=2880.0)
    assert fast.limit == LIMIT_TASK_NETWORK and fast.task_mb_s == TASK_READ_MB_S
    # Enough slow cores that together they pass the node's network: the network binds again.
    assert estimate(DR10, cluster(2, tasks=8), cpu_mb_s=30.0).limit == LIMIT_NODE_NETWORK


def test_connections_per_host_bind_an_https_portal_on_a_large_node():
    source = https_source(parts_gain=4.0, host_connections=8)
    assert source.task_mb_s == 4 * NERSC_CONNECTION_MB_S
    assert source.host_cap_mb_s == 8 * NERSC_CONNECTION_MB_S
    # m5.2xlarge: 8 tasks x 100 = 800, network 312.5, 8 connections x 25 = 200 MB/s.
    result = estimate(DR10, cluster(2, "m5.2xlarge", tasks=8), source)
    assert result.limit == LIMIT_HOST_CONNECTIONS and result.rate_mb_s == 400.0
    assert result.source is source and set(source.notes) <= set(result.notes)
    assert "8 connections per host 200 MB/s" in next(line for line in result.lines()
                                                     if line.startswith("rate:"))
    # The same nodes with no per-host limit: the node's network again.
    free = estimate(DR10, cluster(2, "m5.2xlarge", tasks=8),
                    https_source(parts_gain=4.0, host_connections=0))
    assert free.limit == LIMIT_NODE_NETWORK and free.rate_mb_s == 625.0


NERSC = "https://portal.nersc.gov/cfs/cosmo/data/legacysurvey/dr10/south/sweep/10.1"
REMOTE = load_config(env={}).remote


def test_an_s3_index_is_estimated_as_s3_in_region():
    assert source_for(["s3://b/sweep-000p000-005p005.fits"] * 3, REMOTE) == S3


def test_an_index_on_nersc_is_estimated_at_its_assumed_rate_with_parts_and_the_host_cap():
    uris = [f"{NERSC}/sweep-{k:03d}p000-{k + 5:03d}p005.fits" for k in (0, 5)]
    source = source_for(uris, dataclasses.replace(REMOTE, http_parts=4, max_connections_per_host=8))
    assert source.name == "portal.nersc.gov over HTTPS"
    assert source.task_mb_s == 4 * NERSC_CONNECTION_MB_S
    assert source.host_cap_mb_s == 8 * NERSC_CONNECTION_MB_S
    assert "ESnet" in source.basis and "x 4.00 for ranged parts" in source.basis
    assert any("aggregate capacity is unknown" in note for note in source.notes)
    assert any("4 ranged parts a file assume the host answers byte ranges" in note
               for note in source.notes)
    assert not any("mixes" in note for note in source.notes)
    # On the default cluster 4 parts a task reach the node's baseline, as S3 does; one
    # stream a file leaves 4 tasks a node at 4 x 25 MB/s, under it.
    nersc = estimate(DR10, cluster(2), source)
    assert nersc.read_seconds == estimate(DR10, cluster(2)).read_seconds
    assert "input:   1436 sweeps, 1.6 TB, read from portal.nersc.gov over HTTPS" in nersc.lines()
    one_stream = estimate(DR10, cluster(2), source_for(uris, dataclasses.replace(
        REMOTE, http_parts=1)))
    assert one_stream.limit == LIMIT_TASK_NETWORK and one_stream.rate_mb_s == 200.0


def test_one_stream_a_file_and_other_hosts_say_what_is_assumed():
    source = source_for(["http://data.example.org/a.fits", "http://data.example.org/b.fits"],
                        dataclasses.replace(REMOTE, http_parts=1))
    assert source.name == "data.example.org over HTTP"
    assert source.task_mb_s == NERSC_CONNECTION_MB_S
    assert "no figure for this host" in source.basis
    assert not any("ranged parts" in note for note in source.notes)


def test_an_index_mixing_s3_and_hosts_is_estimated_at_the_slower_rate_with_notes():
    source = source_for(["s3://b/a.fits", f"{NERSC}/b.fits", "https://mirror.example.org/c.fits"],
                        REMOTE)
    assert source.name == "2 hosts over HTTPS"
    assert any("mixes S3 and HTTPS entries" in note for note in source.notes)
    assert any("on 2 hosts (mirror.example.org, portal.nersc.gov)" in note
               for note in source.notes)


def test_the_largest_file_binds_when_the_cluster_outruns_it():
    result = estimate([9e9, 1e6], cluster(2))
    assert result.limit == LIMIT_LARGEST_FILE
    assert result.read_seconds == pytest.approx(9e9 / 1e6 / TASK_READ_MB_S)


def test_fewer_files_than_slots_leave_slots_idle():
    result = estimate([1e8] * 3, cluster(4, tasks=1))
    assert result.rate_mb_s == 3 * TASK_READ_MB_S and result.limit == LIMIT_TASK_NETWORK


def test_mixed_groups_name_each_groups_limit():
    groups = [*cluster(1), NodeGroup("TASK", "m5.xlarge", 1, 1, 1, spot=True)]
    result = estimate(DR10, groups)
    assert result.limit == f"{LIMIT_NODE_NETWORK} (core), {LIMIT_TASK_NETWORK} (task)"
    assert result.rate_mb_s == 156.25 + 90.0


def test_no_size_known_means_no_time_and_no_limit():
    result = estimate([None, None], cluster(2))
    assert result.read_seconds is None and result.limit == "" and result.cost_usd is None


def test_the_cost_pays_for_the_master_and_the_startup():
    result = estimate(DR10, cluster(2))
    node = PRICES["m5.xlarge"].hourly
    assert result.hourly_usd == pytest.approx(3 * node)  # 2 core + 1 master
    seconds = 1.6e12 / 1e6 / 312.5 + STARTUP_SECONDS
    assert result.seconds == pytest.approx(seconds)
    assert result.cost_usd == pytest.approx(3 * node * seconds / 3600)
    # A larger master costs more for the same time.
    big = estimate(DR10, cluster(2, master="m5.2xlarge"))
    assert big.seconds == pytest.approx(result.seconds)
    assert big.cost_usd - result.cost_usd == pytest.approx(
        (PRICES["m5.2xlarge"].hourly - node) * seconds / 3600)


def test_the_default_source_keeps_submits_numbers():
    """What `halo-lrg submit` prints for the default cluster (README's example)."""
    result = estimate(DR10, cluster(2))
    assert result.source == S3
    assert ("rate:    90 MB/s a task (assumed S3 read), node network cap m5.xlarge 156 MB/s "
            "-> 312 MB/s") in result.lines()
    assert result.cost_usd == pytest.approx(0.72 * (5120 + 600) / 3600)


@settings(max_examples=60, deadline=None)
@given(instance_type=st.sampled_from(sorted(PRICED)),
       files=st.integers(1, 3000),
       largest_gb=st.floats(0.5, 20.0),
       cpu=st.one_of(st.none(), st.floats(5.0, 5000.0)),
       https=st.booleans(),
       host_connections=st.integers(0, 32))
def test_more_nodes_never_slow_a_run_and_speed_it_until_the_limit_switches(
        instance_type, files, largest_gb, cpu, https, host_connections):
    """Rate up, time down as core nodes are added, strictly while a per-node limit binds;
    once the limit is the largest file or every file has its task, more nodes only add cost."""
    sizes = [largest_gb * 1e9] + [1e9] * (files - 1)
    source = (https_source(parts_gain=3.9, host_connections=host_connections) if https
              else S3)
    tasks = PRICED[instance_type]
    runs = [estimate(sizes, cluster(n, instance_type, tasks), source, cpu_mb_s=cpu)
            for n in range(1, 41)]
    per_node = {LIMIT_NODE_NETWORK, LIMIT_HOST_CONNECTIONS, LIMIT_TASK_NETWORK, LIMIT_CPU}
    for n, (fewer, more) in enumerate(zip(runs, runs[1:]), start=1):
        assert more.rate_mb_s >= fewer.rate_mb_s - 1e-9
        assert more.seconds <= fewer.seconds + 1e-6
        assert more.cost_usd > fewer.cost_usd or more.seconds < fewer.seconds
        if fewer.limit in per_node and (n + 1) * tasks <= files:
            assert more.rate_mb_s > fewer.rate_mb_s
            assert more.seconds < fewer.seconds or more.limit == LIMIT_LARGEST_FILE
        if fewer.limit == LIMIT_LARGEST_FILE:  # the tail does not shrink with nodes
            assert more.limit == LIMIT_LARGEST_FILE
            assert more.read_seconds == pytest.approx(fewer.read_seconds)


def test_the_bench_clusters_are_what_submit_would_launch():
    """bench/bench.py builds its table's clusters as submit does (config -> spark_resources ->
    cluster_groups): one task per vCPU, the master on its own type."""
    emr = load_config(env={}).replace(emr={"core_instance_type": "m5.2xlarge",
                                           "core_count": 4}).emr
    groups = cluster_groups(emr, spark_resources(emr))
    master, core = groups
    assert (master.role, master.instance_type, master.count) == ("MASTER", "m5.xlarge", 1)
    assert (core.instance_type, core.count, core.tasks_per_node) == ("m5.2xlarge", 4, 8)
    result = estimate(DR10, groups)
    assert result.rate_mb_s == 4 * network_mb_s("m5.2xlarge")
    assert result.hourly_usd == pytest.approx(PRICES["m5.xlarge"].hourly
                                              + 4 * PRICES["m5.2xlarge"].hourly)


def test_a_source_without_a_host_cap_is_never_capped_by_connections():
    assert Source("x", 10.0, "y").host_cap_mb_s is None
    assert Source("x", 10.0, "y", host_connections=4).host_cap_mb_s is None
    assert Source("x", 10.0, "y", 4, 5.0).host_cap_mb_s == 20.0
