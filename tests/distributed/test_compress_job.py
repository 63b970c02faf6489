"""jobs.compress (the `ray job submit` entry point) builds the same job as `evc-archive submit`
from the same options: the two entry points must not drift apart."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from evc_archive import cli
from evc_archive.core.registry import DEFAULT_KEYFRAME_CODEC, DEFAULT_PREDICTOR
from evc_archive.core.settings import EncoderSettings
from jobs import compress, ray_job, restore

OPTION_SETS = [
    [],
    ["--intra-only"],
    ["--no-inter", "--residual-levels", "1"],
    ["--keyframe-codec", "hyperprior-int", "--predictor", "copy-last", "--quality", "3", "--gop", "12"],
]


@pytest.fixture
def submitted(monkeypatch):
    """The SubmitConfigs handed to the pipeline (the pipeline itself stubbed out)."""
    from evc_archive.distributed import submit as submit_module

    seen = []

    def fake_submit(cfg, *args, **kwargs):
        seen.append(cfg)
        raise KeyboardInterrupt  # stop right after the config is built

    monkeypatch.setattr(submit_module, "submit", fake_submit)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    return seen


def job_config(tmp_path, options: list[str], seen: list):
    assert compress.main([str(tmp_path), "--out", str(tmp_path / "a"), *options]) == 130
    return seen[-1]


@pytest.mark.parametrize("options", OPTION_SETS)
def test_job_and_cli_build_the_same_settings(submitted, tmp_path, options):
    job = job_config(tmp_path, options, submitted)
    CliRunner().invoke(cli.app, ["submit", str(tmp_path), "--out", str(tmp_path / "a"), *options])
    assert job.settings == submitted[-1].settings
    assert (job.predictor, job.keyframe_codec) == (submitted[-1].predictor, submitted[-1].keyframe_codec)


def test_job_defaults_are_the_products(submitted, tmp_path):
    cfg = job_config(tmp_path, [], submitted)
    assert cfg.settings == EncoderSettings.product()
    assert (cfg.predictor, cfg.keyframe_codec) == (DEFAULT_PREDICTOR, DEFAULT_KEYFRAME_CODEC)


def test_bad_residual_levels_is_an_option_error(submitted, tmp_path, capsys):
    assert compress.main(["videos/", "--out", str(tmp_path / "a"), "--residual-levels", "-1"]) == 1
    assert "--residual-levels" in capsys.readouterr().err
    assert not submitted  # rejected before any work


def test_inside_ray_job_submit_the_job_attaches_to_the_cluster(submitted, tmp_path, monkeypatch):
    assert job_config(tmp_path, [], submitted).address is None  # local: the CLI starts a cluster
    monkeypatch.setenv("RAY_ADDRESS", "http://head:8265")
    assert job_config(tmp_path, [], submitted).address == "auto"
    assert job_config(tmp_path, ["--address", "ray://head:10001"], submitted).address == "ray://head:10001"


def test_help_lists_the_job_options_and_the_commands(capsys):
    assert compress.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "--wait-for-gpus" in out and "--residual-levels" in out and "--target-bpp" in out


@pytest.mark.parametrize("job, where", [(compress, "/proc/no-such-dir/archive"), (restore, "/no/such/archive")])
def test_a_bad_location_fails_before_waiting_for_gpus(job, where, tmp_path, monkeypatch, capsys):
    waited = []
    monkeypatch.setattr(ray_job, "wait_for_gpus", lambda *args: waited.append(args))
    monkeypatch.setattr(ray_job, "release_gpus", lambda: None)
    argv = [str(tmp_path), "--out", where] if job is compress else [where, "--out", str(tmp_path / "r")]
    assert job.main([*argv, "--wait-for-gpus", "4"]) == 1
    assert not waited and capsys.readouterr().err.startswith("error:")
