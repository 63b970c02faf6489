"""The one registry: frozen ids, names, encodable kinds, and the lookups' errors."""

import pytest

from evc_archive.core.errors import ModelMismatchError
from evc_archive.core.registry import (
    DEFAULT_KEYFRAME_CODEC,
    DEFAULT_PREDICTOR,
    KEYFRAME_CODECS,
    PREDICTORS,
    SEGMENT_MODES,
    Registry,
    SegmentModeSpec,
    float_models_of,
    model_files_for,
)


def test_ids_are_frozen():
    """A stream written today names the same kind forever: these ids never change."""
    assert {s.kind_id: s.name for s in PREDICTORS.specs()} == {
        0: "copy-last", 1: "diffusion", 2: "motion", 3: "motion-hint", 4: "block-hint", 5: "restore-hint-bilinear",
        6: "restore-hint", 7: "restore-hint-int", 8: "diffusion-int", 9: "refine-diffusion"}
    assert {s.kind_id: s.name for s in KEYFRAME_CODECS.specs()} == {1: "hyperprior", 2: "svtav1", 3: "hyperprior-int"}
    assert {s.kind_id: s.name for s in SEGMENT_MODES.specs()} == {0: "loop", 1: "inter"}


def test_encodable_kinds_and_defaults():
    assert PREDICTORS.choices() == ("copy-last", "restore-hint-int", "diffusion-int", "refine-diffusion")  # by id
    assert KEYFRAME_CODECS.choices() == ("svtav1", "hyperprior-int")
    assert DEFAULT_PREDICTOR in PREDICTORS.choices() and DEFAULT_KEYFRAME_CODEC in KEYFRAME_CODECS.choices()
    hinted = {s.name for s in PREDICTORS.specs() if s.takes_hints}
    assert hinted == {"motion-hint", "block-hint", "restore-hint-bilinear", "restore-hint", "restore-hint-int",
                      "refine-diffusion"}


def test_the_defaults_decode_bit_exactly_and_float_kinds_say_so():
    assert PREDICTORS.named(DEFAULT_PREDICTOR).bit_exact and KEYFRAME_CODECS.named(DEFAULT_KEYFRAME_CODEC).bit_exact
    assert {s.name for s in PREDICTORS.specs() if not s.bit_exact} == {"diffusion", "restore-hint-bilinear", "restore-hint"}
    assert {s.name for s in KEYFRAME_CODECS.specs() if not s.bit_exact} == {"hyperprior"}
    assert float_models_of(2, 7) == ()
    assert float_models_of(1, 7) == ("keyframe-hyperprior",)
    assert float_models_of(3, 7) == ()
    assert float_models_of(2, 6) == ("restore-motion-hint-lanczos",)
    assert float_models_of(1, 1, loop_segments=False) == ()  # inter segments run AV1 only


def test_lookups_give_clear_errors():
    with pytest.raises(ModelMismatchError, match="predictor id 99, unknown to this build"):
        PREDICTORS.by_id(99)
    with pytest.raises(ValueError, match='Invalid predictor "optical-flow": choose one of copy-last, restore-hint-int, diffusion-int'):
        PREDICTORS.named("optical-flow")
    assert PREDICTORS.named("motion").kind_id == 2  # decode-only kinds stay constructible by name


def test_an_id_or_name_cannot_be_taken_twice():
    family = Registry("mode")
    family.register(SegmentModeSpec(0, "loop", "x"))
    family.register(SegmentModeSpec(0, "loop", "x"))  # the same spec again (a module imported twice) is fine
    with pytest.raises(ValueError, match="id 0 is taken"):
        family.register(SegmentModeSpec(0, "other", "y"))
    with pytest.raises(ValueError, match="name 'loop' is taken"):
        family.register(SegmentModeSpec(1, "loop", "y"))


def test_model_files_derive_from_the_specs():
    assert model_files_for("svtav1", "restore-hint") == ["restore.pt"]
    assert model_files_for("svtav1", "restore-hint-int") == ["restore-int.pt"]
    assert model_files_for("svtav1", "copy-last") == []
    assert model_files_for("hyperprior", "diffusion") == ["keyframe.pt", "predictor.pt"]
    assert model_files_for("hyperprior-int", "copy-last") == ["keyframe-int.pt"]
    assert model_files_for("svtav1", "diffusion-int") == ["predictor-int.pt"]
