"""HEALPix NESTED pixels in pure numpy: (RA, Dec) → pixel index, pixel centres, pixel area.

HEALPix (Górski et al. 2005, ApJ 622, 759) splits the sphere into 12 base faces of
``nside²`` equal-area pixels each; the NESTED scheme numbers a face's pixels along a Z-order
curve, so pixel ``p`` at ``nside`` holds pixels ``4p…4p+3`` at ``2·nside``. DESI's pixweight
maps and desitarget's north/south resolution use NESTED pixels.

This module reimplements the reference library's ``ang2pix`` / ``pix2ang`` for the nested
scheme (the algorithm of HEALPix C++ ``T_Healpix_Base::loc2pix`` and ``pix2loc``) in ~100
lines of numpy, so the package takes no compiled dependency for it: healpy and hpgeom are GPL,
and the BSD-licensed astropy-healpix and cdshealpix both require astropy at run time, which
every cluster node would then have to install. ``tests/test_science_blocks.py`` checks the
indices against healpy on random points (poles and RA wrap included) at several nsides.

``nside`` is a power of two from 1 to :data:`MAX_NSIDE` (2**13, ~26″ pixels), the range
tested; all index arithmetic is int64.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: Largest nside accepted (and tested against the reference library).
MAX_NSIDE = 2**13

# Face layout: ring number of each base face's southern corner (in units of nside) and its
# longitude index (in units of π/4), as in HEALPix C++ (jrll, jpll).
_JRLL = np.array([2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4], dtype=np.int64)
_JPLL = np.array([1, 3, 5, 7, 0, 2, 4, 6, 1, 3, 5, 7], dtype=np.int64)
_TWO_THIRDS = 2.0 / 3.0


def check_nside(nside: int) -> int:
    """``nside`` as an int if it is a power of two in [1, MAX_NSIDE], else ValueError."""
    try:
        value = int(nside)
    except (TypeError, ValueError):
        raise ValueError(f"nside must be an integer power of two, got {nside!r}") from None
    if value != nside or value < 1 or value & (value - 1) or value > MAX_NSIDE:
        raise ValueError(f"nside must be a power of two from 1 to {MAX_NSIDE}, got {nside!r}")
    return value


def npix(nside: int) -> int:
    """Number of pixels on the sphere: 12 nside²."""
    return 12 * check_nside(nside) ** 2


def pixel_area(nside: int, degrees: bool = True) -> float:
    """Area of one pixel (all are equal): 4π / (12 nside²) sr, in deg² unless ``degrees`` is
    False."""
    steradians = 4.0 * math.pi / npix(nside)
    return steradians * (180.0 / math.pi) ** 2 if degrees else steradians


def _spread_bits(v: np.ndarray) -> np.ndarray:
    """Interleave zeros between the bits of v (< 2**16 here): b3b2b1b0 → 0b3 0b2 0b1 0b0."""
    v = v.astype(np.int64)
    v = (v | (v << 8)) & 0x00FF00FF
    v = (v | (v << 4)) & 0x0F0F0F0F
    v = (v | (v << 2)) & 0x33333333
    return (v | (v << 1)) & 0x55555555


def _compress_bits(v: np.ndarray) -> np.ndarray:
    """The inverse of :func:`_spread_bits` on the even bits of v."""
    v = v & 0x55555555
    v = (v | (v >> 1)) & 0x33333333
    v = (v | (v >> 2)) & 0x0F0F0F0F
    v = (v | (v >> 4)) & 0x00FF00FF
    return (v | (v >> 8)) & 0x0000FFFF


def radec_to_nest(ra: Any, dec: Any, nside: int) -> np.ndarray:
    """NESTED pixel index (int64) holding each (ra, dec) in degrees, at ``nside``.

    RA is taken modulo 360 (negative and ≥ 360 values wrap); Dec must lie in [−90, 90] and
    nothing may be NaN (ValueError otherwise). Same answers as ``healpy.ang2pix(nside,
    ra, dec, nest=True, lonlat=True)`` except, at most, for a point within a rounding error of
    a pixel edge.
    """
    nside = check_nside(nside)
    ra = np.asarray(ra, dtype=np.float64)
    dec = np.asarray(dec, dtype=np.float64)
    ra, dec = np.broadcast_arrays(ra, dec)
    shape = ra.shape
    ra, dec = ra.ravel(), dec.ravel()
    if not np.isfinite(ra).all():
        raise ValueError("RA must be finite")
    bad = ~((dec >= -90.0) & (dec <= 90.0))
    if bad.any():
        raise ValueError(f"Dec must be within [-90, 90] degrees, got {float(dec[bad][0])!r}")
    order = nside.bit_length() - 1
    ra = np.mod(ra, 360.0)
    ra[ra >= 360.0] = 0.0  # -1e-20 % 360 rounds to 360.0
    tt = ra / 90.0  # longitude in units of π/2, in [0, 4)
    rad = np.radians(dec)
    z = np.sin(rad)
    za = np.abs(z)
    pix = np.empty(ra.size, dtype=np.int64)

    equatorial = za <= _TWO_THIRDS
    if equatorial.any():
        t, zz = tt[equatorial], z[equatorial]
        temp1 = nside * (0.5 + t)
        temp2 = nside * (zz * 0.75)
        # Edge line indices, in [0, 5 nside) exactly; at |z| = 2/3 with RA just below 360,
        # 0.5 + t rounds up to 4.5 and an index reached 5 nside (face 12, no such pixel).
        jp = np.minimum((temp1 - temp2).astype(np.int64), 5 * nside - 1)  # ascending
        jm = np.minimum((temp1 + temp2).astype(np.int64), 5 * nside - 1)  # descending
        ifp, ifm = jp >> order, jm >> order
        face = np.where(ifp == ifm, ifp | 4, np.where(ifp < ifm, ifp, ifm + 8))
        ix = jm & (nside - 1)
        iy = nside - (jp & (nside - 1)) - 1
        pix[equatorial] = _xyf_to_nest(ix, iy, face, order)

    polar = ~equatorial
    if polar.any():
        t, zz, zabs = tt[polar], z[polar], za[polar]
        ntt = np.minimum(t.astype(np.int64), 3)
        tp = t - ntt
        # sqrt(3 (1 - |z|)), written with cos(dec) near the poles where 1 - |z| loses digits.
        with np.errstate(invalid="ignore"):
            tmp = np.where(zabs < 0.99, nside * np.sqrt(3.0 * (1.0 - zabs)),
                           nside * np.cos(rad[polar]) * np.sqrt(3.0 / (1.0 + zabs)))
        tmp = np.maximum(tmp, 0.0)
        jp = np.minimum((tp * tmp).astype(np.int64), nside - 1)
        jm = np.minimum(((1.0 - tp) * tmp).astype(np.int64), nside - 1)
        north = zz >= 0
        ix = np.where(north, nside - jm - 1, jp)
        iy = np.where(north, nside - jp - 1, jm)
        face = np.where(north, ntt, ntt + 8)
        pix[polar] = _xyf_to_nest(ix, iy, face, order)
    return pix.reshape(shape)


def _xyf_to_nest(ix: np.ndarray, iy: np.ndarray, face: np.ndarray, order: int) -> np.ndarray:
    return (face.astype(np.int64) << (2 * order)) + _spread_bits(ix) + (_spread_bits(iy) << 1)


def nest_to_radec(pix: Any, nside: int) -> tuple[np.ndarray, np.ndarray]:
    """Centres (ra, dec) in degrees of NESTED pixels ``pix`` at ``nside``; RA in [0, 360)."""
    nside = check_nside(nside)
    pix = np.asarray(pix)
    if pix.dtype.kind not in "iu":
        raise ValueError(f"pixel indices must be integers, got dtype {pix.dtype}")
    pix = pix.astype(np.int64)
    total = 12 * nside * nside
    if pix.size and (pix.min() < 0 or pix.max() >= total):
        raise ValueError(f"pixel indices must be within [0, {total}) at nside {nside}")
    shape = pix.shape
    pix = pix.ravel()
    order = nside.bit_length() - 1
    face = pix >> (2 * order)
    within = pix & (nside * nside - 1)
    ix, iy = _compress_bits(within), _compress_bits(within >> 1)
    jr = (_JRLL[face] << order) - ix - iy - 1  # ring index, 1 … 4 nside − 1
    fact2 = 4.0 / total
    north_cap, south_cap = jr < nside, jr > 3 * nside
    nr = np.where(north_cap, jr, np.where(south_cap, 4 * nside - jr, nside))
    cap = (nr * nr) * fact2  # 1 - |z| in the caps
    z = np.where(north_cap, 1.0 - cap, np.where(south_cap, cap - 1.0,
                                                (2 * nside - jr) * (2 * nside * fact2)))
    sin_theta = np.sqrt(np.maximum(cap * (2.0 - cap), 0.0))
    in_cap = north_cap | south_cap
    theta = np.where(in_cap & (np.abs(z) > 0.99), np.arctan2(sin_theta, z),
                     np.arccos(np.clip(z, -1.0, 1.0)))
    tmp = _JPLL[face] * nr + ix - iy
    tmp = np.where(tmp < 0, tmp + 8 * nr, tmp)
    ra = np.mod(np.degrees(0.25 * np.pi * tmp / nr), 360.0)
    dec = 90.0 - np.degrees(theta)
    return ra.reshape(shape), dec.reshape(shape)
