"""The integer synthesis transform (core.int_synthesis): close to the float g_s it comes from, the
same bits whatever the summation order, thread count or batch, bounds that keep every sum exact,
and a file round trip."""

import math

import pytest
import torch
import torch.nn.functional as F

from evc_archive.core.hyperprior import HyperpriorModel, KeyframeConfig
from evc_archive.core import int_synthesis
from evc_archive.core.int_ops import round_shift
from evc_archive.core.int_synthesis import (
    ACT_LIMIT,
    GAMMA_BITS,
    WEIGHT_BITS,
    IntDeconv,
    IntInverseGDN,
    IntSynthesis,
    grid_bits,
    quantize_synthesis,
)

CONFIG = KeyframeConfig(channels=16, latent_channels=24)


@pytest.fixture(scope="module")
def float_and_int():
    torch.manual_seed(3)
    g_s = HyperpriorModel(CONFIG).g_s.eval()
    latents = [torch.randint(-6, 7, (1, 24, 3, 4)).float() for _ in range(4)]
    return g_s, quantize_synthesis(g_s, latents)


def test_integer_frames_are_within_one_level_of_the_float_ones(float_and_int):
    g_s, synthesis = float_and_int
    y = torch.randint(-6, 7, (2, 24, 3, 5)).float()
    with torch.no_grad():
        float_frames = torch.floor(g_s(y).clamp(0, 1) * 255 + 0.5)
    frames = synthesis(y)
    assert frames.dtype == torch.uint8 and frames.shape == (2, 3, 48, 80)
    assert (frames.double() - float_frames).abs().max() <= 1
    assert (frames.double() != float_frames).double().mean() < 0.03  # 1.2 % with these random weights


def test_the_same_bits_whatever_the_order_of_the_sums(float_and_int):
    """Permuting the input channels (and the weights with them) reorders every sum; the batch and
    the thread count change how kernels split the work: none of it may change a bit."""
    _, synthesis = float_and_int
    y = torch.randint(-40, 41, (3, 24, 4, 4)).float()
    frames = synthesis(y)
    first = synthesis.layers[0]
    order = torch.randperm(24)
    permuted = IntSynthesis((IntDeconv(first.weight[order], first.bias, first.in_bits, first.out_bits),
                             *synthesis.layers[1:]))
    assert torch.equal(permuted(y[:, order]), frames)
    assert torch.equal(synthesis(y[1:2]), frames[1:2])
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert torch.equal(synthesis(y), frames)
    finally:
        torch.set_num_threads(threads)


def test_every_activation_stays_on_its_grid_and_within_the_limit(float_and_int):
    _, synthesis = float_and_int
    a = torch.full((1, 24, 2, 2), float(ACT_LIMIT), dtype=torch.float64)  # far outside calibration
    for layer in synthesis.layers:
        a = layer(a)
        assert a.dtype == torch.float64 and torch.equal(a, a.round()) and a.abs().max() <= ACT_LIMIT
    assert synthesis(torch.full((1, 24, 2, 2), 1e6)).shape == (1, 3, 32, 32)  # clamps are part of the definition


def test_layers_that_could_leave_exact_float64_are_refused():
    weight = torch.full((4, 3, 5, 5), 2**30, dtype=torch.int64)
    with pytest.raises(ValueError, match="exact range of float64"):
        IntDeconv(weight, torch.zeros(3, dtype=torch.int64), 0, 10)
    with pytest.raises(ValueError, match="output grid finer"):
        IntDeconv(torch.ones(4, 3, 5, 5, dtype=torch.int64), torch.zeros(3, dtype=torch.int64), 0, 17)
    with pytest.raises(ValueError, match="gamma must be >= 0"):
        IntInverseGDN(-torch.ones(3, 3, dtype=torch.int64), torch.ones(3, dtype=torch.int64), 8, 8)
    with pytest.raises(ValueError, match="exact range of float64"):
        IntInverseGDN(torch.full((3, 3), 2**25, dtype=torch.int64), torch.ones(3, dtype=torch.int64), 8, 8)


def test_quantisation_expects_gs_made_of_deconvolutions_and_inverse_gdn():
    from compressai.layers import GDN

    forward_gdn = torch.nn.Sequential(torch.nn.ConvTranspose2d(4, 4, 5, 2, 2, 1), GDN(4),
                                      torch.nn.ConvTranspose2d(4, 3, 5, 2, 2, 1))
    with pytest.raises(ValueError, match="inverse GDN"):
        quantize_synthesis(forward_gdn, [torch.zeros(1, 4, 2, 2)])


def test_grid_bits_leave_headroom():
    assert grid_bits(1.0) == 12  # 4 * 1.0 * 2^12 = 16384 <= 32767 < 4 * 2^13
    assert grid_bits(1e9) == 0 and grid_bits(0.0) == 24


def test_file_round_trip_gives_the_same_frames(float_and_int):
    _, synthesis = float_and_int
    again = IntSynthesis.from_file(synthesis.to_file())
    y = torch.randint(-6, 7, (1, 24, 3, 3)).float()
    assert torch.equal(again(y), synthesis(y))


def deconv_reference(layer: IntDeconv, a: torch.Tensor) -> torch.Tensor:
    """IntDeconv's definition in int64: exact sums (float64 below 2^50), + bias, round half up, clamp."""
    acc = F.conv_transpose2d(a.double(), layer.weight.double(), stride=2, padding=2, output_padding=1)
    acc = acc.to(torch.int64) + layer.bias[:, None, None]
    return round_shift(acc, layer.in_bits + WEIGHT_BITS - layer.out_bits).clamp_(-ACT_LIMIT, ACT_LIMIT)


def gdn_reference(layer: IntInverseGDN, a: torch.Tensor) -> torch.Tensor:
    """IntInverseGDN's definition in int64 and Python's exact integer square root."""
    norm = torch.einsum("cj,njhw->nchw", layer.gamma, a * a) + layer.beta[:, None, None]
    root = torch.tensor([math.isqrt(int(v)) for v in norm.flatten()]).view(norm.shape)
    return round_shift(a * root, 2 * layer.bits + GAMMA_BITS // 2 - layer.out_bits).clamp_(-ACT_LIMIT, ACT_LIMIT)


@pytest.mark.parametrize("outputs, band_bytes", [(3, None), (16, None), (16, 1)])  # torch's transposed
# convolution; one matrix product per tap over all rows, and over one input row at a time
def test_layers_are_their_integer_definition(monkeypatch, outputs, band_bytes):
    if band_bytes is not None:
        monkeypatch.setattr(int_synthesis, "BAND_BYTES", band_bytes)
    gen = torch.Generator().manual_seed(outputs)
    a = torch.randint(-ACT_LIMIT, ACT_LIMIT + 1, (2, 8, 3, 5), generator=gen)
    deconv = IntDeconv(torch.randint(-2**16, 2**16, (8, outputs, 5, 5), generator=gen),
                       torch.randint(-2**30, 2**30, (outputs,), generator=gen), 6, 9)
    assert torch.equal(deconv(a.double()), deconv_reference(deconv, a).double())
    gdn = IntInverseGDN(torch.randint(0, 2**14, (8, 8), generator=gen), torch.randint(1, 2**30, (8,), generator=gen), 6, 9)
    assert torch.equal(gdn(a.double()), gdn_reference(gdn, a).double())
