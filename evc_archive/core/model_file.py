"""Model files (a torch.save'd dict with a "format" key, weights only): writing one and its hash,
and reading one, the place that turns an unreadable or foreign file into one clear ModelMismatchError."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import torch

from evc_archive.core.errors import ModelMismatchError


def read_model_blob(data: bytes, model_format: str, what: str) -> dict:
    """data -> the file's dict, checked to be of `model_format`; `what` names the model in errors
    ("keyframe model", "predictor model", "restoration model")."""
    try:
        blob = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        raise ModelMismatchError(f"{what} file is unreadable ({exc.__class__.__name__})") from None
    if not isinstance(blob, dict) or blob.get("format") != model_format:
        raise ModelMismatchError(f"not a {what} file (expected format {model_format})")
    return blob


def write_model_blob(path: Path, blob: dict) -> bytes:
    """Write a model file's dict (it holds "format"); returns the sha256 of the file (its content hash)."""
    buf = io.BytesIO()
    torch.save(blob, buf)
    Path(path).write_bytes(buf.getvalue())
    return hashlib.sha256(buf.getvalue()).digest()
