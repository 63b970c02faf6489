"""The refine-diffusion model (core.refine) in integer arithmetic, sampler included: the same
frames on every machine.

The network is the float one quantised after training (training.refine_quantize) in the form of the
integer restoration model (core.int_restore, core.int_ops): 8-bit activations and weights, integer
sums exact in float32 whatever kernel forms them, per-channel power-of-two requantisation. Inputs:
the condition (the base frame and the model's K decoded frames) as 2p - 255 per sample, the sample x as round(x * 2^X_IN_BITS) clamped to +-255, the
step's time as round(255 t); the last layer emits the x0 estimate in 2^-OUT_BITS units. The sampler runs on int64:
x and x0 in 2^-SAMPLE_BITS units, the schedule's alpha and sigma per time as stored integers in
2^-STEP_BITS units, noise from the stored Gaussian quantiles (2^-SAMPLE_BITS units) picked by the
same hash as the float model's (core.refine.hashed_gaussian), rounding half up (int_ops.round_shift).

Shapes: as core.refine.Refiner's sampler interface; condition (B,3(1+K),H,W) int64 2p - 255, H and
W even.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from evc_archive.core.int_ops import MAX_INT, IntConv, exact_math, noise_index, round_div, round_shift
from evc_archive.core.model_file import read_model_blob, write_model_blob
from evc_archive.core.refine import NOISE_LEVELS, RefineConfig, condition_frames
from evc_archive.core.settings import MAX_SAMPLING_STEPS

MODEL_FORMAT = "evc-refine-int/1"
SAMPLE_BITS = 12  # x, x0: integer / 2^12
X_IN_BITS = 6  # the network's sample input: round(x * 2^6), |x| <= 255 / 64
OUT_BITS = 10  # the network's output, the x0 estimate: integer / 2^10
STEP_BITS = 16  # alpha, sigma of a time: integer / 2^16
MAX_STEPS = MAX_SAMPLING_STEPS  # stored tables cover every step count a stream may name
# every time a sampler of 1 to MAX_STEPS steps visits (core.refine.sample_times), the file's table order
TIMES = tuple(sorted({Fraction(s - j, s) for s in range(1, MAX_STEPS + 1) for j in range(s + 1)}, reverse=True))


@dataclass(frozen=True)
class IntRefineModel:
    """The quantised RefineNet and its sampler's tables."""

    config: RefineConfig
    head: IntConv
    blocks: tuple[tuple[IntConv, IntConv], ...]
    tail: IntConv
    alpha: torch.Tensor  # (len(TIMES),) int64, cos(pi t / 2) * 2^STEP_BITS
    sigma: torch.Tensor  # (len(TIMES),) int64, sin(pi t / 2) * 2^STEP_BITS
    noise: torch.Tensor  # (NOISE_LEVELS,) int64, Gaussian quantiles * 2^SAMPLE_BITS

    def layers(self) -> list[IntConv]:
        return [self.head, *(c for block in self.blocks for c in block), self.tail]

    def parameter_count(self) -> int:
        return sum(c.weight.numel() + c.bias.numel() for c in self.layers())


