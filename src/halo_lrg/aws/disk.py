"""Will the inputs a node's tasks stage at once fit its disks? Checked before launching.

On a cluster every task downloads what it reads (a whole sweep, or its row range of a split
file) into a directory of YARN's (``io.workdir``: the container's ``LOCAL_DIRS``, one per
volume, the freest when the task starts), counts it and deletes it. A node runs one task per
executor core, so at worst it holds that many of the largest pieces at once; and tasks that
start together all see the same volume as the freest, so all of them may land on one volume.
The check is that worst case: every task of a node with the largest piece, on the node's
smallest volume, leaving :data:`VOLUME_RESERVE_GIB` for the rest and staying under YARN's
disk-health threshold. A volume past that threshold is taken out of service by the
NodeManager, and a node left without healthy directories loses its containers, mid-run.

Volumes (EMR Management Guide, "Instance storage"): with ``emr.ebs_gb`` the launch asks for one
gp3 volume of that size per node, and only that volume is counted (were EMR to add its default
volumes too, the check errs on the safe side); without it, EMR's default storage for the
instance's size, which every type of halo-lrg's instance table gets (they are EBS-only).

Pure: the caller gives the node groups (``estimate.cluster_groups``) and the largest piece's
bytes (``submit`` measures the inputs and plans the split as the job will).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from halo_lrg.aws.emr import EBS_MAX_GIB, EBS_MIN_GIB, INSTANCE_SHAPES
from halo_lrg.aws.estimate import NodeGroup
from halo_lrg.aws.progress import human_bytes

GIB = 1 << 30
#: EMR's default EBS storage for instance types with EBS-only storage, by instance size:
#: (volumes, GiB each). EMR Management Guide, "Instance storage", table "Default EBS storage
#: volumes and size by instance type for Amazon EMR 5.22.0 and later" (EMR 7.x included).
#: The root volume is apart from these and holds no YARN directory.
DEFAULT_EBS_VOLUMES = {
    "large": (1, 32), "xlarge": (2, 32), "2xlarge": (4, 32), "4xlarge": (4, 64),
    "8xlarge": (4, 128), "9xlarge": (4, 144), "10xlarge": (4, 160), "12xlarge": (4, 192),
    "16xlarge": (4, 256), "18xlarge": (4, 288), "24xlarge": (4, 384),
}
#: YARN stops using a local directory whose disk is fuller than this: Hadoop's
#: yarn.nodemanager.disk-health-checker.max-disk-utilization-per-disk-percentage (90.0), which
#: EMR's task-configuration tables do not change.
YARN_DISK_FULL = 0.90
#: Room kept on each volume for what is not staged inputs: container logs, HDFS, EMR's own
#: files (an allowance, not a measurement).
VOLUME_RESERVE_GIB = 2.0


@dataclass(frozen=True)
class NodeDisk:
    """The EBS volumes YARN's directories lie on, of one node."""

    volumes: int
    gib_each: float
    basis: str  #: where the figures come from, for the message

    @property
    def usable_bytes(self) -> float:
        """What staging may take of one volume: under YARN's threshold, minus the reserve."""
        return (YARN_DISK_FULL * self.gib_each - VOLUME_RESERVE_GIB) * GIB


def node_disk(instance_type: str, ebs_gb: int = 0) -> Optional[NodeDisk]:
    """A node's volumes: ``ebs_gb`` (one gp3 volume, as the launch asks for), else EMR's
    default for the type's size; None for a type halo-lrg's table does not know (its storage
    may be instance store, whose sizes are not tabled here)."""
    if ebs_gb:
        return NodeDisk(1, float(ebs_gb), f"--ebs-gb {ebs_gb}: one {ebs_gb} GiB volume")
    if instance_type not in INSTANCE_SHAPES:
        return None
    size = instance_type.partition(".")[2]
    volumes, gib = DEFAULT_EBS_VOLUMES[size]
    return NodeDisk(volumes, float(gib),
                    f"EMR's default {volumes} x {gib} GiB for *.{size}")


@dataclass(frozen=True)
class StagingFit:
    """The worst case of one node group: every task's piece on its smallest volume."""

    group: NodeGroup
    disk: Optional[NodeDisk]
    piece_bytes: int

    @property
    def staged_bytes(self) -> int:
        return self.group.tasks_per_node * self.piece_bytes

    @property
    def fits(self) -> Optional[bool]:
        """None when the node's disk is not known."""
        return None if self.disk is None else self.staged_bytes <= self.disk.usable_bytes

    def ebs_gb_needed(self) -> int:
        """The smallest ``--ebs-gb`` under which this group's worst case fits."""
        return max(EBS_MIN_GIB, math.ceil(
            (self.staged_bytes / GIB + VOLUME_RESERVE_GIB) / YARN_DISK_FULL))

    def line(self) -> str:
        g = self.group
        head = (f"{g.role.lower()} {g.instance_type}: {g.tasks_per_node} tasks x "
                f"{human_bytes(self.piece_bytes)} = {human_bytes(self.staged_bytes)} staged "
                "at worst")
        if self.disk is None:
            return (f"{head}; not checked: no default storage for {g.instance_type} in "
                    "halo-lrg's table (give --ebs-gb to have it checked)")
        room = (f"one volume's {human_bytes(self.disk.usable_bytes)} usable ({self.disk.basis}; "
                f"{YARN_DISK_FULL:.0%} full is YARN's limit, {VOLUME_RESERVE_GIB:g} GiB kept)")
        return f"{head}, on {room}: {'fits' if self.fits else 'DOES NOT FIT'}"


def staging_fits(groups: Sequence[NodeGroup], piece_bytes: int, ebs_gb: int = 0
                 ) -> list[StagingFit]:
    """The worst case of each worker group (master excluded: it runs no task) when the
    largest piece a task stages is ``piece_bytes``."""
    return [StagingFit(g, node_disk(g.instance_type, ebs_gb), int(piece_bytes))
            for g in groups if g.role != "MASTER" and g.count and g.tasks_per_node]


def staging_problem(fits: Sequence[StagingFit]) -> Optional[str]:
    """Why the launch must not go ahead (None: every known disk fits): the groups that do
    not fit and what would."""
    failed = [f for f in fits if f.fits is False]
    if not failed:
        return None
    need = max(f.ebs_gb_needed() for f in failed)
    fixes = (f"--ebs-gb {need} or more" if need <= EBS_MAX_GIB
             else "fewer tasks per node (--executors-per-node, --executor-cores)")
    return ("the inputs staged at once would overfill a node's disk. "
            + "; ".join(f.line() for f in failed)
            + f". Use {fixes}, or split big files into smaller pieces (run.split_bytes)")
