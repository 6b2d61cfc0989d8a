"""What the commands share: click settings, the configuration the group loaded, footprint
flags. Command modules import from here, never from the package ``halo_lrg.cli`` itself, so
each imports alone."""

from __future__ import annotations

import logging
from typing import Any, Optional

import click

from halo_lrg.config import ENV_CONFIG_FILE, Config, ConfigError, load_config

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def get_config(ctx: click.Context) -> Config:
    """The configuration loaded by the top-level group (defaults + file + environment)."""
    root = ctx.find_root()
    if root.obj is None:
        root.obj = {}
    if "config" not in root.obj:
        root.obj["config"] = load_user_config(root.params.get("config_file"))
    return root.obj["config"]


def load_user_config(location: Optional[str]) -> Config:
    """The configuration with ``location`` (or ``$HALO_LRG_CONFIG``) as the user file: a
    local path, ``file://``, ``s3://`` or ``http(s)://``; a ClickException naming it when it
    cannot be read or is wrong."""
    import os

    from halo_lrg.io.fetch import SourceError, read_bytes
    from halo_lrg.io.uri import scheme_of

    location = location or os.environ.get(ENV_CONFIG_FILE) or None
    try:
        if location and scheme_of(location) != "file":
            # Fetched with the defaults' remote settings: the file cannot configure its own
            # download.
            data = read_bytes(location, load_config(env={}))
            return load_config(location, data=data)
        return load_config(location)
    except SourceError as exc:
        raise click.ClickException(f"cannot read the configuration {exc}") from None
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def override(config: Config, **sections: dict[str, Any]) -> Config:
    try:
        return config.replace(**sections)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def footprint_options(function: Any) -> Any:
    """--ra-min/--ra-max/--dec-min/--dec-max, shared by every command that filters the sky."""
    for name, help_text in reversed([
        ("--ra-min", "Footprint: lowest RA in degrees (a footprint with ra-min > ra-max wraps "
                     "through RA 0)."),
        ("--ra-max", "Footprint: RA upper bound in degrees (exclusive)."),
        ("--dec-min", "Footprint: lowest Dec in degrees."),
        ("--dec-max", "Footprint: Dec upper bound in degrees (exclusive)."),
    ]):
        function = click.option(name, type=float, default=None, help=help_text)(function)
    return function


def make_footprint(ra_min: Optional[float], ra_max: Optional[float], dec_min: Optional[float],
                   dec_max: Optional[float]) -> Any:
    from halo_lrg.science.footprint import Footprint

    try:
        return Footprint.from_bounds(ra_min, ra_max, dec_min, dec_max)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="footprint") from None


class _EchoHandler(logging.Handler):
    """The library's log records as the CLI prints them: warnings and errors on stderr,
    prefixed, the rest as plain lines on stdout."""

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            click.echo(f"{record.levelname.lower()}: {message}", err=True)
        else:
            click.echo(message)


def show_library_messages(verbose: bool = False) -> None:
    """Print what ``halo_lrg``'s loggers say (INFO and up; DEBUG with ``verbose``). Only the
    CLI calls this: the library itself only logs."""
    logger = logging.getLogger("halo_lrg")
    if not any(isinstance(h, _EchoHandler) for h in logger.handlers):
        logger.addHandler(_EchoHandler())
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)


