"""Hyperprior keyframe codecs: the shipped learned codec (core.hyperprior, a compressai scale
hyperprior) with its synthesis transform in integer arithmetic (kind 3, `hyperprior-int`, weights
evc_archive/models/keyframe-int.pt: the same frames on any hardware), and the float model it comes
from (kind 1, `hyperprior`, keyframe.pt: decode-only, its frames depend on the platform's kernels).
The model module is imported when a codec is built, so registering the kinds costs nothing."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from evc_archive.core.registry import register_keyframe_codec

if TYPE_CHECKING:
    from evc_archive.core.hyperprior import KeyframeCodec

WEIGHT_FILE = "keyframe.pt"
INT_WEIGHT_FILE = "keyframe-int.pt"


@lru_cache(maxsize=None)
def load_keyframe_codec(path: str, device: str, integer: bool = False) -> KeyframeCodec:
    """A model file, loaded once per process and device."""
    from evc_archive.core.hyperprior import KeyframeCodec

    return KeyframeCodec.load(Path(path), device, integer)


@register_keyframe_codec(1, "hyperprior", "keyframe-hyperprior", weight_file=WEIGHT_FILE, default_quality=4,
                         encodable=False, summary="the shipped learned codec with its float synthesis, qualities "
                         "1-5 (decode-only: its frames depend on the machine)")
def build(weights: str | None, device: str) -> KeyframeCodec:
    if weights is None:
        raise ValueError("the hyperprior keyframe codec needs its model file")
    return load_keyframe_codec(weights, device)


@register_keyframe_codec(3, "hyperprior-int", "keyframe-hyperprior-int", weight_file=INT_WEIGHT_FILE,
                         default_quality=4, bit_exact=True,
                         summary="the shipped learned codec (a compressai scale hyperprior), qualities 1-5, its "
                         "synthesis in integer arithmetic: the same frames on any hardware")
def build_int(weights: str | None, device: str) -> KeyframeCodec:
    if weights is None:
        raise ValueError("the integer hyperprior keyframe codec needs its model file")
    return load_keyframe_codec(weights, device, True)
