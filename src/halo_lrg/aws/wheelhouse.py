"""A wheelhouse: the pinned dependency wheels for the nodes, so the bootstrap needs no PyPI.

Nodes in a private subnet without a NAT gateway reach S3 (through a gateway endpoint) but
not PyPI. ``submit --wheelhouse DIR`` fills DIR with the wheels of ``emr.bootstrap_packages``
and their dependencies for the nodes' Python and architecture, if DIR lacks any pin::

    python -m pip download --only-binary=:all: --implementation cp --python-version 3.11 \\
        --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --dest DIR <pins>

(you may run that yourself, on any machine with PyPI access, and copy DIR over), uploads
DIR's wheels to ``<code-prefix>/wheelhouse/<key>/`` and has the bootstrap install from there
with ``pip install --no-index --find-links``. The key is a digest of the pins, the Python
version and the platforms: another set of pins is another directory.

x86_64 only: fitsio publishes no aarch64 wheels, so Graviton nodes must compile it, which a
wheelhouse of binary wheels cannot do.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Callable

from halo_lrg.config import EmrConfig

#: AL2023 (glibc 2.34) runs manylinux_2_28 wheels (fitsio's) and manylinux2014 ones (the
#: rest); pip does not widen an explicit --platform, so both are named.
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux2014_x86_64")
WHEELHOUSE_DIR = "wheelhouse"


class WheelhouseError(ValueError):
    """The wheelhouse cannot be made or used; the message says why and what to do."""


def python_version(emr: EmrConfig) -> str:
    """``3.11`` from ``emr.python`` (``/usr/bin/python3.11``)."""
    match = re.search(r"python(\d+\.\d+)$", emr.python)
    if not match:
        raise WheelhouseError(
            f"--wheelhouse needs the nodes' Python version, and emr.python = {emr.python!r} "
            "does not name one: set it to a versioned path such as /usr/bin/python3.11")
    return match.group(1)


def is_graviton(instance_type: str) -> bool:
    """m6g, c7gn, r7gd, im4gn ...: a ``g`` after the generation digit means Graviton."""
    family = instance_type.split(".")[0]
    return re.match(r"^[a-z]+\d+[a-z]*g", family) is not None


def check_nodes(emr: EmrConfig) -> None:
    types = [emr.instance_type, emr.core_instance_type]
    if emr.task_count:
        types.append(emr.task_instance_type or emr.core_instance_type)
    graviton = sorted({t for t in types if is_graviton(t)})
    if graviton:
        raise WheelhouseError(
            f"--wheelhouse holds x86_64 wheels, but {', '.join(graviton)} is Graviton "
            "(aarch64), where fitsio has no wheel and must compile: use x86_64 instance "
            "types (m5, r5, c5, m6i ...), or drop --wheelhouse and give the nodes PyPI")


def pins(emr: EmrConfig) -> list[str]:
    return emr.bootstrap_packages.split()


def key(emr: EmrConfig) -> str:
    """12 hex digits over the pins, the Python version and the platforms."""
    text = "\n".join([python_version(emr), *PLATFORMS, *sorted(pins(emr))])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def wheelhouse_uri(emr: EmrConfig) -> str:
    """Where the wheels go and the bootstrap copies them from (a prefix ending in /)."""
    return f"{emr.code_prefix.rstrip('/')}/{WHEELHOUSE_DIR}/{key(emr)}/"


def download_command(emr: EmrConfig, dest: Path, python: str = sys.executable) -> list[str]:
    command = [python, "-m", "pip", "download", "--only-binary=:all:", "--implementation",
               "cp", "--python-version", python_version(emr)]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    return [*command, "--dest", str(dest), *pins(emr)]


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def wheels_in(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.whl")) if directory.is_dir() else []


def missing_pins(requirements: Sequence[str], wheels: Iterable[Path]) -> list[str]:
    """The pins no wheel in ``wheels`` provides (by name, and version for ``==`` pins)."""
    have = set()
    for wheel in wheels:
        name, _, rest = wheel.name.partition("-")
        have.add((_normal(name), rest.split("-")[0]))
    names = {name for name, _version in have}
    missing = []
    for requirement in requirements:
        name, sep, version = requirement.partition("==")
        if sep:
            found = (_normal(name.strip()), version.strip()) in have
        else:
            found = _normal(re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0]) in names
        if not found:
            missing.append(requirement)
    return missing


def prepare(emr: EmrConfig, directory: Path, emit: Callable[[str], None] = print,
            run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> list[Path]:
    """DIR's wheels, downloaded first (``download_command``) when a pin has none there."""
    check_nodes(emr)
    missing = missing_pins(pins(emr), wheels_in(directory))
    if missing:
        directory.mkdir(parents=True, exist_ok=True)
        command = download_command(emr, directory)
        emit(f"wheelhouse {directory}: lacks {', '.join(missing)}; downloading: "
             f"{' '.join(command)}")
        done = run(command, capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout or "").strip().splitlines()[-1:] or ["no output"]
            raise WheelhouseError(f"pip download for the wheelhouse failed: {tail[0]} (run "
                                  f"the command above where PyPI is reachable, then pass "
                                  f"--wheelhouse {directory})")
        still = missing_pins(pins(emr), wheels_in(directory))
        if still:
            raise WheelhouseError(f"wheelhouse {directory} still lacks {', '.join(still)} "
                                  "after pip download")
    return wheels_in(directory)
