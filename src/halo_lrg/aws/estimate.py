"""What a run will cost and how long it will take, before anything is launched.

Pure: ``submit`` gives the input sizes (HEAD of every index entry) and the cluster shape
(``spark_resources``); ``bench/bench.py`` uses the same model for its DR10-south estimate.

The model: one task reads one sweep, streaming it from S3 at ``TASK_READ_MB_S`` (the read
path itself runs an order of magnitude faster per core, docs/benchmarks.md, so the network
sets the pace); a node runs as many tasks at once as its executors have cores, capped by its
baseline network bandwidth; the cluster's rate is the sum over its nodes (no more tasks at
once than there are files). The run takes the bytes over that rate, or the largest sweep
alone at one task's rate if that is longer (the tail), plus ``STARTUP_SECONDS`` of
provisioning and bootstrap that are billed too. Cost is that time over every node, master
included, at the on-demand EC2 price plus the EMR uplift.

Every number below is an assumption, labelled with where it came from; an instance type
missing from a table leaves its part of the estimate out, with a note saying so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from halo_lrg.aws.progress import human_bytes, human_duration

#: One task's S3 GET throughput in-region, MB/s (assumed: a single streamed GET; halo-lrg's
#: ranged parallel GETs can do better, large files rarely do worse).
TASK_READ_MB_S = 90.0
#: Provisioning and bootstrap before the step starts, billed on every node (assumed: EMR
#: clusters typically take 5-15 minutes to reach RUNNING; the bootstrap adds a pip install).
STARTUP_SECONDS = 600.0


@dataclass(frozen=True)
class Price:
    ec2: float  #: $/h, on-demand Linux
    emr: float  #: $/h, the EMR uplift on top

    @property
    def hourly(self) -> float:
        return self.ec2 + self.emr


#: ASSUMPTIONS. On-demand prices in us-east-1, USD per hour: EC2 Linux
#: (aws.amazon.com/ec2/pricing/on-demand) and the EMR uplift (aws.amazon.com/emr/pricing),
#: recorded 2026-11 from copies of those tables (not read live; these types' prices have
#: not changed since they launched). Other regions and later dates differ: check the pages.
PRICES_SOURCE = "us-east-1 on-demand, EC2 + EMR pricing pages, recorded 2026-11"
PRICES = {
    "m5.xlarge": Price(0.192, 0.048),
    "m5.2xlarge": Price(0.384, 0.096),
    "m5.4xlarge": Price(0.768, 0.192),
    "r5.xlarge": Price(0.252, 0.063),
    "r5.2xlarge": Price(0.504, 0.126),
    "r5.4xlarge": Price(1.008, 0.252),
    "c5.xlarge": Price(0.170, 0.043),
    "c5.2xlarge": Price(0.340, 0.085),
    "c5.4xlarge": Price(0.680, 0.170),
}

#: ASSUMPTIONS. Baseline (sustained) network bandwidth in Gbit/s, from the EC2 instance-type
#: tables (docs.aws.amazon.com/ec2/latest/instancetypes, "Network specifications"); these
#: types burst to 10 Gbit/s for minutes only, so a run of hours gets the baseline.
NETWORK_GBPS = {
    "m5.xlarge": 1.25, "m5.2xlarge": 2.5, "m5.4xlarge": 5.0, "m5.8xlarge": 10.0,
    "r5.xlarge": 1.25, "r5.2xlarge": 2.5, "r5.4xlarge": 5.0, "r5.8xlarge": 10.0,
    "c5.xlarge": 1.25, "c5.2xlarge": 2.5, "c5.4xlarge": 5.0,
}


def network_mb_s(instance_type: str) -> Optional[float]:
    """A node's baseline network bandwidth in MB/s, or None if the table lacks the type."""
    gbps = NETWORK_GBPS.get(instance_type)
    return None if gbps is None else gbps * 1e9 / 8 / 1e6


def node_rate_mb_s(instance_type: str, tasks: int,
                   task_mb_s: float = TASK_READ_MB_S) -> float:
    """What one node reads: its tasks at ``task_mb_s`` each, capped by its network (uncapped
    when the type's bandwidth is not in the table)."""
    cap = network_mb_s(instance_type)
    return tasks * task_mb_s if cap is None else min(tasks * task_mb_s, cap)


