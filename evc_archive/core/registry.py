"""The one registry of what a stream can name: predictor kinds, keyframe codecs and segment modes.

Each kind is one frozen spec, registered by decorator in the module that implements it (a kind's
build function is decorated with `register_predictor` / `register_keyframe_codec`). Numeric ids are
frozen: never reused or renumbered, so a stream written today names the same kind forever. The
CLI's choices, the shipped model files an archive needs and every user-facing name derive from the
specs. `encodable` kinds are offered to users; the others stay decodable (old streams) and
constructible from Python (tests, ablations).

Lookups import the kind modules on first use (they import torch), so importing this module is cheap.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Generic, TypeVar

from evc_archive.core.bitstream import INTER_SEGMENT, LOOP_SEGMENT
from evc_archive.core.errors import ModelMismatchError

if TYPE_CHECKING:
    from evc_archive.core.keyframes.base import ImageCodec
    from evc_archive.core.predictors.base import Predictor

# The product's choices (docs/benchmarks/ablation.md): the one place that names them.
DEFAULT_PREDICTOR = "restore-hint-int"
DEFAULT_KEYFRAME_CODEC = "svtav1"


@dataclass(frozen=True)
class PredictorSpec:
    """One predictor kind. build(weights path or None, frames per call F, device) -> Predictor."""

    kind_id: int  # frozen: the stream's predictor model id
    name: str  # user-facing: CLI, jobs, archive.json, manifest
    label: str  # the kind's long name (inspect)
    weight_file: str | None  # the shipped model file it loads; None: weightless (its hash names the algorithm)
    takes_hints: bool  # the stream carries one hint per predictor call (bitstream v2+)
    encodable: bool
    summary: str  # one line for --help
    build: Callable[[str | None, int, str], "Predictor"] = field(compare=False, repr=False)
    hint_byte_weight: float = 0.0  # encoder: LPIPS a hint byte costs when it picks among candidates
    bit_exact: bool = False  # integer arithmetic only: its frames are the same bits on any hardware


@dataclass(frozen=True)
class KeyframeSpec:
    """One keyframe codec. build(weights path or None, device) -> ImageCodec."""

    kind_id: int  # frozen: the stream's keyframe model id
    name: str
    label: str
    weight_file: str | None
    encodable: bool
    summary: str
    default_quality: int  # the level fixed settings use when none is given
    build: Callable[[str | None, str], "ImageCodec"] = field(compare=False, repr=False)
    bit_exact: bool = False  # integer arithmetic only: its frames are the same bits on any hardware


@dataclass(frozen=True)
class SegmentModeSpec:
    """How a segment is coded (bitstream v4's segment mode; the manifest's segment_mode)."""

    kind_id: int
    name: str
    summary: str
    encodable: bool = True


S = TypeVar("S", PredictorSpec, KeyframeSpec, SegmentModeSpec)


class Registry(Generic[S]):
    """Specs of one family by id and by name. `modules` register their specs when imported."""

    def __init__(self, what: str, modules: tuple[str, ...] = ()):
        self.what, self._modules = what, modules
        self._by_id: dict[int, S] = {}
        self._loaded = not modules

    def register(self, spec: S) -> S:
        old = self._by_id.get(spec.kind_id)
        if old is not None and old != spec:
            raise ValueError(f"{self.what} id {spec.kind_id} is taken by '{old.name}'")
        if any(s.name == spec.name and s.kind_id != spec.kind_id for s in self._by_id.values()):
            raise ValueError(f"{self.what} name '{spec.name}' is taken")
        self._by_id[spec.kind_id] = spec
        return spec

    def _specs(self) -> dict[int, S]:
        if not self._loaded:
            self._loaded = True
            for module in self._modules:
                importlib.import_module(module)
        return self._by_id

    def by_id(self, kind_id: int) -> S:
        """The spec a stream names; one clear error for an id this build does not know."""
        spec = self._specs().get(kind_id)
        if spec is None:
            raise ModelMismatchError(f"stream names {self.what} id {kind_id}, unknown to this build")
        return spec

    def named(self, name: str) -> S:
        """The spec a user names (ValueError with the choices otherwise)."""
        for spec in self._specs().values():
            if spec.name == name:
                return spec
        raise ValueError(f'Invalid {self.what} "{name}": choose one of {", ".join(self.choices())}')

    def specs(self) -> tuple[S, ...]:
        """Every spec, by id."""
        return tuple(spec for _, spec in sorted(self._specs().items()))

    def choices(self) -> tuple[str, ...]:
        """The names users may choose (encodable kinds), by id."""
        return tuple(s.name for s in self.specs() if s.encodable)


PREDICTORS: Registry[PredictorSpec] = Registry("predictor", ("evc_archive.core.predictors",))
KEYFRAME_CODECS: Registry[KeyframeSpec] = Registry("keyframe codec", ("evc_archive.core.keyframes",))
SEGMENT_MODES: Registry[SegmentModeSpec] = Registry("segment mode")
SEGMENT_MODES.register(SegmentModeSpec(LOOP_SEGMENT, "loop", "coded and generated frames (the paper's loop)"))
SEGMENT_MODES.register(SegmentModeSpec(INTER_SEGMENT, "inter", "every frame in one AV1 inter GOP (core.gop_av1)"))


def register_predictor(kind_id: int, name: str, label: str, *, weight_file: str | None = None,
                       takes_hints: bool = False, encodable: bool = False, summary: str = "",
                       hint_byte_weight: float = 0.0, bit_exact: bool = False):
    """Decorator of a predictor kind's build function: registers its spec."""
    def wrap(build):
        PREDICTORS.register(PredictorSpec(kind_id, name, label, weight_file, takes_hints, encodable, summary, build,
                                          hint_byte_weight, bit_exact))
        return build
    return wrap


def register_keyframe_codec(kind_id: int, name: str, label: str, *, default_quality: int,
                            weight_file: str | None = None, encodable: bool = True, summary: str = "",
                            bit_exact: bool = False):
    """Decorator of a keyframe codec's build function: registers its spec."""
    def wrap(build):
        KEYFRAME_CODECS.register(KeyframeSpec(kind_id, name, label, weight_file, encodable, summary, default_quality,
                                              build, bit_exact))
        return build
    return wrap


def float_models_of(keyframe_model_id: int, predictor_model_id: int, loop_segments: bool = True) -> tuple[str, ...]:
    """The labels of the float models a stream's decode runs (their output depends on the platform's
    kernels); () when every frame comes from integer arithmetic. Inter segments run AV1 only."""
    if not loop_segments:
        return ()
    specs = (KEYFRAME_CODECS.by_id(keyframe_model_id), PREDICTORS.by_id(predictor_model_id))
    return tuple(s.label for s in specs if not s.bit_exact)


def model_files_for(keyframe_codec: str, predictor: str) -> list[str]:
    """The shipped model files an archive made with these choices needs (copied into its models/)."""
    specs = (KEYFRAME_CODECS.named(keyframe_codec), PREDICTORS.named(predictor))
    return [s.weight_file for s in specs if s.weight_file]
