"""Post-training quantisation shared by the integer models (core.int_ops): a float convolution to
an IntConv, per output channel the largest power-of-two shift that keeps every sum exact."""

from __future__ import annotations

import torch

from evc_archive.core.int_ops import MAX_INT, MAX_SHIFT, WIDE_MAX_SHIFT, IntConv, within_bounds


def quantize_conv(conv: torch.nn.Conv2d, in_scale: torch.Tensor, out_scale: torch.Tensor,
                  limit: int = MAX_INT, wide: bool = False) -> IntConv:
    """A float conv whose input channels hold integers * in_scale (I,) -> an IntConv whose output
    channels hold integers * out_scale (O,) (or one scale for all), clamped to +-limit (`wide`: the
    16-bit float64-carried form). A channel
    whose weights do not fit even at shift 0 (one calibration never activated) is zeroed."""
    real = conv.weight.detach().double() * in_scale.double()[None, :, None, None]  # acts on integer inputs
    bias = conv.bias.detach().double() if conv.bias is not None else torch.zeros(real.shape[0], dtype=torch.float64)
    out_scale = out_scale.double().expand(real.shape[0])
    weights, biases, shifts = [], [], []
    top = WIDE_MAX_SHIFT if wide else MAX_SHIFT
    for o in range(real.shape[0]):
        w_o, b_o, s_o = real[o] / out_scale[o], bias[o] / out_scale[o], 0
        if not within_bounds(torch.round(w_o), torch.round(b_o), wide):
            w_o, b_o = torch.zeros_like(w_o), torch.zeros_like(b_o)
        while s_o < top and within_bounds(torch.round(w_o * 2.0 ** (s_o + 1)), torch.round(b_o * 2.0 ** (s_o + 1)), wide):
            s_o += 1
        weights.append(torch.round(w_o * 2.0 ** s_o))
        biases.append(torch.round(b_o * 2.0 ** s_o))
        shifts.append(s_o)
    return IntConv(torch.stack(weights).to(torch.int64), torch.stack(biases).to(torch.int64),
                   torch.tensor(shifts, dtype=torch.int64), conv.stride[0], limit, wide)
