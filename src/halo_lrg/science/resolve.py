"""North/south resolution: which photometry to keep where BASS/MzLS and DECam overlap.

The Legacy Surveys image the north Galactic cap above Dec ≈ 32° twice: with BASS/MzLS
(PHOTSYS ``N``) and with DECam (``S``). A sample that mixes both (DR9 north + south sweeps,
or the randoms of both) must keep each sky position once. desitarget's ``targets.resolve``
defines the rule the DESI target selection uses, reproduced here:

* the *northern area* is Dec ≥ 32.375 **and** north of the Galactic plane;
* ``N`` objects are kept inside the northern area, ``S`` objects everywhere else.

"North of the Galactic plane" is decided, as desitarget decides it, per HEALPix pixel of
~1 deg² (nside 64, NESTED): an object is north when the *centre of its pixel* has b ≥ 0. This
differs from the object's own b > 0 only within ~0.5° of the plane, where no extragalactic
imaging lies, but it is the rule, so it is the one kept here; :func:`galactic_latitude` gives
the object's own latitude.

Galactic coordinates come from a fixed rotation (no astropy at run time): the ICRS → FK5 J2000
frame bias (USNO circular 179, as astropy applies it) then the IAU Galactic system in J2000
(north Galactic pole at RA 192.8594812°, Dec 27.1282512°; the north celestial pole at
l = 122.9319186°), the constants astropy uses; they agree with astropy's ``Galactic`` frame to
~1e-12 degrees.

PHOTSYS comes from the catalogue's column when it has one (``'N'``/``'S'``, str or bytes,
padding ignored), else from RELEASE (:func:`halo_lrg.science.cuts.photsys_from_release`).
Unlike desitarget, which treats anything but ``N`` as south, a value that is neither is an
error here.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np

from halo_lrg.science.cuts import photsys_from_release
from halo_lrg.science.healpix import nest_to_radec, npix, radec_to_nest

#: Dec at and above which BASS/MzLS photometry is kept (desitarget ``desitarget_resolve_dec``).
RESOLVE_DEC = 32.375
#: HEALPix nside (NESTED) at which desitarget decides "north of the Galactic plane": the
#: power of two whose pixel area is closest to 1 deg² (desitarget ``pixarea2nside(1)``).
RESOLVE_NSIDE = 64

# The IAU Galactic system in FK5 J2000 (astropy's Galactic._ngp_J2000 and _lon0_J2000).
NGP_RA_J2000 = 192.8594812065348
NGP_DEC_J2000 = 27.12825118085622
NCP_L_J2000 = 122.9319185680026
# ICRS → FK5 J2000 frame bias in milliarcseconds (USNO circular 179; astropy's B matrix).
_FRAME_BIAS_MAS = {"eta0": -19.9, "xi0": 9.1, "da0": -22.9}


def _rotation(angle_deg: float, axis: str) -> np.ndarray:
    """Rotation of the coordinate frame by ``angle_deg`` about ``axis`` (astropy's
    ``rotation_matrix`` convention)."""
    i = "xyz".index(axis)
    a1, a2 = (i + 1) % 3, (i + 2) % 3
    c, s = np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))
    matrix = np.eye(3)
    matrix[a1, a1] = matrix[a2, a2] = c
    matrix[a1, a2], matrix[a2, a1] = s, -s
    return matrix


@functools.lru_cache(maxsize=1)
def icrs_to_galactic_matrix() -> np.ndarray:
    """The 3x3 matrix taking ICRS unit vectors to Galactic ones."""
    mas = 1.0 / 3_600_000.0
    bias = (_rotation(-_FRAME_BIAS_MAS["eta0"] * mas, "x")
            @ _rotation(_FRAME_BIAS_MAS["xi0"] * mas, "y")
            @ _rotation(_FRAME_BIAS_MAS["da0"] * mas, "z"))
    galactic = (_rotation(180.0 - NCP_L_J2000, "z") @ _rotation(90.0 - NGP_DEC_J2000, "y")
                @ _rotation(NGP_RA_J2000, "z"))
    matrix = galactic @ bias
    matrix.setflags(write=False)
    return matrix


def radec_to_galactic(ra: Any, dec: Any) -> tuple[np.ndarray, np.ndarray]:
    """Galactic (l, b) in degrees of ICRS (ra, dec) in degrees; l in [0, 360)."""
    ra = np.radians(np.asarray(ra, dtype=np.float64))
    dec = np.radians(np.asarray(dec, dtype=np.float64))
    cos_dec = np.cos(dec)
    xyz = np.stack([cos_dec * np.cos(ra), cos_dec * np.sin(ra), np.sin(dec)])
    x, y, z = np.tensordot(icrs_to_galactic_matrix(), xyz, axes=1)
    b = np.degrees(np.arctan2(z, np.hypot(x, y)))
    l_deg = np.mod(np.degrees(np.arctan2(y, x)), 360.0)
    return l_deg, b


def galactic_latitude(ra: Any, dec: Any) -> np.ndarray:
    """Galactic latitude b in degrees of ICRS (ra, dec) in degrees."""
    return radec_to_galactic(ra, dec)[1]


@functools.lru_cache(maxsize=1)
def _north_galactic_pixels() -> np.ndarray:
    """Per nside-64 NESTED pixel: is its centre at b ≥ 0 (desitarget ``is_in_gal_box`` with
    b in [0, 90))?"""
    ra, dec = nest_to_radec(np.arange(npix(RESOLVE_NSIDE)), RESOLVE_NSIDE)
    b = galactic_latitude(ra, dec)
    north = (b >= 0.0) & (b < 90.0)
    north.setflags(write=False)
    return north


def in_north_galactic_cap(ra: Any, dec: Any) -> np.ndarray:
    """North of the Galactic plane as desitarget's resolve decides it: the centre of the
    object's nside-64 NESTED pixel has b ≥ 0."""
    return _north_galactic_pixels()[radec_to_nest(ra, dec, RESOLVE_NSIDE)]


