"""What every worker shares about where it runs and what it reports: the torch device it uses,
an error as one line of text, and the fingerprint of decoded frames (verify compares it)."""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from evc_archive.core.errors import EVCError


def one_line(exc: BaseException) -> str:
    """An exception as one line (at most 300 characters); a user error without its type name."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:300] if not isinstance(exc, EVCError) else text[:300]


def fingerprint(frames: torch.Tensor) -> str:
    """sha256 of the decoded frames (n,H,W,3) uint8, in order."""
    return hashlib.sha256(np.ascontiguousarray(frames.numpy()).tobytes()).hexdigest()


def frame_fingerprints(frames: torch.Tensor) -> list[str]:
    """Per frame of (n,H,W,3) uint8: the first 16 hex digits of its sha256 (verify names the first
    frame that drifts)."""
    return [hashlib.sha256(np.ascontiguousarray(f).tobytes()).hexdigest()[:16] for f in frames.numpy()]


def first_difference(expected: list[str], actual: list[str]) -> int | None:
    """The index of the first frame whose fingerprint differs (None: all agree)."""
    return next((i for i, (a, b) in enumerate(zip(expected, actual)) if a != b),
                None if len(expected) == len(actual) else min(len(expected), len(actual)))


def device_name() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"
