"""One typed configuration object, loaded from ``conf/halo-lrg.toml``.

Priority, lowest first: the packaged defaults (``conf/halo-lrg.toml``, shipped in the wheel
as ``halo_lrg/defaults.toml``), a user file (``--config`` or ``HALO_LRG_CONFIG``), environment
variables ``HALO_LRG_<SECTION>__<KEY>``, then explicit overrides (command-line flags).

Every key the program reads is a field here, so a typo in a file or variable is an error that
names it rather than a silently ignored setting.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any, Optional, TypeVar, Union, get_type_hints

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.9/3.10 (EMR)
    import tomli as tomllib

ENV_PREFIX = "HALO_LRG_"
ENV_CONFIG_FILE = "HALO_LRG_CONFIG"
DEFAULTS_FILE = Path(__file__).with_name("defaults.toml")


class ConfigError(ValueError):
    """A configuration file, variable or value is wrong; the message says which."""


class NameList(str):
    """The type of a setting that names one thing or several, kept as one comma-separated
    string (``"seed,desi-lrg"``): TOML may give a string or a list of strings, the
    environment and flags a comma-separated string."""


@dataclass(frozen=True)
class CutsConfig:
    selection: NameList
    lrg_z_mag_max: float
    lrg_min_r_minus_z: float
    lrg_min_z_minus_w1: float
    unknown_release_photsys: str


@dataclass(frozen=True)
class ReadConfig:
    chunk_rows: int
    fast_path: bool


@dataclass(frozen=True)
class RunConfig:
    master: str
    on_error: str
    max_sweeps: int
    app_name: str
    progress_interval: float
    progress_file_seconds: float
    driver_memory: str
    local_java_options: str
    local_task_attempts: int
    tune_python_workers: bool
    resume: bool
    checksums: str
    resolve: str
    split_bytes: int
    pack_bytes: int
    healpix_nside: int

    def __post_init__(self) -> None:
        for key in ("split_bytes", "pack_bytes"):
            if getattr(self, key) < 0:
                raise ConfigError(f"run.{key} must be >= 0 (0: off), got "
                                  f"{getattr(self, key)}")
        nside = self.healpix_nside
        if nside and (nside < 0 or nside & (nside - 1) or nside > 8192):
            raise ConfigError(f"run.healpix_nside must be 0 (no map) or a power of two up to "
                              f"8192, got {nside}")


@dataclass(frozen=True)
class SynthConfig:
    files: int
    rows: int
    seed: int
    release_10002_fraction: float
    ra_start: float
    dec_start: float
    object_density: float
    lrg_density: float


@dataclass(frozen=True)
class ScienceConfig:
    cell_deg: float
    top: int
    min_area: float
    map_width_in: float
    map_height_in: float
    map_dpi: int


@dataclass(frozen=True)
class RemoteConfig:
    region: str
    s3_endpoint_url: str
    profile: str
    max_attempts: int
    backoff_base_seconds: float
    backoff_max_seconds: float
    connect_timeout_seconds: float
    read_timeout_seconds: float
    download_chunk_bytes: int
    s3_max_concurrency: int
    s3_part_bytes: int
    http_parts: int
    http_part_bytes: int
    max_connections_per_host: int
    verify_etag: bool
    tmp_dir: str
    head_concurrency: int
    stream_remote: bool


@dataclass(frozen=True)
class IndexConfig:
    dr10_south_url: str
    dr9_south_url: str
    dr9_north_url: str


@dataclass(frozen=True)
class EmrConfig:
    region: str
    release_label: str
    job_name: str
    instance_type: str
    core_instance_type: str
    core_count: int
    spot: bool
    service_role: str
    job_flow_role: str
    code_prefix: str
    output_prefix: str
    log_uri: str
    sweep_index_s3: str
    idle_timeout_seconds: int
    python: str
    bootstrap_packages: str
    poll_interval_seconds: float
    wait_timeout_seconds: float
    task_count: int
    task_instance_type: str
    yarn_memory_mb: int
    executors_per_node: int
    executor_cores: int
    executor_memory: str
    subnet_id: str
    key_name: str
    master_security_group: str
    core_security_group: str
    additional_master_security_groups: tuple[str, ...]
    additional_core_security_groups: tuple[str, ...]
    ebs_gb: int
    tags: tuple[str, ...]


#: The table formats a run or command can write (``[output] formats``): the names
#: :mod:`halo_lrg.io.tables` writes, checked here so a typo fails when the configuration is
#: loaded (before a cluster is launched), not when a finished run publishes.
OUTPUT_FORMATS = ("csv", "fits", "parquet")


@dataclass(frozen=True)
class OutputConfig:
    formats: NameList

    def __post_init__(self) -> None:
        unknown = [name for name in self.formats.split(",")
                   if name.strip().lower() not in OUTPUT_FORMATS]
        if unknown:
            raise ConfigError(f"output.formats: unknown format {unknown[0]!r} (choose from "
                              f"{', '.join(OUTPUT_FORMATS)})")


#: MASKBITS is a 32-bit signed column: the bits ``area.mask_bits`` may name.
_MAX_MASK_BITS = 2**31 - 1


@dataclass(frozen=True)
class AreaConfig:
    """``[area]``: ``halo-lrg area``, effective areas from randoms files on Spark."""

    mask_bits: int
    density: float
    split_bytes: int
    pack_bytes: int

    def __post_init__(self) -> None:
        if not 0 <= self.mask_bits <= _MAX_MASK_BITS:
            raise ConfigError(f"area.mask_bits must be within [0, {_MAX_MASK_BITS}], got "
                              f"{self.mask_bits}")
        if not self.density > 0 or self.density == float("inf"):
            raise ConfigError(f"area.density must be a positive number of randoms per deg², "
                              f"got {self.density}")
        for key in ("split_bytes", "pack_bytes"):
            if getattr(self, key) < 0:
                raise ConfigError(f"area.{key} must be >= 0 (0: off), got "
                                  f"{getattr(self, key)}")


@dataclass(frozen=True)
class Config:
    cuts: CutsConfig
    read: ReadConfig
    run: RunConfig
    synth: SynthConfig
    science: ScienceConfig
    remote: RemoteConfig
    index: IndexConfig
    emr: EmrConfig
    output: OutputConfig
    area: AreaConfig
    #: Named selection variants, ``{name: {"base": <built-in>, <threshold>: value, ...}}``
    #: (the ``[selections]`` tables; :mod:`halo_lrg.science.cuts` builds them).
    selections: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def replace(self, **sections: Mapping[str, Any]) -> Config:
        """A copy with some keys changed: ``cfg.replace(run={"master": "local[2]"})``.

        ``None`` values are ignored, so unset command-line flags can be passed straight in.
        """
        return _apply(self, {s: {k: v for k, v in kv.items() if v is not None}
                             for s, kv in sections.items()}, origin="override")

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)


T = TypeVar("T")


def _coerce(value: Any, target: Any, where: str) -> Any:
    """Convert a TOML or environment value to the field's declared type."""
    if target is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in {"1", "true", "yes", "on"}:
            return True
        if isinstance(value, str) and value.strip().lower() in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if target in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            number = target(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected {target.__name__}, got {value!r}") from None
        if target is int and isinstance(value, float) and value != number:
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return number
    if target is NameList:
        items = value if isinstance(value, (list, tuple)) else [value]
        if not all(isinstance(v, str) for v in items):
            raise ConfigError(f"{where}: expected a name or a list of names, got {value!r}")
        names = [name.strip() for item in items for name in item.split(",")]
        if not names or not all(names):
            raise ConfigError(f"{where}: expected a name or a list of names, got {value!r}")
        return ",".join(names)
    if target is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    origin = getattr(target, "__origin__", None)
    if origin is Union:  # Optional[X]
        args = [a for a in target.__args__ if a is not type(None)]
        return None if value is None else _coerce(value, args[0], where)
    if origin in (list, tuple):
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item_type,) = target.__args__[:1]
        return tuple(_coerce(v.strip() if isinstance(v, str) else v, item_type, where)
                     for v in items)
    return value


