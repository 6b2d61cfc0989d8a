"""What the commands share: click settings, the configuration the group loaded, footprint
flags. Command modules import from here, never from the package ``halo_lrg.cli`` itself, so
each imports alone."""

from __future__ import annotations

from typing import Any, Optional

import click

from halo_lrg.config import Config, ConfigError, load_config

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def get_config(ctx: click.Context) -> Config:
    """The configuration loaded by the top-level group (defaults + file + environment)."""
    root = ctx.find_root()
    if root.obj is None:
        root.obj = {}
    if "config" not in root.obj:
        try:
            root.obj["config"] = load_config(root.params.get("config_file"))
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
    return root.obj["config"]


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
