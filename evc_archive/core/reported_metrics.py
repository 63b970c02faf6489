"""The quality metrics reported beside LPIPS that nothing in the encoder optimises: LPIPS-VGG and DISTS.

Frame acceptance, hint choice, rate control, thresholds and the training losses use LPIPS-AlexNet
(`core.metrics`); these two are measured only on final reconstructions, to report. No module of
the encoding path or of training imports this one (tests/core/test_lpips_vgg.py checks that).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from evc_archive.core.dists import dists_frames, shared_dists
from evc_archive.core.lpips_vgg import lpips_vgg_frames, shared_lpips_vgg

__all__ = ["ReportedScores", "reported_scores"]


@dataclass(frozen=True)
class ReportedScores:
    """Per-frame scores of a reconstruction against its source: lpips_vgg, dists (n,) float32, CPU."""

    lpips_vgg: torch.Tensor
    dists: torch.Tensor


def reported_scores(reconstruction: torch.Tensor, source: torch.Tensor,
                    device: str | torch.device = "cpu") -> ReportedScores:
    """LPIPS-VGG and DISTS of uint8 (n, H, W, 3) frames against the source (one pass of each per frame)."""
    return ReportedScores(lpips_vgg_frames(shared_lpips_vgg(device), reconstruction, source),
                          dists_frames(shared_dists(device), reconstruction, source))
