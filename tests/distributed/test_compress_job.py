"""jobs/compress.py (the `ray job submit` entry point) builds the same job as `evc-archive submit`
from the same options: the two entry points must not drift apart."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from evc_archive import cli
from evc_archive.core.encoder import EncoderSettings
from jobs import compress

OPTION_SETS = [
    [],
    ["--intra-only"],
    ["--no-inter", "--residual-levels", "1"],
    ["--keyframe-codec", "hyperprior", "--predictor", "block-hint", "--quality", "3", "--gop", "12"],
]


def cli_settings(monkeypatch, tmp_path, options: list[str]) -> EncoderSettings:
    """The settings `evc-archive submit` hands to the pipeline (the pipeline itself stubbed out)."""
    from evc_archive.distributed import submit as submit_module

    seen = {}

    def fake_submit(cfg, *args, **kwargs):
        seen["cfg"] = cfg
        raise KeyboardInterrupt  # stop right after the config is built

    monkeypatch.setattr(submit_module, "submit", fake_submit)
    CliRunner().invoke(cli.app, ["submit", str(tmp_path), "--out", str(tmp_path / "a"), *options])
    return seen["cfg"].settings


@pytest.mark.parametrize("options", OPTION_SETS)
def test_job_and_cli_build_the_same_settings(monkeypatch, tmp_path, options):
    job = compress.encoder_settings(compress.parse_args([str(tmp_path), "--out", str(tmp_path / "a"), *options]))
    assert job == cli_settings(monkeypatch, tmp_path, options)


def test_job_defaults_are_the_products():
    settings = compress.encoder_settings(compress.parse_args(["videos/", "--out", "archive/"]))
    assert settings.residual_levels == cli.DEFAULTS["residual_levels"] and settings.inter_fallback
    assert settings.quality == cli.DEFAULT_QUALITY[cli.DEFAULTS["keyframe_codec"]]


def test_bad_residual_levels_is_an_option_error():
    with pytest.raises(SystemExit) as exc:
        compress.parse_args(["videos/", "--out", "archive/", "--residual-levels", "-1"])
    assert exc.value.code == 2
