"""The typed configuration: one file of defaults, overridden by file, environment, flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from halo_lrg.config import DEFAULTS_FILE, ConfigError, load_config

REPO = Path(__file__).resolve().parents[1]


def test_packaged_defaults_are_the_conf_file():
    assert DEFAULTS_FILE.read_bytes() == (REPO / "conf" / "halo-lrg.toml").read_bytes()


def test_defaults_load_with_the_documented_values():
    cfg = load_config(env={})
    assert cfg.cuts.selection == "seed"
    assert (cfg.cuts.lrg_z_mag_max, cfg.cuts.lrg_min_r_minus_z,
            cfg.cuts.lrg_min_z_minus_w1) == (20.4, 0.4, 0.8)
    assert cfg.run.master == "local[*]" and cfg.run.on_error == "fail"


def test_file_then_environment_then_flags(tmp_path):
    user = tmp_path / "mine.toml"
    user.write_text('[cuts]\nlrg_z_mag_max = 20.0\n[run]\nmaster = "local[3]"\n')
    cfg = load_config(user, env={"HALO_LRG_RUN__MASTER": "local[1]",
                                 "HALO_LRG_READ__FAST_PATH": "false"})
    assert cfg.cuts.lrg_z_mag_max == 20.0          # from the file
    assert cfg.run.master == "local[1]"            # environment beats the file
    assert cfg.read.fast_path is False             # strings coerced to the field's type
    flagged = cfg.replace(run={"master": "local[2]", "on_error": None})
    assert flagged.run.master == "local[2]" and flagged.run.on_error == "fail"


def test_config_file_from_environment_variable(tmp_path):
    user = tmp_path / "mine.toml"
    user.write_text("[read]\nchunk_rows = 1000\n")
    assert load_config(env={"HALO_LRG_CONFIG": str(user)}).read.chunk_rows == 1000


@pytest.mark.parametrize("text,message", [
    ("[cuts]\nlrg_z_max = 20\n", r"unknown key cuts.lrg_z_max \(known: selection"),
    ("[nope]\nx = 1\n", r"unknown section \[nope\]"),
    ("[read]\nchunk_rows = 'many'\n", r"read.chunk_rows: expected int, got 'many'"),
    ("[read]\nchunk_rows = 2.5\n", r"read.chunk_rows: expected an integer"),
    ("[read]\nfast_path = 3\n", r"read.fast_path: expected true or false"),
    ("[cuts\n", r"not valid TOML"),
])
def test_mistakes_are_named(tmp_path, text, message):
    user = tmp_path / "bad.toml"
    user.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(user, env={})


def test_bad_environment_variables_are_named():
    with pytest.raises(ConfigError, match=r"HALO_LRG_MASTER: expected HALO_LRG_<SECTION>__<KEY>"):
        load_config(env={"HALO_LRG_MASTER": "local"})
    with pytest.raises(ConfigError, match=r"environment: unknown key run\.mastr"):
        load_config(env={"HALO_LRG_RUN__MASTR": "local"})


def test_missing_user_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.toml: configuration file not found"):
        load_config(tmp_path / "nope.toml", env={})
