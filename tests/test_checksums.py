"""Every byte verified: SHA-256 lists (sha256sum format), hashes computed while inputs are
read or downloaded, mismatches as the file's failure, provenance in the manifest, and the
folder's list saved by `halo-lrg index`; lists matched by path suffix, so one combined list
verifies DR9's north and south folders, whose files share names."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import threading
from pathlib import Path
from typing import ClassVar, Optional

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from halo_lrg.cli import main
from halo_lrg.io.fetch import ChecksumList, InputHash, SourceError, local_copy
from halo_lrg.spark.run import JobSpec, RunFailed, run_job
from halo_lrg.survey.listing import (
    checksum_list_name,
    checksum_list_names,
    combine_checksums,
    combined_checksum_list_name,
    region_folders,
)
from halo_lrg.survey.names import SweepBox, sweep_name
from halo_lrg.survey.synth import generate_sample, generate_sweep
from test_http_ranges import fresh, loopback

ROWS = 2000
WRONG = "0" * 64


class Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a directory; the first GET of each path in ``cut`` drops after a third of the
    body (so a download starts over)."""

    cut: ClassVar[set] = set()
    seen: ClassVar[dict] = {}
    lock = threading.Lock()

    def log_message(self, *args):
        pass

    def do_GET(self):
        with self.lock:
            first = self.path not in self.seen
            self.seen[self.path] = self.seen.get(self.path, 0) + 1
        target = Path(self.translate_path(self.path))
        if first and self.path in self.cut and target.is_file():
            body = target.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 3])
            self.wfile.flush()
            self.connection.shutdown(2)
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture
def served(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = fresh(Handler, cut=set(), seen={})
    with loopback(functools.partial(handler, directory=str(root))) as base:
        yield base, root, handler


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> list[Path]:
    directory = tmp_path_factory.mktemp("sweeps")
    return [Path(s.path) for s in generate_sample(directory, files=3, rows=ROWS, seed=11)]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def checksum_list(path: Path, files, wrong: Optional[Path] = None) -> Path:
    """A sha256sum list of ``files`` (``wrong`` listed with a hash that is not its own)."""
    path.write_text("".join(f"{WRONG if f == wrong else sha256(f)}  {f.name}\n" for f in files))
    return path


def write_index(path: Path, entries) -> Path:
    path.write_text("".join(f"{e}\n" for e in entries))
    return path


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def manifest(out: Path, name: str = "manifest.json") -> dict:
    return json.loads((out / name).read_text())


# --- the list ----------------------------------------------------------------------------------

def test_a_sha256sum_list_is_matched_by_base_name():
    a, b = "a" * 64, "B" * 64
    listed = ChecksumList.parse(f"# DR10\n{a}  ./sub/sweep-1.fits\n\n{b} *sweep-2.fits\n",
                                "list")
    assert listed.expected("s3://bucket/x/sweep-1.fits") == a
    assert listed.expected("https://host/sweep/10.1/sweep-2.fits") == b.lower()
    assert listed.expected("/data/sweep-3.fits") is None and len(listed) == 2
    with pytest.raises(ValueError, match=r"^list: line 2 is not '<sha256>  <file name>'"):
        ChecksumList.parse(f"{a}  ok.fits\nnot a checksum line\n", "list")
    twice = ChecksumList.parse(f"{a}  north/sweep-1.fits\n{b}  south/sweep-1.fits\n", "list")
    with pytest.raises(SourceError, match=r"lists sweep-1\.fits twice with different SHA-256"):
        twice.expected("/d/sweep-1.fits")


def test_an_input_matches_the_longest_listed_path_it_ends_with():
    n, s, bare = "1" * 64, "2" * 64, "3" * 64
    name = "sweep-150p030-160p035.fits"
    listed = ChecksumList.parse(f"{n}  north/sweep/9.0/{name}\n{s}  south/sweep/9.0/{name}\n"
                                f"{bare}  ./sweep-000m005-010p000.fits\n", "dr9.sha256sum")
    assert listed.entries[0] == (f"north/sweep/9.0/{name}", n)  # './' and '//' normalised
    for uri, expected in [
            (f"https://portal.nersc.gov/cfs/cosmo/data/legacysurvey/dr9/north/sweep/9.0/{name}",
             n),
            (f"s3://mirror/dr9/south/sweep/9.0/{name}", s),
            (f"/data/legacysurvey/dr9/south/sweep/9.0/{name}", s),
            (f"file:///data/dr9/north/sweep/9.0/{name}", n),
            ("/anywhere/sweep-000m005-010p000.fits", bare),  # a bare name: by base name
            ("/anywhere/sweep-000m005-010p005.fits", None)]:
        assert listed.expected(uri) == expected, uri
    # genuinely ambiguous: the input's path ends with neither listed path (suffixes only:
    # .../south/<name> does not end with south/sweep/9.0/<name>)
    for uri, tail in [(f"/data/{name}", name), (f"/data/south/{name}", name),
                      (f"s3://b/dr9/sweep/9.0/{name}", f"sweep/9.0/{name}")]:
        with pytest.raises(SourceError) as info:
            listed.expected(uri)
        assert str(info.value) == (
            f"{uri}: dr9.sha256sum lists {tail} twice with different SHA-256 values "
            f"(north/sweep/9.0/{name}, south/sweep/9.0/{name}): the input's path ends with "
            "none of them, so which it is cannot be told")
    # a whole listed path beats a longer partial one; the same path twice is a conflict
    mixed = ChecksumList.parse(f"{n}  a/b/{name}\n{s}  b/{name}\n", "m")
    assert mixed.expected(f"/p/b/{name}") == s and mixed.expected(f"/a/b/{name}") == n
    twice = ChecksumList.parse(f"{n}  x/{name}\n{s}  x/{name}\n{n}  x/{name}\n", "t")
    assert len(twice) == 2  # the repeated identical line is listed once
    with pytest.raises(SourceError, match=rf"^/d/x/{name}: t lists x/{name} twice with "
                                          rf"different SHA-256 values \(x/{name}, x/{name}\)$"):
        twice.expected(f"/d/x/{name}")


_SEGMENT = st.from_regex(r"[a-z0-9_-]{1,5}", fullmatch=True)
_NAME = _SEGMENT.map(lambda s: f"sweep-{s}.fits")


def _uri(scheme: str, segments: list[str]) -> str:
    """An input location of the given shape ending in ``segments``."""
    path = "/".join(segments)
    return {"path": f"/{path}", "file": f"file:///{path}", "s3": f"s3://pbucket/{path}",
            "https": f"https://phost.example/{path}"}[scheme]


_SCHEMES = st.sampled_from(["path", "file", "s3", "https"])


@settings(max_examples=150, deadline=None)
@given(names=st.lists(_NAME, min_size=1, max_size=6, unique=True),
       listed_dirs=st.lists(st.lists(_SEGMENT, max_size=2), min_size=6, max_size=6),
       input_dirs=st.lists(_SEGMENT, max_size=4), scheme=_SCHEMES, pick=st.integers(0, 9))
def test_a_list_of_distinct_names_matches_as_base_names_did(names, listed_dirs, input_dirs,
                                                            scheme, pick):
    """Differential: with each base name listed once, suffix matching gives exactly what the
    old by-base-name rule gave, whatever directories the list and the input carry."""
    digests = {name: hashlib.sha256(name.encode()).hexdigest() for name in names}
    text = "".join(f"{digests[name]}  {'/'.join([*listed_dirs[k], name])}\n"
                   for k, name in enumerate(names))
    listed = ChecksumList.parse(text, "list")
    name = names[pick % len(names)] if pick < 8 else "sweep-unlisted-x.fits"
    assert listed.expected(_uri(scheme, [*input_dirs, name])) == digests.get(name)


@settings(max_examples=150, deadline=None)
@given(folders=st.lists(st.lists(_SEGMENT.map("d{}".format), min_size=1, max_size=4),
                        min_size=2, max_size=4, unique_by=tuple),
       prefix=st.lists(_SEGMENT.map("p{}".format), max_size=3), name=_NAME, scheme=_SCHEMES,
       pick=st.integers(0, 3))
def test_same_named_files_of_listed_folders_are_told_apart(folders, prefix, name, scheme,
                                                           pick):
    """Same-named files in distinct listed folders: an input under one of them, below any
    other directories (the mirror's, the host's), gets that folder's hash; an input under
    none of them is refused naming the list, the input and every candidate."""
    digests = [hashlib.sha256(f"{k}".encode()).hexdigest() for k in range(len(folders))]
    listed = ChecksumList.parse("".join(f"{d}  {'/'.join([*f, name])}\n"
                                        for d, f in zip(digests, folders)), "combined")
    k = pick % len(folders)
    assert listed.expected(_uri(scheme, [*prefix, *folders[k], name])) == digests[k]
    uri = _uri(scheme, [*prefix, name])
    with pytest.raises(SourceError) as info:
        listed.expected(uri)
    message = str(info.value)
    assert message.startswith(f"{uri}: combined lists {name} ")
    assert all("/".join([*f, name]) in message for f in folders)


def test_combined_lists_carry_each_regions_folder():
    base = "https://portal.nersc.gov/cfs/cosmo/data/legacysurvey/dr9"
    bases = {"north": f"{base}/north/sweep/9.0/", "south": f"{base}/south/sweep/9.0"}
    folders = region_folders(bases)
    assert folders == {"north": "north/sweep/9.0", "south": "south/sweep/9.0"}
    assert region_folders({"north": "http://h/a/", "south": "http://h/a/"}) == \
        {"north": "a", "south": "a"}  # never empty
    assert combined_checksum_list_name("dr9", ["north", "south"], bases) == \
        "dr9_north_south_sweep_9.0.sha256sum"
    assert combined_checksum_list_name("dr9", ["north", "south"], {
        "north": "http://h/n/", "south": "http://h/s/"}) == "dr9_north_south_sweep.sha256sum"
    n, s = "1" * 64, "2" * 64
    name = "sweep-150p030-160p035.fits"
    combined = combine_checksums({"north": ChecksumList.parse(f"{n}  {name}\n", "n"),
                                  "south": ChecksumList.parse(f"{s}  ./{name}\n", "s")},
                                 folders, "both")
    assert combined.text() == (f"{n}  north/sweep/9.0/{name}\n"
                               f"{s}  south/sweep/9.0/{name}\n")
    assert combined.expected(f"{bases['south']}/{name}") == s
    assert combined.expected(f"{bases['north']}{name}") == n


# --- local inputs ------------------------------------------------------------------------------

@pytest.mark.spark
def test_a_good_list_passes_and_every_sha256_is_recorded(spark, files, tmp_path):
    listing = checksum_list(tmp_path / "sweeps.sha256sum", files)
    index = write_index(tmp_path / "index.txt", files)
    out = tmp_path / "out"
    result = invoke("run", "--index", str(index), "--output", str(out), "--checksums",
                    str(listing))
    assert result.exit_code == 0, result.output
    record = manifest(out)
    assert record["checksums"] == str(listing)
    assert record["totals"]["files_sha256_verified"] == len(files)
    for entry in record["files"]:
        expected = sha256(Path(entry["uri"]))
        assert entry["sha256"] == entry["sha256_expected"] == expected
        assert entry["sha256_verified"] is True
    # the verified hash is part of the partial's key, and kept when the partial is reused
    result = invoke("run", "--index", str(index), "--output", str(out), "--checksums",
                    str(listing))
    assert result.exit_code == 0, result.output
    assert all(f["reused"] and f["sha256_verified"] for f in manifest(out)["files"])


@pytest.mark.spark
def test_a_wrong_hash_fails_the_run_naming_file_expected_and_got(spark, files, tmp_path):
    bad = files[1]
    listing = checksum_list(tmp_path / "sweeps.sha256sum", files, wrong=bad)
    index = write_index(tmp_path / "index.txt", files)
    out = tmp_path / "out"
    result = invoke("run", "--index", str(index), "--output", str(out), "--checksums",
                    str(listing))
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        f"Error: {bad}: SHA-256 mismatch: expected {WRONG}, got {sha256(bad)}")
    failed = [f for f in manifest(out, "_last_failure.json")["files"]
              if f["status"] == "failed"]
    assert [f["uri"] for f in failed] == [str(bad)] and failed[0]["sha256_expected"] == WRONG
    assert not list(out.glob(f"_partials/{bad.name}*"))  # bad bytes are never stored


