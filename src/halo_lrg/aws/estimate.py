"""What a run will cost and how long it will take, before anything is launched.

Pure: ``submit`` gives the input sizes (HEAD of every index entry), where they are read from
(:func:`source_for`, by the entries' schemes and hosts) and the cluster shape
(``spark_resources``); ``bench/bench.py`` uses the same model for its DR10-south table, fed
with the rates it measures.

The model: one task reads one sweep, at the lower of its source's rate per task (a
:class:`Source`: S3 in-region by default, ``TASK_READ_MB_S``) and, when given, the counting
rate of one core (``cpu_mb_s``: the read path overlaps the download, so the slower of the two
sets a task's pace); a node runs as many tasks at once as its executors have cores, capped by
its baseline network bandwidth and, for a source with a per-host connection limit, by those
connections' rate; the cluster's rate is the sum over its nodes (no more tasks at once than
there are files). The run takes the bytes over that rate, or the largest sweep alone at one
task's rate if that is longer (the tail), plus ``STARTUP_SECONDS`` of provisioning and
bootstrap that are billed too. Cost is that time over every node, master included, at the
on-demand EC2 price plus the EMR uplift. :attr:`Estimate.limit` names the limit that binds.

Every number below is an assumption, labelled with where it came from; an instance type
missing from a table leaves its part of the estimate out, with a note saying so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from halo_lrg.aws.progress import human_bytes, human_duration
from halo_lrg.io.uri import http_hosts, is_s3, scheme_of

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


#: ASSUMPTION. One HTTPS connection from an EC2 node in us-east-1 to portal.nersc.gov
#: (Berkeley), MB/s. No rate is published for the portal (reference §9); a long-haul TCP
#: stream is bounded by its window over the round trip (ESnet fasterdata, "TCP tuning"):
#: 3-6 MB of window (Linux's default net.ipv4.tcp_rmem maximum is 6 MiB) over ~70 ms coast to
#: coast gives 45-90 MB/s at best, and loss on a shared path keeps a stream well below that.
NERSC_CONNECTION_MB_S = 25.0
NERSC_SOURCE = (f"assumed {NERSC_CONNECTION_MB_S:g} MB/s a connection: window / round trip "
                "(ESnet fasterdata), no published portal figure")

# The limits a node's (or the run's) rate can hit, as Estimate.limit names them.
LIMIT_TASK_NETWORK = "network per task"
LIMIT_CPU = "CPU"
LIMIT_NODE_NETWORK = "node baseline"
LIMIT_HOST_CONNECTIONS = "connections per host"
LIMIT_LARGEST_FILE = "largest file"


@dataclass(frozen=True)
class Source:
    """Where the tasks read the sweeps from, as the model sees it.

    ``host_connections`` x ``connection_mb_s`` caps a node when the source is one host and
    halo-lrg limits the connections every task of a node opens to it
    (``remote.max_connections_per_host``; 0 = no cap)."""

    name: str
    task_mb_s: float  #: one task's download rate
    basis: str  #: where that rate comes from (printed beside it)
    host_connections: int = 0
    connection_mb_s: float = 0.0
    notes: tuple[str, ...] = ()  #: caveats the estimate repeats

    @property
    def host_cap_mb_s(self) -> Optional[float]:
        """What one node can read from the host, or None when not capped."""
        if self.host_connections <= 0 or self.connection_mb_s <= 0:
            return None
        return self.host_connections * self.connection_mb_s


#: In-region S3, the default (``submit``'s for an index of s3:// entries).
S3 = Source("S3 in-region", TASK_READ_MB_S, "assumed S3 read")


def https_source(parts_gain: float, host_connections: int,
                 connection_mb_s: float = NERSC_CONNECTION_MB_S,
                 name: str = "NERSC over HTTPS", basis: str = NERSC_SOURCE) -> Source:
    """A public HTTPS portal read with concurrent ranged GETs: a task gets ``parts_gain``
    (what its parts deliver over one stream, e.g. measured by the bench against a server
    capping each connection) x ``connection_mb_s``; a node at most ``host_connections``
    (``remote.max_connections_per_host``) x ``connection_mb_s``."""
    return Source(name, connection_mb_s * parts_gain,
                  f"{basis}, x {parts_gain:.2f} for ranged parts", host_connections,
                  connection_mb_s,
                  ("the portal's own aggregate capacity is unknown and not modelled: many "
                   "nodes may find it, not their own network, the limit",))


#: The host the NERSC rate is an assumption for (reference §9: DR10's public portal).
NERSC_HOST = "portal.nersc.gov"
#: For any other HTTPS host, the same assumed rate, said to be a guess for that host.
HTTPS_SOURCE = (f"assumed {NERSC_CONNECTION_MB_S:g} MB/s a connection, as for NERSC: no "
                "figure for this host")


def source_for(uris: Sequence[str], remote: Any) -> Source:
    """The :class:`Source` an index's entries are read from, as ``submit`` estimates it: S3
    in-region unless some are http(s), then HTTPS at an assumed rate a connection with
    ``remote.http_parts`` ranged parts a task at face value (the bench measured 4.00x for 4
    parts against a server capping each connection) and ``remote.max_connections_per_host``
    a node. An index mixing the two is estimated at the HTTPS rate, with a note."""
    web = [uri for uri in uris if scheme_of(uri) in ("http", "https")]
    if not web:
        return S3
    hosts = http_hosts(web)
    protocol = "HTTPS" if all(scheme_of(uri) == "https" for uri in web) else "HTTP"
    parts = max(1, int(remote.http_parts))
    source = https_source(
        parts, int(remote.max_connections_per_host),
        name=f"{hosts[0] if len(hosts) == 1 else f'{len(hosts)} hosts'} over {protocol}",
        basis=NERSC_SOURCE if hosts == [NERSC_HOST] else HTTPS_SOURCE)
    notes = list(source.notes)
    if len(hosts) > 1:
        notes.append(f"the entries are on {len(hosts)} hosts ({', '.join(hosts[:3])}"
                     f"{', ...' if len(hosts) > 3 else ''}); each node's connections are "
                     "capped as if they were one (the time is an upper bound)")
    if any(is_s3(uri) for uri in uris):
        notes.append("the index mixes S3 and HTTPS entries: every entry is counted at the "
                     "HTTPS rate (the time is an upper bound)")
    if parts > 1:
        notes.append(f"{parts} ranged parts a file assume the host answers byte ranges "
                     f"(else one stream a file: up to {parts}x slower)")
    return dataclasses.replace(source, notes=tuple(notes))


def network_mb_s(instance_type: str) -> Optional[float]:
    """A node's baseline network bandwidth in MB/s, or None if the table lacks the type."""
    gbps = NETWORK_GBPS.get(instance_type)
    return None if gbps is None else gbps * 1e9 / 8 / 1e6


