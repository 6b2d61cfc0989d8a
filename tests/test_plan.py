"""How files become tasks: big files split in row ranges, small ones packed several to a task;
whatever the plan, the run's counts are the same bytes."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from halo_lrg.fits.layout import RowSlice
from halo_lrg.spark.plan import Piece, pack_pieces, plan_tasks, split_files
from halo_lrg.spark.run import JobSpec, RunFailed, run_job

BUCKET = "halo-plan"
sizes_st = st.lists(st.one_of(st.none(), st.integers(0, 10_000)), max_size=30)


# --- the planner ---------------------------------------------------------------------------------

@given(st.integers(1, 50), st.integers(0, 10_000))
def test_the_parts_of_a_file_cover_each_row_once(parts, nrows):
    bounds = [RowSlice(k, parts).bounds(nrows) for k in range(parts)]
    assert bounds[0][0] == 0 and bounds[-1][1] == nrows
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))  # contiguous, no overlap
    assert all(stop - first in (nrows // parts, -(-nrows // parts)) for first, stop in bounds)


@pytest.mark.parametrize("part, parts", [(0, 0), (1, 1), (-1, 2), (2, 2)])
def test_a_row_slice_outside_its_file_is_refused(part, parts):
    with pytest.raises(ValueError, match="part k of n"):
        RowSlice(part, parts)


@given(sizes_st, st.integers(0, 3_000))
def test_a_file_is_split_only_above_split_bytes_into_parts_of_at_most_that_size(sizes, split):
    pieces = split_files(sizes, split)
    for index, size in enumerate(sizes):
        mine = [p for p in pieces if p.file == index]
        assert [p.rows.part for p in mine] == list(range(len(mine)))
        assert {p.rows.parts for p in mine} == {len(mine)}
        if size is None or split == 0 or size <= split:
            assert mine == [Piece(index, RowSlice(), size)]
        else:
            assert sum(p.bytes for p in mine) == size
            assert all(p.bytes <= split for p in mine)


def test_a_file_to_verify_is_never_split():
    pieces = split_files([1000, 1000], 100, splittable=[False, True])
    assert [p.file for p in pieces] == [0] + [1] * 10


@settings(max_examples=200)
@given(sizes_st, st.integers(0, 3_000), st.integers(1, 8))
def test_packing_reads_every_piece_once_and_keeps_the_cores_busy(sizes, pack, cores):
    pieces = split_files(sizes, 0)
    tasks = pack_pieces(pieces, pack, cores)
    assert sorted(p.file for task in tasks for p in task) == list(range(len(sizes)))
    assert {p for task in tasks for p in task} == set(pieces)
    total = sum(p.bytes or 0 for p in pieces)
    target = min(pack, total // (cores * 2))
    for task in tasks:
        if len(task) > 1:  # packed: small pieces, within the target together
            assert all(p.bytes is not None and p.bytes < target for p in task)
            assert sum(p.bytes for p in task) <= target
    known = [p for p in pieces if p.bytes is not None]
    if pack and known and len({p.bytes for p in known}) == 1:  # equal files: cores stay busy
        assert len(tasks) >= min(len(pieces), cores * 2)


def test_small_files_are_packed_and_big_ones_split_in_one_plan():
    tasks = plan_tasks([1000, 10, 10, 10, None], split_bytes=300, pack_bytes=64, cores=1)
    assert [[(p.file, str(p.rows)) for p in task] for task in tasks] == [
        [(0, "rows part 1/4")], [(0, "rows part 2/4")], [(0, "rows part 3/4")],
        [(0, "rows part 4/4")], [(4, "all rows")],  # a size unknown: a task of its own
        [(1, "all rows"), (2, "all rows"), (3, "all rows")]]


# --- the run -------------------------------------------------------------------------------------

def split_in(parts: int, path: Path) -> int:
    """A split_bytes that cuts ``path`` in ``parts`` row ranges."""
    return path.stat().st_size // parts + 1


def csv_of(out: Path) -> bytes:
    return (out / "lrg_counts_per_brick" / "part-00000.csv").read_bytes()


def manifest_of(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def run(spark, config, index, out, **settings_):
    return run_job(spark, JobSpec(str(index), str(out), config.replace(run=settings_)),
                   emit=lambda _line: None)


@pytest.fixture(scope="module")
def whole(spark, config, sample, tmp_path_factory) -> bytes:
    out = tmp_path_factory.mktemp("whole") / "out"
    run(spark, config, sample["index"], out, split_bytes=0, pack_bytes=0)
    return csv_of(out)


@pytest.mark.spark
@pytest.mark.parametrize("fast_path", [True, False])
def test_files_split_in_row_ranges_give_the_same_bytes(spark, config, sample, whole, tmp_path,
                                                       fast_path):
    result = run(spark, config.replace(read={"fast_path": fast_path, "chunk_rows": 700}),
                 sample["index"], tmp_path / "out", split_bytes=split_in(4, sample["paths"][0]),
                 pack_bytes=0)
    assert csv_of(tmp_path / "out") == whole
    manifest = manifest_of(tmp_path / "out")
    assert manifest["tasks"]["files_split"] == 3 and manifest["tasks"]["tasks"] == 12
    assert all(f["parts"] == 4 and f["status"] == "ok" for f in manifest["files"])
    assert sum(f.rows for f in result.files) == sum(s.rows for s in sample["summaries"])


@pytest.mark.spark
def test_a_split_run_resumes_piece_by_piece(spark, config, sample, whole, tmp_path):
    out = tmp_path / "out"
    split = split_in(3, sample["paths"][0])
    run(spark, config, sample["index"], out, split_bytes=split)
    partials = sorted((out / "_partials").iterdir())
    assert len(partials) == 9  # 3 files x 3 row ranges, one partial each
    partials[0].unlink()  # one row range of one file lost
    again = run(spark, config, sample["index"], out, split_bytes=split)
    assert csv_of(out) == whole
    assert again.plan["pieces_reused"] == 8 and again.plan["tasks"] == 1
    assert sorted(f.reused for f in again.files) == [False, True, True]
    # Other split settings make other pieces: nothing stored is taken for them.
    other = run(spark, config, sample["index"], out, split_bytes=split // 2)
    assert other.plan["pieces_reused"] == 0 and csv_of(out) == whole


@pytest.mark.spark
def test_a_file_checked_against_a_checksum_list_is_read_whole(spark, config, sample, whole,
                                                              tmp_path):
    listing = tmp_path / "sums.sha256"
    listing.write_text("".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n"
                               for p in sample["paths"][:1]))
    result = run(spark, config, sample["index"], tmp_path / "out", checksums=str(listing),
                 split_bytes=split_in(4, sample["paths"][0]))
    assert csv_of(tmp_path / "out") == whole
    by_name = {Path(f.uri).name: f for f in result.files}
    assert by_name[sample["paths"][0].name].parts == 1
    assert by_name[sample["paths"][0].name].sha256_verified
    assert {by_name[p.name].parts for p in sample["paths"][1:]} == {4}


@pytest.mark.spark
def test_small_files_are_read_several_to_a_task(spark, config, sample, whole, tmp_path):
    index = tmp_path / "index.txt"
    copies = []
    for k in range(4):  # the sample 4 times over: 12 files, each counted 4 times
        folder = tmp_path / f"copy{k}"
        folder.mkdir()
        for path in sample["paths"]:
            copies.append(shutil.copy(path, folder / path.name))
    index.write_text("".join(f"{p}\n" for p in copies))
    packed = run(spark, config, index, tmp_path / "packed", pack_bytes=1 << 30)
    alone = run(spark, config, index, tmp_path / "alone", pack_bytes=0)
    assert packed.plan["tasks"] == 4 < alone.plan["tasks"] == 12  # 2 tasks a core, 2 cores
    assert csv_of(tmp_path / "packed") == csv_of(tmp_path / "alone")
    assert [f.to_dict() | {"seconds": 0} for f in packed.files] == \
        [f.to_dict() | {"seconds": 0} for f in alone.files]


@pytest.mark.spark
def test_a_bad_row_range_fails_its_file_naming_it(spark, config, sample, defects, tmp_path):
    index = tmp_path / "index.txt"
    index.write_text(f"{sample['paths'][0]}\n{defects['truncated']}\n")
    with pytest.raises(RunFailed, match="truncated"):
        run(spark, config, index, tmp_path / "out", split_bytes=2880 * 4)
    failure = json.loads((tmp_path / "out" / "_last_failure.json").read_text())
    bad = [f for f in failure["files"] if f["status"] == "failed"]
    assert [Path(f["uri"]).name for f in bad] == [defects["truncated"].name]


@pytest.mark.spark
@pytest.mark.parametrize("stream", [True, False])
def test_row_ranges_of_s3_files_give_the_same_bytes(spark, config, sample, whole, s3, tmp_path,
                                                     stream):
    uris = []
    for path in sample["paths"]:
        s3.upload_file(str(path), BUCKET, f"sweeps/{path.name}")
        uris.append(f"s3://{BUCKET}/sweeps/{path.name}")
    s3.put_object(Bucket=BUCKET, Key="index.txt", Body="\n".join(uris).encode())
    result = run(spark, config.replace(remote={"stream_remote": stream}),
                 f"s3://{BUCKET}/index.txt", tmp_path / "out",
                 split_bytes=split_in(4, sample["paths"][0]))
    assert csv_of(tmp_path / "out") == whole
    assert {f.parts for f in result.files} == {4}
