"""`halo-lrg run` end to end through the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from halo_lrg.cli import main

pytestmark = pytest.mark.spark
REPO = Path(__file__).resolve().parents[1]


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_run_prints_progress_and_a_summary(spark, sample, tmp_path):
    out = tmp_path / "out"
    result = invoke("run", "--index", str(sample["index"]), "--output", str(out),
                    "--selection", "desi-lrg")
    assert result.exit_code == 0, result.output
    text = result.output
    assert "counting LRGs (desi-lrg) in 3 file(s)" in text
    assert sum(line.startswith("[") and " ok " in line for line in text.splitlines()) == 3
    assert "files: 3 ok, 0 failed of 3" in text and "LRGs:" in text and "bricks:" in text
    assert (out / "lrg_counts_per_brick" / "part-00000.csv").exists()


def test_run_flags_override_thresholds(spark, sample, tmp_path):
    loose = invoke("run", "--index", str(sample["index"]), "--output", str(tmp_path / "a"),
                   "--z-mag-max", "21.5")
    strict = invoke("run", "--index", str(sample["index"]), "--output", str(tmp_path / "b"),
                    "--z-mag-max", "19.5")
    assert loose.exit_code == strict.exit_code == 0

    def total(out):
        lines = (out / "lrg_counts_per_brick" / "part-00000.csv").read_text().splitlines()[1:]
        return sum(int(line.split(",")[1]) for line in lines)

    assert total(tmp_path / "a") > total(tmp_path / "b")
    assert '"lrg_z_mag_max": 21.5' in (tmp_path / "a" / "manifest.json").read_text()


def test_bad_file_exits_nonzero_with_one_line(spark, sample, defects, tmp_path):
    index = tmp_path / "index.txt"
    index.write_text(f"{sample['paths'][0]}\n{defects['truncated']}\n")
    result = invoke("run", "--index", str(index), "--output", str(tmp_path / "out"))
    assert result.exit_code == 1
    last = result.output.strip().splitlines()[-1]
    assert last.startswith(f"Error: {defects['truncated']}: truncated")


def test_bad_flag_values_are_refused_before_spark(tmp_path):
    result = CliRunner().invoke(main, ["run", "--index", "i", "--output", "o",
                                       "--selection", "nope"])
    assert result.exit_code == 2 and "Invalid value for '--selection'" in result.output
    result = CliRunner().invoke(main, ["run", "--index", "i", "--output", "o",
                                       "--dec-min", "10", "--dec-max", "5"])
    assert result.exit_code == 2 and "dec_min (10.0) must be below dec_max (5.0)" in result.output


def test_help_teaches():
    text = CliRunner().invoke(main, ["run", "--help"]).output
    for needle in ("--index", "--selection", "--on-error", "--max-sweeps", "Example:",
                   "lrg_counts_per_brick/part-00000.csv"):
        assert needle in text


def test_console_script_is_installed():
    done = subprocess.run([str(Path(sys.executable).with_name("halo-lrg")), "--version"],
                          capture_output=True, text=True)
    assert done.returncode == 0 and "halo-lrg, version" in done.stdout


def test_missing_java_is_one_line_saying_what_to_install(tmp_path):
    index = tmp_path / "index.txt"
    index.write_text("x.fits\n")
    env = {"PATH": "/usr/bin:/bin", "JAVA_HOME": str(tmp_path / "no-jdk"), "HOME": str(tmp_path)}
    done = subprocess.run([str(Path(sys.executable).with_name("halo-lrg")), "run", "--index",
                           str(index), "--output", str(tmp_path / "out")],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Spark needs Java 17" in lines[0] and "no-jdk has no bin/java" in lines[0]
