"""Scores of candidate frames against one segment's source: what the encoder's loop and rate control
compare every generated or coded frame with.

The loop scores many candidates against the same source frame (every hint of a predictor call,
every quality of a coded frame), so the source side of LPIPS (its AlexNet features) is computed once
per frame, one frame per batch (the same floats whichever call asks first), and kept in a cache
bounded by bytes (least recently used out): memory does not grow with the number of settings tried.
Candidates are scored in batches of at most metrics.SCORE_BATCH_PIXELS pixels, so a call's AlexNet
activations stay bounded at any frame size and any number of frames.

The product's loop scores a proxy (EncoderSettings.scoring_pixels): each pair area-downscaled to
at most 320x180 (metrics.scoring_size), so a threshold means the same from 360p to 2160p and a
1080p candidate costs what a 320x180 one does; `full_size_lpips` gives the exact value once, on
the final reconstruction. On two validation clips (docs/benchmarks/scale.md, 2026-12-04) the proxy
made the same choices at 640x360 and 1280x720 in 0.46-0.83x the search time.

Frames are uint8 RGB tensors (m,H,W,3); scores are (m,) on the CPU.
"""

from __future__ import annotations

import torch

from evc_archive.core.bounded_cache import BoundedCache
from evc_archive.core.metrics import frames_per_batch, mse_uint8, score_frames, scoring_factor, scoring_size, upscale_small

LPIPS_MIN_SIZE = 32  # AlexNet needs >= 31 px; smaller frames are compared upscaled (nearest)
FEATURE_CACHE_BYTES = 256 << 20  # source features kept per segment (~2.4 MB a frame at the product's
# scoring size, ~90 MB a 1080p frame at full size)


def lpips_input(frames: torch.Tensor, max_pixels: int | None = None) -> torch.Tensor:
    """(m,H,W,3) uint8 -> the frames LPIPS sees: upscaled (nearest, integer factor) when a side is
    under LPIPS_MIN_SIZE, area-downscaled (integer factor) to at most `max_pixels` (metrics.scoring_size),
    else unchanged."""
    return upscale_small(scoring_size(frames, max_pixels), LPIPS_MIN_SIZE)


def psnr_frames(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(n,H,W,3) uint8 pairs -> (n,) PSNR in dB, capped at 100 for identical frames."""
    mse = mse_uint8(a, b)
    return (10 * torch.log10(255.0**2 / mse.clamp_min(1e-10))).clamp_max(100.0)


class SourceScores:
    """LPIPS (core.metrics LpipsMetric) and PSNR of frames against `source` (n,H,W,3) uint8, frame j
    of a call against source frame start + j. `max_pixels`: LPIPS compares the pair downscaled to
    at most that many pixels (metrics.scoring_size; the loop's proxy, EncoderSettings.scoring_pixels),
    None: at full size. PSNR is always at full size."""

    def __init__(self, metric, source: torch.Tensor, cache_bytes: int = FEATURE_CACHE_BYTES,
                 max_pixels: int | None = None):
        self.metric, self.source, self.max_pixels = metric, source, max_pixels
        self._features = BoundedCache(cache_bytes)
        self.source_feature_frames = 0  # source frames whose features were computed (cost counter)

    def _source_features(self, position: int) -> tuple[torch.Tensor, ...]:
        features = self._features.get(position)
        if features is None:
            features = self.metric.features(lpips_input(self.source[position:position + 1], self.max_pixels))
            self.source_feature_frames += 1
            self._features.put(position, features)
        return features

    def lpips(self, frames: torch.Tensor, start: int) -> torch.Tensor:
        """frames (m,H,W,3) uint8 -> (m,) LPIPS of frames[j] to source[start + j]."""
        m = frames.shape[0]
        if m == 0:
            return torch.zeros(0)
        frames = lpips_input(frames, self.max_pixels)
        batch = frames_per_batch(frames.shape[1], frames.shape[2])
        return torch.cat([self._batch_lpips(frames[j:j + batch], start + j) for j in range(0, m, batch)])

    def _batch_lpips(self, frames: torch.Tensor, start: int) -> torch.Tensor:
        ours = self.metric.features(frames)
        per_frame = [self._source_features(start + j) for j in range(frames.shape[0])]
        theirs = tuple(torch.cat([f[layer] for f in per_frame]) for layer in range(len(ours)))
        return self.metric.distance_of_features(ours, theirs).cpu()

    def psnr(self, frames: torch.Tensor, start: int) -> torch.Tensor:
        """frames (m,H,W,3) uint8 -> (m,) PSNR in dB to source[start + j]."""
        return psnr_frames(frames, self.source[start:start + frames.shape[0]])


def full_size_lpips(metric, frames: torch.Tensor, source: torch.Tensor, loop_lpips: torch.Tensor,
                    max_pixels: int | None) -> torch.Tensor:
    """(n,) LPIPS of frames (n,H,W,3) uint8 to their source at full size: `loop_lpips` (the loop's
    own scores) where the loop scored at full size, else one exact pass (metrics.score_frames)."""
    if scoring_factor(frames.shape[1], frames.shape[2], max_pixels) == 1:
        return loop_lpips
    return score_frames(metric, frames, source, min_side=LPIPS_MIN_SIZE)
