"""Several selections in one pass: named variants in the configuration, one read of each file
counting every selection, the wide CSV and density table, the manifest's definitions, resume
keyed on the whole set, and the public Spark API returning one column per selection."""

from __future__ import annotations

import json
from pathlib import Path

import fitsio
import numpy as np
import pandas as pd
import pytest
from chispa import assert_df_equality
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from halo_lrg.cli import main
from halo_lrg.config import ConfigError, load_config, to_toml
from halo_lrg.count.local import _BrickTally, count_columns, count_sweep_file
from halo_lrg.io.fetch import InputIdentity
from halo_lrg.io.output import counts_csv_bytes
from halo_lrg.science.cuts import (
    DESI_LRG_SOUTH,
    SelectionError,
    desi_lrg,
    get_selection,
    get_selections,
    selections_of,
)
from halo_lrg.science.density import density_table, one_selection, read_counts_csv
from halo_lrg.science.footprint import Footprint
from halo_lrg.spark.job import PARTIAL_SCHEMA, count_lrgs, file_task, lrg_partials
from halo_lrg.spark.run import JobSpec, run_job

SEVERAL = "seed,desi-lrg-south,desi-lrg-north,z20p2"
VARIANTS = {"z20p2": {"base": "seed", "lrg_z_mag_max": 20.2},
            "faint": {"base": "desi-lrg-south", "zfiber_max": 21.8,
                      "description": "DESI south, 0.2 mag fainter in the fibre"}}


@pytest.fixture(scope="module")
def cfg():
    return load_config(env={}).replace(selections=VARIANTS)


def csv_of(out: Path) -> str:
    return (out / "lrg_counts_per_brick" / "part-00000.csv").read_text()


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


# --- configuration -------------------------------------------------------------------------------

def test_selection_lists_and_variants_in_a_config_file(tmp_path):
    user = tmp_path / "mine.toml"
    user.write_text('[cuts]\nselection = ["seed", "z20p2"]\n'
                    '[selections]\nz20p2 = {base = "seed", lrg_z_mag_max = 20.2}\n'
                    '[selections.south-faint]\nbase = "desi-lrg-south"\nzfiber_max = 21.8\n')
    cfg = load_config(user, env={})
    assert cfg.cuts.selection == "seed,z20p2"  # one comma string, however given
    assert cfg.selections == {"z20p2": {"base": "seed", "lrg_z_mag_max": 20.2},
                              "south-faint": {"base": "desi-lrg-south", "zfiber_max": 21.8}}
    assert [s.name for s in selections_of(cfg)] == ["seed", "z20p2"]
    assert load_config(user, env={"HALO_LRG_CUTS__SELECTION": " seed , south-faint "}
                       ).cuts.selection == "seed,south-faint"
    from_env = load_config(env={"HALO_LRG_SELECTIONS__Z19": '{base = "seed", '
                                                            'lrg_z_mag_max = 19.0}'})
    assert from_env.selections == {"z19": {"base": "seed", "lrg_z_mag_max": 19.0}}
    # what `submit` ships to the cluster reads back the same
    shipped = tmp_path / "shipped.toml"
    shipped.write_text(to_toml(cfg))
    assert load_config(shipped, env={}) == cfg


@pytest.mark.parametrize("text,message", [
    ('[selections]\nx = 3\n', r"selections\.x: expected a table"),
    ('[selections]\nx = {lrg_z_mag_max = 20.0}\n', r"selections\.x: needs base ="),
    ('[selections]\n"a,b" = {base = "seed"}\n', r"selections\.a,b: a selection name is"),
    ('[selections]\nn_objects = {base = "seed"}\n', r"selections\.n_objects: a selection name"),
    ('[selections]\nx = {base = "seed", lrg_z_mag_max = [1]}\n',
     r"selections\.x\.lrg_z_mag_max: expected a number or a string"),
    ('[cuts]\nselection = ["seed", ""]\n', r"cuts\.selection: expected a name or a list"),
    ('[cuts]\nselection = 3\n', r"cuts\.selection: expected a name or a list"),
])
def test_config_shape_mistakes_are_named_on_load(tmp_path, text, message):
    user = tmp_path / "bad.toml"
    user.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(user, env={})


