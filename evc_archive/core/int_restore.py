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

The arithmetic and why it gives one result on every machine: core.int_ops.

Shapes: frames (n,H,W,3) uint8 -> (n,H,W,3) uint8, any H, W (padded to even inside, as core.restore).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from evc_archive.core.errors import ModelMismatchError
from evc_archive.core.int_ops import ACC_BOUND, MAX_INT, MAX_SHIFT, IntConv, exact_math, within_bounds
from evc_archive.core.model_file import read_model_blob, write_model_blob
from evc_archive.core.restore import RestoreConfig, Restorer

MODEL_FORMAT = "evc-restore-int/1"
INPUT_SCALE = 1.0 / 255.0  # the float net's input x = (2p - 255) / 255
OUTPUT_SCALE = 1.0 / 127.5  # the last layer's integers are pixel corrections


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


__all__ = ["ACC_BOUND", "MAX_INT", "MAX_SHIFT", "IntConv", "IntRestoreModel", "IntRestorer", "exact_math",
           "load_restoration_model", "within_bounds"]
