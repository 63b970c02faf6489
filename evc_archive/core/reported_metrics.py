"""The quality metrics reported beside LPIPS that nothing in the encoder optimises: LPIPS-VGG and DISTS.

Frame acceptance, hint choice, rate control, thresholds and the training losses use LPIPS-AlexNet
(`core.metrics`); these two are measured only on final reconstructions, to report. No module of
the encoding path or of training imports this one (tests/core/test_lpips_vgg.py checks that).
Frames larger than metrics.SCORING_MAX_PIXELS (57,600: 320x180) are scored area-downscaled by an
integer factor (640x360 by 2, 1080p by 6, `metrics.scoring_size`): VGG16 at full size would cost
more than coding the segment.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from evc_archive.core.dists import dists_frames, shared_dists
from evc_archive.core.lpips_vgg import lpips_vgg_frames, shared_lpips_vgg
from evc_archive.core.metrics import SCORING_MAX_PIXELS, scoring_size

__all__ = ["ReportedScores", "reported_scores"]


@dataclass(frozen=True)
class ReportedScores:
    """Per-frame scores of a reconstruction against its source: lpips_vgg, dists (n,) float32, CPU."""

    lpips_vgg: torch.Tensor
    dists: torch.Tensor

    def means(self) -> dict[str, float]:
        """{"lpips_vgg": mean over frames, "dists": mean over frames}."""
        return {"lpips_vgg": float(self.lpips_vgg.mean()), "dists": float(self.dists.mean())}


def reported_scores(reconstruction: torch.Tensor, source: torch.Tensor,
                    device: str | torch.device = "cpu", max_pixels: int | None = SCORING_MAX_PIXELS) -> ReportedScores:
    """LPIPS-VGG and DISTS of uint8 (n, H, W, 3) frames against the source (one pass of each per
    frame), both at `scoring_size` (frames above `max_pixels` downscaled: the same for every codec
    measured)."""
    reconstruction, source = scoring_size(reconstruction, max_pixels), scoring_size(source, max_pixels)
    return ReportedScores(lpips_vgg_frames(shared_lpips_vgg(device), reconstruction, source),
                          dists_frames(shared_dists(device), reconstruction, source))