@pytest.mark.parametrize("variants,message", [
    ({"x": {"base": "nope"}}, r"selections\.x: unknown base 'nope' \(a variant starts from a "
                              r"built-in selection: seed, desi-lrg"),
    ({"x": {"base": "seed", "zfiber_max": 21.0}},
     r"selections\.x: unknown key 'zfiber_max' for base 'seed' \(known: description, "
     r"lrg_z_mag_max"),
    ({"x": {"base": "desi-lrg", "zfiber_max": 21.0}}, r"unknown key 'zfiber_max' for base "
                                                      r"'desi-lrg'"),
    ({"seed": {"base": "seed"}}, r"selections\.seed: 'seed' is a built-in selection"),
    ({"x": {"base": "seed", "lrg_z_mag_max": "deep"}},
     r"selections\.x\.lrg_z_mag_max: expected a finite number, got 'deep'"),
    ({"x": {"base": "seed", "lrg_z_mag_max": float("nan")}}, r"expected a finite number"),
    ({"x": {"base": "desi-lrg", "unknown_release_photsys": "Q"}},
     r"selections\.x\.unknown_release_photsys: expected '', 'S' or 'N'"),
])
def test_variant_bases_and_keys_are_checked_even_when_unused(variants, message):
    cfg = load_config(env={}).replace(selections=variants)
    with pytest.raises(ConfigError, match=message):
        selections_of(cfg)  # only "seed" is asked for: the variant is checked all the same


def test_names_listed_twice_or_unknown_are_refused(cfg):
    with pytest.raises(SelectionError, match="selection 'seed' is named twice"):
        get_selections("seed,desi-lrg,seed", cfg.cuts, cfg.selections)
    with pytest.raises(SelectionError, match="unknown selection 'nope'; choose one of: seed, "
                                             "desi-lrg, desi-lrg-south, desi-lrg-north, "
                                             "faint, z20p2"):
        get_selections("seed,nope", cfg.cuts, cfg.selections)


# --- what a variant is ---------------------------------------------------------------------------

def test_a_variant_is_its_base_with_thresholds_overridden(cfg, sample):
    data = fitsio.read(str(sample["paths"][0]), ext=1)
    z20p2 = get_selection("z20p2", cfg.cuts, cfg.selections)
    seed_202 = get_selection("seed", cfg.replace(cuts={"lrg_z_mag_max": 20.2}).cuts)
    np.testing.assert_array_equal(z20p2(data), seed_202(data))
    assert 0 < z20p2(data).sum() < get_selection("seed", cfg.cuts)(data).sum()
    faint = get_selection("faint", cfg.cuts, cfg.selections)
    constants = DESI_LRG_SOUTH.__class__(**{**vars(DESI_LRG_SOUTH), "zfiber_max": 21.8})
    np.testing.assert_array_equal(faint(data), desi_lrg(data, True, south_cuts=constants))
    # the configured seed thresholds are where a seed variant starts from
    loose = cfg.replace(cuts={"lrg_min_r_minus_z": 0.2})
    assert get_selection("z20p2", loose.cuts, loose.selections).parameters == {
        "lrg_z_mag_max": 20.2, "lrg_min_r_minus_z": 0.2, "lrg_min_z_minus_w1": 0.8}


