"""The quality metrics reported beside LPIPS that nothing in the encoder optimises: LPIPS-VGG and DISTS.

Frame acceptance, hint choice, rate control, thresholds and the training losses use LPIPS-AlexNet
(`core.metrics`); these two are measured only on final reconstructions, to report. No module of
the encoding path or of training imports this one (tests/core/test_lpips_vgg.py checks that).
Frames larger than REPORTED_MAX_PIXELS (57,600: 320x180) are scored area-downscaled by an integer
factor (640x360 by 2, 1080p by 6): VGG16 at full size would cost more than coding the segment.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from evc_archive.core.dists import dists_frames, shared_dists
from evc_archive.core.lpips_vgg import lpips_vgg_frames, shared_lpips_vgg

__all__ = ["REPORTED_MAX_PIXELS", "ReportedScores", "reported_scores", "scoring_size"]


@dataclass(frozen=True)
class ReportedScores:
    """Per-frame scores of a reconstruction against its source: lpips_vgg, dists (n,) float32, CPU."""

    lpips_vgg: torch.Tensor
    dists: torch.Tensor

    def means(self) -> dict[str, float]:
        """{"lpips_vgg": mean over frames, "dists": mean over frames}."""
        return {"lpips_vgg": float(self.lpips_vgg.mean()), "dists": float(self.dists.mean())}


REPORTED_MAX_PIXELS = 640 * 360 // 4  # larger frames are scored area-downscaled by an integer factor


def scoring_size(frames: torch.Tensor, max_pixels: int = REPORTED_MAX_PIXELS) -> torch.Tensor:
    """uint8 (n, H, W, 3) -> the frames area-downscaled by the smallest integer factor that brings
    H x W to at most `max_pixels` (edge rows / columns that do not fill a block are dropped); frames
    within it unchanged. VGG16 at full size costs more than coding from 640x360 up."""
    h, w = frames.shape[1:3]
    factor = 1
    while (h // factor) * (w // factor) > max_pixels:
        factor += 1
    if factor == 1:
        return frames
    x = frames[:, : h // factor * factor, : w // factor * factor].permute(0, 3, 1, 2).to(torch.float32)
    down = torch.nn.functional.avg_pool2d(x, factor)
    return down.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def reported_scores(reconstruction: torch.Tensor, source: torch.Tensor,
                    device: str | torch.device = "cpu", max_pixels: int = REPORTED_MAX_PIXELS) -> ReportedScores:
    """LPIPS-VGG and DISTS of uint8 (n, H, W, 3) frames against the source (one pass of each per
    frame), both at `scoring_size` (frames above `max_pixels` downscaled: the same for every codec
    measured)."""
    reconstruction, source = scoring_size(reconstruction, max_pixels), scoring_size(source, max_pixels)
    return ReportedScores(lpips_vgg_frames(shared_lpips_vgg(device), reconstruction, source),
                          dists_frames(shared_dists(device), reconstruction, source))
