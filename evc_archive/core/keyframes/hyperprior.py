"""Hyperprior keyframe codec (kind id 1): the shipped learned image codec (core.hyperprior, weights
evc_archive/models/keyframe.pt). The model module (compressai) is imported when a codec is built,
so registering the kind costs nothing."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from evc_archive.core.registry import register_keyframe_codec

if TYPE_CHECKING:
    from evc_archive.core.hyperprior import KeyframeCodec

WEIGHT_FILE = "keyframe.pt"


@lru_cache(maxsize=None)
def load_keyframe_codec(path: str, device: str) -> KeyframeCodec:
    """A model file, loaded once per process and device."""
    from evc_archive.core.hyperprior import KeyframeCodec

    return KeyframeCodec.load(Path(path), device)


@register_keyframe_codec(1, "hyperprior", "keyframe-hyperprior", weight_file=WEIGHT_FILE, default_quality=4,
                         summary="the shipped learned codec, qualities 1-5")
def build(weights: str | None, device: str) -> KeyframeCodec:
    if weights is None:
        raise ValueError("the hyperprior keyframe codec needs its model file")
    return load_keyframe_codec(weights, device)