def test_definitions_say_base_description_parameters_and_quality_mask(cfg):
    seed, desi, z20p2, faint = get_selections("seed,desi-lrg,z20p2,faint", cfg.cuts,
                                              cfg.selections)
    assert seed.definition() == {
        "name": "seed", "base": "seed",
        "description": "dereddened z < 20.4, r - z > 0.4, z - W1 > 0.8",
        "parameters": {"lrg_z_mag_max": 20.4, "lrg_min_r_minus_z": 0.4,
                       "lrg_min_z_minus_w1": 0.8, "quality_mask": None}}
    assert desi.definition()["parameters"]["quality_mask"]["maskbits_reject"] == 12290
    assert z20p2.definition()["base"] == "seed"
    assert z20p2.description == ("dereddened z < 20.2, r - z > 0.4, z - W1 > 0.8 "
                                 "(seed with lrg_z_mag_max = 20.2)")
    assert faint.definition()["description"] == "DESI south, 0.2 mag fainter in the fibre"
    assert faint.definition()["parameters"]["zfiber_max"] == 21.8
    assert faint.definition()["parameters"]["photsys"] == "S"


# --- one read, every selection -------------------------------------------------------------------

@pytest.mark.parametrize("fast", [True, False])
def test_one_read_counts_each_selection_as_its_own_count_would(cfg, sample, fast):
    selections = get_selections(SEVERAL + ",faint,desi-lrg", cfg.cuts, cfg.selections)
    footprint = Footprint(150.0, 153.0, 0.0, 7.0)
    for path in sample["paths"]:
        together = count_sweep_file(path, selections, 1000, fast, footprint)
        assert together.selections == tuple(s.name for s in selections)
        assert together.lrg_counts.shape == (len(selections), together.brickname.size)
        for row, selection in zip(together.lrg_counts, selections):
            alone = count_sweep_file(path, selection, 1000, fast, footprint)
            np.testing.assert_array_equal(together.brickname, alone.brickname)
            np.testing.assert_array_equal(together.n_objects, alone.n_objects)
            np.testing.assert_array_equal(row, alone.lrg_count)
        np.testing.assert_array_equal(together.lrg_count, together.lrg_counts[0])


def test_the_union_of_columns_is_read_once(cfg):
    seed, desi, z20p2 = get_selections("seed,desi-lrg,z20p2", cfg.cuts, cfg.selections)
    columns = count_columns((seed, desi, z20p2), None)
    assert len(columns) == len(set(columns))
    assert set(columns) == {"BRICKNAME", *seed.columns, *desi.columns}
    assert count_columns((seed, z20p2), None) == ("BRICKNAME", *seed.columns)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["1501p025", "0001p000", "1800m900", "15p0    ",
                                           "3599m899", "1501p02 "]),
                          st.booleans(), st.booleans(), st.booleans()),
                min_size=1, max_size=300),
       st.integers(1, 60))
def test_a_tally_of_several_columns_is_right_in_any_order_and_chunking(rows, chunk):
    names = np.array([r[0].encode() for r in rows], dtype="S8")
    selected = np.array([r[1:] for r in rows]).T  # (3, n)
    tally = _BrickTally(3)
    for start in range(0, len(rows), chunk):
        tally.add(names[start:start + chunk], selected[:, start:start + chunk])
    got_names, objects, counts = tally.totals()
    expected = (pd.DataFrame({"brickname": [r[0].rstrip() for r in rows], "n": 1,
                              "a": selected[0].astype(int), "b": selected[1].astype(int),
                              "c": selected[2].astype(int)})
                .groupby("brickname", as_index=False).sum())
    assert got_names.tolist() == expected["brickname"].tolist()
    assert objects.tolist() == expected["n"].tolist()
    assert counts.tolist() == expected[["a", "b", "c"]].to_numpy().T.tolist()