def science_options(function: Any) -> Any:
    """What a count is: --selection, --resolve/--no-resolve, the seed thresholds,
    --chunk-rows, --on-error, --max-sweeps and the footprint flags. Shared by ``run`` and
    ``submit`` (so the cluster counts with exactly the flags given to either; ``submit``
    takes them as ``**science`` and a new one here reaches the cluster with no other change);
    :func:`apply_science_options` turns the values into configuration and a footprint."""
    options = [
        click.option("--selection", default=None, metavar="NAME[,NAME...]",
                     help="LRG selection [config cuts.selection: seed]. seed: an unmasked "
                          "colour cut on dereddened z, r-z, z-W1 (no quality mask); desi-lrg: "
                          "the DESI main-survey LRG selection (Zhou et al. 2023) with its "
                          "quality mask, applied to DR10 photometry: DESI-like, not the DESI "
                          "target sample; desi-lrg-south/-north force one hemisphere's cuts; "
                          "or a name from the configuration's [selections] (a built-in one "
                          "with other thresholds). Several, comma-separated (seed,desi-lrg), "
                          "are counted in one read of each file: one CSV column each."),
        click.option("--resolve/--no-resolve", "resolve", default=None,
                     help="North/south resolution as DESI does it (desitarget's "
                          "targets.resolve): where BASS/MzLS and DECam overlap keep each "
                          "object only from the system DESI keeps there [default: config "
                          "run.resolve = auto: when both systems appear among the inputs "
                          "(PHOTSYS, else RELEASE)]. --resolve: always; --no-resolve: never "
                          "(RA, DEC, PHOTSYS/RELEASE then not read). The manifest's "
                          "north_south says which applied and why."),
        click.option("--healpix-nside", type=int, default=None, metavar="N",
                     callback=_check_nside,
                     help="Also count objects and LRGs per NESTED HEALPix pixel at this nside "
                          "(a power of two; 256 = 0.05 deg² pixels), in the same read: "
                          "<output>/lrg_healpix.csv and lrg_healpix.fits (a partial-sky map "
                          "healpy reads) [config run.healpix_nside: 0, no map]."),
        click.option("--on-error", type=click.Choice(["fail", "skip"]), default=None,
                     help="fail: stop at the first unusable file (default); skip: record it "
                          "in the manifest and count the rest."),
        click.option("--max-sweeps", type=click.IntRange(min=0), default=None, metavar="N",
                     help="Read at most N files (after footprint filtering): for smoke "
                          "tests. 0 = all."),
        click.option("--z-mag-max", type=float, default=None,
                     help="seed: dereddened z < this [20.4]."),
        click.option("--min-r-minus-z", type=float, default=None,
                     help="seed: r - z > this [0.4]."),
        click.option("--min-z-minus-w1", type=float, default=None,
                     help="seed: z - W1 > this [0.8]."),
        click.option("--chunk-rows", type=click.IntRange(min=1), default=None,
                     help="Rows read per chunk [config read.chunk_rows]. A task holds ~700 "
                          "bytes a row of it (the 505-byte read buffer and column copies): "
                          "small enough that a node's tasks share its L3 cache."),
    ]
    function = footprint_options(function)
    for option in reversed(options):
        function = option(function)
    return function


def _check_nside(_ctx: Any, _param: Any, value: Optional[int]) -> Optional[int]:
    if value is not None and (value < 0 or value & (value - 1) or value > 8192):
        raise click.BadParameter(f"{value} is not 0 or a power of two up to 8192")
    return value


def apply_science_options(config: Config, *, selection: Optional[str] = None,
                          resolve: Optional[bool] = None, healpix_nside: Optional[int] = None,
                          on_error: Optional[str] = None, max_sweeps: Optional[int] = None,
                          z_mag_max: Optional[float] = None,
                          min_r_minus_z: Optional[float] = None,
                          min_z_minus_w1: Optional[float] = None,
                          chunk_rows: Optional[int] = None, ra_min: Optional[float] = None,
                          ra_max: Optional[float] = None, dec_min: Optional[float] = None,
                          dec_max: Optional[float] = None) -> tuple[Config, Any]:
    """The flags of :func:`science_options` over ``config`` (unset flags change nothing),
    and the footprint they name (None: the whole sky)."""
    if selection is not None and not [n for n in selection.split(",") if n.strip()]:
        raise click.BadParameter("expected one or more selection names",
                                 param_hint="'--selection'")
    config = override(
        config,
        cuts={"selection": selection, "lrg_z_mag_max": z_mag_max,
              "lrg_min_r_minus_z": min_r_minus_z, "lrg_min_z_minus_w1": min_z_minus_w1},
        run={"on_error": on_error, "max_sweeps": max_sweeps,
             "resolve": None if resolve is None else ("on" if resolve else "off"),
             "healpix_nside": healpix_nside},
        read={"chunk_rows": chunk_rows},
    )
    check_selections(config, flagged=selection is not None)
    return config, make_footprint(ra_min, ra_max, dec_min, dec_max)


def check_selections(config: Config, flagged: bool = False) -> None:
    """The selections ``config`` names exist and its ``[selections]`` variants are sound,
    before anything starts: a usage error for a bad ``--selection`` (``flagged``), else a
    one-line error naming the setting."""
    from halo_lrg.science.cuts import SelectionError, selections_of

    try:
        selections_of(config)
    except SelectionError as exc:
        if flagged:
            raise click.BadParameter(str(exc), param_hint="'--selection'") from None
        raise click.ClickException(f"cuts.selection: {exc}") from None
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
