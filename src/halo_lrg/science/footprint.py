"""A rectangular RA/Dec footprint: which sweep boxes and which objects fall inside it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np


@dataclass(frozen=True)
class Footprint:
    """RA in [ra_min, ra_max), Dec in [dec_min, dec_max), degrees.

    ``ra_min > ra_max`` wraps through RA 0 (e.g. 350 → 10). Unset bounds are open.
    """

    ra_min: float = 0.0
    ra_max: float = 360.0
    dec_min: float = -90.0
    dec_max: float = 90.0

    def __post_init__(self) -> None:
        for name in ("ra_min", "ra_max"):
            value = getattr(self, name)
            if not 0.0 <= value <= 360.0:
                raise ValueError(f"{name} must be within [0, 360], got {value}")
        for name in ("dec_min", "dec_max"):
            value = getattr(self, name)
            if not -90.0 <= value <= 90.0:
                raise ValueError(f"{name} must be within [-90, 90], got {value}")
        if self.dec_min >= self.dec_max:
            raise ValueError(f"dec_min ({self.dec_min}) must be below dec_max ({self.dec_max})")
        if self.ra_min == self.ra_max:
            raise ValueError(f"ra_min and ra_max are both {self.ra_min}: an empty footprint")

    @classmethod
    def from_bounds(cls, ra_min: Optional[float] = None, ra_max: Optional[float] = None,
                    dec_min: Optional[float] = None, dec_max: Optional[float] = None,
                    ) -> Optional[Footprint]:
        """A footprint from optional bounds, or None when no bound is set (the whole sky)."""
        if ra_min is None and ra_max is None and dec_min is None and dec_max is None:
            return None
        return cls(0.0 if ra_min is None else ra_min, 360.0 if ra_max is None else ra_max,
                   -90.0 if dec_min is None else dec_min, 90.0 if dec_max is None else dec_max)

    @property
    def wraps(self) -> bool:
        return self.ra_min > self.ra_max

    def contains(self, ra: Any, dec: Any) -> np.ndarray:
        """Vectorised: which (ra, dec) points lie inside."""
        ra = np.mod(np.asarray(ra, dtype=np.float64), 360.0)
        dec = np.asarray(dec, dtype=np.float64)
        in_dec = (dec >= self.dec_min) & (dec < self.dec_max)
        if self.wraps:
            return in_dec & ((ra >= self.ra_min) | (ra < self.ra_max))
        return in_dec & (ra >= self.ra_min) & (ra < self.ra_max)

    def overlaps(self, ra_min: float, ra_max: float, dec_min: float, dec_max: float) -> bool:
        """Does the half-open box [ra_min, ra_max) x [dec_min, dec_max) meet the footprint?"""
        if dec_max <= self.dec_min or dec_min >= self.dec_max:
            return False
        if self.wraps:
            return ra_max > self.ra_min or ra_min < self.ra_max
        return ra_max > self.ra_min and ra_min < self.ra_max

    def to_dict(self) -> dict[str, float]:
        return {"ra_min": self.ra_min, "ra_max": self.ra_max,
                "dec_min": self.dec_min, "dec_max": self.dec_max}