@pytest.mark.spark
def test_under_skip_a_mismatch_is_recorded_and_the_rest_counted(spark, config, files,
                                                                 tmp_path):
    bad = files[0]
    listing = checksum_list(tmp_path / "sweeps.sha256sum", files, wrong=bad)
    out = tmp_path / "out"
    result = invoke("run", "--index", str(write_index(tmp_path / "index.txt", files)),
                    "--output", str(out), "--checksums", str(listing), "--on-error", "skip")
    assert result.exit_code == 3, result.output
    record = manifest(out)
    assert record["state"] == "partial"
    status = {Path(f["uri"]).name: f for f in record["files"]}
    assert status[bad.name]["status"] == "failed"
    assert f"expected {WRONG}, got {sha256(bad)}" in status[bad.name]["error"]
    assert all(status[f.name]["sha256_verified"] for f in files[1:])
    good = tmp_path / "good"
    run_job(spark, JobSpec(str(write_index(tmp_path / "good.txt", files[1:])), str(good),
                           config), emit=lambda _line: None)
    assert (out / "lrg_counts_per_brick/part-00000.csv").read_bytes() == \
        (good / "lrg_counts_per_brick/part-00000.csv").read_bytes()


# --- remote inputs -----------------------------------------------------------------------------

@pytest.mark.spark
@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "downloaded"])
def test_a_wrong_hash_over_http_fails_naming_the_url(spark, config, files, served, tmp_path,
                                                     stream):
    base, root, _handler = served
    for f in files:
        (root / f.name).write_bytes(f.read_bytes())
    bad = files[2]
    checksum_list(root / "sweeps.sha256sum", files, wrong=bad)
    index = write_index(tmp_path / "index.txt", [f"{base}/{f.name}" for f in files])
    cfg = config.replace(run={"checksums": f"{base}/sweeps.sha256sum"},  # a list by URL
                         remote={"stream_remote": stream})
    with pytest.raises(RunFailed) as info:
        run_job(spark, JobSpec(str(index), str(tmp_path / "out"), cfg), emit=lambda _l: None)
    assert str(info.value) == (f"{base}/{bad.name}: SHA-256 mismatch: expected {WRONG}, "
                               f"got {sha256(bad)}")