def test_the_wide_csv_layout_and_its_density(tmp_path):
    counts = pd.DataFrame({"brickname": ["1501p025", "0001p000"], "n_objects": [9, 4],
                           "seed": [3, 0], "desi-lrg": [2, 1]})
    csv = counts_csv_bytes(counts)
    assert csv == b"brickname,n_objects,seed,desi-lrg\n0001p000,4,0,1\n1501p025,9,3,2\n"
    (tmp_path / "wide.csv").write_bytes(csv)
    wide = read_counts_csv(tmp_path / "wide.csv")
    table = density_table(wide)
    assert list(table.columns) == ["brickname", "ra", "dec", "area_deg2", "n_objects",
                                   "object_density", "seed", "seed_density", "desi-lrg",
                                   "desi-lrg_density"]
    assert table["seed_density"].tolist() == pytest.approx(
        (table["seed"] / table["area_deg2"]).tolist())
    area = pd.DataFrame({"brickname": ["0001p000"], "area_eff_deg2": [0.05]})
    with_area = density_table(wide, area=area)
    assert with_area.columns[4] == "area_eff_deg2" and "desi-lrg_density_eff" in with_area
    assert with_area["desi-lrg_density_eff"].tolist()[0] == pytest.approx(1 / 0.05)
    # one selection out of the wide table: the one-selection layout, n_objects last
    one = density_table(one_selection(wide, "desi-lrg"))
    assert list(one.columns) == ["brickname", "ra", "dec", "area_deg2", "lrg_count",
                                 "lrg_density", "n_objects"]
    assert one["lrg_count"].tolist() == [1, 2]
    # a single selection's table is what it always was
    single = pd.DataFrame({"brickname": ["0001p000"], "lrg_count": [4]})
    assert counts_csv_bytes(single) == b"brickname,lrg_count\n0001p000,4\n"
    assert list(density_table(single).columns) == ["brickname", "ra", "dec", "area_deg2",
                                                   "lrg_count", "lrg_density"]


# --- the run -------------------------------------------------------------------------------------

def per_file_sum(paths, selection, config) -> pd.DataFrame:
    frames = [count_sweep_file(p, get_selection(selection, config.cuts, config.selections),
                               4096).bricks for p in paths]
    return (pd.concat(frames).groupby("brickname", as_index=False)[["n_objects", "lrg_count"]]
            .sum())


@pytest.mark.spark
def test_a_run_of_several_selections_writes_the_wide_table(spark, cfg, sample, tmp_path):
    out = tmp_path / "out"
    spec = JobSpec(str(sample["index"]), str(out), cfg.replace(cuts={"selection": SEVERAL}),
                   with_density=True)
    result = run_job(spark, spec, emit=lambda _line: None)
    counts = pd.read_csv(out / "lrg_counts_per_brick/part-00000.csv", dtype={"brickname": str})
    names = SEVERAL.split(",")
    assert list(counts.columns) == ["brickname", "n_objects", *names]
    for name in names:  # each column is that selection's own run
        expected = per_file_sum(sample["paths"], name, cfg)
        assert counts["brickname"].tolist() == expected["brickname"].tolist()
        assert counts[name].tolist() == expected["lrg_count"].tolist()
        assert counts["n_objects"].tolist() == expected["n_objects"].tolist()
    record = manifest(out)
    assert [d["name"] for d in record["selections"]] == names
    assert record["selections"][3] == {
        "name": "z20p2", "base": "seed",
        "description": "dereddened z < 20.2, r - z > 0.4, z - W1 > 0.8 "
                       "(seed with lrg_z_mag_max = 20.2)",
        "parameters": {"lrg_z_mag_max": 20.2, "lrg_min_r_minus_z": 0.4,
                       "lrg_min_z_minus_w1": 0.8, "quality_mask": None}}
    assert record["selections"][1]["parameters"]["quality_mask"]["maskbits_reject"] == 12290
    assert record["selection"]["name"] == SEVERAL
    assert record["totals"]["lrg_by_selection"] == {n: int(counts[n].sum()) for n in names}
    assert record["totals"]["lrg"] == int(counts["seed"].sum())
    assert result.lrg_by_selection == record["totals"]["lrg_by_selection"]
    for entry in record["files"]:
        assert list(entry["lrg_by_selection"]) == names
    density = pd.read_csv(out / "lrg_density.csv", dtype={"brickname": str})
    assert list(density.columns[:6]) == ["brickname", "ra", "dec", "area_deg2", "n_objects",
                                         "object_density"]
    assert density["z20p2"].tolist() == counts["z20p2"].tolist()


