"""The restoration model (core.restore) in integer arithmetic: the same bits on every machine.

An archive is read years later on other hardware. A float network's output depends on the
convolution kernel that runs it (summation order, FMA, vector width, Winograd), and one pixel off
in a predicted frame changes every frame of the closed loop after it. This network is the float
one quantised after training (training.restore_quantize), and every value it computes is an integer:

- every tensor t holds integers, read as t * scale (per channel, fixed at quantisation time; the
  scales are folded into the weights, so they never appear at run time);
- a convolution sums integer products; bias, ReLU, the residual adds and clamps are integer ops;
  requantisation is round-half-up of acc / 2^k per output channel (k fixed per channel);
- the input is 2 * pixel - 255 (exactly the float net's input times 255); the last layer emits
  the pixel correction round(127.5 * residual), added to the input pixels and clamped to 0..255.

Integers are carried in float32 tensors so that the fast convolution kernels of every backend run
them, and the result cannot depend on the kernel: weights and activations are at most 255 in
magnitude (`MAX_INT`, exact in float32, TF32, bfloat16 and float16 alike), and for every output
channel sum(|w|) * 255 + |bias| <= 2^23 (`ACC_BOUND`), so every partial sum a kernel may form, in
any order, with or without FMA or reduced-precision inputs, is an integer below 2^24 and exact.
Transform-based kernels (Winograd, FFT) are the one way to a different result; a convolution whose
output is not all integers is recomputed in float64 and rounded, which is exact for any such kernel
(its error stays far below 0.5 at these magnitudes). `exact_math` also turns cuDNN and NNPACK off
(they may pick Winograd or FFT) and keeps float32 matmul precision at "highest" while the net runs.
Everything after the sum is exact in float32 as well: the bias add (|acc + bias| <= 2^23), the
scale 2^-shift with shift <= MAX_SHIFT (a power of two), the + 0.5 (the sum still has at most 24
significant bits), floor, clamp and the final pixel add.

Shapes: frames (n,H,W,3) uint8 -> (n,H,W,3) uint8, any H, W (padded to even inside, as core.restore).
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from evc_archive.core.errors import ModelMismatchError
from evc_archive.core.model_file import read_model_blob, write_model_blob
from evc_archive.core.restore import RestoreConfig, Restorer

MODEL_FORMAT = "evc-restore-int/1"
MAX_INT = 255  # |weight|, |activation| <= MAX_INT: exact in every float format a kernel may use
ACC_BOUND = 1 << 23  # per output channel: sum |w| * MAX_INT + |bias| <= ACC_BOUND
MAX_SHIFT = 22  # (acc + bias) / 2^shift + 0.5 stays exact in float32
INPUT_SCALE = 1.0 / 255.0  # the float net's input x = (2p - 255) / 255
OUTPUT_SCALE = 1.0 / 127.5  # the last layer's integers are pixel corrections


def within_bounds(weight: torch.Tensor, bias: torch.Tensor) -> bool:
    """One output channel's integer weight (I,3,3) and bias () keep every sum exact."""
    return bool(weight.abs().max() <= MAX_INT and weight.abs().sum() * MAX_INT + bias.abs() <= ACC_BOUND)


@dataclass(frozen=True)
class IntConv:
    """One 3x3 convolution (padding 1): weight (O,I,3,3) and bias (O,) integers, shift (O,) >= 0:
    out = clamp(round_half_up((conv(a, weight) + bias) / 2^shift), -MAX_INT, MAX_INT)."""

    weight: torch.Tensor
    bias: torch.Tensor
    shift: torch.Tensor

    def __post_init__(self) -> None:
        if (self.shift < 0).any() or (self.shift > MAX_SHIFT).any():
            raise ValueError("integer convolution: shift out of range")
        for weight, bias in zip(self.weight, self.bias):
            if not within_bounds(weight, bias):
                raise ValueError("integer convolution may leave the exact range of float32")

    def as_float(self, device: str) -> "_FloatConv":
        return _FloatConv(self.weight.to(device, torch.float32), self.bias.to(device, torch.float32)[:, None, None],
                          torch.exp2(-self.shift.to(torch.float64)).to(device, torch.float32)[:, None, None],
                          self.weight.to(device, torch.float64))


