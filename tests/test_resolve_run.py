"""North/south resolved as DESI does: a run over both photometric systems keeps each object
only from the system desitarget's ``targets.resolve`` keeps where it lies; ``auto`` (the
default) decides after reading, from the systems the files hold; ``--resolve`` /
``--no-resolve``; the manifest says which applied and why; resume keeps both tallies; and
``halo-lrg index --region both`` builds the combined index."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import fitsio
import numpy as np
import pandas as pd
import pytest
from chispa import assert_df_equality
from click.testing import CliRunner

from halo_lrg.cli import main
from halo_lrg.count.local import count_columns, count_optional, count_sweep_file
from halo_lrg.science.cuts import get_selection, get_selections
from halo_lrg.science.resolve import RESOLVE_DEC, resolve_catalogue
from halo_lrg.spark.job import count_lrgs
from halo_lrg.spark.run import JobSpec, decide_north_south, run_job
from halo_lrg.survey.names import SweepBox, sweep_name
from halo_lrg.survey.synth import generate_sweep

ROWS = 4000
#: Boxes imaged twice: one in the north Galactic cap across Dec 32.375 (N kept above it, S
#: below), one in the south Galactic cap above it (S kept: the northern area is north of the
#: plane only); and one below the line imaged by DECam alone.
BOTH = [SweepBox(150.0, 155.0, 30.0, 35.0), SweepBox(20.0, 25.0, 30.0, 35.0)]
SOUTH_ONLY = SweepBox(150.0, 155.0, 25.0, 30.0)
NORTH, SOUTH = 9011, 9010  # DR9 releases: BASS/MzLS, DECam


def write(directory: Path, box: SweepBox, release: int, seed: int, rows: int = ROWS) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / sweep_name(box)
    generate_sweep(path, box, rows, seed=seed, release_default=release,
                   release_10002_fraction=0.0)
    return path


@pytest.fixture(scope="module")
def dr9(tmp_path_factory) -> dict:
    """DR9-like north and south sweeps of the same boxes, and their indexes."""
    root = tmp_path_factory.mktemp("dr9")
    north = [write(root / "north", box, NORTH, seed=k) for k, box in enumerate(BOTH)]
    south = [write(root / "south", box, SOUTH, seed=10 + k) for k, box in enumerate(BOTH)]
    south.append(write(root / "south", SOUTH_ONLY, SOUTH, seed=20))
    indexes = {}
    for name, paths in (("both", [*north, *south]), ("south_index", south)):
        indexes[name] = root / f"{name}.txt"
        indexes[name].write_text("".join(f"{p}\n" for p in paths))
    return {"root": root, "north_files": north, "south_files": south, **indexes}


def run(spark, config, index: Path, out: Path, **run_overrides):
    cfg = config.replace(run={"progress_interval": 0.2, **run_overrides})
    return run_job(spark, JobSpec(str(index), str(out), cfg), emit=lambda _line: None)


def read_csv(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "lrg_counts_per_brick" / "part-00000.csv",
                       dtype={"brickname": str})


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def catalogue(paths) -> np.ndarray:
    return np.concatenate([fitsio.read(str(p), ext=1) for p in paths])


def per_brick(data: np.ndarray, selections: dict) -> pd.DataFrame:
    """``brickname, n_objects, <name>...`` of ``data`` with each selection's mask."""
    frame = pd.DataFrame({"brickname": np.char.strip(data["BRICKNAME"].astype(str)),
                          "n_objects": 1,
                          **{name: mask.astype(np.int64) for name, mask in selections.items()}})
    return frame.groupby("brickname", as_index=False, sort=True).sum()


# --- the differential test against desitarget ----------------------------------------------------

