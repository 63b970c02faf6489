"""The loop's settings, and the product's defaults: the one place that says what `encode`,
`submit`, `compare`, the Ray jobs and the benchmarks do when a user gives no option.

The defaults are the combination that wins the ablation (docs/benchmarks/ablation.md, held-out
clips, 128x128x30, rate control per clip): SVT-AV1 intra keyframes, the restore-hint predictor,
rejected frames coded as residuals where that pays, and, under a bpp target, an AV1 inter GOP for
a segment where conventional coding beats the loop.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from evc_archive.core.loop import DEFAULT_RESIDUAL_LEVELS
from evc_archive.core.metrics import SCORING_MAX_PIXELS
from evc_archive.core.registry import DEFAULT_KEYFRAME_CODEC, KEYFRAME_CODECS

DEFAULT_THRESHOLD = 0.3  # fixed settings (no bpp target)
DEFAULT_GOP = 30
DEFAULT_STEPS = 1
MAX_SAMPLING_STEPS = 8  # the integer diffusion model stores its sampler's tables for 1..8 steps
DEFAULT_SEARCH = "fast"
SEARCHES = ("fast", "quick", "exhaustive")


@dataclass(frozen=True)
class EncoderSettings:
    """Knobs of the loop, all recorded in the stream. The field defaults are the loop's plain form
    (intra only, no inter fallback); `EncoderSettings.product()` gives the product's defaults."""

    lpips_threshold: float = 0.35
    quality: int = 4
    gop: int = 30  # frames per segment (closed: each segment decodes on its own)
    sampling_steps: int = 1
    seed: int = 0
    residual_levels: int | None = None  # rejected frames may be coded as residuals this many quality levels up; None: intra only
    inter_level: int | None = None  # set: the segment is one AV1 inter GOP at this level (core.gop_av1), not the loop
    inter_fallback: bool = False  # rate control may pick an inter GOP for a segment where it beats the loop
    search: str = "exhaustive"  # encoder only, not in the stream: a SEARCHES name for hint picks
    # (core.hint_search) and rate control search (core.segment_coding.search_points)
    scoring_pixels: int | None = None  # encoder only: the loop's LPIPS scores frames above this many
    # pixels area-downscaled (core.metrics.scoring_size; None: at full size); what is reported is
    # full size (core.segment_coding.CodedSegment.lpips)

    def __post_init__(self) -> None:
        if self.search not in SEARCHES:
            raise ValueError(f"search {self.search!r} is unknown: choose one of {', '.join(SEARCHES)}")
        if self.scoring_pixels is not None and self.scoring_pixels < 1:
            raise ValueError(f"scoring_pixels must be a positive pixel count or None, got {self.scoring_pixels}")

    @classmethod
    def product(cls, keyframe_codec: str = DEFAULT_KEYFRAME_CODEC, **changes) -> "EncoderSettings":
        """The product's defaults for this keyframe codec (its default quality level), with
        `changes` (field=value; quality=None keeps the codec's default)."""
        if changes.get("quality", 0) is None:
            del changes["quality"]
        base = cls(lpips_threshold=DEFAULT_THRESHOLD, quality=KEYFRAME_CODECS.named(keyframe_codec).default_quality,
                   gop=DEFAULT_GOP, sampling_steps=DEFAULT_STEPS, seed=0, residual_levels=DEFAULT_RESIDUAL_LEVELS,
                   inter_fallback=True, search=DEFAULT_SEARCH, scoring_pixels=SCORING_MAX_PIXELS)
        return replace(base, **changes)