class IntRefiner:
    """A loaded integer refine model with the sampler interface of core.refine.Refiner
    (prepare, noise, x0, renoise, frames, x0_of); `content_hash` is the sha256 of its file."""

    integer = True

    def __init__(self, model: IntRefineModel, content_hash: bytes, base_model: bytes, device: str = "cpu"):
        self.model, self.config = model, model.config
        self.content_hash, self.base_model, self.device = content_hash, base_model, device
        self._head = model.head.as_float(device)
        self._blocks = [(a.as_float(device), b.as_float(device)) for a, b in model.blocks]
        self._tail = model.tail.as_float(device)
        self._index = {t: i for i, t in enumerate(TIMES)}
        ratio = Fraction(self.config.residual_scale).limit_denominator(1 << 10)
        self._to_pixels = (255 * ratio.denominator, 2 * ratio.numerator << SAMPLE_BITS)  # x0 -> pixel delta

    # -- the sampler interface -------------------------------------------------------------------
    @staticmethod
    def to_units(frames: torch.Tensor) -> torch.Tensor:
        """(n,H,W,C) uint8 -> (n,C,H',W') int64 2p - 255, padded (edge) to even H', W'."""
        _, h, w, _ = frames.shape
        p = F.pad(frames.permute(0, 3, 1, 2).float(), (0, w % 2, 0, h % 2), mode="replicate")
        return 2 * p.to(torch.int64) - 255

    def prepare(self, base: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """base (n,H,W,3) uint8 (one per predicted frame), context (k,H,W,3) uint8 (the decoded
        frames, oldest first; a model with K = 0 needs none) -> condition (n,3(1+K),H',W') int64."""
        return self.to_units(condition_frames(base, context, self.config.context_frames))

    def noise(self, key: int, count: int) -> torch.Tensor:
        return self.model.noise[noise_index(key, count)]

    @torch.no_grad()
    def x0(self, condition: torch.Tensor, x: torch.Tensor, t: Fraction) -> torch.Tensor:
        """condition (B,3(1+K),H,W) int64 2p - 255, x (B,3,H,W) int64 / 2^SAMPLE_BITS -> x0 estimate,
        same units as x."""
        x_in = round_shift(x, SAMPLE_BITS - X_IN_BITS).clamp_(-MAX_INT, MAX_INT)
        a = F.pixel_unshuffle(torch.cat([condition, x_in], 1).to(self.device, torch.float32), 2)
        plane = torch.full_like(a[:, :1], float((510 * t.numerator + t.denominator) // (2 * t.denominator)))  # round(255 t)
        with exact_math():
            h = self._head(torch.cat([a, plane], 1)).clamp_(min=0)
            for conv1, conv2 in self._blocks:
                h = (h + conv2(conv1(h).clamp_(min=0))).clamp_(-MAX_INT, MAX_INT)
            x0 = F.pixel_shuffle(self._tail(h), 2)
        return x0.to("cpu", torch.int64) << (SAMPLE_BITS - OUT_BITS)

    def renoise(self, x0: torch.Tensor, noise: torch.Tensor, t: Fraction) -> torch.Tensor:
        i = self._index[t]
        return round_shift(self.model.alpha[i] * x0 + self.model.sigma[i] * noise, STEP_BITS)

    def frames(self, condition: torch.Tensor, x0: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """condition (n,3(1+K),H',W') 2p - 255 and x0 -> (n,height,width,3) uint8: the base frame's
        p + round(x0 * 127.5 / scale)."""
        delta = round_div(x0 * self._to_pixels[0], torch.tensor(self._to_pixels[1]))
        out = ((condition[:, :3] + 255) // 2 + delta).clamp_(0, 255)[..., :height, :width]
        return out.to(torch.uint8).permute(0, 2, 3, 1).contiguous()

    def x0_of(self, targets: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """Encoder only: the x0 (float, same units as x) that gives `targets` (m,H,W,3) uint8 exactly."""
        t = self.to_units(targets)
        return (t - condition[:t.shape[0], :3]).double() * (self.config.residual_scale / 255 * (1 << SAMPLE_BITS))

    # -- files ---------------------------------------------------------------------------------
    @staticmethod
    def save(path: Path, model: IntRefineModel, base_model: bytes, extra: dict | None = None) -> bytes:
        """Write the integers, the config and the base restoration model's file; returns the file's sha256."""
        return write_model_blob(path, {
            "format": MODEL_FORMAT, "config": asdict(model.config), "layers": [c.to_file() for c in model.layers()],
            "alpha": model.alpha, "sigma": model.sigma, "noise": model.noise.to(torch.int32),
            "base_model": torch.from_numpy(np.frombuffer(base_model, np.uint8).copy()), "extra": extra or {}})

    @classmethod
    def from_bytes(cls, data: bytes, device: str = "cpu") -> "IntRefiner":
        blob = read_model_blob(data, MODEL_FORMAT, "integer refine-diffusion model")
        config = RefineConfig(**blob["config"])
        convs = [IntConv.from_file(d) for d in blob["layers"]]
        if len(convs) != 2 * config.blocks + 2 or blob["alpha"].shape != (len(TIMES),) or \
                blob["noise"].shape != (NOISE_LEVELS,):
            raise ValueError("integer refine-diffusion model file: layers or tables do not match its config")
        blocks = tuple((convs[1 + 2 * i], convs[2 + 2 * i]) for i in range(config.blocks))
        model = IntRefineModel(config, convs[0], blocks, convs[-1], blob["alpha"].to(torch.int64),
                               blob["sigma"].to(torch.int64), blob["noise"].to(torch.int64))
        return cls(model, hashlib.sha256(data).digest(), blob["base_model"].numpy().tobytes(), device)

    @classmethod
    def load(cls, path: Path, device: str = "cpu") -> "IntRefiner":
        return cls.from_bytes(Path(path).read_bytes(), device)


def schedule_tables() -> tuple[torch.Tensor, torch.Tensor]:
    """(alpha, sigma) (len(TIMES),) int64 in 2^-STEP_BITS units; made once at quantisation and stored,
    so no machine's cos / sin is ever asked again."""
    t = np.array([float(x) for x in TIMES])
    scale = float(1 << STEP_BITS)
    return (torch.from_numpy(np.round(np.cos(0.5 * np.pi * t) * scale).astype(np.int64)),
            torch.from_numpy(np.round(np.sin(0.5 * np.pi * t) * scale).astype(np.int64)))
