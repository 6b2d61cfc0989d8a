"""Density, regions and the sky map: from counts to what astronomers scout with."""

from __future__ import annotations

import builtins

import fitsio
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from halo_lrg.cli import main
from halo_lrg.science.bricks import UnknownBrickError, brick_table, bricks_in_box
from halo_lrg.science.density import TableError, density_table, read_counts_csv, read_qa_table
from halo_lrg.science.plot import MissingExtraError, plot_density_map
from halo_lrg.science.regions import format_regions_table, rank_regions


def counts_in_box(ra_min, ra_max, dec_min, dec_max, per_brick):
    bricks = bricks_in_box(ra_min, ra_max, dec_min, dec_max)
    return pd.DataFrame({"brickname": bricks["brickname"],
                         "lrg_count": np.full(len(bricks), per_brick)})


def test_density_is_count_over_exact_area():
    counts = pd.DataFrame({"brickname": ["0001p000", "1501p025"], "lrg_count": [40, 0]})
    table = density_table(counts)
    assert list(table.columns) == ["brickname", "ra", "dec", "area_deg2", "lrg_count",
                                   "lrg_density"]
    areas = brick_table(["0001p000", "1501p025"])["area_deg2"].to_numpy()
    np.testing.assert_allclose(table["lrg_density"], [40 / areas[0], 0.0])
    assert table.loc[1, "area_deg2"] == pytest.approx(0.0624404643164, abs=1e-12)


def test_qa_tables_merge_on_brickname_keeping_their_columns(tmp_path):
    counts = pd.DataFrame({"brickname": ["0001p000", "1501p025"], "lrg_count": [3, 4]})
    qa = np.zeros(2, dtype=[("BRICKNAME", "S8"), ("EBV", ">f4"), ("PSFDEPTH_Z", ">f4")])
    qa["BRICKNAME"] = [b"1501p025", b"0001p000"]
    qa["EBV"] = [0.02, 0.05]
    fitsio.write(str(tmp_path / "qa.fits"), qa)
    table = density_table(counts, read_qa_table(tmp_path / "qa.fits"))
    assert list(table.columns[-2:]) == ["EBV", "PSFDEPTH_Z"]
    assert table["EBV"].tolist() == pytest.approx([0.05, 0.02])
    pd.DataFrame({"brickname": ["1501p025"], "depth": [24.1]}).to_csv(tmp_path / "qa.csv")
    merged = density_table(counts, read_qa_table(tmp_path / "qa.csv"))
    assert np.isnan(merged["depth"][0]) and merged["depth"][1] == 24.1


def test_unknown_bricks_and_bad_tables_are_named(tmp_path):
    with pytest.raises(UnknownBrickError, match="'9999x999'"):
        density_table(pd.DataFrame({"brickname": ["9999x999"], "lrg_count": [1]}))
    (tmp_path / "c.csv").write_text("name,count\n1501p025,3\n")
    with pytest.raises(TableError, match=r"c\.csv: expected the header 'brickname,lrg_count'"):
        read_counts_csv(tmp_path / "c.csv")
    (tmp_path / "q.csv").write_text("x,y\n1,2\n")
    with pytest.raises(TableError, match=r"q\.csv: no BRICKNAME column"):
        read_qa_table(tmp_path / "q.csv")


def test_regions_pick_the_planted_dense_cell():
    background = counts_in_box(150, 160, 0, 10, per_brick=30)
    dense = set(bricks_in_box(156, 158, 4, 6)["brickname"])  # exactly one 2-degree cell
    background.loc[background["brickname"].isin(dense), "lrg_count"] = 90
    regions = rank_regions(density_table(background), cell_deg=2.0, top=3)
    best = regions.iloc[0]
    assert (best.cell_ra_min, best.cell_ra_max, best.cell_dec_min, best.cell_dec_max) == (
        156.0, 158.0, 4.0, 6.0)
    assert best.n_bricks == len(dense) and best.lrg_count == 90 * len(dense)
    assert best.lrg_density == pytest.approx(best.lrg_count / best.area_deg2)
    assert regions["lrg_density"].iloc[1] < best.lrg_density / 2
    assert regions["lrg_density"].is_monotonic_decreasing
    assert "LRG/deg²" in format_regions_table(regions)


