"""Counting LRGs per brick in one sweep: local files read in row chunks, remote ones counted
while they download. No Spark: the Spark job calls these once per file."""

from halo_lrg.count.local import SweepCount, count_sweep, count_sweep_file

__all__ = ["SweepCount", "count_sweep", "count_sweep_file"]
