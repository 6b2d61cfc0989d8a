"""The documentation runs: docs/quickstart.ipynb executes top to bottom, and the README's
notebook snippet runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.spark  # each starts a SparkSession of its own (a user's)


def test_the_quickstart_notebook_executes(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")

    notebook = nbformat.read(REPO / "docs" / "quickstart.ipynb", as_version=4)
    env = {"QUICKSTART_DIR": str(tmp_path), "PYSPARK_PYTHON": sys.executable}
    old = {key: os.environ.get(key) for key in env}
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    outputs = "\n".join(o.get("text", "") for cell in notebook.cells
                        for o in cell.get("outputs", []) if o.get("output_type") == "stream")
    assert re.search(r"\d+ bricks, \d+ LRGs", outputs)
    assert "LRGs per deg²" in outputs and "pixels of" in outputs
    assert (tmp_path / "density_map.png").stat().st_size > 10_000


def test_the_readme_notebook_snippet_runs_as_written(tmp_path):
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Notebooks"):]
    snippet = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    done = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600,
                          env={**os.environ, "PYSPARK_PYTHON": sys.executable})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "brickname" in done.stdout and "lrg_count" in done.stdout