def test_region_density_is_area_weighted_and_min_area_filters():
    table = density_table(pd.DataFrame({"brickname": ["1501p025", "1503p025", "0001p000"],
                                        "lrg_count": [10, 30, 100]}))
    regions = rank_regions(table, cell_deg=1.0, top=5)
    cell = regions[regions["cell_ra_min"] == 150.0].iloc[0]
    assert cell.n_bricks == 2 and cell.lrg_count == 40
    assert cell.lrg_density == pytest.approx(40 / table["area_deg2"][:2].sum())
    assert len(rank_regions(table, cell_deg=1.0, top=5, min_area=0.1)) == 1


def test_plot_writes_a_png_of_the_configured_size(tmp_path):
    table = density_table(counts_in_box(150, 152, 0, 2, per_brick=40))
    table.loc[::3, "lrg_count"] = 10
    out = plot_density_map(table, tmp_path / "map.png", histogram=tmp_path / "hist.png",
                           dpi=50, figsize=(8, 5))
    image = __import__("matplotlib.image", fromlist=["imread"]).imread(str(out))
    assert image.shape[:2] == (250, 400)
    assert image.std() > 0.05  # not blank
    assert (tmp_path / "hist.png").stat().st_size > 1000


def test_plot_without_matplotlib_says_how_to_install(monkeypatch, tmp_path):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(MissingExtraError, match=r"pip install 'halo-lrg\[plot\]'"):
        plot_density_map(density_table(counts_in_box(150, 151, 0, 1, 5)), tmp_path / "m.png")


def test_density_regions_plot_through_the_cli(tmp_path):
    counts = counts_in_box(150, 154, 0, 4, per_brick=35)
    counts.to_csv(tmp_path / "counts.csv", index=False)
    runner = CliRunner()
    result = runner.invoke(main, ["density", str(tmp_path / "counts.csv"), "--output",
                                  str(tmp_path / "density.csv")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["regions", str(tmp_path / "density.csv"), "--cell-deg", "2",
                                  "--top", "2", "--output", str(tmp_path / "regions.csv")])
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(tmp_path / "regions.csv")) == 2 and "rank" in result.output
    result = runner.invoke(main, ["plot", str(tmp_path / "density.csv"), "--output",
                                  str(tmp_path / "map.png")])
    assert result.exit_code == 0 and (tmp_path / "map.png").stat().st_size > 10_000
    result = runner.invoke(main, ["density", str(tmp_path / "nope.csv"), "--output", "x.csv"])
    assert result.exit_code == 1 and "nope.csv: no such file" in result.output


