"""Refine-diffusion predictor (kind id 9): the default predictor's frames (restore-hint-int: the
restored last decoded frame moved by the encoder's velocity) plus the detail a few-step
conditional diffusion model samples for them, conditioned on those base frames and (models with
context_frames K > 0) the last K decoded frames as they are, steered by a few bits. Streams run the integer model
(core.int_refine: the same frames on any hardware); the float model it is quantised from
(core.refine) runs through the same class for training and measurement only.

Sampling (the stream's `steps` S, 1..MAX_STEPS = 8; the shipped model is trained at the times of
1 to 4 steps): x starts as noise at t=1; at each step the model
estimates x0 (the residual, in RESIDUAL_SCALE units), and, but at the last, x0 is noised again to
the next step's level with a fresh noise. Every noise comes from the call's seed
(core.int_ops.noise_index picks stored Gaussian quantiles: the same on every machine). The encoder may steer the first s of the
S-1 fresh noises of every frame: each is then entry k of a seeded codebook of CODEBOOK_SIZE noises,
the entry that points most along the true residual's direction from the model's estimate
(argmax <z_k, x0_source - x0_estimate>, as Denoising Diffusion Codebook Models pick theirs), and the
hint carries k. s = 0 is plain sampling from the seed.

Hint (bitstream version 2 hints, one per accepted call): empty = restored, still, unsteered; else
one varint s, then s x F codebook indices (one byte each, step-major), then a restore-hint hint;
s = OFF (8) turns refinement off for the call (its frames are restore-hint-int's exactly), which the
encoder picks where the sampled detail does not pay (as restore-hint turns its restoration off).

Shapes: context (k,H,W,3) uint8 (k = max(1, K)) -> (F,H,W,3) uint8.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch

from evc_archive.core import varint
from evc_archive.core.errors import BitstreamError
from evc_archive.core.int_refine import MAX_STEPS, IntRefiner
from evc_archive.core.int_restore import IntRestorer
from evc_archive.core.predictors.restore_hint import RestoreHintPredictor
from evc_archive.core.refine import Refiner, noise_key, sample_times
from evc_archive.core.registry import register_predictor

WEIGHT_FILE = "refine-int.pt"  # the shipped integer model (evc_archive/models/refine-int.md)
CODEBOOK_SIZE = 64  # noises a steered step chooses among (6 bits of information, one byte in the hint)
OFF = MAX_STEPS  # a hint's first varint: refinement off (steered steps are at most MAX_STEPS - 1)
HINT_BYTE_WEIGHT = 0.0004  # LPIPS a hint byte must buy (encoder only; as block-hint)


def pack_hint(steered: list[list[int]] | None, base_hint: bytes) -> bytes:
    """(indices per steered step, each a list of one index per frame, or None: refinement off;
    restore-hint hint) -> hint."""
    if steered is None:
        return varint.encode(OFF) + base_hint
    if not steered and not base_hint:
        return b""
    return varint.encode(len(steered)) + bytes(k for step in steered for k in step) + base_hint


def unpack_hint(hint: bytes, frames: int) -> tuple[list[list[int]] | None, bytes]:
    """hint -> (indices per steered step, or None where refinement is off; restore-hint hint)."""
    if not hint:
        return [], b""
    s, pos = varint.decode(hint, 0)
    if s == OFF:
        return None, hint[pos:]
    if s > OFF or pos + s * frames > len(hint):
        raise BitstreamError("refine-diffusion hint is damaged (steered steps)")
    indices = [list(hint[pos + j * frames:pos + (j + 1) * frames]) for j in range(s)]
    if any(k >= CODEBOOK_SIZE for step in indices for k in step):
        raise BitstreamError("refine-diffusion hint names a codebook entry that does not exist (damaged)")
    return indices, hint[pos + s * frames:]


class RefineDiffusionPredictor:
    """restore-hint-int's frames refined by a Refiner (its file carries the restoration model the
    base frames come from); `content_hash`: the sha256 of the refiner's file."""

    def __init__(self, base: RestoreHintPredictor, refiner: Refiner | IntRefiner, model_id: int = 9):
        self.base_predictor, self.refiner, self.model_id = base, refiner, model_id
        self.frames_per_call = base.frames_per_call
        self.context_frames = max(1, refiner.config.context_frames)
        self.content_hash = refiner.content_hash

    # the hint search (core.hint_search) picks the restore-hint part as for restore-hint itself
    @staticmethod
    def wrap_base_hint(base_hint: bytes) -> bytes:
        return pack_hint([], base_hint)

    def hint_candidates(self, context: torch.Tensor, targets: torch.Tensor) -> list[bytes]:
        """Encoder only: restore-hint's candidates, refined and unsteered (`encoder_variants` adds the others)."""
        return [self.wrap_base_hint(h) for h in self.base_predictor.hint_candidates(context, targets)]

    def _condition(self, context: torch.Tensor, base_hint: bytes, seed: int, steps: int) -> torch.Tensor:
        """The call's condition in the refiner's units: restore-hint-int's frames for base_hint
        (made from the last decoded frame) with the model's decoded frames of `context`."""
        return self.refiner.prepare(self.base_predictor.predict(context, base_hint, seed, steps), context)

    def _sample(self, condition: torch.Tensor, seed: int, steps: int, steered: list[list[int]],
                targets: torch.Tensor | None = None) -> tuple[torch.Tensor, list[list[int]]]:
        """condition (F,3(1+K),H,W) in the refiner's units (its `prepare`) -> (x0, indices
        chosen). With `targets` (m,H,W,3) uint8 (encoder), every fresh noise of frames < m is the
        codebook entry that points most along the true x0's direction from the estimate, and the
        indices are returned (step j's pick depends on the steps before it only, so the first s of
        them are what steering s steps picks)."""
        if not 1 <= steps <= MAX_STEPS:
            raise ValueError(f"the refine-diffusion predictor samples 1 to {MAX_STEPS} steps, not {steps}")
        model, n, count = self.refiner, condition.shape[0], condition[0, :3].numel()
        truth = None if targets is None else model.x0_of(targets, condition).double()
        times = sample_times(steps)
        shape = (n, 3, *condition.shape[2:])
        x = torch.stack([model.noise(noise_key(seed, f, 0, None), count) for f in range(n)]).reshape(shape)
        chosen: list[list[int]] = []
        for j in range(steps):
            x0 = model.x0(condition, x, times[j])
            if j == steps - 1:
                return x0, chosen
            steering = truth is not None or j < len(steered)
            noises, step_indices = [], []
            for f in range(n):
                if not steering:
                    noises.append(model.noise(noise_key(seed, f, j + 1, None), count))
                    continue
                if truth is None:
                    k = steered[j][f]
                elif f < truth.shape[0]:
                    book = torch.stack([model.noise(noise_key(seed, f, j + 1, e), count)
                                        for e in range(CODEBOOK_SIZE)]).double()
                    k = int(torch.argmax(book @ (truth[f] - x0[f].double()).reshape(-1)))
                else:  # past the segment's end: nothing to steer towards
                    k = 0
                noises.append(model.noise(noise_key(seed, f, j + 1, k), count))
                step_indices.append(k)
            x = model.renoise(x0, torch.stack(noises).reshape(shape), times[j + 1])
            if steering:
                chosen.append(step_indices)
        raise AssertionError("unreachable")

    @torch.no_grad()
    def predict(self, context: torch.Tensor, hint: bytes, seed: int, steps: int) -> torch.Tensor:
        """context (k,H,W,3) uint8 -> (F,H,W,3) uint8."""
        steered, base_hint = unpack_hint(hint, self.frames_per_call)
        if steered is None:
            return self.base_predictor.predict(context, base_hint, seed, steps)
        if len(steered) > steps - 1:
            raise BitstreamError("refine-diffusion hint steers more steps than the stream samples (damaged)")
        condition = self._condition(context, base_hint, seed, steps)
        x0, _ = self._sample(condition, seed, steps, steered)
        return self.refiner.frames(condition, x0, *context.shape[1:3])

    @torch.no_grad()
    def encoder_variants(self, context: torch.Tensor, hint: bytes, targets: torch.Tensor, seed: int,
                         steps: int) -> list[bytes]:
        """Encoder only: what else the encoder may send instead of `hint` (core.encoder.predict_call
        keeps the cheapest by its cost): the same call with refinement off, and, where the stream
        samples two steps or more, with the first s = 1 .. S-1 fresh noises of every frame steered
        towards `targets` (m,H,W,3) uint8, the source's next frames (s x F hint bytes)."""
        _, base_hint = unpack_hint(hint, self.frames_per_call)
        variants = [pack_hint(None, base_hint)]
        if steps >= 2:
            _, chosen = self._sample(self._condition(context, base_hint, seed, steps), seed, steps, [], targets)
            variants += [pack_hint(chosen[:s], base_hint) for s in range(1, len(chosen) + 1)]
        return variants


