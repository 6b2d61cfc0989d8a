"""Generated DR10-schema sweeps, for tests, benchmarks and the demo (no real file needed).

A generated file has what a real one has where it matters: the 130 DR10 columns by name, type
and order (``data/dr10_sweep_columns.csv``), a big-endian binary table in HDU 1 (EXTNAME
SWEEP) behind an empty primary HDU carrying RAMIN/RAMAX/DECMIN/DECMAX, objects only inside the
half-open 5°x5° box named as the survey names it, BRICKNAME/BRICKID consistent with RA/Dec on
the brick grid, rows sorted by brick, RELEASE 10000 or 10002 per brick, and photometry whose
LRG density is of the published order (~600 deg⁻²).

Placement: objects fill whole bricks (clipped to the box) at ``object_density`` per deg², a
strip of brick columns from the box's low-RA edge, every brick row that meets the box. The
rows centred on the box's Dec edges straddle two sweeps, as real ones do, so the per-brick sum
across files is exercised.

Randoms (:func:`generate_randoms`): DR10-schema random catalogues (``randoms-1-<k>.fits``),
points uniform on the sphere inside one or more boxes at 2,500 per deg², with an optional
:class:`PlantedMask` — a circular bright-star hole (MASKBITS bit 1) and an unobserved stripe
(NOBS_Z = 0 in a Dec band) — whose unmasked area is known exactly
(:meth:`PlantedMask.unmasked_area`), so an effective-area estimate can be checked. The same
mask can be planted in sweeps (``generate_sweep(..., mask=...)``); without one a sweep's bytes
are what they always were.
"""

from __future__ import annotations

import csv
import functools
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from halo_lrg.fits.layout import numpy_format
from halo_lrg.science.bricks import brick_table, brickid_at, bricks_overlapping
from halo_lrg.survey.names import SweepBox, sweep_name

COLUMNS_CSV = "data/dr10_sweep_columns.csv"  # package data: read via importlib.resources
ROW_BYTES = 505
BOX_SIZE_DEG = 5.0
CHUNK_ROWS = 250_000
DEFECT_KINDS = ("not-fits", "truncated", "missing-column", "empty", "dr9")
I_BAND_COLUMNS = ("FLUX_I", "FLUX_IVAR_I", "MW_TRANSMISSION_I", "NOBS_I", "RCHISQ_I",
                  "FRACFLUX_I", "FRACMASKED_I", "FRACIN_I", "ANYMASK_I", "ALLMASK_I",
                  "PSFSIZE_I", "PSFDEPTH_I", "GALDEPTH_I", "FIBERFLUX_I", "FIBERTOTFLUX_I")

# Extinction coefficients A_X / E(B-V) for DECam grz(i) and WISE (Schlafly & Finkbeiner 2011,
# as the Legacy Surveys use them).
EXTINCTION = {"G": 3.214, "R": 2.165, "I": 1.592, "Z": 1.211, "W1": 0.184, "W2": 0.113,
              "W3": 0.0241, "W4": 0.00910}
# 1-sigma flux noise per band in nanomaggies, roughly DR10 depths.
FLUX_SIGMA = {"G": 0.05, "R": 0.07, "I": 0.1, "Z": 0.15, "W1": 1.0, "W2": 2.5, "W3": 40.0,
              "W4": 300.0}
BANDS = tuple(EXTINCTION)
TYPES = np.array(["PSF", "REX", "DEV", "EXP", "SER"])


@functools.lru_cache(maxsize=1)
def dr10_columns() -> list[tuple[str, str, int]]:
    """(name, TFORM, byte offset) of the 130 DR10 columns, in order."""
    text = resources.files("halo_lrg.survey").joinpath(COLUMNS_CSV).read_text(encoding="ascii")
    rows = [line for line in text.splitlines() if not line.startswith("#")]
    return [(r["name"], r["tform"], int(r["offset"])) for r in csv.DictReader(rows)]


def dr10_dtype() -> np.dtype:
    dtype = np.dtype([(name, numpy_format(tform)) for name, tform, _ in dr10_columns()])
    assert dtype.itemsize == ROW_BYTES, dtype.itemsize
    assert [dtype.fields[n][1] for n, _, _ in dr10_columns()] == [o for _, _, o in
                                                                 dr10_columns()]
    return dtype


def dr9_dtype() -> np.dtype:
    """DR9: no i-band columns and MASKBITS int16 (115 columns, 449 bytes a row)."""
    fields = [(n, ">i2" if n == "MASKBITS" else numpy_format(t))
              for n, t, _ in dr10_columns() if n not in I_BAND_COLUMNS]
    return np.dtype(fields)


@dataclass
class SweepSummary:
    path: str
    box: SweepBox
    rows: int
    bytes: int
    bricknames: list[str] = field(repr=False)
    seconds: float = 0.0


# --- placement -------------------------------------------------------------------------------

