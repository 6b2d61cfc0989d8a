"""`halo-lrg run` end to end through the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
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


def test_desi_lrg_follows_a_photsys_column_through_the_whole_run(spark, tmp_path):
    # desitarget writes PHOTSYS as a 1-character string; a RELEASE that says north (9011)
    # must not win over PHOTSYS = 'S', on the way through `halo-lrg run` and Spark.
    import fitsio
    from numpy.lib import recfunctions

    from halo_lrg.survey.names import SweepBox, sweep_name
    from halo_lrg.survey.synth import generate_sweep

    paths = []
    for k in range(2):
        box = SweepBox(150.0 + 5 * k, 155.0 + 5 * k, 0.0, 5.0)
        path = tmp_path / sweep_name(box)
        generate_sweep(path, box, 8000, seed=k, release_default=9011,
                       release_10002_fraction=0.0)
        with fitsio.FITS(str(path)) as fits:
            primary, data = fits[0].read_header(), fits["SWEEP"].read()
        data = recfunctions.append_fields(data, "PHOTSYS", np.full(len(data), b"S"),
                                          dtypes="S1", usemask=False)
        with fitsio.FITS(str(path), "rw", clobber=True) as fits:
            fits.write(None, header=primary)
            fits.write(data, extname="SWEEP")
        paths.append(path)
    index = tmp_path / "index.txt"
    index.write_text("".join(f"{p}\n" for p in paths))
    csv = {}
    for selection in ("desi-lrg", "desi-lrg-south", "desi-lrg-north"):
        result = invoke("run", "--index", str(index), "--output", str(tmp_path / selection),
                        "--selection", selection)
        assert result.exit_code == 0, result.output
        csv[selection] = (tmp_path / selection / "lrg_counts_per_brick/part-00000.csv"
                          ).read_text()
    assert csv["desi-lrg"] == csv["desi-lrg-south"]
    assert csv["desi-lrg"] != csv["desi-lrg-north"]