def in_northern_area(ra: Any, dec: Any) -> np.ndarray:
    """Where BASS/MzLS (``N``) photometry is primary: Dec ≥ 32.375 and north of the plane."""
    dec = np.asarray(dec, dtype=np.float64)
    return (dec >= RESOLVE_DEC) & in_north_galactic_cap(ra, dec)


def is_north_photsys(photsys: Any) -> np.ndarray:
    """``photsys == 'N'`` per object for 'N'/'S' as str or bytes (padding ignored); any other
    value raises ValueError naming it."""
    values = np.asarray(photsys)
    if values.dtype.kind == "S":
        values = np.char.decode(values, "ascii")
    values = np.char.strip(values.astype(str))
    north, south = values == "N", values == "S"
    if not (north | south).all():
        strangers = sorted(set(values[~(north | south)].tolist()))
        shown = ", ".join(repr(v) for v in strangers[:5])
        raise ValueError(f"PHOTSYS must be 'N' or 'S', got {shown}")
    return north


def resolve_mask(ra: Any, dec: Any, photsys: Any) -> np.ndarray:
    """Which objects to keep: ``N`` ones inside the northern area, ``S`` ones outside it
    (desitarget ``targets.resolve``). ``photsys``: per-object ``'N'``/``'S'``."""
    north = is_north_photsys(photsys)
    area = in_northern_area(ra, dec)
    if north.shape != area.shape:
        raise ValueError(f"photsys has shape {north.shape}, RA/Dec {area.shape}")
    return north == area


def photsys_of(catalogue: Mapping[str, Any], unknown_release_photsys: str = "") -> np.ndarray:
    """Per-object PHOTSYS: the column when present, else from RELEASE (an unknown release
    raises :class:`~halo_lrg.science.cuts.UnknownReleaseError` unless a default is given)."""
    names = getattr(getattr(catalogue, "dtype", None), "names", None) or (
        catalogue.colnames if hasattr(catalogue, "colnames") else catalogue.keys())
    if "PHOTSYS" in names:
        return np.asarray(catalogue["PHOTSYS"])
    return photsys_from_release(catalogue["RELEASE"], unknown_release_photsys)


def resolve_catalogue(catalogue: Mapping[str, Any],
                      unknown_release_photsys: str = "") -> np.ndarray:
    """:func:`resolve_mask` for a catalogue with RA, DEC and PHOTSYS or RELEASE."""
    return resolve_mask(catalogue["RA"], catalogue["DEC"],
                        photsys_of(catalogue, unknown_release_photsys))