@pytest.mark.spark
def test_downloads_are_hashed_without_a_list(spark, config, files, served, tmp_path):
    base, root, _handler = served
    for f in files:
        (root / f.name).write_bytes(f.read_bytes())
    index = write_index(tmp_path / "index.txt", [f"{base}/{f.name}" for f in files])
    out = tmp_path / "out"
    run_job(spark, JobSpec(str(index), str(out), config.replace(remote={
        "stream_remote": False})), emit=lambda _l: None)
    for entry in manifest(out)["files"]:
        assert entry["sha256"] == sha256(root / Path(entry["uri"]).name)
        assert entry["sha256_expected"] is None and entry["sha256_verified"] is False


def test_an_http_download_that_starts_over_is_hashed_once(config, files, served, tmp_path):
    base, root, handler = served
    (root / "a.fits").write_bytes(files[0].read_bytes())
    handler.cut.add("/a.fits")  # the first attempt drops after a third of the body
    cfg = config.replace(remote={"backoff_base_seconds": 0.01, "backoff_max_seconds": 0.05,
                                 "tmp_dir": str(tmp_path)})
    hasher = InputHash()
    with local_copy(f"{base}/a.fits", cfg, hasher):
        pass
    assert handler.seen["/a.fits"] == 2
    assert hasher.hexdigest() == sha256(files[0]) and hasher.nbytes == files[0].stat().st_size


