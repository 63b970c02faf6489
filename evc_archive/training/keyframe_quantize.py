"""Post-training quantisation of the hyperprior keyframe codec's synthesis transform (kind 1 ->
kind 3, core.int_synthesis), and how far the integer frames are from the float ones."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from evc_archive.core.hyperprior import KeyframeCodec, _pad
from evc_archive.core.int_synthesis import IntSynthesis, quantize_synthesis


@torch.no_grad()
def latents_of(codec: KeyframeCodec, quality: int, frames: Iterable[torch.Tensor]) -> list[torch.Tensor]:
    """frames (H,W,3) uint8 -> the quantised latents y (1,M,H'/16,W'/16) the decoder sees."""
    model = codec.models[quality]
    return [torch.round(model.g_a(_pad(f.permute(2, 0, 1)[None].float() / 255.0))) for f in frames]


def quantize_keyframe_synthesis(codec: KeyframeCodec, frames: list[torch.Tensor]) -> dict[int, IntSynthesis]:
    """One integer g_s per quality of a float codec, its grids sized on `frames` (H,W,3) uint8."""
    return {q: quantize_synthesis(codec.models[q].g_s, latents_of(codec, q, frames)) for q in codec.qualities}


@torch.no_grad()
def integer_vs_float_psnr(codec: KeyframeCodec, synthesis: dict[int, IntSynthesis],
                          frames: list[torch.Tensor]) -> dict[int, float]:
    """Per quality: PSNR (dB) of the integer g_s's frames against the float g_s's on `frames`
    (H,W,3) uint8, from the same latents; inf where they are identical."""
    out = {}
    for q in codec.qualities:
        g_s, squared, count = codec.models[q].g_s, 0.0, 0
        for y in latents_of(codec, q, frames):
            float_frame = torch.floor(g_s(y).clamp(0, 1) * 255 + 0.5)
            squared += (float_frame - synthesis[q](y).double()).square().sum().item()
            count += float_frame.numel()
        out[q] = math.inf if squared == 0 else 10 * math.log10(255**2 * count / squared)
    return out