def node_limit(instance_type: str, tasks: int, task_mb_s: float, task_limit: str,
               host_cap_mb_s: Optional[float] = None) -> tuple[float, str]:
    """What one node reads and the limit that sets it: its ``tasks`` at ``task_mb_s`` each
    (``task_limit`` names what sets a task's rate), its baseline network, and
    ``host_cap_mb_s`` (a source's per-host connections). On a tie the tasks' own limit is
    named: more bandwidth would not help them."""
    candidates = [(tasks * task_mb_s, task_limit)]
    cap = network_mb_s(instance_type)
    if cap is not None:
        candidates.append((cap, LIMIT_NODE_NETWORK))
    if host_cap_mb_s is not None:
        candidates.append((host_cap_mb_s, LIMIT_HOST_CONNECTIONS))
    return min(candidates, key=lambda candidate: candidate[0])


def node_rate_mb_s(instance_type: str, tasks: int,
                   task_mb_s: float = TASK_READ_MB_S) -> float:
    """What one node reads: its tasks at ``task_mb_s`` each, capped by its network (uncapped
    when the type's bandwidth is not in the table)."""
    return node_limit(instance_type, tasks, task_mb_s, LIMIT_TASK_NETWORK)[0]


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
    source: Source = S3
    #: What sets the time: LIMIT_* (per node group, "limit (role)", when they differ), or ""
    #: when no time could be estimated.
    limit: str = ""

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
        lines = [f"input:   {s.files} sweeps, {human_bytes(s.total_bytes)}{unknown}, "
                 f"read from {self.source.name}"]
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
        task = f"{self.task_mb_s:g} MB/s a task ({self.source.basis})"
        if self.task_mb_s < self.source.task_mb_s:
            task = (f"{self.task_mb_s:g} MB/s a task (one core counting; the source "
                    f"{self.source.task_mb_s:g} MB/s, {self.source.basis})")
        host = self.source.host_cap_mb_s
        lines.append(f"rate:    {task}"
                     + (f", node network cap {caps}" if caps else "")
                     + (f", {self.source.host_connections} connections per host "
                        f"{host:,.0f} MB/s" if host is not None else "")
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
             source: Source = S3, startup_seconds: float = STARTUP_SECONDS,
             cpu_mb_s: Optional[float] = None) -> Estimate:
    """Time and cost of reading ``sizes`` (bytes, None = unknown) on ``groups`` from
    ``source``; ``cpu_mb_s``: one core's counting rate (None: never the limit)."""
    notes = []
    counted = Sizes.of(sizes)
    workers = [g for g in groups if g.role != "MASTER"]
    for instance_type in dict.fromkeys(g.instance_type for g in workers):
        if network_mb_s(instance_type) is None:
            notes.append(f"no network bandwidth for {instance_type} in halo-lrg's table: "
                         "its nodes are not capped (the time may be optimistic)")
    notes += source.notes
    task_mb_s, task_limit = source.task_mb_s, LIMIT_TASK_NETWORK
    if cpu_mb_s is not None and cpu_mb_s < task_mb_s:
        task_mb_s, task_limit = cpu_mb_s, LIMIT_CPU
    slots = sum(g.count * g.tasks_per_node for g in workers)
    per_group = [(g, *node_limit(g.instance_type, g.tasks_per_node, task_mb_s, task_limit,
                                 source.host_cap_mb_s))
                 for g in workers if g.count and g.tasks_per_node]
    rate: float = sum(g.count * node_rate for g, node_rate, _limit in per_group)
    limits = {f"{limit} ({g.role.lower()})": limit for g, _rate, limit in per_group}
    limit = (next(iter(limits.values())) if len(set(limits.values())) == 1
             else ", ".join(limits))
    # No more tasks at once than there are files.
    if counted.files < slots and counted.files * task_mb_s < rate:
        rate, limit = counted.files * task_mb_s, task_limit
    read_seconds: Optional[float] = None
    if counted.files and counted.unknown == counted.files:
        notes.append("no input size could be read: time and cost omitted")
    elif rate > 0:
        tail = counted.largest_bytes / 1e6 / task_mb_s
        read_seconds = counted.total_bytes / 1e6 / rate
        if tail > read_seconds:
            read_seconds, limit = tail, LIMIT_LARGEST_FILE
    if read_seconds is None:
        limit = ""
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
                    hourly, tuple(notes), source, limit)
