"""Training pairs for the restoration model: crops of training-clip frames (and moving digits) with
their SVT-AV1 intra decodes at the loop's quality levels.

The pairs file (`.npz`, no pickles) is self-contained so that it travels to a GPU machine that has
no video codec:
    source_jpeg (B,) uint8, source_offsets (s+1,) int64   the JPEG files of the source frames used
                                                          (copied from the frame data set)
    source (n,) int32, y (n,) int32, x (n,) int32          which source frame and where the crop is
    digits_png (D,) uint8, digits_offsets (d+1,) int64    clean moving-digit frames (PNG)
    kind (n,) int8                                        0 = crop of a source frame, 1 = digit frame
                                                          (source then indexes the digit frames)
    quality (n,) int16                                    the AV1 intra quality level it was coded at
    decoded_webp (C,) uint8, decoded_offsets (n+1,) int64  the decodes, lossless WebP
    clip_names (c,) str                                   the frame data set's clips
Only train-split clips are in a frame data set (evc_archive.training.splits); making or loading
pairs whose clips include a validation or test clip fails, as does a pairs file without clip_names.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from evc_archive.training.splits import check_train_only

# Quality levels of core.keyframes.av1_intra (CRF 53..17) around those rate control picks for coded frames
# at 0.02-0.07 bpp on 128x128 clips (levels 8-25, docs/benchmarks/ablation.json); the pairs draw
# uniformly from them.
DEFAULT_QUALITIES = tuple(range(6, 25))


def _blob(arr: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    if fmt == "WEBP":
        Image.fromarray(arr).save(buf, format="WEBP", lossless=True, quality=100, method=4)
    else:
        Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


def _concat(blobs: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(blobs) + 1, np.int64)
    offsets[1:] = np.cumsum([len(b) for b in blobs])
    data = np.frombuffer(b"".join(blobs), np.uint8) if blobs else np.zeros(0, np.uint8)
    return data, offsets


def _decode_image(data: np.ndarray, offsets: np.ndarray, i: int) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data[offsets[i]:offsets[i + 1]].tobytes())).convert("RGB"))


def _code(job: tuple[np.ndarray, int]) -> bytes:
    """Worker: AV1 intra round trip of one crop -> lossless WebP of the decode."""
    from evc_archive.core.keyframes.av1_intra import AV1IntraCodec

    crop, quality = job
    codec = AV1IntraCodec()
    h, w, _ = crop.shape
    decoded = codec.decode(codec.encode(torch.from_numpy(crop), quality), quality, h, w)
    return _blob(decoded.numpy(), "WEBP")


def prepare_restore_pairs(frames_path: Path, out_path: Path, *, pairs: int = 2400, sources: int = 900,
                          digit_pairs: int = 240, crop: int = 128, qualities: tuple[int, ...] = DEFAULT_QUALITIES,
                          seed: int = 0, processes: int = 2, progress=None) -> dict:
    """Sample crops from `sources` frames of the frame data set (both groups), code each at a random
    quality, add moving-digit frames (64x64), write the pairs file. Returns a summary."""
    from evc_archive.training.data import moving_digits

    rng = np.random.default_rng(seed)
    data = np.load(frames_path, allow_pickle=False)
    check_train_only(data["clip_names"], f"frame data set {frames_path}")
    jpeg, offsets = data["jpeg"], data["offsets"]
    chosen = np.sort(rng.choice(len(offsets) - 1, size=min(sources, len(offsets) - 1), replace=False))
    src_blobs = [jpeg[offsets[i]:offsets[i + 1]].tobytes() for i in chosen]
    src_images = [np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in src_blobs]
    jobs, meta = [], []
    for _ in range(pairs):
        s = int(rng.integers(len(src_images)))
        h, w, _ = src_images[s].shape
        y, x = int(rng.integers(h - crop + 1)), int(rng.integers(w - crop + 1))
        q = int(rng.choice(qualities))
        jobs.append((np.ascontiguousarray(src_images[s][y:y + crop, x:x + crop]), q))
        meta.append((0, s, y, x, q))
    gen = torch.Generator().manual_seed(seed)
    digit_video = moving_digits(max(1, digit_pairs // 6), 6, 64, gen)  # (b,6,3,64,64) in [0,1]
    digit_frames = (digit_video.flatten(0, 1)[:digit_pairs] * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    for d, frame in enumerate(digit_frames):
        q = int(rng.choice(qualities))
        jobs.append((np.ascontiguousarray(frame), q))
        meta.append((1, d, 0, 0, q))
    decoded = []
    with get_context("spawn").Pool(processes) as pool:
        for k, blob in enumerate(pool.imap(_code, jobs, chunksize=8)):
            decoded.append(blob)
            if progress and (k + 1) % 100 == 0:
                progress(k + 1, len(jobs))
    src_data, src_offsets = _concat(src_blobs)
    dig_data, dig_offsets = _concat([_blob(f, "PNG") for f in digit_frames])
    dec_data, dec_offsets = _concat(decoded)
    m = np.asarray(meta, np.int64)
    np.savez(out_path, source_jpeg=src_data, source_offsets=src_offsets, digits_png=dig_data,
             digits_offsets=dig_offsets, kind=m[:, 0].astype(np.int8), source=m[:, 1].astype(np.int32),
             y=m[:, 2].astype(np.int32), x=m[:, 3].astype(np.int32), quality=m[:, 4].astype(np.int16),
             decoded_webp=dec_data, decoded_offsets=dec_offsets, clip_names=data["clip_names"])
    return {"pairs": len(meta), "video_pairs": pairs, "digit_pairs": len(digit_frames), "sources": len(src_blobs),
            "bytes": int(Path(out_path).stat().st_size)}


@dataclass
class RestorePairs:
    """Decoded pairs on `device`: clean and decoded (n,3,S,S) uint8 per size S (128 for video crops,
    64 for digits), and the source frames themselves for clean -> clean samples."""

    clean: dict[int, torch.Tensor]
    decoded: dict[int, torch.Tensor]
    quality: dict[int, torch.Tensor]
    sources: list[torch.Tensor]  # (H,W,3) uint8

    @classmethod
    def load(cls, path: Path, device: str = "cpu") -> "RestorePairs":
        z = np.load(path, allow_pickle=False)
        if "clip_names" not in z:
            raise ValueError(f"pairs file {path} does not list its clips: "
                             "remake it with `python -m jobs.train_restore prepare`")
        check_train_only(z["clip_names"], f"pairs file {path}")
        sources = [_decode_image(z["source_jpeg"], z["source_offsets"], i) for i in range(len(z["source_offsets"]) - 1)]
        digits = [_decode_image(z["digits_png"], z["digits_offsets"], i) for i in range(len(z["digits_offsets"]) - 1)]
        clean, decoded, quality = {}, {}, {}
        for i in range(len(z["kind"])):
            dec = _decode_image(z["decoded_webp"], z["decoded_offsets"], i)
            if z["kind"][i] == 0:
                s, y, x = int(z["source"][i]), int(z["y"][i]), int(z["x"][i])
                ref = sources[s][y:y + dec.shape[0], x:x + dec.shape[1]]
            else:
                ref = digits[int(z["source"][i])]
            size = dec.shape[0]
            clean.setdefault(size, []).append(torch.from_numpy(ref.copy()))
            decoded.setdefault(size, []).append(torch.from_numpy(dec.copy()))
            quality.setdefault(size, []).append(int(z["quality"][i]))

        def stack(v: list[torch.Tensor]) -> torch.Tensor:
            return torch.stack(v).permute(0, 3, 1, 2).contiguous().to(device)

        return cls({k: stack(v) for k, v in clean.items()}, {k: stack(v) for k, v in decoded.items()},
                   {k: torch.tensor(v) for k, v in quality.items()},
                   [torch.from_numpy(s.copy()).to(device) for s in sources])

    def sample(self, batch: int, crop: int, identity_fraction: float, gen: torch.Generator,
               digit_fraction: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, targets): (batch,3,crop,crop) float in [-1,1]: aligned random sub-crops of the pairs
        (digit frames, 64x64, padded with their edge when crop > 64), random flips;
        `identity_fraction` of them clean -> clean (random crops of the source frames)."""
        n_id = int(round(batch * identity_fraction))
        n_dig = int(round((batch - n_id) * digit_fraction)) if 64 in self.clean else 0
        n_vid = batch - n_id - n_dig
        ins, tgs = [], []
        big = max(self.clean)
        for size, count in ((big, n_vid), (64, n_dig)):
            if count == 0:
                continue
            c = min(crop, size)
            idx = torch.randint(self.clean[size].shape[0], (count,), generator=gen)
            y = int(torch.randint(size - c + 1, (1,), generator=gen))
            x = int(torch.randint(size - c + 1, (1,), generator=gen))
            a = self.decoded[size][idx, :, y:y + c, x:x + c]
            b = self.clean[size][idx, :, y:y + c, x:x + c]
            if c < crop:
                a = torch.nn.functional.pad(a.float(), (0, crop - c, 0, crop - c), mode="replicate")
                b = torch.nn.functional.pad(b.float(), (0, crop - c, 0, crop - c), mode="replicate")
            ins.append(a.float())
            tgs.append(b.float())
        for _ in range(n_id):
            img = self.sources[int(torch.randint(len(self.sources), (1,), generator=gen))]
            h, w = img.shape[:2]
            y = int(torch.randint(h - crop + 1, (1,), generator=gen))
            x = int(torch.randint(w - crop + 1, (1,), generator=gen))
            c = img[y:y + crop, x:x + crop].permute(2, 0, 1).float()[None]
            ins.append(c)
            tgs.append(c)
        inputs, targets = torch.cat(ins), torch.cat(tgs)
        flip = torch.rand(batch, generator=gen) < 0.5
        inputs[flip], targets[flip] = inputs[flip].flip(-1), targets[flip].flip(-1)
        return inputs / 127.5 - 1.0, targets / 127.5 - 1.0