def _apply(cfg: T, updates: Mapping[str, Mapping[str, Any]], origin: str) -> T:
    section_types = get_type_hints(type(cfg))
    new_sections = {}
    for section, values in updates.items():
        if section == "selections" and section in section_types:
            new_sections[section] = _selection_variants(getattr(cfg, section), values, origin)
            continue
        if section not in section_types:
            known = ", ".join(sorted(section_types))
            raise ConfigError(f"{origin}: unknown section [{section}] (known: {known})")
        if not isinstance(values, Mapping):
            raise ConfigError(f"{origin}: [{section}] must be a table of keys")
        current = getattr(cfg, section)
        field_types = get_type_hints(type(current))
        changes = {}
        for key, value in values.items():
            if key not in field_types:
                known = ", ".join(f.name for f in fields(current))
                raise ConfigError(f"{origin}: unknown key {section}.{key} (known: {known})")
            changes[key] = _coerce(value, field_types[key], f"{origin}: {section}.{key}")
        new_sections[section] = dataclasses.replace(current, **changes)
    return dataclasses.replace(cfg, **new_sections)


#: A variant's name: a CSV column and a manifest key (no comma, no TOML dot, no blank).
_VARIANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
#: Names the wide counts table already uses for other columns.
_RESERVED_NAMES = frozenset({"brickname", "n_objects", "lrg_count"})


