"""Residual coding of a rejected frame against its prediction (a coded frame need
not be an intra frame).

The image codec codes `residual_image(frame, prediction)` = floor((frame - prediction) / 2) + 128,
a uint8 (H,W,3) image (every difference in [-255, 255] fits, at half a grey level of precision), and
the decoder rebuilds `apply_residual(prediction, decoded)` = clip(prediction + 2 * (decoded - 128)).
Both are integer maps, so the decoder's frame is the same bits everywhere the image codec's decode
is. Where the prediction is good the residual is flat grey and costs a few dozen bytes; where it is
poor (occlusions, a scene cut) the loop codes the frame on its own instead (core.loop).
"""

from __future__ import annotations

import torch

OFFSET = 128


def residual_image(frame: torch.Tensor, prediction: torch.Tensor) -> torch.Tensor:
    """frame, prediction (H,W,3) uint8 -> (H,W,3) uint8 residual image."""
    diff = frame.to(torch.int16) - prediction.to(torch.int16)
    return (torch.div(diff, 2, rounding_mode="floor") + OFFSET).clamp(0, 255).to(torch.uint8)


def apply_residual(prediction: torch.Tensor, decoded: torch.Tensor) -> torch.Tensor:
    """prediction, decoded residual image (H,W,3) uint8 -> (H,W,3) uint8 frame."""
    frame = prediction.to(torch.int16) + 2 * (decoded.to(torch.int16) - OFFSET)
    return frame.clamp(0, 255).to(torch.uint8)
