"""What ``submit`` uploads, keyed by its content.

The artefact set is the wheel, the two step scripts, the bootstrap script and the run's
configuration. They go to ``<code-prefix>/<version>-<digest>/`` where the digest is the
SHA-256 of the whole set (12 hex digits): a changed wheel, script or setting is a new
directory, never an old upload reused, and a resubmission of the same set finds its objects
already there (``launch.upload`` skips them after a HEAD).

The step scripts and the bootstrap template are package data (``halo_lrg/aws/jobs/*.py``,
``halo_lrg/aws/bootstrap.sh``), read with importlib.resources, so an installed halo-lrg
uploads the same bytes as a source checkout. Pure: nothing here talks to AWS.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

from halo_lrg import __version__

#: The step scripts shipped as package data, by role.
JOB_SCRIPTS = {"job": "lrg_density.py", "debug": "emr_debug.py"}
BOOTSTRAP_NAME = "bootstrap.sh"
CONFIG_NAME = "halo-lrg.toml"
DIGEST_CHARS = 12


def artifact_names(wheel_name: str) -> dict[str, str]:
    """role -> file name in the artefact directory."""
    return {"wheel": wheel_name, **JOB_SCRIPTS, "bootstrap": BOOTSTRAP_NAME,
            "config": CONFIG_NAME}


def base_uri(code_prefix: str, digest: str) -> str:
    """``<code-prefix>/<version>-<digest>``: the one place the layout is decided."""
    return f"{code_prefix.rstrip('/')}/{__version__}-{digest}"


def package_file(*parts: str) -> bytes:
    """A file shipped inside ``halo_lrg/aws/`` (works from a wheel or zip too)."""
    node = resources.files("halo_lrg.aws")
    for part in parts:
        node = node.joinpath(part)
    return node.read_bytes()


def job_script(name: str) -> bytes:
    """``lrg_density.py`` or ``emr_debug.py``: the step script as ``submit`` uploads it."""
    return package_file("jobs", name)


def run_job_script(name: str) -> None:
    """Run a packaged step script as ``__main__`` (what ``jobs/*.py`` in a checkout do, so
    there is one copy of each script's code)."""
    source = job_script(name)
    filename = f"halo_lrg/aws/jobs/{name}"
    exec(compile(source, filename, "exec"), {"__name__": "__main__", "__file__": filename})


@dataclass(frozen=True)
class Artifact:
    role: str  #: wheel, job, debug, bootstrap, config
    name: str  #: the file name under the artefact directory
    body: bytes


@dataclass(frozen=True)
class ArtifactSet:
    items: tuple[Artifact, ...]

    @property
    def digest(self) -> str:
        """SHA-256 over every artefact's role, name and content: 12 hex digits."""
        h = hashlib.sha256()
        for item in sorted(self.items, key=lambda a: a.role):
            h.update(f"{item.role}\0{item.name}\0".encode())
            h.update(hashlib.sha256(item.body).digest())
        return h.hexdigest()[:DIGEST_CHARS]

    def uris(self, code_prefix: str) -> dict[str, str]:
        """role -> the S3 URI the artefact is uploaded to."""
        base = base_uri(code_prefix, self.digest)
        return {item.role: f"{base}/{item.name}" for item in self.items}

    def uploads(self, code_prefix: str) -> list[tuple[str, bytes]]:
        """(uri, body) for every artefact."""
        base = base_uri(code_prefix, self.digest)
        return [(f"{base}/{item.name}", item.body) for item in self.items]


def artifact_set(wheel_name: str, wheel: bytes, bootstrap: str, config_toml: str
                 ) -> ArtifactSet:
    """The set for one submission: the wheel's bytes, the packaged step scripts, the
    rendered bootstrap script and the configuration the step reads."""
    return ArtifactSet((
        Artifact("wheel", wheel_name, wheel),
        *(Artifact(role, name, job_script(name)) for role, name in JOB_SCRIPTS.items()),
        Artifact("bootstrap", BOOTSTRAP_NAME, bootstrap.encode()),
        Artifact("config", CONFIG_NAME, config_toml.encode()),
    ))