@pytest.mark.spark
def test_one_selection_of_a_wide_run_is_the_single_runs_csv(spark, cfg, sample, tmp_path):
    run_job(spark, JobSpec(str(sample["index"]), str(tmp_path / "wide"),
                           cfg.replace(cuts={"selection": "seed,desi-lrg"})),
            emit=lambda _line: None)
    run_job(spark, JobSpec(str(sample["index"]), str(tmp_path / "one"),
                           cfg.replace(cuts={"selection": "desi-lrg"})),
            emit=lambda _line: None)
    single = csv_of(tmp_path / "one")
    wide = pd.read_csv(tmp_path / "wide/lrg_counts_per_brick/part-00000.csv",
                       dtype={"brickname": str})
    rebuilt = "brickname,lrg_count\n" + "".join(
        f"{b},{n}\n" for b, n in zip(wide["brickname"], wide["desi-lrg"]))
    assert rebuilt == single
    # and `halo-lrg density --selection` turns the wide table into the single one's density
    result = invoke("density", str(tmp_path / "wide/lrg_counts_per_brick/part-00000.csv"),
                    "--selection", "desi-lrg", "--output", str(tmp_path / "d1.csv"))
    assert result.exit_code == 0, result.output
    result = invoke("density", str(tmp_path / "one/lrg_counts_per_brick/part-00000.csv"),
                    "--output", str(tmp_path / "d2.csv"))
    assert result.exit_code == 0, result.output
    d1 = pd.read_csv(tmp_path / "d1.csv", dtype={"brickname": str})
    d2 = pd.read_csv(tmp_path / "d2.csv", dtype={"brickname": str})
    pd.testing.assert_frame_equal(d1.drop(columns=["n_objects"]), d2)
    result = invoke("density", str(tmp_path / "wide/lrg_counts_per_brick/part-00000.csv"),
                    "--output", str(tmp_path / "d3.csv"))
    assert result.exit_code == 0 and "seed " in result.output and "desi-lrg " in result.output
    result = invoke("density", str(tmp_path / "wide/lrg_counts_per_brick/part-00000.csv"),
                    "--selection", "nope", "--output", str(tmp_path / "d4.csv"))
    assert result.exit_code == 1 and "no selection 'nope' in the counts (selections: seed, " \
                                     "desi-lrg)" in result.output


@pytest.mark.spark
def test_the_cli_takes_a_list_and_config_variants(spark, sample, tmp_path):
    config = tmp_path / "mine.toml"
    config.write_text('[selections]\nz20p2 = {base = "seed", lrg_z_mag_max = 20.2}\n')
    out = tmp_path / "out"
    result = invoke("--config", str(config), "run", "--index", str(sample["index"]),
                    "--output", str(out), "--selection", "seed,z20p2")
    assert result.exit_code == 0, result.output
    assert csv_of(out).splitlines()[0] == "brickname,n_objects,seed,z20p2"
    assert "LRGs: seed " in result.output and ", z20p2 " in result.output
    # an unknown name is a usage error before Spark, naming the choices (variants too)
    result = CliRunner().invoke(main, ["--config", str(config), "run", "--index", "i",
                                       "--output", "o", "--selection", "seed,nope"])
    assert result.exit_code == 2
    assert ("Invalid value for '--selection': unknown selection 'nope'; choose one of: seed, "
            "desi-lrg, desi-lrg-south, desi-lrg-north, z20p2") in result.output
    # a mistake in a variant is named, even when the run does not ask for it
    config.write_text('[selections]\nz = {base = "seed", z_max = 20.2}\n')
    result = CliRunner().invoke(main, ["--config", str(config), "run", "--index", "i",
                                       "--output", "o"])
    assert result.exit_code == 1 and "selections.z: unknown key 'z_max'" in result.output


def test_run_help_documents_the_wide_table():
    text = CliRunner().invoke(main, ["run", "--help"]).output
    assert "brickname,n_objects,a,b,..." in text and "NAME[,NAME...]" in text


