"""Training data: a compact frame data set made from video clips, plus synthetic video.

The data set file (`.npz`, no pickles) holds JPEG-coded frames (quality 92) so that a few thousand
frames travel in tens of MB:
    jpeg (B,) uint8     all JPEG files concatenated
    offsets (n+1,) int64 byte offsets of each frame in `jpeg`
    clip (n,) int32     clip index of each frame (frames of a clip are consecutive, in order)
    group (n,) int8     0 = video frames (short side 128), 1 = stills for the keyframe codec
                        (short side 256, every 6th frame)
    clip_names (c,) str
Training samples crops and sequences from it on any device, and mixes in synthetic video: moving
digits and stills moved along synthetic camera paths. Only train-split clips go in or come out
(evc_archive.training.splits): building or loading a data set with a validation or test clip fails.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from evc_archive.io.clip import resize_short_side
from evc_archive.training.splits import check_train_only


def prepare_dataset(clips: list[Path], out_path: Path, *, short_side: int = 128,
                    max_frames: int = 240, still_short_side: int = 256, still_every: int = 6,
                    jpeg_quality: int = 92, progress=None) -> dict:
    """Decode clips, downscale, JPEG-code and write the data set file. Returns a summary.
    Refuses validation and test clips (evc_archive.training.splits)."""
    from evc_archive.io.video_read import read_frames

    check_train_only((p.stem for p in clips), "the clip list")
    blobs, clip_ids, groups = [], [], []
    for ci, path in enumerate(clips):
        frames = read_frames(path, 0, max_frames)
        for i, frame in enumerate(frames):
            for group, short in ((0, short_side), (1, still_short_side)):
                if group == 1 and i % still_every:
                    continue
                buf = io.BytesIO()
                resize_short_side(frame, short).save(buf, format="JPEG", quality=jpeg_quality)
                blobs.append(np.frombuffer(buf.getvalue(), np.uint8))
                clip_ids.append(ci)
                groups.append(group)
        if progress:
            progress(path.name, len(frames))
    offsets = np.zeros(len(blobs) + 1, np.int64)
    offsets[1:] = np.cumsum([len(b) for b in blobs])
    np.savez(out_path, jpeg=np.concatenate(blobs), offsets=offsets,
             clip=np.asarray(clip_ids, np.int32), group=np.asarray(groups, np.int8),
             clip_names=np.asarray([p.stem for p in clips]))
    return {"frames": int(sum(1 for g in groups if g == 0)), "stills": int(sum(groups)),
            "clips": len(clips), "bytes": int(offsets[-1])}


@dataclass
class FrameDataset:
    """Decoded data set, resident on `device`.

    clips: list of (n,H,W,3) uint8 tensors, consecutive frames of one clip (short side 128)
    stills: list of (H,W,3) uint8 tensors (short side 256 and 128 frames, for crops)
    """

    clips: list[torch.Tensor]
    stills: list[torch.Tensor]
    clip_names: list[str]

    @classmethod
    def load(cls, path: Path, device: str = "cpu") -> "FrameDataset":
        data = np.load(path, allow_pickle=False)
        check_train_only(data["clip_names"], f"frame data set {path}")
        jpeg, offsets, clip, group = data["jpeg"], data["offsets"], data["clip"], data["group"]
        per_clip: dict[int, list[torch.Tensor]] = {}
        stills = []
        for i in range(len(clip)):
            img = np.asarray(Image.open(io.BytesIO(jpeg[offsets[i]:offsets[i + 1]].tobytes())).convert("RGB"))
            t = torch.from_numpy(img.copy()).to(device)
            if group[i] == 0:
                per_clip.setdefault(int(clip[i]), []).append(t)
            else:
                stills.append(t)
        clips = [torch.stack(v) for _, v in sorted(per_clip.items())]
        stills.extend(c[j] for c in clips for j in range(0, len(c), 4))
        return cls(clips, stills, [str(n) for n in data["clip_names"]])

    def random_crops(self, batch: int, size: int, gen: torch.Generator) -> torch.Tensor:
        """(batch,3,size,size) float in [0,1] from stills and video frames, random flips."""
        out = []
        for _ in range(batch):
            img = self.stills[int(torch.randint(len(self.stills), (1,), generator=gen))]
            h, w = img.shape[:2]
            y = int(torch.randint(h - size + 1, (1,), generator=gen))
            x = int(torch.randint(w - size + 1, (1,), generator=gen))
            crop = img[y:y + size, x:x + size]
            if torch.rand(1, generator=gen) < 0.5:
                crop = crop.flip(1)
            out.append(crop)
        return torch.stack(out).permute(0, 3, 1, 2).float() / 255.0

    def random_sequences(self, batch: int, length: int, size: int, gen: torch.Generator) -> torch.Tensor:
        """(batch,length,3,size,size) float in [0,1]: consecutive frames, same crop, random flip,
        random temporal stride 1 or 2."""
        out = []
        for _ in range(batch):
            clip = self.clips[int(torch.randint(len(self.clips), (1,), generator=gen))]
            stride = 1 + int(torch.rand(1, generator=gen) < 0.3)
            span = (length - 1) * stride + 1
            if clip.shape[0] < span:
                stride, span = 1, length
            t0 = int(torch.randint(clip.shape[0] - span + 1, (1,), generator=gen))
            h, w = clip.shape[1:3]
            y = int(torch.randint(h - size + 1, (1,), generator=gen))
            x = int(torch.randint(w - size + 1, (1,), generator=gen))
            seq = clip[t0:t0 + span:stride, y:y + size, x:x + size]
            if torch.rand(1, generator=gen) < 0.5:
                seq = seq.flip(2)
            out.append(seq)
        return torch.stack(out).permute(0, 1, 4, 2, 3).float() / 255.0


_DIGIT_GLYPHS: torch.Tensor | None = None


def digit_glyphs(size: int = 28) -> torch.Tensor:
    """(10,size,size) float masks of the digits 0-9, drawn with PIL's built-in font."""
    global _DIGIT_GLYPHS
    if _DIGIT_GLYPHS is None or _DIGIT_GLYPHS.shape[-1] != size:
        try:  # a scalable font needs Pillow >= 10.1 with FreeType
            font, canvas = ImageFont.load_default(size=int(size * 1.1)), size
        except (TypeError, OSError, ImportError):
            font, canvas = ImageFont.load_default(), 12  # bitmap font, drawn small and scaled up
        glyphs = []
        for d in range(10):
            img = Image.new("L", (canvas, canvas), 0)
            draw = ImageDraw.Draw(img)
            left, top, right, bottom = draw.textbbox((0, 0), str(d), font=font)
            draw.text(((canvas - (right - left)) / 2 - left, (canvas - (bottom - top)) / 2 - top),
                      str(d), fill=255, font=font)
            img = img.resize((size, size), Image.BILINEAR)
            glyphs.append(torch.from_numpy(np.asarray(img, np.float32) / 255.0))
        _DIGIT_GLYPHS = torch.stack(glyphs)
    return _DIGIT_GLYPHS


