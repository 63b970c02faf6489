"""The product's defaults live in one place: EncoderSettings.product()."""

from evc_archive.core.loop import DEFAULT_RESIDUAL_LEVELS
from evc_archive.core.registry import KEYFRAME_CODECS
from evc_archive.core.settings import EncoderSettings


def test_product_defaults():
    s = EncoderSettings.product()
    assert (s.lpips_threshold, s.gop, s.sampling_steps, s.seed) == (0.3, 30, 1, 0)
    assert s.quality == KEYFRAME_CODECS.named("svtav1").default_quality == 15
    assert s.residual_levels == DEFAULT_RESIDUAL_LEVELS and s.inter_fallback and s.inter_level is None


def test_product_takes_changes_and_the_codecs_default_quality():
    assert EncoderSettings.product("hyperprior").quality == 4
    assert EncoderSettings.product("hyperprior", quality=None).quality == 4
    changed = EncoderSettings.product(quality=7, residual_levels=None, gop=12)
    assert (changed.quality, changed.residual_levels, changed.gop, changed.lpips_threshold) == (7, None, 12, 0.3)
