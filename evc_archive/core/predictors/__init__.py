"""Predictor kinds, one per module; importing this package registers them all (core.registry)."""

from evc_archive.core.predictors import (  # noqa: F401
                                         block_hint,
                                         copy_last,
                                         diffusion,
                                         diffusion_int,
                                         motion_extrapolation,
                                         motion_hint,
                                         refine_diffusion,
                                         restore_hint,
                                         restore_hint_bilinear,
)
