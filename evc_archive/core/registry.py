"""Frozen numeric ids of model kinds, and the library that resolves (id, content hash) to a loaded
model. Ids are never reused or renumbered: a stream written today must name the same kind forever.

The stream stores the id and the first 8 bytes of the model file's sha256; the library finds the
file with that hash among the shipped defaults and any extra folders (an archive's `models/`).
Every model is loaded once per process and cached.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib import resources
from pathlib import Path

from evc_archive.core.bitstream import HASH_BYTES
from evc_archive.core.errors import ModelMismatchError
from evc_archive.core.keyframe import ImageCodec, KeyframeCodec
from evc_archive.core.keyframe_av1 import AV1IntraCodec
from evc_archive.core.motion import MotionExtrapolationPredictor
from evc_archive.core.block_hint import BlockMotionHintPredictor
from evc_archive.core.motion_hint import GlobalMotionPredictor
from evc_archive.core.predictor import CopyLastFramePredictor, DiffusionPredictor, Predictor
from evc_archive.core.restore import Restorer
from evc_archive.core.restore_hint import KINDS as RESTORE_HINT_KINDS, RestoreHintPredictor

# id -> kind. Append only.
KEYFRAME_KINDS: dict[int, str] = {1: "keyframe-hyperprior", 2: "keyframe-av1-intra"}
PREDICTOR_KINDS: dict[int, str] = {0: "copy-last-frame", 1: "diffusion-unet", 2: "motion-extrapolation",
                                   3: "global-motion-hint", 4: "block-motion-hint", 5: "restore-motion-hint",
                                   6: "restore-motion-hint-lanczos"}

# user-facing names (CLI, jobs, archive.json) -> predictor kind id
PREDICTOR_NAMES: dict[str, int] = {"copy-last": 0, "diffusion": 1, "motion": 2, "motion-hint": 3, "block-hint": 4,
                                   "restore-hint": 6, "restore-hint-bilinear": 5}
# the product's default predictor (docs/benchmarks/ablation.md; evc_archive.cli.DEFAULTS names it too)
DEFAULT_PREDICTOR_NAME = "restore-hint"
# user-facing names -> keyframe kind id
KEYFRAME_NAMES: dict[str, int] = {"hyperprior": 1, "svtav1": 2}

WEIGHTLESS = {0: CopyLastFramePredictor, 2: MotionExtrapolationPredictor, 3: GlobalMotionPredictor,
              4: BlockMotionHintPredictor}

DEFAULT_KEYFRAME_FILE = "keyframe.pt"
DEFAULT_PREDICTOR_FILE = "predictor.pt"
DEFAULT_RESTORE_FILE = "restore.pt"
# predictor name -> the shipped weights file it needs (the others are weightless)
PREDICTOR_FILES: dict[str, str] = {"diffusion": DEFAULT_PREDICTOR_FILE} | {
    name: DEFAULT_RESTORE_FILE for name, model_id in PREDICTOR_NAMES.items() if model_id in RESTORE_HINT_KINDS}


def model_files_for(keyframe_codec: str, predictor: str) -> list[str]:
    """The shipped model files an archive made with these choices needs (copied into its models/)."""
    return ([DEFAULT_KEYFRAME_FILE] if keyframe_codec == "hyperprior" else []) + (
        [PREDICTOR_FILES[predictor]] if predictor in PREDICTOR_FILES else [])


def shipped_model_dir() -> Path:
    return Path(str(resources.files("evc_archive") / "models"))


def file_sha256(path: Path) -> bytes:
    return hashlib.sha256(Path(path).read_bytes()).digest()


@lru_cache(maxsize=None)
def _load_keyframe(path: str, device: str) -> KeyframeCodec:
    return KeyframeCodec.load(Path(path), device)


@lru_cache(maxsize=None)
def _load_restorer(path: str, device: str) -> Restorer:
    return Restorer.load(Path(path), device)


@lru_cache(maxsize=None)
def _load_diffusion(path: str, model_id: int, device: str) -> DiffusionPredictor:
    return DiffusionPredictor.from_bytes(Path(path).read_bytes(), model_id, device)


class ModelLibrary:
    """Resolves models by (kind id, hash prefix). Objects registered directly (tests, tiny models)
    take precedence over files."""

    def __init__(self, extra_dirs: tuple[Path, ...] = (), device: str = "cpu"):
        self.dirs = (shipped_model_dir(), *map(Path, extra_dirs))
        self.device = device
        self._objects: dict[tuple[str, int, bytes], object] = {}
        self._hash_index: dict[bytes, Path] | None = None

    def register(self, model: ImageCodec | Predictor) -> None:
        kind = "predictor" if hasattr(model, "predict") else "keyframe"
        self._objects[(kind, model.model_id, model.content_hash[:HASH_BYTES])] = model

    def _find_file(self, prefix: bytes) -> Path | None:
        if self._hash_index is None:
            self._hash_index = {}
            for d in self.dirs:
                if d.is_dir():
                    for p in sorted(d.iterdir()):
                        if p.is_file() and p.suffix == ".pt":
                            self._hash_index[file_sha256(p)[:HASH_BYTES]] = p
        return self._hash_index.get(prefix)

    def keyframe(self, model_id: int, hash_prefix: bytes) -> ImageCodec:
        if model_id not in KEYFRAME_KINDS:
            raise ModelMismatchError(f"stream names keyframe model id {model_id}, unknown to this build")
        obj = self._objects.get(("keyframe", model_id, hash_prefix))
        if obj is not None:
            return obj  # type: ignore[return-value]
        if model_id == 2:  # weightless: the hash names the payload format
            if AV1IntraCodec.content_hash[:HASH_BYTES] != hash_prefix:
                raise ModelMismatchError(
                    f"stream's {KEYFRAME_KINDS[2]} format hash {hash_prefix.hex()} is not this build's (damaged?)")
            return AV1IntraCodec(device=self.device)
        path = self._find_file(hash_prefix)
        if path is None:
            raise ModelMismatchError(
                f"keyframe model {KEYFRAME_KINDS[model_id]} with hash {hash_prefix.hex()} is not available "
                "(not shipped with this build; pass the archive's models folder)")
        return _load_keyframe(str(path), self.device)

    def predictor(self, model_id: int, hash_prefix: bytes, frames_per_call: int) -> Predictor:
        if model_id not in PREDICTOR_KINDS:
            raise ModelMismatchError(f"stream names predictor id {model_id}, unknown to this build")
        obj = self._objects.get(("predictor", model_id, hash_prefix))
        if obj is not None:
            return obj  # type: ignore[return-value]
        if model_id in WEIGHTLESS:  # the hash names the algorithm and its settings
            cls = WEIGHTLESS[model_id]
            weightless = cls(frames_per_call=frames_per_call)
            if weightless.content_hash[:HASH_BYTES] != hash_prefix:
                raise ModelMismatchError(
                    f"stream's {PREDICTOR_KINDS[model_id]} predictor hash {hash_prefix.hex()} is not this build's "
                    "(damaged, or written with other settings)")
            return weightless
        path = self._find_file(hash_prefix)
        if path is None:
            raise ModelMismatchError(
                f"predictor model {PREDICTOR_KINDS[model_id]} with hash {hash_prefix.hex()} is not available "
                "(not shipped with this build; pass the archive's models folder)")
        if model_id in RESTORE_HINT_KINDS:
            return RestoreHintPredictor(_load_restorer(str(path), self.device), frames_per_call, model_id)
        return _load_diffusion(str(path), model_id, self.device)

    def keyframe_named(self, name: str) -> ImageCodec:
        """The keyframe codec a user names ('hyperprior': the shipped model | 'svtav1')."""
        if name not in KEYFRAME_NAMES:
            raise ValueError(f'Invalid keyframe codec "{name}": choose one of {", ".join(KEYFRAME_NAMES)}')
        return self.default_keyframe() if name == "hyperprior" else AV1IntraCodec(device=self.device)

    @staticmethod
    def _shipped_file(name: str, what: str) -> str:
        """The path of a model file the package ships; one clear error when it is missing."""
        path = shipped_model_dir() / name
        if not path.is_file():
            raise ModelMismatchError(f"the {what} is missing from the package ({path.name})")
        return str(path)

    def default_keyframe(self) -> KeyframeCodec:
        return _load_keyframe(self._shipped_file(DEFAULT_KEYFRAME_FILE, "default keyframe model"), self.device)

    def predictor_named(self, name: str, frames_per_call: int = 4) -> Predictor:
        """The predictor a user names (PREDICTOR_NAMES; 'diffusion' and 'restore-hint' use the shipped
        model files, the diffusion model's F comes from its file)."""
        if name not in PREDICTOR_NAMES:
            raise ValueError(f'Invalid predictor "{name}": choose one of {", ".join(PREDICTOR_NAMES)}')
        if name == "copy-last":
            return CopyLastFramePredictor(frames_per_call=frames_per_call)
        if name == "diffusion":
            return self.default_predictor()
        if PREDICTOR_NAMES[name] in RESTORE_HINT_KINDS:
            return RestoreHintPredictor(self.shipped_restorer(), frames_per_call, PREDICTOR_NAMES[name])
        return WEIGHTLESS[PREDICTOR_NAMES[name]](frames_per_call=frames_per_call)

    def shipped_restorer(self) -> Restorer:
        return _load_restorer(self._shipped_file(DEFAULT_RESTORE_FILE, "restoration model"), self.device)

    def default_predictor(self) -> Predictor:
        return _load_diffusion(self._shipped_file(DEFAULT_PREDICTOR_FILE, "default predictor model"), 1, self.device)