def nodes_for(total_bytes: float, seconds: float, node_mb_s: float) -> int:
    """Nodes of ``node_mb_s`` that read ``total_bytes`` within ``seconds``."""
    return max(1, int(-(-(total_bytes / 1e6 / node_mb_s / seconds) // 1)))


@dataclass(frozen=True)
class NodeGroup:
    role: str  #: MASTER, CORE or TASK
    instance_type: str
    count: int
    executors: int = 0  #: per node
    cores: int = 0  #: per executor
    spot: bool = False

    @property
    def tasks_per_node(self) -> int:
        return self.executors * self.cores


def cluster_groups(emr: Any, resources: Any) -> list[NodeGroup]:
    """The node groups of ``emr`` (an EmrConfig) with the executors ``resources`` (from
    ``spark_resources``) puts on them."""
    groups = [NodeGroup("MASTER", emr.instance_type, 1),
              NodeGroup("CORE", emr.core_instance_type, emr.core_count,
                        resources.executors_per_node, resources.executor_cores)]
    if emr.task_count:
        groups.append(NodeGroup("TASK", emr.task_instance_type or emr.core_instance_type,
                                emr.task_count, resources.task_executors_per_node,
                                resources.executor_cores, spot=emr.spot))
    return groups


@dataclass(frozen=True)
class Sizes:
    files: int
    total_bytes: float  #: unknown sizes counted as the mean of the known ones
    unknown: int
    largest_bytes: float

    @classmethod
    def of(cls, sizes: Sequence[Optional[int]]) -> Sizes:
        known = [s for s in sizes if s is not None]
        mean = sum(known) / len(known) if known else 0.0
        return cls(len(sizes), float(sum(known)) + mean * (len(sizes) - len(known)),
                   len(sizes) - len(known), float(max(known, default=0)))


@dataclass(frozen=True)
class Estimate:
    sizes: Sizes
    groups: tuple[NodeGroup, ...]
    task_mb_s: float
    rate_mb_s: float  #: the whole cluster
    read_seconds: Optional[float]
    startup_seconds: float
    hourly_usd: Optional[float]
    notes: tuple[str, ...] = field(default=())

    @property
    def seconds(self) -> Optional[float]:
        return None if self.read_seconds is None else self.read_seconds + self.startup_seconds

    @property
    def cost_usd(self) -> Optional[float]:
        if self.hourly_usd is None or self.seconds is None:
            return None
        return self.hourly_usd * self.seconds / 3600

    def lines(self) -> list[str]:
        """What ``submit`` prints: inputs, shape, assumed rates, time, prices, cost."""
        s = self.sizes
        unknown = (f" ({s.unknown} of unknown size counted as the mean)" if s.unknown
                   else "")
        lines = [f"input:   {s.files} sweeps, {human_bytes(s.total_bytes)}{unknown}"]
        workers = [g for g in self.groups if g.role != "MASTER"]
        shape = " + ".join(
            f"{g.count} {g.role.lower()} {g.instance_type}{' (spot)' if g.spot else ''} x "
            f"{g.executors} executor{'s' if g.executors != 1 else ''} x {g.cores} cores"
            for g in workers)
        slots = sum(g.count * g.tasks_per_node for g in workers)
        lines.append(f"cluster: 1 master {self.groups[0].instance_type} + {shape} "
                     f"= {slots} tasks at once")
        caps = ", ".join(
            f"{g.instance_type} {network_mb_s(g.instance_type):,.0f} MB/s"
            for g in {g.instance_type: g for g in workers}.values()
            if network_mb_s(g.instance_type) is not None)
        lines.append(f"rate:    {self.task_mb_s:g} MB/s a task (assumed S3 read)"
                     + (f", node network cap {caps}" if caps else "")
                     + f" -> {self.rate_mb_s:,.0f} MB/s")
        if self.read_seconds is not None:
            lines.append(f"time:    {human_duration(self.read_seconds)} reading + "
                         f"{human_duration(self.startup_seconds)} start-up (assumed) = "
                         f"{human_duration(self.seconds or 0)}")
        if self.hourly_usd is not None:
            prices = ", ".join(
                f"{t} ${PRICES[t].ec2:g}/h EC2 + ${PRICES[t].emr:g}/h EMR"
                for t in dict.fromkeys(g.instance_type for g in self.groups))
            lines.append(f"price:   {prices} ({PRICES_SOURCE}) -> "
                         f"${self.hourly_usd:.2f}/h for {sum(g.count for g in self.groups)}"
                         " nodes")
        if self.cost_usd is not None:
            lines.append(f"cost:    about ${self.cost_usd:,.2f}")
        lines += [f"note:    {note}" for note in self.notes]
        return lines


def estimate(sizes: Sequence[Optional[int]], groups: Sequence[NodeGroup],
             task_mb_s: float = TASK_READ_MB_S,
             startup_seconds: float = STARTUP_SECONDS) -> Estimate:
    """Time and cost of reading ``sizes`` (bytes, None = unknown) on ``groups``."""
    notes = []
    counted = Sizes.of(sizes)
    workers = [g for g in groups if g.role != "MASTER"]
    for instance_type in dict.fromkeys(g.instance_type for g in workers):
        if network_mb_s(instance_type) is None:
            notes.append(f"no network bandwidth for {instance_type} in halo-lrg's table: "
                         "its nodes are not capped (the time may be optimistic)")
    slots = sum(g.count * g.tasks_per_node for g in workers)
    rate: float = sum(g.count * node_rate_mb_s(g.instance_type, g.tasks_per_node, task_mb_s)
               for g in workers)
    # No more tasks at once than there are files.
    if counted.files < slots:
        rate = min(rate, counted.files * task_mb_s)
    read_seconds: Optional[float] = None
    if counted.files and counted.unknown == counted.files:
        notes.append("no input size could be read: time and cost omitted")
    elif rate > 0:
        read_seconds = max(counted.total_bytes / 1e6 / rate,
                           counted.largest_bytes / 1e6 / task_mb_s)
    missing = [t for t in dict.fromkeys(g.instance_type for g in groups) if t not in PRICES]
    hourly: Optional[float] = None
    if missing:
        notes.append(f"no price for {', '.join(missing)} in halo-lrg's table "
                     "(halo_lrg/aws/estimate.py): cost omitted")
    else:
        hourly = sum(g.count * PRICES[g.instance_type].hourly for g in groups)
        if any(g.spot for g in groups):
            notes.append("spot task nodes are priced on-demand here (an upper bound)")
    return Estimate(counted, tuple(groups), task_mb_s, rate, read_seconds, startup_seconds,
                    hourly, tuple(notes))