@pytest.mark.spark
def test_a_run_over_both_systems_equals_counting_desitarget_resolved_objects(
        spark, config, dr9, tmp_path):
    targets = pytest.importorskip("desitarget.targets")
    desitarget_cuts = pytest.importorskip("desitarget.cuts")
    desitarget_io = pytest.importorskip("desitarget.io")
    logging.getLogger("desitarget").setLevel(logging.ERROR)

    data = catalogue([*dr9["north_files"], *dr9["south_files"]])
    resolved = targets.resolve(data)
    assert 0 < len(resolved) < len(data)
    south = np.asarray(desitarget_io.release_to_photsys(resolved["RELEASE"])).astype(str) == "S"

    def dered(cat, band):
        with np.errstate(all="ignore"):
            return cat[f"FLUX_{band}"] / cat[f"MW_TRANSMISSION_{band}"]

    def is_lrg(cat, hemisphere):
        with np.errstate(all="ignore"):
            return np.asarray(desitarget_cuts.isLRG(
                gflux=dered(cat, "G"), rflux=dered(cat, "R"), zflux=dered(cat, "Z"),
                w1flux=dered(cat, "W1"),
                zfiberflux=cat["FIBERFLUX_Z"] / cat["MW_TRANSMISSION_Z"],
                rfluxivar=cat["FLUX_IVAR_R"], zfluxivar=cat["FLUX_IVAR_Z"],
                w1fluxivar=cat["FLUX_IVAR_W1"], gaiagmag=cat["GAIA_PHOT_G_MEAN_MAG"],
                gnobs=cat["NOBS_G"], rnobs=cat["NOBS_R"], znobs=cat["NOBS_Z"],
                maskbits=cat["MASKBITS"], zfibertotflux=cat["FIBERTOTFLUX_Z"],
                south=hemisphere), dtype=bool)

    desi = np.where(south, is_lrg(resolved, True), is_lrg(resolved, False))
    seed = get_selection("seed", config.cuts)(resolved)
    expected = per_brick(resolved, {"seed": seed, "desi-lrg": desi})

    out = tmp_path / "out"
    result = run(spark, config.replace(cuts={"selection": "seed,desi-lrg"}), dr9["both"], out)
    got = read_csv(out)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    record = manifest(out)
    assert record["north_south"] == {
        "mode": "auto", "applied": True,
        "reason": "run.resolve = auto: both photometric systems appear (N in 2 file(s), S in "
                  "3 file(s))",
        "systems": ["N", "S"], "files": {"N": 2, "S": 3}, "unresolved_files": []}
    # totals and each file's entry are after resolution; the CSV is what the totals say
    assert record["totals"]["objects"] == len(resolved) == int(got["n_objects"].sum())
    assert record["totals"]["lrg_by_selection"] == {"seed": int(seed.sum()),
                                                    "desi-lrg": int(desi.sum())}
    sgc_north = next(f for f in record["files"]
                     if f["uri"] == str(dr9["north_files"][1]))  # N in the south Galactic cap
    assert sgc_north["photsys"] == "N" and sgc_north["objects"] == 0
    assert sgc_north["dropped_by_resolution"]["objects"] == ROWS
    assert result.north_south["applied"]

    # one selection: brickname,lrg_count of the resolved objects, bricks emptied left out
    one = tmp_path / "one"
    run(spark, config, dr9["both"], one)
    single = read_csv(one)
    assert list(single.columns) == ["brickname", "lrg_count"]
    assert single["brickname"].tolist() == expected["brickname"].tolist()
    assert single["lrg_count"].tolist() == expected["seed"].tolist()
    # and the public API, in one Spark plan
    counts = count_lrgs(spark, [str(p) for p in [*dr9["north_files"], *dr9["south_files"]]],
                        "seed,desi-lrg", config=config)
    assert_df_equality(counts, spark.createDataFrame(expected, counts.schema),
                       ignore_row_order=True, ignore_nullable=True)


# --- auto, on, off -------------------------------------------------------------------------------

@pytest.mark.spark
def test_one_system_alone_is_not_resolved_unless_asked(spark, config, dr9, tmp_path):
    auto, off, on = tmp_path / "auto", tmp_path / "off", tmp_path / "on"
    run(spark, config, dr9["south_index"], auto)
    run(spark, config, dr9["south_index"], off, resolve="off")
    assert read_csv(auto).equals(read_csv(off))
    assert manifest(auto)["north_south"]["applied"] is False
    assert manifest(auto)["north_south"]["reason"] == (
        "run.resolve = auto: only one photometric system appears (S in 3 file(s)): nothing "
        "to resolve")
    assert manifest(off)["north_south"]["mode"] == "off"
    assert manifest(off)["north_south"]["systems"] is None
    assert "photsys" not in manifest(off)["files"][0]  # not looked at
    # --resolve: DECam objects in the northern area (NGC, Dec >= 32.375) go, even alone
    run(spark, config, dr9["south_index"], on, resolve="on")
    data = catalogue(dr9["south_files"])
    keep = resolve_catalogue(data)
    assert 0 < keep.sum() < len(data)
    expected = per_brick(data[keep], {"lrg_count": get_selection("seed", config.cuts)(
        data[keep])})
    got = read_csv(on)
    assert got["brickname"].tolist() == expected["brickname"].tolist()
    assert got["lrg_count"].tolist() == expected["lrg_count"].tolist()
    assert manifest(on)["north_south"]["applied"] is True
    assert manifest(on)["totals"]["objects"] == int(keep.sum())


