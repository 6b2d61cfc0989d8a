"""Node disks: what a node's tasks stage at once fits its volumes, on every instance type of
the table with EMR's default storage; a too-small --ebs-gb is refused before launching, with
the size that would fit; EMR's volume limits are checked with the other settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from halo_lrg.aws.disk import (
    DEFAULT_EBS_VOLUMES,
    GIB,
    node_disk,
    staging_fits,
    staging_problem,
)
from halo_lrg.aws.emr import (
    EBS_MAX_GIB,
    EBS_MIN_GIB,
    INSTANCE_SHAPES,
    EmrConfigError,
    check_settings,
    spark_resources,
)
from halo_lrg.aws.estimate import NodeGroup, cluster_groups
from halo_lrg.cli import main
from test_emr_sizing import emr_settings, yarn_for

#: DR10's largest sweeps hold ~4.0M rows of 505 bytes (reference §1: up to ~4M rows, ~1.9 GB).
DR10_LARGEST_SWEEP = 4_000_000 * 505


def core_group(instance_type: str, tasks: int) -> NodeGroup:
    return NodeGroup("CORE", instance_type, 2, executors=1, cores=tasks)


@pytest.mark.parametrize("instance_type", sorted(INSTANCE_SHAPES))
def test_every_node_stages_the_largest_dr10_sweep_in_every_task_at_once(instance_type):
    """The invariant, at its worst: every task of a node (as halo-lrg sizes it: one per
    vCPU) with DR10's largest sweep, all on the node's smallest default volume."""
    emr = emr_settings(core_instance_type=instance_type, instance_type="m5.xlarge",
                       yarn_memory_mb=yarn_for(instance_type))
    groups = cluster_groups(emr, spark_resources(emr))
    fits = staging_fits(groups, DR10_LARGEST_SWEEP)
    assert [f.group.role for f in fits] == ["CORE"]
    (fit,) = fits
    assert fit.group.tasks_per_node == INSTANCE_SHAPES[instance_type].vcpus
    assert fit.disk is not None and fit.fits, fit.line()
    assert staging_problem(fits) is None


def test_default_storage_is_emrs_table_by_instance_size():
    assert node_disk("m5.xlarge") == node_disk("r7g.xlarge")
    for instance_type, sizes in (("m5.xlarge", (2, 32)), ("c5.2xlarge", (4, 32)),
                                 ("r5.4xlarge", (4, 64)), ("m7i.8xlarge", (4, 128))):
        disk = node_disk(instance_type)
        assert (disk.volumes, disk.gib_each) == sizes
        assert f"{sizes[0]} x {sizes[1]} GiB" in disk.basis
    assert {t.partition(".")[2] for t in INSTANCE_SHAPES} <= set(DEFAULT_EBS_VOLUMES)


def test_ebs_gb_is_the_one_volume_counted_and_unknown_types_are_not_checked():
    assert node_disk("m5.xlarge", 100).volumes == 1
    assert node_disk("m5.xlarge", 100).gib_each == 100
    assert node_disk("i3.xlarge") is None  # instance store: not in the table
    (fit,) = staging_fits([core_group("i3.xlarge", 4)], DR10_LARGEST_SWEEP)
    assert fit.fits is None and "not checked" in fit.line() and "--ebs-gb" in fit.line()
    assert staging_problem([fit]) is None  # unknown is reported, not refused
    (fit,) = staging_fits([core_group("i3.xlarge", 4)], DR10_LARGEST_SWEEP, ebs_gb=50)
    assert fit.fits is True


def test_a_small_volume_is_refused_naming_the_group_and_the_size_that_fits():
    groups = [NodeGroup("MASTER", "m5.xlarge", 1), core_group("m5.xlarge", 4)]
    fits = staging_fits(groups, DR10_LARGEST_SWEEP, ebs_gb=10)
    problem = staging_problem(fits)
    # 4 x 2.02 GB = 8.08 GB = 7.53 GiB; (7.53 + 2) / 0.9 = 10.6 -> 11 GiB.
    assert problem == (
        "the inputs staged at once would overfill a node's disk. core m5.xlarge: 4 tasks x "
        "2.02 GB = 8.08 GB staged at worst, on one volume's 7.52 GB usable (--ebs-gb 10: one "
        "10 GiB volume; 90% full is YARN's limit, 2 GiB kept): DOES NOT FIT. Use --ebs-gb 11 "
        "or more, or split big files into smaller pieces (run.split_bytes)")
    assert staging_problem(staging_fits(groups, DR10_LARGEST_SWEEP, ebs_gb=11)) is None


def test_more_than_the_largest_volume_asks_for_fewer_tasks():
    fits = staging_fits([core_group("m5.8xlarge", 32)], 40 * GIB, ebs_gb=EBS_MAX_GIB)
    assert "fewer tasks per node" in staging_problem(fits)


@given(tasks=st.integers(1, 64), piece=st.integers(1, 64 * GIB))
def test_the_size_asked_for_is_the_smallest_that_fits(tasks, piece):
    (fit,) = staging_fits([core_group("m5.xlarge", tasks)], piece, ebs_gb=EBS_MIN_GIB)
    need = fit.ebs_gb_needed()
    (at_need,) = staging_fits([core_group("m5.xlarge", tasks)], piece, ebs_gb=need)
    assert at_need.fits
    if need > EBS_MIN_GIB:
        (below,) = staging_fits([core_group("m5.xlarge", tasks)], piece, ebs_gb=need - 1)
        assert not below.fits


@pytest.mark.parametrize("ebs_gb", [1, EBS_MIN_GIB - 1, EBS_MAX_GIB + 1])
def test_volume_sizes_emr_refuses_are_refused_with_the_other_settings(ebs_gb):
    with pytest.raises(EmrConfigError, match=f"emr.ebs_gb must be 0 .* or 5 to 1024 GiB .* "
                                             f"got {ebs_gb}"):
        check_settings(emr_settings(ebs_gb=ebs_gb))
    check_settings(emr_settings(ebs_gb=EBS_MIN_GIB))
    check_settings(emr_settings(ebs_gb=0))


def test_the_flag_takes_only_sizes_emr_takes():
    result = CliRunner().invoke(main, ["submit", "--ebs-gb", "4", "--dry-run"])
    assert result.exit_code == 2 and "4 is not in the range 5<=x<=1024" in result.output


def test_the_readmes_example_is_what_the_default_cluster_prints():
    emr = emr_settings()
    (fit,) = staging_fits(cluster_groups(emr, spark_resources(emr)), 1_900_000_000)
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert f"  disk:    {fit.line()}\n" in readme