def test_s3_parts_arriving_in_any_order_are_hashed_in_order(config, tmp_path, monkeypatch):
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        client = boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint)
        client.create_bucket(Bucket="halo-sums")
        data = os.urandom(700_001)
        client.put_object(Bucket="halo-sums", Key="x.fits", Body=data)
        cfg = config.replace(remote={"s3_endpoint_url": endpoint, "s3_part_bytes": 65536,
                                     "s3_max_concurrency": 8, "tmp_dir": str(tmp_path)})
        hasher = InputHash()
        with local_copy("s3://halo-sums/x.fits", cfg, hasher) as path:
            assert Path(path).read_bytes() == data
        assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()
    finally:
        server.stop()


# --- `halo-lrg index` saves the folder's list --------------------------------------------------

def test_the_release_list_name_and_what_a_listing_links():
    base = "https://portal.nersc.gov/cfs/cosmo/data/legacysurvey/dr10/south/sweep/10.1/"
    assert checksum_list_name("dr10", "south", base) == \
        "legacysurvey_dr10_south_sweep_10.1.sha256sum"
    assert checksum_list_name("dr10", "south", "http://127.0.0.1:8000/") is None
    html = ('<a href="sweep-000m005-005p000.fits">s</a>'
            '<a href="other.sha256sum">o</a>'
            '<a href="legacysurvey_dr10_south_sweep_10.1.sha256sum">l</a>')
    assert checksum_list_names(html, "dr10", "south", base) == [
        "legacysurvey_dr10_south_sweep_10.1.sha256sum", "other.sha256sum"]
    assert checksum_list_names("", "dr10", "south", base) == [
        "legacysurvey_dr10_south_sweep_10.1.sha256sum"]


