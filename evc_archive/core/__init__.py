"""Codec core: bitstream, keyframe codec, predictors, metrics and the paper's loop. No I/O, no printing."""
