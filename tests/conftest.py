"""Shared fixtures: tiny deterministic models (random weights, fixed seeds) and synthetic video."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from evc_archive.core.hyperprior import HyperpriorModel, KeyframeCodec, KeyframeConfig
from evc_archive.core.predictors.diffusion import DiffusionConfig, DiffusionPredictor

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TINY_KEYFRAME = KeyframeConfig(channels=16, latent_channels=16)
TINY_DIFFUSION = DiffusionConfig(context_frames=2, frames_per_call=3, base_channels=8, channel_mults=(1, 2),
                                 default_steps=2)


def make_tiny_codec(path: Path) -> KeyframeCodec:
    torch.manual_seed(1234)
    models = {1: HyperpriorModel(TINY_KEYFRAME), 2: HyperpriorModel(TINY_KEYFRAME)}
    KeyframeCodec.save(path, TINY_KEYFRAME, models)
    return KeyframeCodec.load(path)


def make_tiny_int_codec(float_codec: KeyframeCodec, path: Path) -> KeyframeCodec:
    """The tiny codec with its synthesis quantised (kind 3), grids sized on two synthetic frames."""
    from evc_archive.training.keyframe_quantize import quantize_keyframe_synthesis

    synthesis = quantize_keyframe_synthesis(float_codec, list(moving_square_video(2, 64, 64)))
    KeyframeCodec.save_int(path, float_codec, synthesis)
    return KeyframeCodec.load(path, integer=True)


def make_tiny_predictor(path: Path) -> DiffusionPredictor:
    torch.manual_seed(4321)
    unet = DiffusionPredictor.build_unet(TINY_DIFFUSION)
    for p in unet.parameters():  # zero-initialised output layers would make a do-nothing model
        torch.nn.init.normal_(p, std=0.05)
    DiffusionPredictor.save(path, TINY_DIFFUSION, unet)
    return DiffusionPredictor.from_bytes(path.read_bytes())


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("tiny-models")
    make_tiny_codec(d / "tiny-keyframe.pt")
    make_tiny_predictor(d / "tiny-predictor.pt")
    return d


@pytest.fixture(scope="session")
def tiny_codec(tiny_model_dir) -> KeyframeCodec:
    return KeyframeCodec.load(tiny_model_dir / "tiny-keyframe.pt")


@pytest.fixture(scope="session")
def tiny_int_codec(tiny_codec, tiny_model_dir) -> KeyframeCodec:
    return make_tiny_int_codec(tiny_codec, tiny_model_dir / "tiny-keyframe-int.pt")


@pytest.fixture(scope="session")
def tiny_predictor(tiny_model_dir) -> DiffusionPredictor:
    return DiffusionPredictor.from_bytes((tiny_model_dir / "tiny-predictor.pt").read_bytes())


@pytest.fixture(scope="session")
def lpips_metric():
    from evc_archive.core.metrics import shared_lpips

    return shared_lpips()


def moving_square_video(n: int = 12, h: int = 48, w: int = 64, seed: int = 0) -> torch.Tensor:
    """(n,h,w,3) uint8: a textured background with a square moving right."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    background = np.stack([(xx * 4) % 256, (yy * 5) % 256, ((xx + yy) * 3) % 256], -1).astype(np.float64)
    frames = []
    for t in range(n):
        f = background.copy()
        x0 = (4 + 3 * t) % (w - 12)
        f[10:22, x0:x0 + 12] = [250, 40, 40]
        frames.append(np.clip(f + rng.normal(0, 2, f.shape), 0, 255).astype(np.uint8))
    return torch.from_numpy(np.stack(frames))


@pytest.fixture(scope="module")
def ray_cluster():
    """A real local Ray cluster with 2 CPUs for the whole module; the pipeline's init_ray reuses it."""
    import ray

    if ray.is_initialized():  # never two clusters at once
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()
