"""The public Spark API, as a notebook user with a session of their own calls it."""

from __future__ import annotations

import pandas as pd
import pytest
from chispa import assert_df_equality

from halo_lrg.count import count_sweep_file
from halo_lrg.science.cuts import get_selection
from halo_lrg.science.footprint import Footprint
from halo_lrg.spark.job import COUNT_SCHEMA, count_lrgs, lrg_partials
from halo_lrg.spark.run import JobSpec, run_job

pytestmark = pytest.mark.spark


def expected_counts(spark, paths, selection, config, footprint=None):
    """The sum over files of what ``count_sweep_file`` finds, as a Spark DataFrame."""
    frames = [count_sweep_file(p, get_selection(selection, config.cuts), 4096,
                               footprint=footprint).bricks for p in paths]
    total = (pd.concat(frames).groupby("brickname", as_index=False)["lrg_count"].sum())
    return spark.createDataFrame(total, COUNT_SCHEMA)


@pytest.mark.parametrize("selection", ["seed", "desi-lrg"])
def test_count_lrgs_sums_the_files_per_brick(spark, config, sample, selection):
    paths = [str(p) for p in sample["paths"]]
    counts = count_lrgs(spark, paths, selection, config=config)
    assert counts.schema.simpleString() == "struct<brickname:string,lrg_count:bigint>"
    assert_df_equality(counts, expected_counts(spark, paths, selection, config),
                       ignore_row_order=True)


def test_count_lrgs_equals_the_runs_csv(spark, config, sample, tmp_path):
    run_job(spark, JobSpec(str(sample["index"]), str(tmp_path / "out"), config),
            emit=lambda _line: None)
    csv = pd.read_csv(tmp_path / "out/lrg_counts_per_brick/part-00000.csv",
                      dtype={"brickname": str})
    counts = count_lrgs(spark, [str(p) for p in sample["paths"]], config=config)
    assert_df_equality(counts, spark.createDataFrame(csv, COUNT_SCHEMA), ignore_row_order=True)


def test_count_lrgs_with_a_footprint(spark, config, sample):
    paths = [str(p) for p in sample["paths"]]
    footprint = Footprint(150.0, 152.5, 0.0, 6.0)
    counts = count_lrgs(spark, paths, "seed", footprint=footprint, config=config)
    assert_df_equality(counts, expected_counts(spark, paths, "seed", config, footprint),
                       ignore_row_order=True)


def test_a_bad_file_fails_the_job_naming_it_unless_skipped(spark, config, sample, defects):
    paths = [str(sample["paths"][0]), str(defects["truncated"])]
    with pytest.raises(Exception, match="truncated") as failure:
        count_lrgs(spark, paths, config=config).collect()
    assert str(defects["truncated"]) in str(failure.value)
    skipped = count_lrgs(spark, paths, config=config, on_error="skip")
    assert_df_equality(skipped, expected_counts(spark, paths[:1], "seed", config),
                       ignore_row_order=True)
    statuses = (lrg_partials(spark, paths, config=config)
                .where("brickname IS NULL").select("uri", "status").toPandas())
    assert dict(zip(statuses["uri"], statuses["status"])) == {paths[0]: "ok",
                                                              paths[1]: "failed"}


def test_count_lrgs_leaves_the_session_as_it_was(spark, config, sample):
    before = spark.sql("SET").toPandas().set_index("key")["value"].to_dict()
    conf_before = dict(spark.sparkContext.getConf().getAll())
    count_lrgs(spark, [str(p) for p in sample["paths"]], config=config).collect()
    assert spark.sql("SET").toPandas().set_index("key")["value"].to_dict() == before
    assert dict(spark.sparkContext.getConf().getAll()) == conf_before


def test_an_unknown_selection_fails_before_any_task(spark, config, sample):
    with pytest.raises(ValueError, match="unknown selection 'nope'"):
        count_lrgs(spark, [str(sample["paths"][0])], "nope", config=config)