@dataclass(frozen=True)
class _FloatConv:
    """An IntConv's integers as float32 tensors on one device (`exact` runs it)."""

    weight: torch.Tensor
    bias: torch.Tensor  # (O,1,1)
    scale: torch.Tensor  # (O,1,1) 2^-shift
    weight64: torch.Tensor

    def __call__(self, a: torch.Tensor) -> torch.Tensor:
        """a (B,I,H,W) integers -> (B,O,H,W) integers in [-MAX_INT, MAX_INT]."""
        acc = F.conv2d(a, self.weight, padding=1)
        if not torch.equal(acc, acc.round()):  # a transform-based kernel: redo it exactly
            acc = F.conv2d(a.double(), self.weight64, padding=1).round().float()
        return torch.floor((acc + self.bias) * self.scale + 0.5).clamp_(-MAX_INT, MAX_INT)


@contextmanager
def exact_math():
    """Float32 matmuls at full precision and no cuDNN while integer layers run (restored after)."""
    precision = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        with torch.backends.cudnn.flags(enabled=False), torch.backends.nnpack.flags(enabled=False):
            yield
    finally:
        torch.set_float32_matmul_precision(precision)


@dataclass(frozen=True)
class IntRestoreModel:
    """The quantised RestoreNet: head, blocks x (conv1, conv2), tail."""

    config: RestoreConfig
    head: IntConv
    blocks: tuple[tuple[IntConv, IntConv], ...]
    tail: IntConv

    def layers(self) -> list[IntConv]:
        return [self.head, *(c for block in self.blocks for c in block), self.tail]

    def parameter_count(self) -> int:
        return sum(c.weight.numel() + c.bias.numel() for c in self.layers())


class IntRestorer:
    """A loaded integer restoration model (same call as core.restore.Restorer); `content_hash` is
    the sha256 of its file."""

    integer = True

    def __init__(self, model: IntRestoreModel, content_hash: bytes, device: str = "cpu"):
        self.config = model.config
        self.model = model
        self.content_hash = content_hash
        self.device = device
        self._head = model.head.as_float(device)
        self._blocks = [(a.as_float(device), b.as_float(device)) for a, b in model.blocks]
        self._tail = model.tail.as_float(device)

    @torch.no_grad()
    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        """frames (n,H,W,3) uint8 -> restored (n,H,W,3) uint8."""
        _, h, w, _ = frames.shape
        pixels = frames.permute(0, 3, 1, 2).to(self.device, torch.float32)
        pixels = F.pad(pixels, (0, w % 2, 0, h % 2), mode="replicate")
        with exact_math():
            x = self._head(F.pixel_unshuffle(2 * pixels - 255, 2)).clamp_(min=0)
            for conv1, conv2 in self._blocks:
                x = (x + conv2(conv1(x).clamp_(min=0))).clamp_(-MAX_INT, MAX_INT)
            correction = F.pixel_shuffle(self._tail(x), 2)
        out = (pixels + correction).clamp_(0, 255)[..., :h, :w]
        return out.to("cpu", torch.uint8).permute(0, 2, 3, 1).contiguous()

    # -- files ---------------------------------------------------------------------------------
    @staticmethod
    def save(path: Path, model: IntRestoreModel, extra: dict | None = None) -> bytes:
        """Write the integers (int16 weights, int32 biases, uint8 shifts); returns the file's sha256."""
        layers = [{"weight": c.weight.to(torch.int16), "bias": c.bias.to(torch.int32), "shift": c.shift.to(torch.uint8)}
                  for c in model.layers()]
        return write_model_blob(path, {"format": MODEL_FORMAT, "config": asdict(model.config), "layers": layers,
                                       "extra": extra or {}})

    @classmethod
    def from_bytes(cls, data: bytes, device: str = "cpu") -> "IntRestorer":
        blob = read_model_blob(data, MODEL_FORMAT, "restoration model")
        config = RestoreConfig(**blob["config"])
        convs = [IntConv(d["weight"].to(torch.int64), d["bias"].to(torch.int64), d["shift"].to(torch.int64))
                 for d in blob["layers"]]
        if len(convs) != 2 * config.blocks + 2:
            raise ValueError("restoration model file: layer count does not match its config")
        blocks = tuple((convs[1 + 2 * i], convs[2 + 2 * i]) for i in range(config.blocks))
        return cls(IntRestoreModel(config, convs[0], blocks, convs[-1]), hashlib.sha256(data).digest(), device)

    @classmethod
    def load(cls, path: Path, device: str = "cpu") -> "IntRestorer":
        return cls.from_bytes(Path(path).read_bytes(), device)


def load_restoration_model(path: Path, device: str = "cpu") -> Restorer | IntRestorer:
    """A restoration model file of either format (float: core.restore; integer: this module)."""
    data = Path(path).read_bytes()
    try:
        return IntRestorer.from_bytes(data, device)
    except ModelMismatchError:
        return Restorer.from_bytes(data, device)
