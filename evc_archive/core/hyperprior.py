"""The hyperprior keyframe model (keyframe codec kind id 1, core.keyframes.hyperprior): a compressai
scale-hyperprior model whose entropy-coding path is bit-exact. Its weights ship as
evc_archive/models/keyframe.pt (model card keyframe.md).

Architecture (Balle et al. 2018, "scale hyperprior", at a size that runs at video rate on 2 CPU cores):
    x (N,3,H,W) -> g_a -> y (N,M,H/16,W/16) -> h_a(|y|) -> z (N,C,H/64,W/64)
    z is coded with a factorized EntropyBottleneck, y with a GaussianConditional whose scales
    come from h_s(z).

Determinism (compressai issue #279): the decoder must pick the same CDF index for every element
of y as the encoder did, on any CPU thread count and on GPU. The float hyper-synthesis h_s breaks
that: a scale that lands within one ulp of a scale-table boundary can flip its index. Here h_s is
an *integer network* (Balle et al. 2019, "Integer networks for data compression"): its input is the
integer symbols of z, its weights, biases and activations live on fixed-point grids, and at coding
time it is evaluated in float64 on the CPU, where every product and partial sum is an integer far
below 2**53 and therefore exact in any summation order. The scales, and so the indexes, are
identical bits everywhere. Training uses the same grids with straight-through rounding.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.layers import GDN
from compressai.models.base import CompressionModel, get_scale_table
from torch import nn

from evc_archive.core import varint
from evc_archive.core.errors import BitstreamError
from evc_archive.core.int_synthesis import IntSynthesis
from evc_archive.core.model_file import read_model_blob, write_model_blob

PAD_MULTIPLE = 64  # g_a downsamples by 16, h_a by 4 more
MODEL_FORMAT = "evc-keyframe/1"  # kind 1: float synthesis
INT_MODEL_FORMAT = "evc-keyframe-int/1"  # kind 3: integer synthesis (core.int_synthesis)
# Scale table of the Gaussian conditional. compressai's default reaches 256, whose CDF rows make
# 0.6 MB of tables per quality level; at our rates scales stay far below 64 (larger ones are coded
# with the widest table, whose tails compressai codes by escape, so any value still round-trips).
SCALE_MIN, SCALE_MAX, SCALE_LEVELS = 0.11, 64.0, 64


@dataclass(frozen=True)
class KeyframeConfig:
    """Sizes of one keyframe model (all quality levels share them)."""

    channels: int = 64  # N: main transforms and hyperprior
    latent_channels: int = 96  # M: channels of y
    weight_frac_bits: int = 8  # fixed-point grid of h_s weights: 2**-8
    act_frac_bits: int = 6  # fixed-point grid of h_s activations: 2**-6


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """Round half up, with a straight-through gradient."""
    return x + (torch.floor(x + 0.5) - x).detach()


def _conv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)


def _deconv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(
        cin, cout, kernel, stride=stride, output_padding=stride - 1, padding=kernel // 2
    )


class IntegerHyperSynthesis(nn.Module):
    """h_s as an integer network: z symbols (N,C,h,w) integers -> scales (N,M,4h,4w) >= 0."""

    def __init__(self, config: KeyframeConfig):
        super().__init__()
        c, m = config.channels, config.latent_channels
        self.layers = nn.ModuleList([_deconv(c, c), _deconv(c, c), _conv(c, m, 3, 1)])
        self.wbits = config.weight_frac_bits
        self.abits = config.act_frac_bits

    def _layer(self, layer: nn.Module, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor):
        if isinstance(layer, nn.ConvTranspose2d):
            return F.conv_transpose2d(
                x, w, b, layer.stride, layer.padding, layer.output_padding
            )
        return F.conv2d(x, w, b, layer.stride, layer.padding)

    def forward(self, z_symbols: torch.Tensor) -> torch.Tensor:
        """Training path: float32 with straight-through rounding onto the same grids."""
        a, frac_in = z_symbols, 0
        for i, layer in enumerate(self.layers):
            acc_bits = self.wbits + frac_in
            w = ste_round(layer.weight * 2**self.wbits) / 2**self.wbits
            b = ste_round(layer.bias * 2**acc_bits) / 2**acc_bits
            a = F.relu(self._layer(layer, a, w, b))
            if i < len(self.layers) - 1:
                a = ste_round(a * 2**self.abits) / 2**self.abits
                frac_in = self.abits
        return a

    @torch.no_grad()
    def exact(self, z_symbols: torch.Tensor) -> torch.Tensor:
        """Coding path: bit-exact float64 on the CPU. Returns float64 scales."""
        a, frac_in = z_symbols.detach().to("cpu", torch.float64), 0
        for i, layer in enumerate(self.layers):
            acc_bits = self.wbits + frac_in
            w = torch.floor(layer.weight.detach().cpu().double() * 2**self.wbits + 0.5)
            b = torch.floor(layer.bias.detach().cpu().double() * 2**acc_bits + 0.5)
            acc = F.relu(self._layer(layer, a, w, b))  # integers, units of 2**-acc_bits
            if i < len(self.layers) - 1:
                a = torch.floor(acc * 2.0 ** (self.abits - acc_bits) + 0.5)
                frac_in = self.abits
            else:
                return acc * 2.0**-acc_bits
        raise AssertionError("unreachable")


class HyperpriorModel(CompressionModel):
    """One quality level: images (N,3,H,W) in [0,1], H and W multiples of 64."""

    def __init__(self, config: KeyframeConfig):
        super().__init__()
        self.config = config
        n, m = config.channels, config.latent_channels
        self.g_a = nn.Sequential(
            _conv(3, n), GDN(n), _conv(n, n), GDN(n), _conv(n, n), GDN(n), _conv(n, m)
        )
        self.g_s = nn.Sequential(
            _deconv(m, n), GDN(n, inverse=True), _deconv(n, n), GDN(n, inverse=True),
            _deconv(n, n), GDN(n, inverse=True), _deconv(n, 3),
        )
        self.h_a = nn.Sequential(
            _conv(m, n, 3, 1), nn.ReLU(inplace=True), _conv(n, n), nn.ReLU(inplace=True),
            _conv(n, n),
        )
        self.h_s = IntegerHyperSynthesis(config)
        self.entropy_bottleneck = EntropyBottleneck(n)
        self.gaussian_conditional = GaussianConditional(None)

    def _z_symbols(self, z_hat: torch.Tensor) -> torch.Tensor:
        medians = self.entropy_bottleneck._get_medians().detach().reshape(1, -1, 1, 1)
        return torch.floor(z_hat - medians + 0.5)

    def forward(self, x: torch.Tensor) -> dict:
        """Training: noisy likelihoods, straight-through rounding for the reconstruction."""
        y = self.g_a(x)
        z = self.h_a(torch.abs(y))
        _, z_likelihoods = self.entropy_bottleneck(z)
        medians = self.entropy_bottleneck._get_medians().detach().reshape(1, -1, 1, 1)
        scales = self.h_s(ste_round(z - medians))
        _, y_likelihoods = self.gaussian_conditional(y, scales)
        x_hat = self.g_s(ste_round(y))
        return {"x_hat": x_hat, "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}}

    def _indexes(self, z_hat: torch.Tensor) -> torch.Tensor:
        scales = self.h_s.exact(self._z_symbols(z_hat.cpu()))
        return self.gaussian_conditional.build_indexes(scales)

    @torch.no_grad()
    def compress(self, x: torch.Tensor) -> tuple[bytes, bytes]:
        """x (1,3,H,W) in [0,1] -> (z_string, y_string)."""
        y = self.g_a(x)
        z = self.h_a(torch.abs(y))
        z_strings = self.entropy_bottleneck.compress(z.cpu())
        z_hat = self.entropy_bottleneck.decompress(z_strings, z.shape[-2:])
        indexes = self._indexes(z_hat)
        y_strings = self.gaussian_conditional.compress(y.cpu(), indexes)
        return z_strings[0], y_strings[0]

    @torch.no_grad()
    def decode_latents(self, z_string: bytes, y_string: bytes, height: int, width: int) -> torch.Tensor:
        """Padded size (height, width) -> y_hat (1,M,height/16,width/16), integers, on the CPU."""
        z_shape = (height // PAD_MULTIPLE, width // PAD_MULTIPLE)
        z_hat = self.entropy_bottleneck.decompress([z_string], z_shape)
        return self.gaussian_conditional.decompress([y_string], self._indexes(z_hat))

    @torch.no_grad()
    def decompress(self, z_string: bytes, y_string: bytes, height: int, width: int) -> torch.Tensor:
        """Padded size (height, width) -> x_hat (1,3,height,width) in [0,1] (the float g_s)."""
        y_hat = self.decode_latents(z_string, y_string, height, width)
        device = next(self.g_s.parameters()).device
        return self.g_s(y_hat.to(device)).clamp_(0, 1)

    def update_entropy_tables(self) -> None:
        """Build the CDF tables once, after training; they are saved with the weights."""
        self.update(scale_table=get_scale_table(SCALE_MIN, SCALE_MAX, SCALE_LEVELS), force=True, update_quantiles=True)


def _pad(x: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[-2:]
    ph, pw = (-h) % PAD_MULTIPLE, (-w) % PAD_MULTIPLE
    return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x


_FULL_PRECISION_KEYS = ("entropy_bottleneck", "gaussian_conditional", "beta", "gamma")


def compact_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """State dict with conv weights stored as float16 (halves the file); entropy-model and GDN
    tensors stay float32. Encoder and decoder both load the file, so both see the same weights."""
    return {
        k: (v.half() if v.is_floating_point() and not any(s in k for s in _FULL_PRECISION_KEYS) else v).cpu()
        for k, v in model.state_dict().items()
    }


def load_compact_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    model.load_state_dict({k: v.float() if v.dtype == torch.float16 else v for k, v in state.items()})


def padded_size(height: int, width: int) -> tuple[int, int]:
    return height + (-height) % PAD_MULTIPLE, width + (-width) % PAD_MULTIPLE


class KeyframeCodec:
    """All quality levels of one keyframe model file. Loaded once per process.

    Frames are uint8 RGB tensors (H,W,3); payloads are the bytes stored in the bitstream. With
    `synthesis` (one IntSynthesis per quality) frames are decoded by the integer g_s (kind 3, the
    same bits on every machine), else by the float one (kind 1).
    """

    def __init__(self, config: KeyframeConfig, models: dict[int, HyperpriorModel],
                 content_hash: bytes, device: str = "cpu", synthesis: dict[int, IntSynthesis] | None = None):
        self.config = config
        self.models = {q: m.to(device).eval() for q, m in sorted(models.items())}
        self.content_hash = content_hash
        self.device = device
        self.synthesis = synthesis
        self.model_id = 3 if synthesis else 1  # registry.KEYFRAME_CODECS

    @property
    def qualities(self) -> tuple[int, ...]:
        return tuple(self.models)

    def _model(self, quality: int) -> HyperpriorModel:
        if quality not in self.models:
            raise ValueError(f'Invalid quality "{quality}": this model has {self.qualities}')
        return self.models[quality]

    def encode(self, frame: torch.Tensor, quality: int) -> bytes:
        """frame (H,W,3) uint8 -> payload bytes."""
        x = frame.permute(2, 0, 1)[None].to(self.device, torch.float32) / 255.0
        z_string, y_string = self._model(quality).compress(_pad(x))
        return varint.encode(len(z_string)) + z_string + y_string

    def decode(self, payload: bytes, quality: int, height: int, width: int) -> torch.Tensor:
        """payload -> frame (height,width,3) uint8 on the CPU."""
        z_len, pos = varint.decode(payload, 0)
        if pos + z_len > len(payload):
            raise BitstreamError("keyframe payload is shorter than its own length field")
        z_string, y_string = payload[pos : pos + z_len], payload[pos + z_len :]
        ph, pw = padded_size(height, width)
        if self.synthesis is not None:
            y_hat = self._model(quality).decode_latents(z_string, y_string, ph, pw)
            frame = self.synthesis[quality](y_hat.to(self.device))[0, :, :height, :width]
            return frame.permute(1, 2, 0).cpu()
        x_hat = self._model(quality).decompress(z_string, y_string, ph, pw)
        x_hat = x_hat[0, :, :height, :width]
        return (x_hat * 255.0 + 0.5).floor_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).cpu()

    # -- files ---------------------------------------------------------------------------------
    @staticmethod
    def save(path: Path, config: KeyframeConfig, models: dict[int, HyperpriorModel],
             extra: dict | None = None) -> bytes:
        """Write the model file; returns its sha256 (the content hash streams refer to)."""
        for m in models.values():
            m.update_entropy_tables()
        blob = {
            "format": MODEL_FORMAT,
            "config": asdict(config),
            "qualities": {q: compact_state(m) for q, m in models.items()},
            "extra": extra or {},
        }
        return write_model_blob(path, blob)

    @staticmethod
    def save_int(path: Path, codec: "KeyframeCodec", synthesis: dict[int, IntSynthesis],
                 extra: dict | None = None) -> bytes:
        """Write the integer model file of a float codec (its analysis and entropy models, its
        CDF tables as they are, and `synthesis` in place of the float g_s); returns its sha256."""
        blob = {
            "format": INT_MODEL_FORMAT,
            "config": asdict(codec.config),
            "qualities": {q: {k: v for k, v in compact_state(m).items() if not k.startswith("g_s.")}
                          for q, m in codec.models.items()},
            "synthesis": {q: synthesis[q].to_file() for q in codec.models},
            "extra": extra or {},
        }
        return write_model_blob(path, blob)

    @classmethod
    def from_bytes(cls, data: bytes, device: str = "cpu", integer: bool = False) -> "KeyframeCodec":
        """A kind-1 file (`integer` False) or a kind-3 one (True)."""
        blob = read_model_blob(data, INT_MODEL_FORMAT if integer else MODEL_FORMAT, "keyframe model")
        config = KeyframeConfig(**blob["config"])
        models = {}
        for q, state in blob["qualities"].items():
            model = HyperpriorModel(config)
            if integer:
                state = {**{f"g_s.{k}": v for k, v in model.g_s.state_dict().items()}, **state}
            load_compact_state(model, state)
            models[int(q)] = model
        synthesis = {int(q): IntSynthesis.from_file(e) for q, e in blob["synthesis"].items()} if integer else None
        return cls(config, models, hashlib.sha256(data).digest(), device, synthesis)

    @classmethod
    def load(cls, path: Path, device: str = "cpu", integer: bool = False) -> "KeyframeCodec":
        return cls.from_bytes(Path(path).read_bytes(), device, integer)
