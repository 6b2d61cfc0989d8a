"""The Spark job: equal to count_sweep summed over files, exact output layout, bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from chispa import assert_df_equality

import halo_lrg
from halo_lrg.count.local import SweepCount
from halo_lrg.io.output import PROGRESS_FILE, IncompleteResult, OutputLocation, check_complete
from halo_lrg.spark.job import (
    PARTIAL_SCHEMA,
    FileResult,
    _partials_frame,
    files_frame,
    lrg_partials,
)
from halo_lrg.spark.run import JobSpec, RunFailed, run_job
from halo_lrg.survey.names import SweepBox, sweep_name
from halo_lrg.survey.synth import generate_sweep

pytestmark = pytest.mark.spark


def write_index(path: Path, entries) -> Path:
    path.write_text("".join(f"{e}\n" for e in entries))
    return path


def run(spark, config, index, output, lines=None, **run_overrides):
    cfg = config.replace(run={"progress_interval": 0.2, **run_overrides})
    return run_job(spark, JobSpec(str(index), str(output), cfg),
                   emit=(lines.append if lines is not None else lambda _line: None))


def read_counts(output: Path) -> pd.DataFrame:
    return pd.read_csv(output / "lrg_counts_per_brick" / "part-00000.csv",
                       dtype={"brickname": str})


def test_job_equals_count_sweep_summed_over_files(spark, config, sample, tmp_path):
    result = run(spark, config, sample["index"], tmp_path / "out")
    expected = (pd.concat([halo_lrg.count_sweep(p, config=config) for p in sample["paths"]])
                .groupby("brickname", as_index=False)["lrg_count"].sum())
    got = read_counts(tmp_path / "out")
    assert_df_equality(spark.createDataFrame(got), spark.createDataFrame(expected),
                       ignore_nullable=True)
    assert result.bricks == len(expected) and result.lrg == expected["lrg_count"].sum()
    # Adjacent sweeps share the bricks straddling their Dec edge: the sum joins them.
    per_file = [set(halo_lrg.count_sweep(p, config=config)["brickname"]) for p in sample["paths"]]
    assert per_file[0] & per_file[1]


def test_output_layout_is_exact_and_reruns_are_byte_identical(spark, config, sample, tmp_path):
    out = tmp_path / "out"
    run(spark, config, sample["index"], out)
    first = (out / "lrg_counts_per_brick" / "part-00000.csv").read_bytes()
    assert sorted(p.name for p in out.iterdir()) == [
        "_SUCCESS", "_partials", "_progress.json", "lrg_counts_per_brick", "manifest.json"]
    assert [p.name for p in (out / "lrg_counts_per_brick").iterdir()] == ["part-00000.csv"]
    # one stored partial per input, no temp files left behind
    assert len([p for p in (out / "_partials").iterdir()]) == len(sample["paths"])
    lines = first.decode().splitlines()
    assert lines[0] == "brickname,lrg_count"
    names = [line.split(",")[0] for line in lines[1:]]
    assert names == sorted(names) and len(set(names)) == len(names)
    run(spark, config, sample["index"], out)  # resumed: every file from its partial
    assert (out / "lrg_counts_per_brick" / "part-00000.csv").read_bytes() == first
    run(spark, config, sample["index"], out, resume=False)  # every file counted again
    assert (out / "lrg_counts_per_brick" / "part-00000.csv").read_bytes() == first


def test_manifest_records_every_input(spark, config, sample, tmp_path):
    result = run(spark, config, sample["index"], tmp_path / "out")
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["halo_lrg_version"] == halo_lrg.__version__
    assert manifest["state"] == "complete"
    assert manifest["selection"]["name"] == "seed"
    assert manifest["selection"]["parameters"] == {
        "lrg_z_mag_max": 20.4, "lrg_min_r_minus_z": 0.4, "lrg_min_z_minus_w1": 0.8}
    assert sorted(f["uri"] for f in manifest["files"]) == sorted(map(str, sample["paths"]))
    for entry in manifest["files"]:
        assert entry["status"] == "ok" and entry["error"] is None
        assert entry["rows"] > 0 and entry["seconds"] >= 0 and "lrg" in entry
    totals = manifest["totals"]
    assert totals["rows"] == sum(s.rows for s in sample["summaries"])
    assert totals["lrg"] == result.lrg and totals["bricks"] == result.bricks


def test_one_file_per_task_largest_first(spark, config, tmp_path):
    frame = files_frame(spark, 7)
    assert frame.rdd.glom().map(lambda rows: [r.id for r in rows]).collect() == [
        [0], [1], [2], [3], [4], [5], [6]]  # one file per task, in order
    # Files of different sizes, listed smallest first: the run reads the largest first.
    rows = [300, 2400, 900, 4800]
    paths = [generate_sweep(tmp_path / sweep_name(SweepBox(5.0 * k, 5.0 * k + 5, 0, 5)),
                            SweepBox(5.0 * k, 5.0 * k + 5, 0, 5), n, seed=k).path
             for k, n in enumerate(rows)]
    index = write_index(tmp_path / "index.txt", paths)
    lines: list[str] = []
    result = run(spark, config, index, tmp_path / "out", lines)
    by_size = [p for _, p in sorted(zip(rows, paths), reverse=True)]
    assert [f.uri for f in result.files] == by_size
    assert [f.rows for f in result.files] == sorted(rows, reverse=True)


def test_index_comments_blanks_and_duplicates(spark, config, sample, tmp_path, caplog):
    p = sample["paths"]
    index = write_index(tmp_path / "index.txt",
                        ["# sweeps", "", p[0], f"  {p[1]}  ", p[0], f"file://{p[2]}"])
    lines: list[str] = []
    result = run(spark, config, index, tmp_path / "out", lines)
    assert len(result.files) == 3
    assert f"duplicate index entry dropped: {p[0]}" in [
        r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(line.startswith("[3/3]") for line in lines)  # per-file progress


@pytest.mark.parametrize("kind,cause", [
    ("not-fits", "not a FITS file"),
    ("truncated", "truncated: the header declares"),
    ("missing-column", "missing column FLUX_W1"),
])
def test_bad_file_fails_the_run_with_one_line_naming_it(spark, config, sample, defects,
                                                        tmp_path, kind, cause):
    out = tmp_path / "out"
    run(spark, config, sample["index"], out)  # a previous good result, to be kept
    previous = {name: (out / name).read_bytes() for name in (
        "manifest.json", "_SUCCESS", "lrg_counts_per_brick/part-00000.csv")}
    index = write_index(tmp_path / "index.txt", [*sample["paths"], defects[kind]])
    with pytest.raises(RunFailed) as info:
        run(spark, config, index, out)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{defects[kind]}: {cause}")
    # the previous complete result is untouched; the failure is recorded beside it
    assert {name: (out / name).read_bytes() for name in previous} == previous
    check_complete(OutputLocation(str(out), config))
    failure = json.loads((out / "_last_failure.json").read_text())
    assert failure["state"] == "failed" and failure["error"] == message
    failed = [f for f in failure["files"] if f["status"] == "failed"]
    assert [f["uri"] for f in failed] == [str(defects[kind])]
    run(spark, config, sample["index"], out)  # a later success clears the failure record
    assert not (out / "_last_failure.json").exists()


def test_skip_records_failures_and_counts_only_complete_files(spark, config, sample, defects,
                                                             tmp_path):
    bad = [defects["not-fits"], defects["truncated"], defects["missing-column"]]
    index = write_index(tmp_path / "index.txt", [*sample["paths"], *bad, defects["empty"]])
    result = run(spark, config, index, tmp_path / "out", on_error="skip")
    good = run(spark, config, sample["index"], tmp_path / "good")
    assert read_counts(tmp_path / "out").equals(read_counts(tmp_path / "good"))
    assert result.lrg == good.lrg
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    status = {Path(f["uri"]).name: f["status"] for f in manifest["files"]}
    assert {k: status[Path(v).name] for k, v in defects.items()} == {
        "not-fits": "failed", "truncated": "failed", "missing-column": "failed",
        "empty": "ok"}  # an empty table is not an error
    assert manifest["state"] == "partial" and manifest["totals"]["files_failed"] == 3
    assert result.state == "partial"


def test_skip_with_every_file_failing_is_a_failure_not_an_empty_result(spark, config, defects,
                                                                       tmp_path):
    index = write_index(tmp_path / "index.txt", [defects["not-fits"], defects["truncated"]])
    with pytest.raises(RunFailed, match=r"^every file failed; first: .* \(and 1 more; see "):
        run(spark, config, index, tmp_path / "out", on_error="skip")
    assert not (tmp_path / "out" / "lrg_counts_per_brick").exists()
    assert not (tmp_path / "out" / "_SUCCESS").exists()
    assert json.loads((tmp_path / "out" / "_last_failure.json").read_text())["state"] == "failed"


def test_a_reader_never_takes_a_csv_its_manifest_does_not_describe(spark, config, sample,
                                                                   tmp_path):
    out = tmp_path / "out"
    run(spark, config, sample["index"], out)
    location = OutputLocation(str(out), config)
    assert check_complete(location)["state"] == "complete"
    csv = out / "lrg_counts_per_brick" / "part-00000.csv"
    csv.write_bytes(csv.read_bytes() + b"9999p999,1\n")  # a CSV from elsewhere
    with pytest.raises(IncompleteResult, match="not the one its manifest describes"):
        check_complete(location)
    (out / "_SUCCESS").unlink()  # as while a rerun publishes
    with pytest.raises(IncompleteResult, match="_SUCCESS missing"):
        check_complete(location)


def test_an_output_that_is_a_file_fails_before_any_counting(spark, config, sample, tmp_path):
    blocker = tmp_path / "taken"
    blocker.write_text("not a directory")
    for output in (blocker, blocker / "below"):
        with pytest.raises(RunFailed, match=r"cannot write the result: .*taken"):
            run(spark, config, sample["index"], output)


def test_missing_index_and_empty_index(spark, config, sample, tmp_path):
    out = tmp_path / "out"
    run(spark, config, sample["index"], out)  # a previous result, kept through both failures
    previous = (out / "manifest.json").read_bytes()
    with pytest.raises(RunFailed, match=r"cannot read the index .*nope\.txt: no such file"):
        run(spark, config, tmp_path / "nope.txt", out)
    index = write_index(tmp_path / "index.txt", ["# nothing here"])
    with pytest.raises(RunFailed, match="no sweep files to read"):
        run(spark, config, index, out)
    assert (out / "manifest.json").read_bytes() == previous and (out / "_SUCCESS").exists()
    failure = json.loads((out / "_last_failure.json").read_text())
    assert failure["state"] == "failed" and "no sweep files to read" in failure["error"]


def test_with_density_writes_the_density_table(spark, config, sample, tmp_path):
    out = tmp_path / "out"
    run_job(spark, JobSpec(str(sample["index"]), str(out), config, with_density=True),
            emit=lambda _line: None)
    density = pd.read_csv(out / "lrg_density.csv", dtype={"brickname": str})
    counts = read_counts(out)
    assert density["brickname"].tolist() == counts["brickname"].tolist()
    assert (density["lrg_density"] * density["area_deg2"]).round().astype(int).tolist() == (
        counts["lrg_count"].tolist())
    run(spark, config, sample["index"], out)  # a run without it retires the stale table
    assert not (out / "lrg_density.csv").exists()


def test_a_run_leaves_the_sessions_options_as_it_found_them(spark, config, sample, tmp_path):
    # A notebook's session is the user's: a run sets no Spark option, not even for a while.
    before = dict(spark.sparkContext.getConf().getAll())
    sql_before = spark.sql("SET").toPandas().set_index("key")["value"].to_dict()
    run(spark, config, sample["index"], tmp_path / "out")
    assert dict(spark.sparkContext.getConf().getAll()) == before
    assert spark.sql("SET").toPandas().set_index("key")["value"].to_dict() == sql_before


def test_the_job_is_one_stage_without_a_shuffle(spark, config, sample):
    # Partials are per brick already: they are merged on the driver, not through an exchange.
    partials = lrg_partials(spark, [str(p) for p in sample["paths"]], config=config)
    plan = partials._jdf.queryExecution().executedPlan().toString()
    assert "MapInPandas" in plan and "Exchange" not in plan and "Aggregate" not in plan


def test_a_task_returns_its_bricks_then_one_status_row(spark):
    counts = SweepCount("/d/s.fits", np.array(["1500p000", "1501p000"]), np.array([7, 3]),
                        np.array([2, 0]), rows=10, objects=10, lrg=2, seconds=0.5)
    ok = _partials_frame("/d/s.fits", counts, FileResult("/d/s.fits", "ok", 10, 10, 2, 0.5,
                                                         sha256="ab" * 32, partial="saved"))
    failed = _partials_frame("/d/t.fits", None,
                             FileResult("/d/t.fits", "failed", seconds=0.1,
                                        error="/d/t.fits: truncated"))

    def task(_batches):  # returned from a task, as the job's tasks return them
        yield ok
        yield failed

    actual = spark.range(1, numPartitions=1).mapInPandas(task, PARTIAL_SCHEMA)
    expected = spark.createDataFrame([
        ("1500p000", 2, None, None, 0, 0, 0, 0.0, None, None, None, None),
        ("1501p000", 0, None, None, 0, 0, 0, 0.0, None, None, None, None),
        (None, 0, "/d/s.fits", "ok", 10, 10, 2, 0.5, None, "ab" * 32, "saved", None),
        (None, 0, "/d/t.fits", "failed", 0, 0, 0, 0.1, "/d/t.fits: truncated", None, None,
         None),
    ], schema=PARTIAL_SCHEMA)
    assert_df_equality(actual, expected)


def test_progress_is_written_beside_the_output_while_it_runs(spark, config, sample, tmp_path,
                                                             monkeypatch):
    out = tmp_path / "out"
    seen: list[dict] = []
    original = OutputLocation.write_file

    def spy(self, name, data):
        if name == PROGRESS_FILE:
            seen.append(json.loads(data))
        return original(self, name, data)

    monkeypatch.setattr(OutputLocation, "write_file", spy)
    run(spark, config, sample["index"], out, progress_file_seconds=0.0)
    final = json.loads((out / PROGRESS_FILE).read_text())
    total = sum(p.stat().st_size for p in sample["paths"])
    assert seen[0]["state"] == "running" and seen[0]["files_done"] == 0
    assert final == seen[-1]
    assert final["state"] == "complete" and final["files_done"] == final["files_ok"] == 3
    assert final["bytes_done"] == final["bytes_total"] == total
    assert final["lrg"] == json.loads((out / "manifest.json").read_text())["totals"]["lrg"]
    done = [s["files_done"] for s in seen]
    assert done == sorted(done)  # progress only grows


def test_bad_index_lines_fail_the_run_in_one_line_before_any_file(spark, config, sample,
                                                                 tmp_path):
    index = write_index(tmp_path / "sweeps.txt", [sample["paths"][0], "s3://bucket",
                                                  "ftp://host/c.fits"])
    with pytest.raises(RunFailed) as info:
        run(spark, config, index, tmp_path / "out")
    message = str(info.value)
    assert "\n" not in message
    assert "line 2: s3://bucket: no object key" in message and "line 3: ftp://" in message
    failure = json.loads((tmp_path / "out" / "_last_failure.json").read_text())
    assert failure["state"] == "failed" and failure["files"] == []
