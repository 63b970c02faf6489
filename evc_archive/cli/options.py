"""The coding options every command shares (encode, submit, compare and the Ray jobs, which run
these commands): one definition each, their defaults taken from the core's product defaults
(EncoderSettings.product, registry.DEFAULT_PREDICTOR / DEFAULT_KEYFRAME_CODEC) and their choices
from the registry."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from evc_archive.cli.app import fail
from evc_archive.core.loop import RESIDUAL_SEARCH
from evc_archive.core.registry import DEFAULT_KEYFRAME_CODEC, DEFAULT_PREDICTOR, KEYFRAME_CODECS, PREDICTORS
from evc_archive.core.settings import MAX_SAMPLING_STEPS, SEARCHES, EncoderSettings

PRODUCT = EncoderSettings.product()


def _choices_help(registry, lead: str) -> str:
    return lead + "; ".join(f"'{s.name}': {s.summary}" for s in registry.specs() if s.encodable) + "."


Threshold = Annotated[float, typer.Option(
    help="Accept a generated frame while its LPIPS to the source is at most this; lower = more coded frames, "
         "more bits, better quality.")]
Quality = Annotated[Optional[int], typer.Option(
    help="Keyframe codec quality level (1 = fewest bits; svtav1 1-25, default "
         f"{KEYFRAME_CODECS.named('svtav1').default_quality}; hyperprior-int 1-5, default "
         f"{KEYFRAME_CODECS.named('hyperprior-int').default_quality}).")]
Gop = Annotated[int, typer.Option(help="Frames per segment; each segment decodes on its own and starts with a coded "
                                       "frame (one segment = one archive object, one unit of work).")]
Steps = Annotated[int, typer.Option(help="Sampling steps of the diffusion predictors (recorded in the stream): "
                                          "diffusion-int's DDIM steps; refine-diffusion's steps, whose fresh noises "
                                          "the encoder may steer from 2 up.")]
Seed = Annotated[int, typer.Option(help="Seed of the predictor's starting noise (recorded in the stream; in an "
                                        "archive each segment's seed derives from it and the segment id).")]
Predictor = Annotated[str, typer.Option(help=_choices_help(PREDICTORS, "Frame predictor: "))]
KeyframeCodec = Annotated[str, typer.Option(help=_choices_help(KEYFRAME_CODECS, "Codec of the coded frames: "))]
ResidualLevels = Annotated[int, typer.Option(
    help="A rejected frame may be coded as its residual against the predicted frame, this many quality levels "
         "above the segment's first frame, where that is cheaper or alone meets the threshold (bitstream v3). "
         "Rate control (--target-bpp, compare) instead tries, per segment, intra only and "
         f"{', '.join(str(r) for r in RESIDUAL_SEARCH if r is not None)} levels.")]
IntraOnly = Annotated[bool, typer.Option("--intra-only", help="Code every rejected frame on its own, never as a "
                                                              "residual (the paper's loop).")]
NoInter = Annotated[bool, typer.Option("--no-inter", help=(
    "With a bpp target: never code a segment as one AV1 inter GOP (bitstream v4). By default rate control also "
    "measures that conventional coding per segment and uses it where it gives the lower LPIPS in the budget "
    "(static cameras from about 0.05 bpp up); with this flag every segment is the generative loop."))]
Search = Annotated[str, typer.Option(help=(
    "How hard the encoder searches. 'fast' (default): hint velocities from one motion estimate of the source, "
    "the restoration mode scored on each predictor call's first frame, and with a bpp target a few exact "
    "settings per segment near it (core.fast_search). 'quick': the fast hints, and with a bpp target one "
    "keyframe quality and one residual choice per segment (on the validation clips at 128x128 mean LPIPS "
    "0.004-0.009 higher than 'fast' at 0.02-0.03 bpp; what it saves: docs/benchmarks/scale.md). "
    "'exhaustive': every hint "
    "candidate, and with a bpp target the full threshold x quality x residual sweep (tens of times slower; "
    "the reference the fast search is measured against, docs/benchmarks/scale.md)."))]
StorageOptions = Annotated[Optional[str], typer.Option(
    help="JSON of fsspec options for the archive (credentials, endpoint_url, ...).")]


def check_choice(option: str, value: str, registry) -> None:
    if value not in registry.choices():
        fail(f"{option} must be one of {', '.join(repr(c) for c in registry.choices())}, not '{value}'.")


def coding_settings(lpips_threshold: float, quality: int | None, gop: int, steps: int, seed: int,
                    predictor: str, keyframe_codec: str, residual_levels: int, intra_only: bool,
                    no_inter: bool = False, search: str = PRODUCT.search) -> EncoderSettings:
    """Validated coding options -> the product's EncoderSettings with them (quality None: the
    codec's default level). Exits with one line on a bad option."""
    if gop < 1 or steps < 1 or lpips_threshold < 0 or seed < 0:
        fail("--gop and --steps must be >= 1, --lpips-threshold and --seed >= 0.")
    if steps > MAX_SAMPLING_STEPS:
        fail(f"--steps must be at most {MAX_SAMPLING_STEPS} (the diffusion model's stored sampler tables).")
    if residual_levels < 0:
        fail("--residual-levels must be >= 0.")
    check_choice("--predictor", predictor, PREDICTORS)
    check_choice("--keyframe-codec", keyframe_codec, KEYFRAME_CODECS)
    check_search(search)
    return EncoderSettings.product(keyframe_codec, lpips_threshold=lpips_threshold, quality=quality, gop=gop,
                                   sampling_steps=steps, seed=seed,
                                   residual_levels=None if intra_only else residual_levels,
                                   inter_fallback=not no_inter, search=search)


def check_search(search: str) -> None:
    if search not in SEARCHES:
        fail(f"--search must be one of {', '.join(repr(s) for s in SEARCHES)}, not '{search}'.")


def storage_options(text: Optional[str]) -> dict:
    """--storage-options / --source-options JSON -> dict (one-line error otherwise)."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"--storage-options is not valid JSON ({exc.msg})")
    if not isinstance(value, dict):
        fail("--storage-options must be a JSON object, e.g. '{\"anon\": true}'")
    return value


__all__ = ["PRODUCT", "DEFAULT_PREDICTOR", "DEFAULT_KEYFRAME_CODEC", "Threshold", "Quality", "Gop", "Steps", "Seed",
           "Predictor", "KeyframeCodec", "ResidualLevels", "IntraOnly", "NoInter", "Search", "StorageOptions", "check_choice",
           "check_search",
           "coding_settings", "storage_options"]