@pytest.mark.spark
def test_index_saves_the_checksum_list_beside_the_index_and_run_uses_it(spark, files, served,
                                                                       tmp_path):
    base, root, _handler = served
    folder = root / "dr10" / "south" / "sweep" / "10.1"
    folder.mkdir(parents=True)
    for f in files:
        (folder / f.name).write_bytes(f.read_bytes())
    name = "legacysurvey_dr10_south_sweep_10.1.sha256sum"
    checksum_list(folder / name, files)
    url = f"{base}/dr10/south/sweep/10.1/"
    index = tmp_path / "idx" / "sweeps.txt"
    result = invoke("index", "--base-url", url, "--output", str(index))
    assert result.exit_code == 0, result.output
    saved = tmp_path / "idx" / name
    assert saved.read_bytes() == (folder / name).read_bytes()
    assert f"checksums: {url}{name} -> {saved} (3 of 3 indexed sweep(s) listed)" in result.output
    out = tmp_path / "out"
    result = invoke("run", "--index", str(index), "--output", str(out), "--checksums",
                    str(saved))
    assert result.exit_code == 0, result.output
    assert manifest(out)["totals"]["files_sha256_verified"] == 3
    # --checksums-out elsewhere; a folder without a list says so and still writes the index
    other = tmp_path / "lists" / "dr10.sha256sum"
    result = invoke("index", "--base-url", url, "--output", str(tmp_path / "b.txt"),
                    "--checksums-out", str(other))
    assert result.exit_code == 0 and other.read_bytes() == saved.read_bytes()
    (folder / name).unlink()
    result = invoke("index", "--base-url", url, "--output", str(tmp_path / "c.txt"))
    assert result.exit_code == 0, result.output
    assert f"no checksum list found beside the listing ({url}{name})" in result.output
    assert (tmp_path / "c.txt").read_text() == index.read_text()


# --- DR9 north + south: one combined list ------------------------------------------------------

#: Boxes imaged by both DR9 folders: the same sweep names, different bytes.
DR9_BOXES = [SweepBox(150.0, 160.0, 30.0, 35.0), SweepBox(20.0, 30.0, 30.0, 35.0)]