def _selection_variants(current: Mapping[str, Any], values: Any, origin: Any
                        ) -> dict[str, dict[str, Any]]:
    """``[selections]``: each ``<name> = {base = "<built-in>", <threshold> = value, ...}``.

    Checked here: the shape (a table per name, a string ``base``, plain values) and the
    name (it becomes a CSV column). Which bases and thresholds exist is the science layer's
    to say (:func:`halo_lrg.science.cuts.selection_variant`), with a ConfigError as well.
    An environment value is the table written inline: ``HALO_LRG_SELECTIONS__Z20P2='{base =
    "seed", lrg_z_mag_max = 20.2}'``."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{origin}: [selections] must be a table of named selections")
    variants = {name: dict(table) for name, table in current.items()}
    for name, table in values.items():
        where = f"{origin}: selections.{name}"
        if isinstance(table, str):  # from the environment: an inline table
            with contextlib.suppress(tomllib.TOMLDecodeError):
                table = tomllib.loads(f"v = {table}")["v"]
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where}: expected a table such as "
                              '{base = "seed", lrg_z_mag_max = 20.2}, got ' f"{table!r}")
        if not _VARIANT_NAME.match(name) or name.lower() in _RESERVED_NAMES:
            raise ConfigError(f"{where}: a selection name is letters, digits, '-' and '_' "
                              "(it names a CSV column), and not brickname, n_objects or "
                              "lrg_count")
        base = table.get("base")
        if not isinstance(base, str) or not base.strip():
            raise ConfigError(f"{where}: needs base = \"<a built-in selection>\"")
        for key, value in table.items():
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise ConfigError(f"{where}.{key}: expected a number or a string, got "
                                  f"{value!r}")
        variants[name] = {key: (value.strip() if key == "base" else value)
                          for key, value in table.items()}
    return variants


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return _parse_toml(fh.read(), path)
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None


def _parse_toml(data: bytes, origin: Any) -> dict[str, Any]:
    try:
        return tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{origin}: not valid TOML: {exc}") from None


def _packaged_defaults() -> dict[str, Any]:
    # Through importlib.resources, not a path: on a cluster the package is imported from the
    # zip/wheel shipped with --py-files, where no defaults.toml exists on disk.
    data = resources.files("halo_lrg").joinpath("defaults.toml").read_bytes()
    return _parse_toml(data, DEFAULTS_FILE)


def _from_defaults(data: Mapping[str, Any]) -> Config:
    """Build the Config from the defaults file, which must set every key."""
    sections: dict[str, Any] = {}
    for f in fields(Config):
        if f.name == "selections":  # named variants: none need be defined
            sections[f.name] = _selection_variants({}, data.get(f.name, {}), DEFAULTS_FILE)
            continue
        section_cls = get_type_hints(Config)[f.name]
        raw = data.get(f.name, {})
        missing = [sf.name for sf in fields(section_cls) if sf.name not in raw]
        if missing:
            raise ConfigError(f"{DEFAULTS_FILE}: [{f.name}] lacks {', '.join(missing)}")
        hints = get_type_hints(section_cls)
        sections[f.name] = section_cls(**{
            sf.name: _coerce(raw[sf.name], hints[sf.name], f"{DEFAULTS_FILE}: {f.name}.{sf.name}")
            for sf in fields(section_cls)})
    unknown = set(data) - {f.name for f in fields(Config)}
    if unknown:
        raise ConfigError(f"{DEFAULTS_FILE}: unknown section(s) {sorted(unknown)}")
    return Config(**sections)


def _env_updates(env: Mapping[str, str]) -> dict[str, dict[str, str]]:
    updates: dict[str, dict[str, str]] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_CONFIG_FILE:
            continue
        section, sep, key = name[len(ENV_PREFIX):].lower().partition("__")
        if not sep:
            raise ConfigError(f"environment {name}: expected {ENV_PREFIX}<SECTION>__<KEY>")
        updates.setdefault(section, {})[key] = value
    return updates


def load_config(
    path: Optional[Union[str, Path]] = None,
    env: Optional[Mapping[str, str]] = None,
    data: Optional[bytes] = None,
) -> Config:
    """Defaults, then the user file, then the environment.

    The user file is ``data`` (its TOML bytes, fetched by the caller from wherever ``path``
    names: the CLI reads ``s3://`` and ``https://`` configurations this way) or the local file
    ``path``, else ``$HALO_LRG_CONFIG``.
    """
    env = os.environ if env is None else env
    cfg = _from_defaults(_packaged_defaults())
    user_file = path or env.get(ENV_CONFIG_FILE)
    if data is not None:
        cfg = _apply(cfg, _parse_toml(data, user_file or "configuration"),
                     origin=str(user_file or "configuration"))
    elif user_file:
        cfg = _apply(cfg, _read_toml(Path(user_file)), origin=str(user_file))
    return _apply(cfg, _env_updates(env), origin="environment")


def to_toml(cfg: Config) -> str:
    """The whole configuration as TOML that :func:`load_config` reads back to ``cfg``: what
    ``submit`` uploads so the cluster runs exactly the launching machine's settings."""
    lines = []
    for section, values in cfg.to_dict().items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        import json

        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):  # an inline table ([selections] entries)
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}"
                               for k, v in value.items()) + "}"
    raise ConfigError(f"cannot write {value!r} as TOML")


def _toml_key(key: str) -> str:
    import json

    return key if re.match(r"^[A-Za-z0-9_-]+$", key) else json.dumps(key)