@lru_cache(maxsize=None)
def load_int_refiner(path: str, device: str) -> IntRefiner:
    """An integer refine model file, loaded once per process and device."""
    return IntRefiner.load(Path(path), device)


def predictor_for(refiner: Refiner | IntRefiner, frames_per_call: int = 4, device: str = "cpu") -> RefineDiffusionPredictor:
    """The predictor over a loaded refine model (float or integer) and the restoration model its file carries."""
    return RefineDiffusionPredictor(RestoreHintPredictor(IntRestorer.from_bytes(refiner.base_model, device),
                                                         frames_per_call, 7), refiner)


@register_predictor(9, "refine-diffusion", "refine-diffusion-int", weight_file=WEIGHT_FILE, takes_hints=True,
                    hint_byte_weight=HINT_BYTE_WEIGHT, encodable=True, bit_exact=True,
                    summary="restore-hint-int's frames plus the detail a few-step conditional diffusion model "
                    "(integer arithmetic: the same frames on any hardware) samples for them, steered by "
                    "codebook-chosen noises; use --steps 2 or more to steer")
def build(weights: str | None, frames_per_call: int, device: str) -> RefineDiffusionPredictor:
    if weights is None:
        raise ValueError("the refine-diffusion predictor needs its model file")
    return predictor_for(load_int_refiner(weights, device), frames_per_call, device)
