"""The tree is the architecture: every module imports alone, and each layer imports only the
layers below it (docs/architecture.md draws the same picture)."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import halo_lrg

PACKAGE_DIR = Path(halo_lrg.__file__).parent

#: What each part of the package may import from halo_lrg (itself always allowed).
#: ``root`` is ``halo_lrg/__init__.py`` (``__version__``); ``cuts`` the notebook alias.
ALLOWED = {
    "config": set(),
    "fits": set(),
    "science": {"config"},
    "io": {"root", "config"},
    "survey": {"config", "science", "fits", "io"},
    "count": {"config", "science", "fits", "io"},
    "spark": {"root", "config", "science", "fits", "io", "survey", "count"},
    "aws": {"root", "config", "io", "survey"},
    "cuts": {"science"},
    "root": {"count"},
    "cli": {"root", "config", "science", "fits", "io", "survey", "count", "spark", "aws"},
}
#: Only the Spark layer (and the CLI above it, lazily) may import pyspark.
PYSPARK_ALLOWED = {"spark", "cli"}


def modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(halo_lrg.__path__, "halo_lrg."))


def part_of(module: str) -> str:
    """``halo_lrg.spark.job`` -> ``spark``; the package itself (``halo_lrg``, or a name
    imported from it such as ``halo_lrg.__version__``) -> ``root``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED else "root"


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def source_of(module: str) -> Path:
    relative = Path(*module.split(".")[1:])
    package = PACKAGE_DIR / relative / "__init__.py"
    return package if package.exists() else (PACKAGE_DIR / relative).with_suffix(".py")


def test_the_package_has_the_documented_parts():
    parts = {m.split(".")[1] for m in modules()} | {"root"}
    assert parts == set(ALLOWED), "a new part needs a row in ALLOWED and docs/architecture.md"


@pytest.mark.parametrize("module", modules())
def test_each_layer_imports_only_the_layers_below_it(module):
    part = part_of(module)
    uses = {part_of(name) for name in imported_modules(source_of(module))
            if name == "halo_lrg" or name.startswith("halo_lrg.")}
    forbidden = uses - ALLOWED[part] - {part}
    assert not forbidden, f"{module} ({part}) imports {sorted(forbidden)}"
    if part not in PYSPARK_ALLOWED:
        spark = {n for n in imported_modules(source_of(module)) if n.split(".")[0] == "pyspark"}
        assert not spark, f"{module} imports {sorted(spark)}: only halo_lrg.spark may"


def test_every_module_imports_alone_in_a_fresh_interpreter():
    # One interpreter per module: an import cycle that works only in one order shows here.
    script = ("import subprocess, sys\n"
              "bad = [m for m in sys.argv[1:] if subprocess.run(\n"
              "    [sys.executable, '-c', 'import ' + m], capture_output=True).returncode]\n"
              "print(' '.join(bad))\n")
    done = subprocess.run([sys.executable, "-c", script, *modules()], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == []


def test_the_notebook_imports_stay_light():
    code = ("import sys, halo_lrg, halo_lrg.cuts; "
            "heavy = {'pyspark', 'fitsio', 'pandas', 'pyarrow', 'boto3'} & set(sys.modules); "
            "print(sorted(heavy)); "
            "assert callable(halo_lrg.cuts.get_selection)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_console_script_points_at_the_cli_group():
    # A fresh install builds the `halo-lrg` script from pyproject.toml: an entry point that
    # names a missing object breaks `make run` on a new machine, not in an old venv.
    import importlib

    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    scripts = tomllib.loads((PACKAGE_DIR.parents[1] / "pyproject.toml").read_text())[
        "project"]["scripts"]
    module, _, attribute = scripts["halo-lrg"].partition(":")
    main = getattr(importlib.import_module(module), attribute)
    assert main.name == "main" and "run" in main.commands and "submit" in main.commands
