"""Restore-hint-bilinear predictor (kind id 5, decode-only): restore-hint (kind 6,
core.predictors.restore_hint) with bilinear moves and no halfway mode. Kind 6 replaces it
(docs/benchmarks/ablation.md); streams that name kind 5 decode."""

from __future__ import annotations

from evc_archive.core.predictors.restore_hint import WEIGHT_FILE, RestoreHintPredictor, build_kind
from evc_archive.core.registry import register_predictor


@register_predictor(5, "restore-hint-bilinear", "restore-motion-hint", weight_file=WEIGHT_FILE, takes_hints=True,
                    summary="restore-hint moved bilinearly, without the halfway mode")
def build(weights: str | None, frames_per_call: int, device: str) -> RestoreHintPredictor:
    return build_kind(5, weights, frames_per_call, device)
