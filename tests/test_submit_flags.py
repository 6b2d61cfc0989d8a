"""`halo-lrg submit` counts on the cluster with exactly the science flags `halo-lrg run` takes:
every flag of `run` is either taken by `submit` (and reaches the step's configuration the
same way) or named in `submit --help` as not applicable, so a new `run` flag cannot be
forgotten silently. No AWS call: `submit --dry-run` with the uploaded configuration captured
where it is built."""

from __future__ import annotations

import json
import os
import zipfile

import click
import pytest
from click.testing import CliRunner

from halo_lrg import __version__
from halo_lrg.cli import main
from halo_lrg.cli.emr import submit_command
from halo_lrg.cli.run import run_command
from halo_lrg.config import load_config

#: `run` flags that `submit` takes under another name, with the same meaning.
RENAMED = {
    "index_uri": "sweep_index_s3",  # --index: the sweep index (on S3 for the cluster)
    "output_uri": "output_prefix",  # --output: where the step writes its result
}

#: `run` flags `submit` does not take: each is named in `submit --help`, saying why.
NOT_APPLICABLE = {
    "master",        # the step runs on the cluster's YARN
    "config_file",   # the group's --config; the effective configuration is what is uploaded
    "resume",        # config run.resume travels in the uploaded configuration
    "retry_failed",  # a resubmission to the same prefix resumes: only failed files recount
    "with_density",  # not written on the cluster: `halo-lrg density` on the fetched CSV
    "formats",       # config output.formats travels; fetch downloads the CSV and manifest
}

#: Same name in both, deliberately another definition on `submit`.
DIFFERENT = {
    "region",     # submit: the cluster's region (the step's too unless remote.region)
    "checksums",  # submit: s3:// or http(s):// only, the nodes cannot read a local path
}

#: One value for every science flag the two commands share (a new shared flag without one
#: fails test_every_shared_flag_has_a_sample).
SAMPLES = {
    "selection": ["--selection", "seed,desi-lrg"],
    "resolve": ["--no-resolve"],
    "healpix_nside": ["--healpix-nside", "64"],
    "on_error": ["--on-error", "skip"],
    "max_sweeps": ["--max-sweeps", "2"],
    "z_mag_max": ["--z-mag-max", "20.1"],
    "min_r_minus_z": ["--min-r-minus-z", "0.5"],
    "min_z_minus_w1": ["--min-z-minus-w1", "0.9"],
    "chunk_rows": ["--chunk-rows", "4096"],
    "ra_min": ["--ra-min", "150"],
    "ra_max": ["--ra-max", "160.5"],
    "dec_min": ["--dec-min=-10"],
    "dec_max": ["--dec-max", "35"],
    "checksums": ["--checksums", "s3://halo-flags/lists/dr9_north_south_sweep_9.0.sha256sum"],
}
FOOTPRINT = ("ra_min", "ra_max", "dec_min", "dec_max")


def params(command: click.Command) -> dict[str, click.Parameter]:
    return {p.name: p for p in command.params if p.name != "help"}


def test_every_run_flag_is_taken_by_submit_or_documented_as_not_applicable():
    run, submit = params(run_command), params(submit_command)
    help_text = submit_command.help or ""
    unaccounted = [name for name in run
                   if name not in submit and name not in RENAMED and name not in NOT_APPLICABLE]
    assert unaccounted == [], f"run flags neither taken by submit nor documented: {unaccounted}"
    # the lists name real run flags that submit really lacks (they cannot rot)
    assert set(run) >= NOT_APPLICABLE and not NOT_APPLICABLE & set(submit)
    assert set(RENAMED) <= set(run) and set(RENAMED.values()) <= set(submit)
    # `submit --help` names each run flag it does not take, every spelling of it
    for name in sorted(NOT_APPLICABLE | set(RENAMED)):
        for opt in run[name].opts + run[name].secondary_opts:
            assert opt in help_text, f"submit --help does not mention run's {opt}"


def test_shared_flags_are_one_definition():
    run, submit = params(run_command), params(submit_command)
    shared = (set(run) & set(submit)) - DIFFERENT
    assert {"resolve", "selection", "on_error", "max_sweeps"} <= shared
    for name in sorted(shared):
        a, b = run[name], submit[name]
        assert (a.opts, a.secondary_opts, a.default, a.help, str(a.type)) == \
               (b.opts, b.secondary_opts, b.default, b.help, str(b.type)), name
    assert run["resolve"].secondary_opts == ["--no-resolve"]


def test_every_shared_flag_has_a_sample():
    shared = (set(params(run_command)) & set(params(submit_command))) - {"region"}
    assert set(SAMPLES) == shared