# --- resume --------------------------------------------------------------------------------------

def test_the_partial_key_covers_the_whole_set_of_definitions(cfg):
    identity = InputIdentity("/d/sweep-150p000-155p005.fits", 1000, modified="1")

    def key(**cuts):
        return file_task(identity, None, cfg.replace(cuts=cuts), None).partial_key

    several = key(selection=SEVERAL)
    assert several != key(selection="seed")
    assert several != key(selection="desi-lrg-south,seed,desi-lrg-north,z20p2")  # order
    assert several != key(selection="seed,desi-lrg-south,desi-lrg-north")
    changed = cfg.replace(selections={"z20p2": {"base": "seed", "lrg_z_mag_max": 20.3}},
                          cuts={"selection": SEVERAL})
    assert file_task(identity, None, changed, None).partial_key != several
    header = file_task(identity, None, cfg.replace(cuts={"selection": SEVERAL}), None
                       ).partial_header
    assert [d["name"] for d in header["selections"]] == SEVERAL.split(",")
    assert header["selections"][3]["parameters"]["lrg_z_mag_max"] == 20.2


@pytest.mark.spark
def test_a_wide_run_resumes_from_its_partials(spark, cfg, sample, tmp_path):
    out = tmp_path / "out"
    several = cfg.replace(cuts={"selection": SEVERAL})
    run_job(spark, JobSpec(str(sample["index"]), str(out), several), emit=lambda _line: None)
    first = csv_of(out)
    again = run_job(spark, JobSpec(str(sample["index"]), str(out), several),
                    emit=lambda _line: None)
    assert len(again.reused) == len(sample["paths"])
    assert csv_of(out) == first
    assert manifest(out)["totals"]["lrg_by_selection"] == \
        {n: int(v) for n, v in again.lrg_by_selection.items()}
    # another threshold for one variant: nothing reused, and the column changes
    stricter = several.replace(selections={"z20p2": {"base": "seed", "lrg_z_mag_max": 20.0}})
    third = run_job(spark, JobSpec(str(sample["index"]), str(out), stricter),
                    emit=lambda _line: None)
    assert not third.reused
    assert third.lrg_by_selection["z20p2"] < again.lrg_by_selection["z20p2"]
    assert third.lrg_by_selection["seed"] == again.lrg_by_selection["seed"]


# --- the public Spark API ------------------------------------------------------------------------

@pytest.mark.spark
def test_count_lrgs_returns_one_column_per_selection(spark, cfg, sample):
    paths = [str(p) for p in sample["paths"]]
    counts = count_lrgs(spark, paths, ["seed", "desi-lrg", "z20p2"], config=cfg)
    assert counts.schema.simpleString() == (
        "struct<brickname:string,n_objects:bigint,seed:bigint,desi-lrg:bigint,z20p2:bigint>")
    expected = per_file_sum(paths, "seed", cfg).rename(columns={"lrg_count": "seed"})
    for name in ("desi-lrg", "z20p2"):
        expected[name] = per_file_sum(paths, name, cfg)["lrg_count"]
    assert_df_equality(counts, spark.createDataFrame(expected, counts.schema),
                       ignore_row_order=True, ignore_nullable=True)
    # one selection keeps brickname, lrg_count
    assert count_lrgs(spark, paths, "seed", config=cfg).columns == ["brickname", "lrg_count"]


@pytest.mark.spark
def test_without_resolution_one_selection_keeps_the_plain_partials(spark, cfg, sample):
    plain = cfg.replace(run={"resolve": "off"})
    partials = lrg_partials(spark, [str(sample["paths"][0])], config=plain)
    assert partials.schema == spark.createDataFrame([], PARTIAL_SCHEMA).schema
    wide = lrg_partials(spark, [str(sample["paths"][0])], "seed,z20p2", config=plain)
    assert wide.columns[-2:] == ["n_objects", "lrg_count_1"]