@pytest.mark.spark
def test_no_resolve_counts_every_object_of_both_systems(spark, config, dr9, tmp_path):
    out = tmp_path / "out"
    run(spark, config.replace(cuts={"selection": "seed,desi-lrg"}), dr9["both"], out,
        resolve="off")
    data = catalogue([*dr9["north_files"], *dr9["south_files"]])
    selections = get_selections("seed,desi-lrg", config.cuts, {})
    expected = per_brick(data, {s.name: s(data) for s in selections})
    pd.testing.assert_frame_equal(read_csv(out), expected, check_dtype=False)
    assert manifest(out)["north_south"]["applied"] is False


def test_resolution_columns_are_read_only_when_it_can_apply(config):
    seed = get_selection("seed", config.cuts)
    assert count_columns(seed, None) == ("BRICKNAME", *seed.columns)
    assert count_optional(seed) == ()
    assert count_columns(seed, None, resolve=True)[-2:] == ("RA", "DEC")
    assert count_optional(seed, resolve=True) == ("PHOTSYS", "RELEASE")


def test_the_cli_flags_set_the_mode(tmp_path):
    result = CliRunner().invoke(main, ["run", "--help"])
    assert "--resolve / --no-resolve" in result.output
    from halo_lrg.config import load_config

    assert load_config(env={}).run.resolve == "auto"
    with pytest.raises(ValueError, match=r"run\.resolve must be one of auto, on, off"):
        JobSpec("i", "o", load_config(env={"HALO_LRG_RUN__RESOLVE": "sometimes"}))


# --- per file: PHOTSYS over RELEASE, unknown systems ---------------------------------------------

def test_a_file_reports_its_systems_from_photsys_else_release(config, dr9, tmp_path):
    from numpy.lib import recfunctions

    seed = get_selection("seed", config.cuts)
    north = count_sweep_file(dr9["north_files"][0], seed, 1000, resolve=True)
    assert north.photsys == "N"
    data = fitsio.read(str(dr9["north_files"][0]), ext=1)
    keep = resolve_catalogue(data)
    assert north.objects - int(north.dropped_objects.sum()) == int(keep.sum())
    # a PHOTSYS column wins over RELEASE (9011 says north; PHOTSYS says south here)
    photsys = np.where(data["DEC"] >= RESOLVE_DEC, b"N", b"S")
    labelled = recfunctions.append_fields(data, "PHOTSYS", photsys, dtypes="S1", usemask=False)
    path = tmp_path / "labelled.fits"
    fitsio.write(str(path), labelled, extname="SWEEP")
    got = count_sweep_file(path, seed, 1000, resolve=True)
    assert got.photsys == "NS"
    expected = resolve_catalogue(labelled)
    assert got.objects - int(got.dropped_objects.sum()) == int(expected.sum())
    # neither PHOTSYS nor RELEASE: "?", nothing dropped
    bare = recfunctions.drop_fields(data, "RELEASE", usemask=False)
    fitsio.write(str(tmp_path / "bare.fits"), bare, extname="SWEEP")
    unknown = count_sweep_file(tmp_path / "bare.fits", seed, 1000, resolve=True)
    assert unknown.photsys == "?" and int(unknown.dropped_objects.sum()) == 0


@pytest.mark.spark
def test_files_of_unknown_system_fail_under_resolve_and_are_listed_under_auto(
        spark, config, dr9, tmp_path):
    from numpy.lib import recfunctions

    data = fitsio.read(str(dr9["south_files"][2]), ext=1)
    bare = tmp_path / "bare" / dr9["south_files"][2].name
    bare.parent.mkdir()
    fitsio.write(str(bare), recfunctions.drop_fields(data, "RELEASE", usemask=False),
                 extname="SWEEP")
    index = tmp_path / "index.txt"
    index.write_text("".join(f"{p}\n" for p in
                             [*dr9["north_files"], *dr9["south_files"][:2], bare]))
    out = tmp_path / "auto"
    run(spark, config, index, out)
    record = manifest(out)
    assert record["north_south"]["applied"] is True
    assert record["north_south"]["unresolved_files"] == [str(bare)]
    forced = tmp_path / "on"
    result = run(spark, config, index, forced, resolve="on", on_error="skip")
    assert [f.uri for f in result.failed] == [str(bare)]
    assert "north/south resolution is on (--resolve) but the file has neither PHOTSYS nor " \
           "RELEASE" in result.failed[0].error