@pytest.fixture
def captured(monkeypatch, tmp_path):
    """Runs `run` and `submit --dry-run` with the given flags; returns what each would
    give the count: (run's configuration and footprint, submit's uploaded configuration
    and step arguments)."""
    for name in list(os.environ):
        if name.startswith("HALO_LRG_"):
            monkeypatch.delenv(name)
    seen: dict = {}

    from halo_lrg.aws import artifacts
    from halo_lrg.spark import run as spark_run
    from halo_lrg.spark import session

    real_artifact_set = artifacts.artifact_set

    def artifact_set(wheel_name, wheel, bootstrap, config_toml):
        seen["uploaded"] = load_config(env={}, data=config_toml.encode())
        return real_artifact_set(wheel_name, wheel, bootstrap, config_toml)

    def run_job(_spark, spec, emit=None):
        seen["run"] = spec
        raise spark_run.RunFailed("captured")

    monkeypatch.setattr(artifacts, "artifact_set", artifact_set)
    monkeypatch.setattr(spark_run, "run_job", run_job)
    monkeypatch.setattr(session, "get_spark", lambda *_a, **_k: None)
    wheel = tmp_path / f"halo_lrg-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:  # what --wheel checks; nothing is uploaded
        archive.writestr("halo_lrg/__init__.py", "")
    bucket = "s3://halo-flags"

    def both(flags: list[str]):
        runner = CliRunner()
        result = runner.invoke(main, ["run", "--index", str(tmp_path / "i.txt"), "--output",
                                      str(tmp_path / "out"), *flags])
        assert "captured" in result.output, result.output
        result = runner.invoke(main, [
            "submit", "--region", "us-east-1", "--sweep-index-s3", f"{bucket}/sweeps.txt",
            "--output-prefix", f"{bucket}/run1", "--code-prefix", f"{bucket}/code",
            "--log-uri", f"{bucket}/logs", "--wheel", str(wheel), "--dry-run", *flags])
        assert result.exit_code == 0, result.output
        request = json.loads(result.output)
        (step,) = request["Steps"]
        return seen["run"], seen["uploaded"], step["HadoopJarStep"]["Args"]

    return both


@pytest.mark.parametrize("flags", [*SAMPLES.values(), ["--resolve"]],
                         ids=[*SAMPLES, "resolve-on"])
def test_submit_gives_the_step_what_run_would_count_with(captured, flags):
    spec, uploaded, args = captured(flags)
    defaults = load_config(env={})
    # the same science configuration, and the flag changed something in it
    for section in ("cuts", "run", "read"):
        assert getattr(uploaded, section) == getattr(spec.config, section), section
    assert uploaded.selections == spec.config.selections
    footprint = spec.footprint.to_dict() if spec.footprint else {}
    step_footprint = {key: float(args[args.index("--" + key.replace("_", "-")) + 1])
                      for key in FOOTPRINT if "--" + key.replace("_", "-") in args}
    assert step_footprint == {k: v for k, v in footprint.items() if k in step_footprint}
    changed = [s for s in ("cuts", "run", "read")
               if getattr(uploaded, s) != getattr(defaults, s)] + list(step_footprint)
    assert changed, f"{flags} changed nothing the step reads"


def test_submit_resolve_flags_set_run_resolve(captured):
    assert captured(["--no-resolve"])[1].run.resolve == "off"
    assert captured(["--resolve"])[1].run.resolve == "on"
    assert captured([])[1].run.resolve == "auto"


def test_submit_refuses_a_local_checksum_list(tmp_path, monkeypatch):
    listing = tmp_path / "dr9.sha256sum"
    listing.write_text(f"{'a' * 64}  north/sweep/9.0/sweep-150p030-160p035.fits\n")
    for name in list(os.environ):
        if name.startswith("HALO_LRG_"):
            monkeypatch.delenv(name)
    flags = ["submit", "--region", "us-east-1", "--sweep-index-s3", "s3://halo-flags/s.txt",
             "--output-prefix", "s3://halo-flags/run1", "--code-prefix", "s3://halo-flags/c",
             "--log-uri", "s3://halo-flags/logs", "--dry-run"]
    result = CliRunner().invoke(main, [*flags, "--checksums", str(listing)])
    assert result.exit_code == 2
    assert f"{listing}: a local checksum list, which the cluster cannot read" in result.output
    monkeypatch.setenv("HALO_LRG_RUN__CHECKSUMS", str(listing))  # from the configuration
    result = CliRunner().invoke(main, flags)
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        f"Error: run.checksums = {listing}: a local checksum list, which the cluster cannot "
        "read; upload it (aws s3 cp) and give its s3:// URI")
