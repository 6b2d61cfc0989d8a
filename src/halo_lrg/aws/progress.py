"""A running job's ``<output>/_progress.json`` as one line, and the units it is written in.

Pure: ``halo-lrg status`` and ``submit --wait`` fetch the file, this module says it::

    files 120/1436 (2 failed), 3.1e8 rows, 41,230 LRGs, 210 GB of 1.5 TB, ETA 1h12m
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional


def human_bytes(count: float) -> str:
    """Decimal units, three significant digits: 950 B, 12.3 MB, 210 GB, 1.5 TB."""
    value = float(count)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(value) < 999.5 or unit == "TB":
            return f"{value:.3g} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1000
    return f"{value:.3g} PB"  # pragma: no cover - unreachable: TB returns above


def human_duration(seconds: float) -> str:
    """1h12m, 12m, 40s (rounded to the minute above an hour, to the second below one)."""
    seconds = max(0, round(seconds))
    if seconds >= 3600:
        hours, rest = divmod(seconds, 3600)
        return f"{hours}h{rest // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def human_rows(rows: int) -> str:
    """12,345 below a million; 3.1e8 above (the count of a large run reads at a glance)."""
    if rows < 1_000_000:
        return f"{rows:,}"
    mantissa, exponent = f"{rows:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def progress_line(progress: Mapping[str, Any]) -> str:
    """One line from a ``_progress.json`` snapshot (keys as ``spark.run`` writes them)."""
    def number(key: str) -> int:
        value = progress.get(key)
        return int(value) if isinstance(value, (int, float)) else 0

    failed = number("files_failed")
    parts = [f"files {number('files_done')}/{number('files_total')}"
             + (f" ({failed} failed)" if failed else ""),
             f"{human_rows(number('rows'))} rows", f"{number('lrg'):,} LRGs"]
    if number("bytes_total"):
        parts.append(f"{human_bytes(number('bytes_done'))} of "
                     f"{human_bytes(number('bytes_total'))}")
    state = str(progress.get("state") or "running")
    eta: Optional[float] = progress.get("eta_seconds")
    if state != "running":
        parts.append(state)
    elif isinstance(eta, (int, float)):
        parts.append(f"ETA {human_duration(eta)}")
    return ", ".join(parts)