def test_synth_randoms_then_area_then_density_through_the_cli(spark, tmp_path):
    from halo_lrg.science.area import AREA_COLUMNS
    from halo_lrg.survey.names import SweepBox
    from halo_lrg.survey.synth import PlantedMask

    runner = CliRunner()
    out = tmp_path / "sample"
    result = runner.invoke(main, ["synth", str(out), "--files", "1", "--rows", "20000",
                                  "--seed", "5", "--ra-start", "150", "--dec-start", "0",
                                  "--randoms", "2"])
    assert result.exit_code == 0, result.output
    listed = (out / "randoms.txt").read_text().split()
    assert [p.rsplit("/", 1)[-1] for p in listed] == ["randoms-1-0.fits", "randoms-1-1.fits"]
    assert "unmasked (mask bits 12290)" in result.output
    # the same mask is planted in the sweep: objects in the hole carry MASKBITS bit 1
    mask = PlantedMask.default_for(SweepBox(150.0, 155.0, 0.0, 5.0))
    sweep = fitsio.read(str(out / "sweep-150p000-155p005.fits"), columns=["RA", "DEC",
                                                                            "MASKBITS"])
    hole = mask.in_hole(sweep["RA"], sweep["DEC"])
    assert hole.any() and (sweep["MASKBITS"][hole] & 2).all()

    area_csv = tmp_path / "area.csv"
    result = runner.invoke(main, ["area", "--randoms", str(out / "randoms.txt"), "--output",
                                  str(area_csv)])
    assert result.exit_code == 0, result.output
    assert "[1/2] randoms-1-0.fits" in result.output and "[2/2] randoms-1-1.fits" in result.output
    area = pd.read_csv(area_csv, dtype={"brickname": str})
    assert area.columns.tolist() == AREA_COLUMNS
    truth = mask.unmasked_area(150.0, 155.0, 0.0, 5.0)
    sigma = np.sqrt(area["n_kept"].sum()) / (2500 * 2)
    assert abs(area["area_eff_deg2"].sum() - truth) < 4 * sigma
    np.testing.assert_allclose(area["area_eff_deg2"], area["n_kept"] / 5000)

    unmasked_csv = tmp_path / "all.csv"
    result = runner.invoke(main, ["area", "--randoms", str(out / "randoms.txt"), "--output",
                                  str(unmasked_csv), "--mask-bits", "0"])
    assert result.exit_code == 0, result.output
    no_bits = pd.read_csv(unmasked_csv)
    assert (no_bits["n_randoms"] == area["n_randoms"]).all()
    assert no_bits["n_kept"].sum() > area["n_kept"].sum()

    counts = counts_in_box(150, 152, 0, 3, per_brick=35)
    counts.to_csv(tmp_path / "counts.csv", index=False)
    result = runner.invoke(main, ["density", str(tmp_path / "counts.csv"), "--area",
                                  str(area_csv), "--output", str(tmp_path / "density.csv")])
    assert result.exit_code == 0, result.output
    assert "effective area" in result.output
    density = pd.read_csv(tmp_path / "density.csv", dtype={"brickname": str})
    assert density.columns.tolist()[-2:] == ["area_eff_deg2", "lrg_density_eff"]
    bitten = density["area_eff_deg2"] == 0  # bricks wholly in the hole
    assert bitten.any() and density["lrg_density_eff"][bitten].isna().all()
    fine = density["area_eff_deg2"] > 0
    np.testing.assert_allclose(density["lrg_density_eff"][fine],
                               35 / density["area_eff_deg2"][fine])


def test_area_command_names_bad_inputs(spark, tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["area", "--randoms", str(tmp_path / "none.txt"), "--output",
                                  str(tmp_path / "a.csv")])
    assert result.exit_code == 1 and "none.txt: no such file" in result.output
    (tmp_path / "empty.txt").write_text("# nothing\n")
    result = runner.invoke(main, ["area", "--randoms", str(tmp_path / "empty.txt"), "--output",
                                  str(tmp_path / "a.csv")])
    assert result.exit_code == 1 and "lists no randoms file" in result.output
    (tmp_path / "bad.fits").write_text("not FITS\n")
    (tmp_path / "index.txt").write_text(f"{tmp_path / 'bad.fits'}\n")
    result = runner.invoke(main, ["area", "--randoms", str(tmp_path / "index.txt"), "--output",
                                  str(tmp_path / "a.csv")])
    assert result.exit_code == 1 and "bad.fits" in result.output
    assert not (tmp_path / "a.csv").exists()
    counts_in_box(150, 151, 0, 1, 5).to_csv(tmp_path / "counts.csv", index=False)
    result = runner.invoke(main, ["density", str(tmp_path / "counts.csv"), "--area",
                                  str(tmp_path / "nope.csv"), "--output", str(tmp_path / "d.csv")])
    assert result.exit_code == 1 and "nope.csv: no such file" in result.output


def test_synth_without_randoms_writes_none(tmp_path):
    result = CliRunner().invoke(main, ["synth", str(tmp_path), "--files", "1", "--rows", "100"])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "randoms.txt").exists() and "randoms-1" not in result.output