def test_the_decision_rule():
    from halo_lrg.spark.job import FileResult

    def f(photsys, status="ok"):
        return FileResult("u", status, photsys=photsys)

    assert decide_north_south("auto", [f("S"), f("N")])["applied"] is True
    assert decide_north_south("auto", [f("NS")])["applied"] is True
    assert decide_north_south("auto", [f("S"), f("N", "failed")])["applied"] is False
    assert decide_north_south("auto", [f("S"), f("")])["systems"] == ["S"]
    assert decide_north_south("on", [f("S")])["applied"] is True
    assert decide_north_south("off", [f(None)])["applied"] is False


# --- resume: both tallies are stored, so the decision can change without a read ---------------

@pytest.mark.spark
def test_partials_hold_both_tallies_so_resolve_modes_share_them(spark, config, dr9, tmp_path):
    out = tmp_path / "out"
    first = run(spark, config, dr9["south_index"], out)  # auto, one system: not resolved
    assert not first.north_south["applied"]
    forced = run(spark, config, dr9["south_index"], out, resolve="on")  # same partials
    assert len(forced.reused) == len(dr9["south_files"])
    assert forced.north_south["applied"]
    clean = tmp_path / "clean"
    run(spark, config, dr9["south_index"], clean, resolve="on", resume=False)
    assert (out / "lrg_counts_per_brick/part-00000.csv").read_bytes() == \
        (clean / "lrg_counts_per_brick/part-00000.csv").read_bytes()
    # without resolution nothing of it is tallied: other partials, counted again
    off = run(spark, config, dr9["south_index"], out, resolve="off")
    assert not off.reused


# --- the index of both regions -------------------------------------------------------------------

def test_index_of_both_regions_from_saved_listings(tmp_path):
    listings = {}
    for region, names in (("north", ["sweep-150p030-160p035.fits",
                                     "sweep-150p035-160p040.fits"]),
                          ("south", ["sweep-150p025-160p030.fits",
                                     "sweep-150p030-160p035.fits",
                                     "sweep-200p030-210p035.fits"])):
        listings[region] = tmp_path / f"{region}.html"
        listings[region].write_text("".join(f'<a href="{n}">{n}</a>\n' for n in names))
    base = {r: f"https://example.invalid/dr9/{r}/sweep/9.0/" for r in ("north", "south")}
    footprint = ["--ra-min", "150", "--ra-max", "160", "--dec-min", "28", "--dec-max", "36"]
    runner = CliRunner()
    out = tmp_path / "both.txt"
    args = ["index", "--release", "dr9", *footprint, "--no-checksums",
            "--listing", f"north={listings['north']}", "--listing", f"south={listings['south']}",
            "--base-url", f"north={base['north']}", "--base-url", f"south={base['south']}"]
    result = runner.invoke(main, [*args, "--region", "both", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text().splitlines() == [
        f"{base['north']}sweep-150p030-160p035.fits",
        f"{base['north']}sweep-150p035-160p040.fits",
        f"{base['south']}sweep-150p025-160p030.fits",
        f"{base['south']}sweep-150p030-160p035.fits"]
    assert "4 of 5 sweep(s) meet the footprint (north 2, south 2)" in result.output
    other = tmp_path / "ns.txt"
    result = runner.invoke(main, [*args, "--region", "north,south", "--output", str(other)])
    assert result.exit_code == 0 and other.read_text() == out.read_text()
    # without --base-url each region gets the release's public folder
    result = runner.invoke(main, ["index", "--release", "dr9", *footprint, "--no-checksums",
                                  "--region", "both", "--listing", f"north={listings['north']}",
                                  "--listing", f"south={listings['south']}",
                                  "--output", str(tmp_path / "public.txt")])
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "public.txt").read_text().splitlines()
    assert lines[0].endswith("/dr9/north/sweep/9.0/sweep-150p030-160p035.fits")
    assert lines[-1].endswith("/dr9/south/sweep/9.0/sweep-150p030-160p035.fits")
    # mistakes
    result = runner.invoke(main, ["index", "--release", "dr9", "--region", "both",
                                  "--listing", str(listings["north"]), "--output", "x.txt"])
    assert result.exit_code == 2 and "with several regions say which one it is for" in \
        result.output
    result = runner.invoke(main, ["index", "--region", "both", "--listing",
                                  f"north={listings['north']}", "--output", "x.txt"])
    assert result.exit_code == 2 and "no sweeps for dr10/north" in result.output
    result = runner.invoke(main, ["index", "--region", "east", "--output", "x.txt"])
    assert result.exit_code == 2 and "unknown region 'east'" in result.output
    # (--checksums-out with several regions names the combined list: tests/test_checksums.py)