@pytest.mark.spark
def test_a_combined_north_south_list_verifies_every_file_and_names_a_corrupt_one(
        spark, config, served, tmp_path):
    base, root, _handler = served
    folders = {}
    for k, (region, release) in enumerate((("north", 9011), ("south", 9010))):
        folder = root / "dr9" / region / "sweep" / "9.0"
        folder.mkdir(parents=True)
        paths = [folder / sweep_name(box) for box in DR9_BOXES]
        for j, (box, path) in enumerate(zip(DR9_BOXES, paths)):
            generate_sweep(path, box, ROWS, seed=100 * k + j, release_default=release,
                           release_10002_fraction=0.0)
        # the survey's own list: bare names, as published
        checksum_list(folder / f"legacysurvey_dr9_{region}_sweep_9.0.sha256sum", paths)
        folders[region] = paths
    north, south = folders["north"], folders["south"]
    assert [p.name for p in north] == [p.name for p in south]
    assert all(sha256(a) != sha256(b) for a, b in zip(north, south))

    index = tmp_path / "idx" / "dr9.txt"
    urls = {r: f"{base}/dr9/{r}/sweep/9.0/" for r in ("north", "south")}
    result = invoke("index", "--release", "dr9", "--region", "both", "--base-url",
                    f"north={urls['north']}", "--base-url", f"south={urls['south']}",
                    "--output", str(index))
    assert result.exit_code == 0, result.output
    combined = tmp_path / "idx" / "dr9_north_south_sweep_9.0.sha256sum"
    assert combined.read_text().splitlines() == [
        f"{sha256(p)}  {region}/sweep/9.0/{p.name}"
        for region in ("north", "south") for p in folders[region]]
    assert (f"checksums: {urls['north']}legacysurvey_dr9_north_sweep_9.0.sha256sum + "
            f"{urls['south']}legacysurvey_dr9_south_sweep_9.0.sha256sum -> {combined} "
            "(combined: each path carries its folder, e.g. north/sweep/9.0/<name>; 4 of 4 "
            "indexed sweep(s) listed)") in result.output
    elsewhere = tmp_path / "lists" / "dr9.sha256sum"  # --checksums-out: the combined list
    result = invoke("index", "--release", "dr9", "--region", "both", "--base-url",
                    f"north={urls['north']}", "--base-url", f"south={urls['south']}",
                    "--output", str(tmp_path / "again.txt"), "--checksums-out", str(elsewhere))
    assert result.exit_code == 0 and elsewhere.read_bytes() == combined.read_bytes()
    # the folders' published lists put together cannot tell their files apart...
    both = tmp_path / "both.sha256sum"
    both.write_text("".join(
        (root / f"dr9/{r}/sweep/9.0/legacysurvey_dr9_{r}_sweep_9.0.sha256sum").read_text()
        for r in ("north", "south")))
    with pytest.raises(RunFailed, match=r"both\.sha256sum lists sweep-\S+\.fits twice with "
                                        "different SHA-256 values"):
        run_job(spark, JobSpec(str(index), str(tmp_path / "bare"),
                               config.replace(run={"checksums": str(both)})),
                emit=lambda _line: None)

    # ... the combined one verifies every file, each against its own folder's hash
    out = tmp_path / "out"
    result = invoke("run", "--index", str(index), "--output", str(out), "--checksums",
                    str(combined))
    assert result.exit_code == 0, result.output
    record = manifest(out)
    assert record["totals"]["files_sha256_verified"] == 4
    local = {f"{urls[r]}{p.name}": p for r in folders for p in folders[r]}
    assert sorted(e["uri"] for e in record["files"]) == sorted(local)
    for entry in record["files"]:
        assert entry["sha256_verified"] is True
        assert entry["sha256"] == entry["sha256_expected"] == sha256(local[entry["uri"]])

    # the same list verifies a local mirror of the tree; a corrupt south file is named
    bad = south[0]
    listed_sha = sha256(bad)
    data = bytearray(bad.read_bytes())
    data[-100] ^= 0xFF  # one flipped bit in the last rows: still a readable FITS file
    bad.write_bytes(bytes(data))
    mirror = write_index(tmp_path / "mirror.txt", [*north, *south])
    with pytest.raises(RunFailed) as info:
        run_job(spark, JobSpec(str(mirror), str(tmp_path / "mirror-out"),
                               config.replace(run={"checksums": str(combined)})),
                emit=lambda _line: None)
    assert str(info.value) == (f"{bad}: SHA-256 mismatch: expected {listed_sha}, "
                               f"got {sha256(bad)}")
    failed = [f for f in manifest(tmp_path / "mirror-out", "_last_failure.json")["files"]
              if f["status"] == "failed"]
    assert [f["uri"] for f in failed] == [str(bad)]
