"""Sweep file names: ``sweep-150p000-155p005.fits`` is RA 150-155, Dec 0 to +5."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional
from urllib.parse import urlparse

import numpy as np

# The box minimum then maximum: three digits of int(RA), p/m for the sign of Dec, three digits
# of int(|Dec|). Side files (-pz, -lc, -ex) share the prefix but are not sweeps.
_NAME = re.compile(r"^sweep-(\d{3})([pm])(\d{3})-(\d{3})([pm])(\d{3})\.fits(?:\.gz|\.fz)?$")


@dataclass(frozen=True)
class SweepBox:
    """The half-open RA/Dec box a sweep covers: RAmin ≤ RA < RAmax, Decmin ≤ Dec < Decmax."""

    ra_min: float
    ra_max: float
    dec_min: float
    dec_max: float

    def contains(self, ra: Any, dec: Any) -> np.ndarray:
        ra, dec = np.asarray(ra), np.asarray(dec)
        return ((ra >= self.ra_min) & (ra < self.ra_max)
                & (dec >= self.dec_min) & (dec < self.dec_max))

    def overlaps(self, ra_min: float, ra_max: float, dec_min: float, dec_max: float) -> bool:
        return (ra_max > self.ra_min and ra_min < self.ra_max
                and dec_max > self.dec_min and dec_min < self.dec_max)


def _dec(sign: str, digits: str) -> float:
    return -float(digits) if sign == "m" else float(digits)


def parse_sweep_name(name_or_uri: str) -> Optional[SweepBox]:
    """The box of a sweep from its name, path or URL; None if it is not a standard name."""
    path = urlparse(name_or_uri).path if "://" in name_or_uri else name_or_uri
    match = _NAME.match(path.replace("\\", "/").rsplit("/", 1)[-1])
    if match is None:
        return None
    ra1, s1, d1, ra2, s2, d2 = match.groups()
    box = SweepBox(float(ra1), float(ra2), _dec(s1, d1), _dec(s2, d2))
    if not (box.ra_min < box.ra_max <= 360 and -90 <= box.dec_min < box.dec_max <= 90):
        return None
    return box


def sweep_name(box: SweepBox) -> str:
    """The survey's file name for a box."""
    def corner(ra: float, dec: float) -> str:
        return f"{int(ra):03d}{'p' if dec >= 0 else 'm'}{int(abs(dec)):03d}"

    return f"sweep-{corner(box.ra_min, box.dec_min)}-{corner(box.ra_max, box.dec_max)}.fits"
