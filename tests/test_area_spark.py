"""`halo-lrg area` on Spark: randoms files read whole or in row ranges, locally, from S3
(moto's server) and over HTTP (a loopback server with byte ranges), all give the counts of
the per-file local count the command used to make, per brick and per HEALPix pixel; a bad
file fails the command naming it and nothing is written; the tables come in CSV, FITS and
Parquet with units."""

from __future__ import annotations

from pathlib import Path

import fitsio
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from halo_lrg.cli import main
from halo_lrg.config import ConfigError, load_config
from halo_lrg.count.randoms import count_randoms, count_randoms_per_brick, kept_randoms
from halo_lrg.fits.reader import sweep_layout
from halo_lrg.science.area import (
    PIXEL_AREA_COLUMNS,
    area_table,
    merge_pixel_randoms,
    merge_randoms_counts,
    pixel_area_map,
)
from halo_lrg.science.healpix_map import read_map
from halo_lrg.spark.area import AreaFailed, count_randoms_spark, plan_pieces
from halo_lrg.survey.names import SweepBox
from halo_lrg.survey.synth import PlantedMask, generate_randoms
from test_http_ranges import fresh, loopback
from test_remote_parts import Handler

pytestmark = pytest.mark.spark

BUCKET = "halo-area"
BOX = SweepBox(150.0, 155.0, 0.0, 5.0)
DENSITY = 400.0  # randoms per deg² per generated file: ~10,000 rows, ~1.4 MB a file
NSIDE = 64


# --- inputs and the reference: the command's old per-file local count ---------------------------

@pytest.fixture(scope="module")
def randoms(tmp_path_factory) -> dict:
    """Two masked randoms files over BOX and their index; the old implementation's CSV bytes
    (file by file, count_randoms_per_brick, merged, area_table) and per-pixel counts."""
    out = tmp_path_factory.mktemp("randoms")
    mask = PlantedMask.default_for(BOX)
    paths = [Path(generate_randoms(out / f"randoms-1-{k}.fits", BOX, DENSITY, seed=40 + k,
                                   mask=mask).path) for k in range(2)]
    (out / "randoms.txt").write_text("".join(f"{p}\n" for p in paths))
    bricks = merge_randoms_counts([count_randoms_per_brick(p).frame() for p in paths])
    old_csv = area_table(bricks, len(paths), DENSITY).to_csv(index=False, float_format="%.10g")
    pixels = merge_pixel_randoms([count_randoms(p, nside=NSIDE).pixels.frame() for p in paths])
    return {"dir": out, "paths": paths, "index": out / "randoms.txt", "bricks": bricks,
            "pixels": pixels, "csv": old_csv.encode()}