def moving_digits(batch: int, length: int, size: int, gen: torch.Generator,
                  digits: int = 2, glyph: int = 28) -> torch.Tensor:
    """Moving MNIST-style video with rendered digits bouncing off the walls:
    (batch,length,3,size,size) float in [0,1], white digits on black."""
    glyphs = digit_glyphs(glyph)
    video = torch.zeros(batch, length, size, size)
    limit = size - glyph
    for b in range(batch):
        for _ in range(digits):
            g = glyphs[int(torch.randint(10, (1,), generator=gen))]
            pos = torch.rand(2, generator=gen) * limit
            vel = (torch.rand(2, generator=gen) * 2 - 1) * 3.0
            for t in range(length):
                y, x = int(pos[0]), int(pos[1])
                region = video[b, t, y:y + glyph, x:x + glyph]
                video[b, t, y:y + glyph, x:x + glyph] = torch.maximum(region, g)
                pos = pos + vel
                for k in range(2):
                    if pos[k] < 0 or pos[k] > limit:
                        vel[k] = -vel[k]
                        pos[k] = pos[k].clamp(0, limit)
    return video[:, :, None].expand(-1, -1, 3, -1, -1).contiguous()


def camera_path(stills: list[torch.Tensor], batch: int, length: int, size: int,
                gen: torch.Generator) -> torch.Tensor:
    """A still image seen through a moving camera (pan, zoom, slight rotation, constant velocity):
    (batch,length,3,size,size) float in [0,1]."""
    out = []
    for _ in range(batch):
        img = stills[int(torch.randint(len(stills), (1,), generator=gen))]
        src = img.permute(2, 0, 1)[None].float() / 255.0
        h, w = img.shape[:2]
        r = lambda lo, hi: float(lo + (hi - lo) * torch.rand(1, generator=gen))  # noqa: E731
        zoom0, dzoom = r(0.45, 0.9), r(-0.02, 0.02)
        cx, cy, vx, vy = r(-0.3, 0.3), r(-0.3, 0.3), r(-0.03, 0.03), r(-0.03, 0.03)
        rot0, drot = r(-0.05, 0.05), r(-0.01, 0.01)
        thetas = []
        for t in range(length):
            zoom, rot = zoom0 + dzoom * t, rot0 + drot * t
            sx, sy = zoom * size / w * (w / min(h, w)), zoom * size / h * (h / min(h, w))
            sx, sy = min(sx, 1.0), min(sy, 1.0)
            tx = max(-1 + sx, min(1 - sx, cx + vx * t))
            ty = max(-1 + sy, min(1 - sy, cy + vy * t))
            thetas.append(torch.tensor([[sx * math.cos(rot), -sx * math.sin(rot), tx],
                                        [sy * math.sin(rot), sy * math.cos(rot), ty]]))
        theta = torch.stack(thetas).to(src.device)
        grid = F.affine_grid(theta, (length, 3, size, size), align_corners=False)
        out.append(F.grid_sample(src.expand(length, -1, -1, -1), grid, mode="bilinear",
                                 padding_mode="reflection", align_corners=False))
    return torch.stack(out).clamp(0, 1)
