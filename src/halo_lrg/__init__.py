"""halo-lrg: count luminous red galaxies per Legacy Surveys brick across DR10 SWEEP files.

``halo_lrg.count_sweep`` counts one file without Spark; ``halo_lrg.cuts`` holds the
selections (pure numpy); ``halo_lrg.spark.count_lrgs`` is the Spark API over a caller's
session. ``docs/architecture.md`` maps the subpackages.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "count_sweep"]


def __getattr__(name: str):
    # Lazy, so `import halo_lrg.cuts` stays light (no fitsio, no pandas).
    if name == "count_sweep":
        from halo_lrg.count import count_sweep

        return count_sweep
    raise AttributeError(f"module 'halo_lrg' has no attribute {name!r}")