def split_config(config, paths: list[Path], parts: int):
    """A configuration splitting the largest of ``paths`` in ``parts`` row ranges (0: none)."""
    largest = max(p.stat().st_size for p in paths)
    return config.replace(area={"split_bytes": 0 if parts == 0 else -(-largest // parts),
                                "pack_bytes": 0})


def assert_same_counts(got, randoms) -> None:
    pd.testing.assert_frame_equal(got.bricks, randoms["bricks"])
    pd.testing.assert_frame_equal(got.pixels, randoms["pixels"])


# --- the planner (pure) --------------------------------------------------------------------------

@given(st.lists(st.one_of(st.none(), st.integers(0, 5000)), min_size=1, max_size=20),
       st.integers(0, 3000), st.integers(0, 8000), st.integers(1, 8))
def test_the_plan_reads_every_piece_once_largest_first(sizes, split, pack, cores):
    pieces, tasks = plan_pieces(sizes, split, pack, cores)
    flat = [p for task in tasks for p in task]
    assert sorted(flat, key=lambda p: (p.file, p.rows.part)) == pieces  # each piece once
    assert [p.file for p in pieces] == sorted(p.file for p in pieces)  # index order
    known = [p.bytes for p in flat if p.bytes is not None]
    assert known == sorted(known, reverse=True)  # the longest tasks start first
    assert all(len(task) == 1 for task in tasks if task[0].bytes is None)  # unknown: alone
    for index, size in enumerate(sizes):
        mine = [p for p in pieces if p.file == index]
        assert sum(p.bytes or 0 for p in mine) == (size or 0)
        assert len(mine) == (1 if size is None or split == 0 or size <= split
                             else -(-size // split))


# --- same counts however the files are read -----------------------------------------------------

@pytest.mark.parametrize("parts", [0, 1, 3, 7])
def test_split_or_not_the_counts_are_the_per_file_counts(spark, config, randoms, parts):
    got = count_randoms_spark(spark, [str(p) for p in randoms["paths"]], nside=NSIDE,
                              config=split_config(config, randoms["paths"], parts))
    assert_same_counts(got, randoms)
    assert got.files_split == (2 if parts > 1 else 0)
    assert len(got.pieces) == (2 * parts if parts > 1 else 2)
    assert [s.number for s in got.pieces] == list(range(1, len(got.pieces) + 1))
    assert all(s.ok for s in got.pieces)
    assert sum(s.rows for s in got.pieces) == randoms["bricks"]["n_randoms"].sum()


def test_pixels_agree_with_healpy_and_sum_to_the_brick_total(spark, config, randoms):
    hp = pytest.importorskip("healpy")
    got = count_randoms_spark(spark, [str(p) for p in randoms["paths"]], nside=NSIDE,
                              config=split_config(config, randoms["paths"], 4))
    # healpy's pixel of every kept point, counted over both files: the reference map.
    kept_pixels = []
    for path in randoms["paths"]:
        data = fitsio.read(str(path), columns=["RA", "DEC", "NOBS_G", "NOBS_R", "NOBS_Z",
                                               "MASKBITS"])
        keep = kept_randoms(data)
        kept_pixels.append(hp.ang2pix(NSIDE, data["RA"][keep], data["DEC"][keep], nest=True,
                                      lonlat=True))
    pixel, n_kept = np.unique(np.concatenate(kept_pixels), return_counts=True)
    mine = got.pixels[got.pixels["n_kept"] > 0]
    np.testing.assert_array_equal(mine["pixel"], pixel)
    np.testing.assert_array_equal(mine["n_kept"], n_kept)
    # Per-pixel and per-brick areas are the same points: equal totals.
    bricks, hmap = got.area_table(DENSITY), got.pixel_map(DENSITY)
    assert hmap.table["n_kept"].sum() == bricks["n_kept"].sum() > 0
    assert hmap.table["n_randoms"].sum() == bricks["n_randoms"].sum()
    assert hmap.table["area_eff_deg2"].sum() == pytest.approx(bricks["area_eff_deg2"].sum(),
                                                              rel=1e-12)


@pytest.fixture
def http_server():
    handler = fresh(Handler)
    with loopback(handler) as base:
        yield base, handler


@pytest.mark.parametrize("protocol", ["s3", "http"])
def test_remote_randoms_split_in_ranges_give_the_per_file_counts(spark, config, randoms,
                                                                 request, protocol):
    uris = []
    if protocol == "s3":
        s3 = request.getfixturevalue("s3")
        for path in randoms["paths"]:
            s3.upload_file(str(path), BUCKET, f"randoms/{path.name}")
            uris.append(f"s3://{BUCKET}/randoms/{path.name}")
    else:
        base, handler = request.getfixturevalue("http_server")
        for path in randoms["paths"]:
            handler.files[f"/{path.name}"] = [path.read_bytes(), '"v1"']
            uris.append(f"{base}/{path.name}")
    got = count_randoms_spark(spark, uris, nside=NSIDE,
                              config=split_config(config, randoms["paths"], 3))
    assert_same_counts(got, randoms)
    assert {s.part for s in got.pieces} == {"1/3", "2/3", "3/3"}
    if protocol == "http":
        # Each part fetched its own rows' bytes, not the whole file: about a third each.
        sizes = sorted(p.stat().st_size for p in randoms["paths"])
        assert handler.stats["sent"] < 1.5 * sum(sizes)
        assert all(e["range"] for e in handler.log)


# --- the command ----------------------------------------------------------------------------------

def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.mark.parametrize("split", ["0", "400000"])
def test_the_command_writes_the_old_csv_byte_for_byte(spark, randoms, tmp_path, split):
    out = tmp_path / "area.csv"
    result = invoke("area", "--randoms", str(randoms["index"]), "--output", str(out),
                    "--density", str(DENSITY), "--split-bytes", split)
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == randoms["csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["area.csv"]
    lines = result.output.splitlines()
    if split == "0":
        assert any(line.startswith("[1/2] randoms-1-0.fits  ") for line in lines)
        assert any(line.startswith("[2/2] randoms-1-1.fits  ") for line in lines)
    else:  # ~1.4 MB files in ranges of 400 kB: four each, a line per range
        ranges = [line for line in lines if "(rows part " in line]
        assert len(ranges) == 8 and "2 split in row ranges" in result.output
    assert f"from 2 file(s) at {DENSITY:g} per deg²" in result.output


def test_healpix_nside_and_formats_write_readable_tables_with_units(spark, randoms, tmp_path):
    from astropy import units as u
    from astropy.table import Table

    out = tmp_path / "area.csv"
    result = invoke("area", "--randoms", str(randoms["index"]), "--output", str(out),
                    "--density", str(DENSITY), "--healpix-nside", str(NSIDE),
                    "--format", "fits,parquet")
    assert result.exit_code == 0, result.output
    stem = f"area_healpix{NSIDE}"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["area.csv", "area.fits", "area.parquet", f"{stem}.csv", f"{stem}.fits",
         f"{stem}.parquet"])
    assert out.read_bytes() == randoms["csv"]
    csv = pd.read_csv(out, dtype={"brickname": str})
    fits = Table.read(tmp_path / "area.fits")
    assert fits["area_eff_deg2"].unit == u.deg ** 2
    assert fits.meta["NFILES"] == 2 and fits.meta["MASKBITS"] == 12290
    assert [str(n).strip() for n in fits["brickname"]] == csv["brickname"].tolist()
    np.testing.assert_array_equal(fits["n_kept"], csv["n_kept"])
    np.testing.assert_allclose(fits["area_eff_deg2"], csv["area_eff_deg2"], rtol=1e-9)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "area.parquet"), csv,
                                  check_exact=False, rtol=1e-9)

    truth = pixel_area_map(randoms["pixels"], NSIDE, 2, DENSITY)
    for name in (f"{stem}.csv", f"{stem}.fits"):
        hmap = read_map(tmp_path / name)
        assert hmap.nside == NSIDE and hmap.table.columns.tolist() == PIXEL_AREA_COLUMNS
        pd.testing.assert_frame_equal(hmap.table, truth.table, check_exact=False, rtol=1e-9)
    table = Table.read(tmp_path / f"{stem}.fits")
    assert table["area_eff_deg2"].unit == u.deg ** 2 and table.meta["NSIDE"] == NSIDE
    assert table.meta["ORDERING"] == "NESTED"
    assert table["n_kept"].sum() == csv["n_kept"].sum()
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / f"{stem}.parquet"), truth.table,
                                  check_exact=False, rtol=1e-9)
    assert f"pixels at nside {NSIDE}" in result.output


