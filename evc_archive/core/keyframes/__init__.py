"""Keyframe codecs, one per module; importing this package registers them all (core.registry)."""

from evc_archive.core.keyframes import av1_intra, hyperprior  # noqa: F401
