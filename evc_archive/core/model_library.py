"""The model library: resolves what a stream names (kind id, content-hash prefix) to a loaded model,
and what a user names (registry names) to the shipped models.

A weightless kind is built from its spec and checked against the stream's hash (which names its
algorithm or payload format); a kind with weights finds the file with that hash among the shipped
models and any extra folders (an archive's `models/`). Each kind's build function loads a file once
per process and device.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

from evc_archive.core.bitstream import HASH_BYTES
from evc_archive.core.errors import ModelMismatchError
from evc_archive.core.keyframes.base import ImageCodec
from evc_archive.core.predictors.base import Predictor
from evc_archive.core.registry import KEYFRAME_CODECS, PREDICTORS, KeyframeSpec, PredictorSpec


def shipped_model_dir() -> Path:
    return Path(str(resources.files("evc_archive") / "models"))


def shipped_file(name: str) -> Path:
    """The path of a model file the package ships; one clear error when it is missing."""
    path = shipped_model_dir() / name
    if not path.is_file():
        raise ModelMismatchError(f"the model file {name} is missing from the package")
    return path


def file_sha256(path: Path) -> bytes:
    return hashlib.sha256(Path(path).read_bytes()).digest()


class ModelLibrary:
    """Resolves models by (kind id, hash prefix). Objects registered directly (tests, tiny models)
    take precedence over files."""

    def __init__(self, extra_dirs: tuple[Path, ...] = (), device: str = "cpu"):
        self.dirs = (shipped_model_dir(), *map(Path, extra_dirs))
        self.device = device
        self._objects: dict[tuple[str, int, bytes], object] = {}
        self._hash_index: dict[bytes, Path] | None = None

    def register(self, model: ImageCodec | Predictor) -> None:
        family = "predictor" if hasattr(model, "frames_per_call") else "keyframe codec"
        self._objects[(family, model.model_id, model.content_hash[:HASH_BYTES])] = model

    def _find_file(self, prefix: bytes) -> Path | None:
        if self._hash_index is None:
            self._hash_index = {}
            for d in self.dirs:
                if d.is_dir():
                    for p in sorted(d.iterdir()):
                        if p.is_file() and p.suffix == ".pt":
                            self._hash_index[file_sha256(p)[:HASH_BYTES]] = p
        return self._hash_index.get(prefix)

    def _weights_for(self, spec: KeyframeSpec | PredictorSpec, what: str, hash_prefix: bytes) -> str:
        path = self._find_file(hash_prefix)
        if path is None:
            raise ModelMismatchError(
                f"{what} {spec.label} with hash {hash_prefix.hex()} is not available "
                "(not shipped with this build; pass the archive's models folder)")
        return str(path)

    @staticmethod
    def _check_weightless(model: ImageCodec | Predictor, spec: KeyframeSpec | PredictorSpec, what: str,
                          hash_prefix: bytes) -> None:
        if model.content_hash[:HASH_BYTES] != hash_prefix:
            raise ModelMismatchError(f"stream's {spec.label} {what} hash {hash_prefix.hex()} is not this build's "
                                     "(damaged, or written with other settings)")

    def keyframe(self, model_id: int, hash_prefix: bytes) -> ImageCodec:
        """The keyframe codec a stream names."""
        spec = KEYFRAME_CODECS.by_id(model_id)
        obj = self._objects.get(("keyframe codec", model_id, hash_prefix))
        if obj is not None:
            return obj  # type: ignore[return-value]
        if spec.weight_file is None:
            codec = spec.build(None, self.device)
            self._check_weightless(codec, spec, "format", hash_prefix)
            return codec
        return spec.build(self._weights_for(spec, "keyframe model", hash_prefix), self.device)

    def predictor(self, model_id: int, hash_prefix: bytes, frames_per_call: int) -> Predictor:
        """The predictor a stream names (F from the stream; a diffusion model's from its file)."""
        spec = PREDICTORS.by_id(model_id)
        obj = self._objects.get(("predictor", model_id, hash_prefix))
        if obj is not None:
            return obj  # type: ignore[return-value]
        if spec.weight_file is None:
            predictor = spec.build(None, frames_per_call, self.device)
            self._check_weightless(predictor, spec, "predictor", hash_prefix)
            return predictor
        return spec.build(self._weights_for(spec, "predictor model", hash_prefix), frames_per_call, self.device)

    def keyframe_named(self, name: str) -> ImageCodec:
        """The keyframe codec a user names, with the shipped model file where it has one."""
        spec = KEYFRAME_CODECS.named(name)
        return spec.build(str(shipped_file(spec.weight_file)) if spec.weight_file else None, self.device)

    def predictor_named(self, name: str, frames_per_call: int = 4) -> Predictor:
        """The predictor a user names, with the shipped model file where it has one."""
        spec = PREDICTORS.named(name)
        return spec.build(str(shipped_file(spec.weight_file)) if spec.weight_file else None, frames_per_call,
                          self.device)