def test_a_truncated_randoms_file_fails_naming_it_and_writes_nothing(spark, randoms,
                                                                      tmp_path):
    good = randoms["paths"][0]
    layout = sweep_layout(str(good))
    cut = tmp_path / "randoms-1-9.fits"
    cut.write_bytes(good.read_bytes()[:layout.data_start + layout.nrows // 2 * layout.row_bytes
                                      + 50])
    index = tmp_path / "randoms.txt"
    index.write_text(f"{good}\n{cut}\n")
    for split in ("0", "300000"):
        out = tmp_path / "out" / "area.csv"
        result = invoke("area", "--randoms", str(index), "--output", str(out),
                        "--healpix-nside", "16", "--format", "fits", "--split-bytes", split)
        assert result.exit_code == 1
        last = result.output.strip().splitlines()[-1]
        assert last.startswith(f"Error: {cut}") and "truncated" in last, last
        if split != "0":
            assert "(rows part " in last
        assert not (tmp_path / "out").exists()


def test_a_missing_remote_file_fails_naming_it(spark, config, randoms, http_server):
    base, handler = http_server
    handler.files["/randoms-1-0.fits"] = [randoms["paths"][0].read_bytes(), '"v1"']
    with pytest.raises(AreaFailed, match=r"^" + base + r"/gone\.fits: .*404"):
        count_randoms_spark(spark, [f"{base}/randoms-1-0.fits", f"{base}/gone.fits"],
                            config=config)


def test_bad_arguments_are_refused_before_spark(tmp_path, randoms):
    runner = CliRunner()
    result = runner.invoke(main, ["area", "--randoms", str(randoms["index"]), "--output",
                                  str(tmp_path / "a.csv"), "--healpix-nside", "100"])
    assert result.exit_code == 2 and "power of two" in result.output
    result = runner.invoke(main, ["area", "--randoms", str(randoms["index"]), "--output",
                                  str(tmp_path / "a.csv"), "--format", "xls"])
    assert result.exit_code == 2 and "xls" in result.output
    assert not (tmp_path / "a.csv").exists()


def test_the_area_settings_come_from_the_config():
    area = load_config(env={}).area
    assert (area.mask_bits, area.density, area.split_bytes) == (12290, 2500.0, 268435456)
    assert load_config(env={"HALO_LRG_AREA__DENSITY": "1000"}).area.density == 1000.0
    for key, value in (("SPLIT_BYTES", "-1"), ("DENSITY", "0"), ("MASK_BITS", "-3")):
        with pytest.raises(ConfigError, match=f"area.{key.lower()}"):
            load_config(env={f"HALO_LRG_AREA__{key}": value})


def test_help_says_what_area_eff_is_and_how_files_are_split():
    text = invoke("area", "--help").output
    assert "area_eff_deg2 = n_kept / (density x files)" in text
    assert "--split-bytes" in text and "--healpix-nside" in text and "Example" in text