def _placement(box: SweepBox, rows: int, object_density: float) -> Any:
    """The bricks to fill, clipped to the box, with their clipped areas."""
    bricks = bricks_overlapping(box.ra_min, box.ra_max, box.dec_min, box.dec_max)
    width = float((bricks["ra2"] - bricks["ra1"]).max())
    height = box.dec_max - box.dec_min
    strip = min(box.ra_max - box.ra_min, max(width, rows / object_density / height))
    chosen = bricks[(bricks["ra"] >= box.ra_min) & (bricks["ra"] < box.ra_min + strip)].copy()
    chosen["cra1"] = np.maximum(chosen["ra1"], box.ra_min)
    chosen["cra2"] = np.minimum(chosen["ra2"], box.ra_max)
    chosen["cdec1"] = np.maximum(chosen["dec1"], box.dec_min)
    chosen["cdec2"] = np.minimum(chosen["dec2"], box.dec_max)
    chosen["carea"] = (chosen["cra2"] - chosen["cra1"]) * np.degrees(
        np.sin(np.radians(chosen["cdec2"])) - np.sin(np.radians(chosen["cdec1"])))
    return chosen[chosen["carea"] > 0].reset_index(drop=True)


def _positions(rng: np.random.Generator, placed: Any, rows: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Uniform on the sphere over the placed bricks, sorted by BRICKID."""
    per_brick = rng.multinomial(rows, placed["carea"] / placed["carea"].sum())
    which = np.repeat(np.arange(len(placed)), per_brick)
    ra = rng.uniform(placed["cra1"].to_numpy()[which], placed["cra2"].to_numpy()[which])
    sin_lo = np.sin(np.radians(placed["cdec1"].to_numpy()[which]))
    sin_hi = np.sin(np.radians(placed["cdec2"].to_numpy()[which]))
    dec = np.degrees(np.arcsin(rng.uniform(sin_lo, sin_hi)))
    # Float rounding at a clipped edge must not push an object out of its box.
    dec = np.minimum(dec, np.nextafter(placed["cdec2"].to_numpy()[which], -np.inf))
    ra = np.minimum(ra, np.nextafter(placed["cra2"].to_numpy()[which], -np.inf))
    brickid = brickid_at(ra, dec)
    order = np.lexsort((ra, brickid))
    return ra[order], dec[order], brickid[order]


# --- photometry --------------------------------------------------------------------------------

def _flux(mag: np.ndarray) -> np.ndarray:
    return 10 ** (-0.4 * (mag - 22.5))


def _populations(rng: np.random.Generator, n: int, lrg_share: float) -> dict[str, np.ndarray]:
    """Intrinsic AB magnitudes per band and TYPE for a mix of populations."""
    shares = np.array([lrg_share, 0.04, 0.15, 0.35, 0.0])
    shares[4] = 1.0 - shares[:4].sum()  # faint noisy objects take the rest
    kind = rng.choice(5, size=n, p=shares)  # 0 LRG, 1 red-too-faint, 2 star, 3 blue, 4 faint
    z = np.select([kind == 0, kind == 1, kind == 2, kind == 3],
                  [rng.uniform(18.8, 20.3, n), rng.uniform(20.45, 21.3, n),
                   rng.uniform(15.0, 22.0, n), rng.uniform(19.0, 23.0, n)],
                  rng.uniform(22.5, 25.0, n))
    red = kind <= 1
    r_z = np.select([red, kind == 2, kind == 3],
                    [rng.uniform(1.0, 2.0, n), rng.uniform(0.0, 1.5, n),
                     rng.normal(0.4, 0.2, n)], rng.normal(0.3, 0.4, n))
    z_w1 = np.select([red, kind == 2, kind == 3],
                     [rng.uniform(1.0, 1.9, n), rng.normal(-0.3, 0.3, n),
                      rng.normal(0.3, 0.4, n)], rng.normal(0.0, 0.6, n))
    g_r = np.where(red, rng.uniform(1.3, 2.0, n), rng.normal(0.6, 0.3, n))
    mags = {"Z": z, "R": z + r_z, "G": z + r_z + g_r, "I": z + 0.45 * r_z, "W1": z - z_w1}
    mags["W2"] = mags["W1"] + rng.normal(0.5, 0.2, n)
    mags["W3"] = mags["W2"] + rng.normal(1.0, 0.5, n)
    mags["W4"] = mags["W3"] + rng.normal(1.0, 0.5, n)
    types = np.select([kind == 0, kind == 1, kind == 2, kind == 3],
                      [TYPES[rng.choice([2, 3, 4], n)], TYPES[rng.choice([2, 3], n)],
                       np.full(n, "PSF"), TYPES[rng.choice([1, 3], n)]],
                      TYPES[rng.choice([0, 1], n)])
    return {"mags": mags, "kind": kind, "type": types}


def _fill_chunk(rng: np.random.Generator, dtype: np.dtype, ra: np.ndarray, dec: np.ndarray,
                brickid: np.ndarray, objid: np.ndarray, names: np.ndarray,
                release: np.ndarray, ebv: np.ndarray, lrg_share: float) -> np.ndarray:
    n = ra.size
    out = np.zeros(n, dtype=dtype)
    have = set(dtype.names)
    pop = _populations(rng, n, lrg_share)
    mags, kind = pop["mags"], pop["kind"]
    out["RELEASE"], out["BRICKID"], out["BRICKNAME"], out["OBJID"] = release, brickid, names, objid
    out["TYPE"] = pop["type"].astype("S3")
    out["RA"], out["DEC"] = ra, dec
    out["RA_IVAR"] = out["DEC_IVAR"] = rng.uniform(1e9, 1e11, n)
    out["DCHISQ"] = np.abs(rng.normal(100, 50, (n, 5)))
    out["EBV"] = ebv
    star = kind == 2
    for band in BANDS:
        if f"FLUX_{band}" not in have:
            continue
        transmission = 10 ** (-0.4 * EXTINCTION[band] * ebv)
        sigma = FLUX_SIGMA[band]
        ivar = np.full(n, 1 / sigma**2)
        ivar[rng.random(n) < 0.01] = 0.0  # not measured
        out[f"FLUX_{band}"] = _flux(mags[band]) * transmission + rng.normal(0, sigma, n)
        out[f"FLUX_IVAR_{band}"] = ivar
        out[f"MW_TRANSMISSION_{band}"] = transmission
        wise = band.startswith("W")
        nobs = rng.integers(10, 40, n) if wise else rng.integers(1, 9, n)
        nobs[rng.random(n) < 0.01] = 0
        out[f"NOBS_{band}"] = nobs
        out[f"RCHISQ_{band}"] = np.abs(rng.normal(1.0, 0.2, n))
        out[f"FRACFLUX_{band}"] = np.abs(rng.normal(0.0, 0.05, n))
        if not wise:
            fibre = np.where(star, 0.78, rng.uniform(0.3, 0.6, n)) * _flux(mags[band])
            out[f"FIBERFLUX_{band}"] = fibre * transmission
            out[f"FIBERTOTFLUX_{band}"] = fibre * transmission * rng.uniform(1.0, 1.3, n)
            out[f"FRACMASKED_{band}"] = np.abs(rng.normal(0.0, 0.02, n))
            out[f"FRACIN_{band}"] = rng.uniform(0.9, 1.0, n)
            out[f"PSFSIZE_{band}"] = rng.uniform(1.0, 1.8, n)
            out[f"PSFDEPTH_{band}"] = 1 / (sigma * 0.8) ** 2
            out[f"GALDEPTH_{band}"] = 1 / sigma**2
    out["PSFDEPTH_W1"], out["PSFDEPTH_W2"] = 1.0, 0.16
    out["WISE_COADD_ID"] = np.char.add(names.astype("S4"), b"p000")
    out["SHAPE_R"] = np.where(star, 0.0, rng.lognormal(0.0, 0.5, n))
    out["SHAPE_R_IVAR"] = rng.uniform(1, 100, n)
    out["SHAPE_E1"], out["SHAPE_E2"] = rng.normal(0, 0.15, (2, n))
    out["SHAPE_E1_IVAR"] = out["SHAPE_E2_IVAR"] = rng.uniform(10, 1000, n)
    gaia = star & (mags["R"] < 21.0)
    out["REF_CAT"] = np.where(gaia, b"G3", b"  ")
    out["REF_ID"] = np.where(gaia, rng.integers(1, 2**62, n), 0)
    out["REF_EPOCH"] = np.where(gaia, 2016.0, 0.0)
    out["GAIA_PHOT_G_MEAN_MAG"] = np.where(gaia, mags["R"] + 0.3, 0.0)
    out["GAIA_PHOT_BP_MEAN_MAG"] = np.where(gaia, mags["G"], 0.0)
    out["GAIA_PHOT_RP_MEAN_MAG"] = np.where(gaia, mags["Z"] + 0.2, 0.0)
    out["GAIA_ASTROMETRIC_PARAMS_SOLVED"] = np.where(gaia, 31, 0)
    out["GAIA_DUPLICATED_SOURCE"] = gaia & (rng.random(n) < 0.2)
    out["WISEMASK_W1"] = np.where(rng.random(n) < 0.05, rng.integers(1, 256, n), 0)
    masked = rng.random(n)
    bits = np.zeros(n, dtype=np.int64)
    bits[masked < 0.03] = 1 << rng.choice([1, 12, 13], (masked < 0.03).sum())  # DESI rejects
    other = (masked >= 0.03) & (masked < 0.08)
    bits[other] = 1 << rng.choice([5, 8, 9, 11], other.sum())  # harmless to LRGs
    out["MASKBITS"] = bits
    out["SERSIC"] = np.select([pop["type"] == "DEV", pop["type"] == "EXP"], [4.0, 1.0],
                              rng.uniform(0.5, 6.0, n))
    return out


# --- files ------------------------------------------------------------------------------------

def _synth_defaults(*values: Optional[float]) -> tuple[float, float, float]:
    """(release_10002_fraction, object_density, lrg_density), unset ones from config."""
    from halo_lrg.config import load_config

    synth = load_config().synth
    defaults = (synth.release_10002_fraction, synth.object_density, synth.lrg_density)
    return tuple(d if v is None else v for v, d in zip(values, defaults))  # type: ignore


def _primary_header(box: SweepBox) -> list[dict[str, Any]]:
    return [{"name": "RAMIN", "value": box.ra_min, "comment": "box minimum RA [deg]"},
            {"name": "RAMAX", "value": box.ra_max, "comment": "box maximum RA [deg]"},
            {"name": "DECMIN", "value": box.dec_min, "comment": "box minimum Dec [deg]"},
            {"name": "DECMAX", "value": box.dec_max, "comment": "box maximum Dec [deg]"}]


def generate_sweep(
    path: Union[str, Path],
    box: SweepBox,
    rows: int,
    seed: Union[int, np.random.SeedSequence] = 0,
    release_10002_fraction: Optional[float] = None,
    object_density: Optional[float] = None,
    lrg_density: Optional[float] = None,
    chunk_rows: int = CHUNK_ROWS,
    dtype: Optional[np.dtype] = None,
    release_default: int = 10000,
    mask: Optional[PlantedMask] = None,
) -> SweepSummary:
    """Write one DR10-schema sweep of ``rows`` objects inside ``box``; memory ~ chunk_rows.

    Unset densities and the 10002 fraction come from the ``[synth]`` configuration. With a
    ``mask``, objects in its hole get MASKBITS bit 1 (BRIGHT) and objects in its stripe no
    z-band data (:meth:`PlantedMask.apply`); nothing else changes (no extra random draws).
    """
    import fitsio

    release_10002_fraction, object_density, lrg_density = _synth_defaults(
        release_10002_fraction, object_density, lrg_density)
    started = time.perf_counter()
    path = str(path)
    dtype = dtype or dr10_dtype()
    rng = np.random.default_rng(seed)
    placed = _placement(box, rows, object_density)
    ra, dec, brickid = _positions(rng, placed, rows)
    table = brick_table()
    names = table["brickname"].to_numpy()[brickid - 1].astype("S8")
    # OBJID counts from 0 within each brick (rows are sorted by brick).
    starts = np.flatnonzero(np.r_[True, brickid[1:] != brickid[:-1]])
    objid = np.arange(rows) - np.repeat(starts, np.diff(np.r_[starts, rows]))
    unique_ids = np.unique(brickid)
    reprocessed = rng.random(unique_ids.size) < release_10002_fraction
    release_by_brick = np.where(reprocessed, 10002, release_default)
    ebv_by_brick = rng.uniform(0.01, 0.1, unique_ids.size)
    slot = np.searchsorted(unique_ids, brickid)
    lrg_share = min(0.5, 1.2 * lrg_density / object_density)
    with fitsio.FITS(path, "rw", clobber=True) as fits:
        fits.write(None, header=_primary_header(box))
        if rows == 0:
            fits.create_table_hdu(dtype=dtype, extname="SWEEP")
        for start in range(0, rows, chunk_rows):
            part = slice(start, min(start + chunk_rows, rows))
            chunk = _fill_chunk(rng, dtype, ra[part], dec[part], brickid[part], objid[part],
                                names[part], release_by_brick[slot[part]],
                                ebv_by_brick[slot[part]], lrg_share)
            if mask is not None:
                mask.apply(chunk)
            if start == 0:
                fits.write(chunk, extname="SWEEP")
            else:
                fits[-1].append(chunk)
    bricknames = sorted({n.decode() for n in names[starts]}) if rows else []
    return SweepSummary(path, box, rows, os.path.getsize(path), bricknames,
                        time.perf_counter() - started)


def sample_boxes(files: int, ra_start: float, dec_start: float) -> list[SweepBox]:
    """``files`` distinct DR10 boxes tiling a near-square patch from (ra_start, dec_start):
    columns of boxes stacked in Dec (adjacent boxes share the bricks on their common edge),
    then the next column east. Columns never cross Dec +90; when the patch would wrap all the
    way round in RA, columns grow south of ``dec_start`` instead, down to the pole, so any
    count up to the whole sky (72 x 36 boxes) gives distinct files."""
    columns = round(360.0 / BOX_SIZE_DEG)
    rows_north = int((90.0 - dec_start) // BOX_SIZE_DEG)
    rows_south = int((dec_start + 90.0) // BOX_SIZE_DEG)
    if files > columns * (rows_north + rows_south):
        raise ValueError(f"{files} files: the sky holds only {columns * (rows_north + rows_south)}"
                         f" distinct {BOX_SIZE_DEG:g}°x{BOX_SIZE_DEG:g}° boxes from Dec "
                         f"{dec_start:g}")
    per_column = max(1, min(math.ceil(math.sqrt(files)), rows_north))
    if math.ceil(files / per_column) > columns:
        per_column = math.ceil(files / columns)
    boxes = []
    for k in range(files):
        ra = (ra_start + (k // per_column) * BOX_SIZE_DEG) % 360.0
        row = k % per_column
        dec = dec_start + (row if row < rows_north else rows_north - 1 - row) * BOX_SIZE_DEG
        boxes.append(SweepBox(ra, ra + BOX_SIZE_DEG, dec, dec + BOX_SIZE_DEG))
    return boxes


def generate_sample(
    outdir: Union[str, Path],
    files: int,
    rows: int,
    seed: int = 0,
    ra_start: float = 150.0,
    dec_start: float = 0.0,
    release_10002_fraction: Optional[float] = None,
    object_density: Optional[float] = None,
    lrg_density: Optional[float] = None,
    progress: Optional[Any] = None,
    mask: Optional[PlantedMask] = None,
) -> list[SweepSummary]:
    """``files`` sweeps in ``outdir`` plus ``outdir/index.txt`` (absolute paths); ``mask``
    is planted in each (see :func:`generate_sweep`)."""
    release_10002_fraction, object_density, lrg_density = _synth_defaults(
        release_10002_fraction, object_density, lrg_density)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    seeds = np.random.SeedSequence(seed).spawn(files)
    summaries = []
    for box, file_seed in zip(sample_boxes(files, ra_start, dec_start), seeds):
        summary = generate_sweep(outdir / sweep_name(box), box, rows, file_seed,
                                 release_10002_fraction, object_density, lrg_density,
                                 mask=mask)
        summaries.append(summary)
        if progress is not None:
            progress(summary)
    (outdir / "index.txt").write_text("".join(f"{Path(s.path).resolve()}\n" for s in summaries))
    return summaries


def write_defect(path: Union[str, Path], kind: str, rows: int = 500, seed: int = 0) -> Path:
    """A file of a given defect, for tests: see :data:`DEFECT_KINDS`."""
    import fitsio
    from numpy.lib import recfunctions

    path = Path(path)
    box = SweepBox(0.0, 5.0, 0.0, 5.0)
    if kind == "not-fits":
        path.write_text("this is not a FITS file\n")
    elif kind == "truncated":
        summary = generate_sweep(path, box, rows, seed)
        with fitsio.FITS(str(path)) as fits:
            data_start = fits[1].get_offsets()["data_start"]
        with open(path, "r+b") as fh:  # cut mid-data, past a whole number of 2880-byte blocks
            fh.truncate(data_start + (summary.rows * ROW_BYTES) // 2 + 17)
    elif kind == "missing-column":
        generate_sweep(path, box, rows, seed)
        data = fitsio.read(str(path), ext="SWEEP")
        data = recfunctions.drop_fields(data, "FLUX_W1", usemask=False)
        with fitsio.FITS(str(path), "rw", clobber=True) as fits:
            fits.write(None, header=_primary_header(box))
            fits.write(data, extname="SWEEP")
    elif kind == "empty":
        generate_sweep(path, box, 0, seed)
    elif kind == "dr9":
        generate_sweep(path, SweepBox(0.0, 10.0, 0.0, 5.0), rows, seed, dtype=dr9_dtype(),
                       release_default=9010, release_10002_fraction=0.0)
    else:
        raise ValueError(f"unknown defect {kind!r}; choose one of {', '.join(DEFECT_KINDS)}")
    return path


# --- randoms and a planted mask ----------------------------------------------------------------

#: Points per deg² in each DR10 randoms file (``randoms-1-<k>.fits``).
RANDOMS_DENSITY = 2500.0
BRIGHT_BIT = 1  # MASKBITS bit 1: BRIGHT (near a bright star), rejected by DESI LRGs
#: MASKBITS set at random on a few points, none of them in the DESI LRG mask (bits 1, 12, 13):
#: WISEM1, WISEM2, MEDIUM. They make "MASKBITS & mask == 0" differ from "MASKBITS == 0".
HARMLESS_BITS = (8, 9, 11)
HARMLESS_FRACTION = 0.05
#: Columns emptied in the stripe of a planted mask (no z-band exposure), where a file has them.
STRIPE_COLUMNS = ("NOBS_Z", "PSFDEPTH_Z", "GALDEPTH_Z", "PSFSIZE_Z", "FLUX_IVAR_Z")
RANDOMS_SPAWN_KEY = 2**31  # randoms seeds, apart from the sweeps' (spawn keys 0, 1, ...)


def _haversine_inside(ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float,
                      radius: float) -> np.ndarray:
    """Points within ``radius`` degrees of (ra0, dec0) (haversine: exact at small angles)."""
    d1, d0 = np.radians(dec), math.radians(dec0)
    hav = (np.sin((d1 - d0) / 2) ** 2
           + np.cos(d1) * math.cos(d0) * np.sin(np.radians(ra - ra0) / 2) ** 2)
    return hav < math.sin(math.radians(radius) / 2) ** 2


def _sphere_area(ra1: float, ra2: float, dec1: float, dec2: float) -> float:
    """Area in deg² of the RA/Dec rectangle [ra1, ra2] x [dec1, dec2] (0 if empty)."""
    if ra2 <= ra1 or dec2 <= dec1:
        return 0.0
    return (ra2 - ra1) * math.degrees(math.sin(math.radians(dec2))
                                      - math.sin(math.radians(dec1)))


@dataclass(frozen=True)
class PlantedMask:
    """A footprint defect of known area, planted in randoms (and optionally sweeps).

    * a **hole**: points within ``hole_radius`` degrees of (``hole_ra``, ``hole_dec``) get
      MASKBITS bit 1 (BRIGHT), as around a bright star;
    * a **stripe**: points with ``stripe_dec_min`` ≤ Dec < ``stripe_dec_max`` get NOBS_Z = 0
      (and no z depth), as where no z-band exposure was taken.
    """

    hole_ra: float
    hole_dec: float
    hole_radius: float
    stripe_dec_min: float
    stripe_dec_max: float

    def __post_init__(self) -> None:
        if not 0.0 < self.hole_radius < 90.0:
            raise ValueError(f"hole_radius must be in (0, 90) degrees, got {self.hole_radius}")
        if not -90.0 <= self.hole_dec <= 90.0:
            raise ValueError(f"hole_dec must be within [-90, 90], got {self.hole_dec}")
        if not -90.0 <= self.stripe_dec_min <= self.stripe_dec_max <= 90.0:
            raise ValueError(f"the stripe needs -90 <= dec_min <= dec_max <= 90, got "
                             f"{self.stripe_dec_min}, {self.stripe_dec_max}")

    @classmethod
    def default_for(cls, box: SweepBox) -> PlantedMask:
        """A hole of radius 0.2 x the box's smaller side at 40% of its RA and 32% of its Dec
        range, and a stripe from 72% to 82% of its Dec range: apart, both inside (for a 5°
        box: radius 1°, centre +2°, +1.6°; stripe +3.6° to +4.1°, not on brick edges)."""
        width, height = box.ra_max - box.ra_min, box.dec_max - box.dec_min
        values = (box.ra_min + 0.4 * width, box.dec_min + 0.32 * height,
                  0.2 * min(width, height), box.dec_min + 0.72 * height,
                  box.dec_min + 0.82 * height)
        return cls(*(round(v, 9) for v in values))

    def in_hole(self, ra: Any, dec: Any) -> np.ndarray:
        return _haversine_inside(np.asarray(ra, dtype=np.float64),
                                 np.asarray(dec, dtype=np.float64),
                                 self.hole_ra, self.hole_dec, self.hole_radius)

    def in_stripe(self, dec: Any) -> np.ndarray:
        dec = np.asarray(dec, dtype=np.float64)
        return (dec >= self.stripe_dec_min) & (dec < self.stripe_dec_max)

    def apply(self, rows: np.ndarray) -> None:
        """Plant the mask in a structured array with RA, DEC, MASKBITS (in place)."""
        hole = self.in_hole(rows["RA"], rows["DEC"])
        rows["MASKBITS"][hole] |= 1 << BRIGHT_BIT
        stripe = self.in_stripe(rows["DEC"])
        for name in STRIPE_COLUMNS:
            if name in rows.dtype.names:
                rows[name][stripe] = 0

    def unmasked_area(self, ra1: float, ra2: float, dec1: float, dec2: float,
                      mask_bits: int = (1 << 1) | (1 << 12) | (1 << 13)) -> float:
        """The area (deg²) of the rectangle [ra1, ra2) x [dec1, dec2) that points keep when
        counted with NOBS_G, NOBS_R, NOBS_Z > 0 and ``MASKBITS & mask_bits == 0``: the
        rectangle, less the stripe, less the hole outside the stripe when ``mask_bits`` has
        bit 1 (by quadrature, to ~1e-9 of the hole's area). ``mask_bits`` must
        not hold the bits set at random (:data:`HARMLESS_BITS`)."""
        if any(mask_bits & (1 << bit) for bit in HARMLESS_BITS):
            raise ValueError(f"mask_bits {mask_bits} has bits set at random "
                             f"({', '.join(map(str, HARMLESS_BITS))}): no exact area")
        area = _sphere_area(ra1, ra2, dec1, dec2)
        area -= _sphere_area(ra1, ra2, max(dec1, self.stripe_dec_min),
                             min(dec2, self.stripe_dec_max))
        if mask_bits & (1 << BRIGHT_BIT):
            area -= self._hole_area(ra1, ra2, dec1, dec2)
        return area

    def _hole_area(self, ra1: float, ra2: float, dec1: float, dec2: float,
                   steps: int = 20_000) -> float:
        """Area of hole ∩ rectangle outside the stripe: ∫ (RA overlap) cos(dec) d(dec)."""
        lo = max(dec1, self.hole_dec - self.hole_radius, -90.0)
        hi = min(dec2, self.hole_dec + self.hole_radius, 90.0)
        intervals = [(lo, min(hi, self.stripe_dec_min)), (max(lo, self.stripe_dec_max), hi)]
        if self.stripe_dec_min >= self.stripe_dec_max:
            intervals = [(lo, hi)]
        # The hole's RA centre moved by whole turns next to the rectangle.
        ra0 = self.hole_ra + 360.0 * round(((ra1 + ra2) / 2 - self.hole_ra) / 360.0)
        total = 0.0
        d0, r = math.radians(self.hole_dec), math.radians(self.hole_radius)
        for a, b in intervals:
            if b <= a:
                continue
            # dec = d0 + r sin(t): the RA half-width goes as sqrt() at the hole's top and
            # bottom, a smooth function of t, so the midpoint rule converges as steps⁻².
            t1 = math.asin(max(-1.0, min(1.0, (a - self.hole_dec) / self.hole_radius)))
            t2 = math.asin(max(-1.0, min(1.0, (b - self.hole_dec) / self.hole_radius)))
            step = (t2 - t1) / steps
            t = t1 + step * (np.arange(steps) + 0.5)
            dec = d0 + r * np.sin(t)
            with np.errstate(invalid="ignore", divide="ignore"):
                cosine = (math.cos(r) - np.sin(dec) * math.sin(d0)) / (np.cos(dec)
                                                                      * math.cos(d0))
            half = np.degrees(np.arccos(np.clip(np.nan_to_num(cosine, nan=-1.0), -1.0, 1.0)))
            overlap = np.clip(np.minimum(ra2, ra0 + half) - np.maximum(ra1, ra0 - half),
                              0.0, None)
            total += float(np.sum(np.radians(overlap) * np.cos(dec) * r * np.cos(t)) * step)
        return total * math.degrees(1.0) ** 2

    def unmasked_area_of_boxes(self, boxes: Sequence[SweepBox],
                               mask_bits: int = (1 << 1) | (1 << 12) | (1 << 13)) -> float:
        """:meth:`unmasked_area` summed over non-overlapping boxes."""
        return sum(self.unmasked_area(b.ra_min, b.ra_max, b.dec_min, b.dec_max, mask_bits)
                   for b in boxes)


def randoms_dtype() -> np.dtype:
    """The DR10 randoms row (desitarget ``quantities_at_positions_in_a_brick``), big-endian."""
    bands = "GRIZ"
    fields = [("RELEASE", ">i2"), ("BRICKID", ">i4"), ("BRICKNAME", "S8"), ("OBJID", ">i4"),
              ("RA", ">f8"), ("DEC", ">f8")]
    for prefix in ("NOBS", "PSFDEPTH", "GALDEPTH"):
        fields += [(f"{prefix}_{b}", ">i2" if prefix == "NOBS" else ">f4") for b in bands]
    fields += [("PSFDEPTH_W1", ">f4"), ("PSFDEPTH_W2", ">f4")]
    for prefix in ("PSFSIZE", "APFLUX", "APFLUX_IVAR"):
        fields += [(f"{prefix}_{b}", ">f4") for b in bands]
    fields += [("MASKBITS", ">i4"), ("WISEMASK_W1", "u1"), ("WISEMASK_W2", "u1"),
               ("EBV", ">f4"), ("PHOTSYS", "S1")]
    return np.dtype(fields)


@dataclass
class RandomsSummary:
    path: str
    rows: int
    bytes: int
    area_deg2: float  # the boxes' area
    density: float  # points per deg² asked for
    seconds: float = 0.0


def _boxes(box: Union[SweepBox, Sequence[SweepBox]]) -> list[SweepBox]:
    boxes = [box] if isinstance(box, SweepBox) else list(box)
    if not boxes:
        raise ValueError("no box to fill with randoms")
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            if a.overlaps(b.ra_min, b.ra_max, b.dec_min, b.dec_max):
                raise ValueError(f"boxes {a} and {b} overlap: randoms would be doubled there")
    return boxes


def _fill_randoms(rng: np.random.Generator, dtype: np.dtype, ra: np.ndarray, dec: np.ndarray,
                  brickid: np.ndarray, objid: np.ndarray, names: np.ndarray, ebv: np.ndarray,
                  release: int, photsys: str) -> np.ndarray:
    n = ra.size
    out = np.zeros(n, dtype=dtype)
    out["RELEASE"], out["BRICKID"], out["BRICKNAME"], out["OBJID"] = (release, brickid, names,
                                                                      objid)
    out["RA"], out["DEC"] = ra, dec
    for band in "GRIZ":
        # DR10 covers g, r, z everywhere it is observed, i only in part.
        nobs = rng.integers(0, 4, n) if band == "I" else rng.integers(1, 9, n)
        seen = nobs > 0
        depth = rng.uniform(0.6, 1.4, n) * seen
        out[f"NOBS_{band}"] = nobs
        out[f"PSFDEPTH_{band}"] = depth / (FLUX_SIGMA[band] * 0.8) ** 2
        out[f"GALDEPTH_{band}"] = depth / FLUX_SIGMA[band] ** 2
        out[f"PSFSIZE_{band}"] = rng.uniform(1.0, 1.8, n) * seen
        out[f"APFLUX_{band}"] = rng.normal(0.0, 0.01, n)
        out[f"APFLUX_IVAR_{band}"] = rng.uniform(1e3, 1e4, n) * seen
    out["PSFDEPTH_W1"], out["PSFDEPTH_W2"] = 1.0, 0.16
    bits = np.zeros(n, dtype=np.int64)
    some = rng.random(n) < HARMLESS_FRACTION
    bits[some] = 1 << rng.choice(HARMLESS_BITS, int(some.sum()))
    out["MASKBITS"] = bits
    out["WISEMASK_W1"] = np.where(rng.random(n) < 0.03, rng.integers(1, 256, n), 0)
    out["EBV"] = ebv
    out["PHOTSYS"] = photsys
    return out


def generate_randoms(
    path: Union[str, Path],
    box: Union[SweepBox, Sequence[SweepBox]],
    n_per_deg2: float = RANDOMS_DENSITY,
    seed: Union[int, np.random.SeedSequence] = 0,
    mask: Optional[PlantedMask] = None,
    release: int = 10000,
    photsys: str = "S",
    chunk_rows: int = CHUNK_ROWS,
) -> RandomsSummary:
    """Write a DR10-schema randoms file: points uniform on the sphere inside ``box`` (or
    several non-overlapping boxes), a Poisson number with mean ``n_per_deg2`` x area, rows
    sorted by brick; ``mask`` planted (:class:`PlantedMask`). HDU 1 is EXTNAME RANDOMS with
    the density in its ``DENSITY`` keyword, as desitarget writes it. Same seed, same bytes."""
    import fitsio

    started = time.perf_counter()
    boxes = _boxes(box)
    if not n_per_deg2 > 0:
        raise ValueError(f"n_per_deg2 must be positive, got {n_per_deg2}")
    if photsys not in ("N", "S"):
        raise ValueError(f"photsys must be 'N' or 'S', got {photsys!r}")
    path = str(path)
    rng = np.random.default_rng(seed)
    areas = np.array([_sphere_area(b.ra_min, b.ra_max, b.dec_min, b.dec_max) for b in boxes])
    rows = int(rng.poisson(n_per_deg2 * areas.sum()))
    per_box = rng.multinomial(rows, areas / areas.sum())
    ra_parts, dec_parts = [], []
    for b, n in zip(boxes, per_box):
        ra = rng.uniform(b.ra_min, b.ra_max, n)
        dec = np.degrees(np.arcsin(rng.uniform(math.sin(math.radians(b.dec_min)),
                                               math.sin(math.radians(b.dec_max)), n)))
        # Float rounding at an edge must not push a point out of its half-open box.
        ra_parts.append(np.minimum(ra, np.nextafter(b.ra_max, -np.inf)))
        dec_parts.append(np.clip(dec, b.dec_min, np.nextafter(b.dec_max, -np.inf)))
    ra, dec = np.concatenate(ra_parts), np.concatenate(dec_parts)
    brickid = brickid_at(ra, dec)
    order = np.lexsort((ra, brickid))
    ra, dec, brickid = ra[order], dec[order], brickid[order]
    names = brick_table()["brickname"].to_numpy()[brickid - 1].astype("S8")
    starts = np.flatnonzero(np.r_[True, brickid[1:] != brickid[:-1]]) if rows else \
        np.zeros(0, np.int64)
    objid = np.arange(rows) - np.repeat(starts, np.diff(np.r_[starts, rows]))
    unique_ids = np.unique(brickid)
    ebv = rng.uniform(0.01, 0.1, unique_ids.size)[np.searchsorted(unique_ids, brickid)]
    dtype = randoms_dtype()
    header = [{"name": "DENSITY", "value": float(n_per_deg2),
               "comment": "random points per deg^2"}]
    with fitsio.FITS(path, "rw", clobber=True) as fits:
        fits.write(None)
        if rows == 0:
            fits.create_table_hdu(dtype=dtype, extname="RANDOMS", header=header)
        for start in range(0, rows, chunk_rows):
            part = slice(start, min(start + chunk_rows, rows))
            chunk = _fill_randoms(rng, dtype, ra[part], dec[part], brickid[part], objid[part],
                                  names[part], ebv[part], release, photsys)
            if mask is not None:
                mask.apply(chunk)
            if start == 0:
                fits.write(chunk, extname="RANDOMS", header=header)
            else:
                fits[-1].append(chunk)
    return RandomsSummary(path, rows, os.path.getsize(path), float(areas.sum()),
                          float(n_per_deg2), time.perf_counter() - started)


def randoms_name(k: int) -> str:
    """The survey's name of the k-th randoms file at 2,500 per deg²."""
    return f"randoms-1-{k}.fits"


def generate_randoms_sample(
    outdir: Union[str, Path],
    boxes: Sequence[SweepBox],
    files: int,
    seed: int = 0,
    mask: Optional[PlantedMask] = None,
    n_per_deg2: float = RANDOMS_DENSITY,
    progress: Optional[Any] = None,
) -> list[RandomsSummary]:
    """``files`` randoms files ``randoms-1-<k>.fits`` over ``boxes`` in ``outdir``, each an
    independent draw, plus ``outdir/randoms.txt`` (absolute paths)."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    seeds = np.random.SeedSequence(seed, spawn_key=(RANDOMS_SPAWN_KEY,)).spawn(files)
    summaries = []
    for k, file_seed in enumerate(seeds):
        summary = generate_randoms(outdir / randoms_name(k), boxes, n_per_deg2, file_seed,
                                   mask)
        summaries.append(summary)
        if progress is not None:
            progress(summary)
    (outdir / "randoms.txt").write_text(
        "".join(f"{Path(s.path).resolve()}\n" for s in summaries))
    return summaries
