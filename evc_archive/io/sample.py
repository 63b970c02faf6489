"""The embedded sample: a small synthetic video generated on demand (nothing to download)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from evc_archive.io.video_write import write_video


def sample_frames(frames: int = 60, height: int = 128, width: int = 128, seed: int = 0) -> np.ndarray:
    """(frames,height,width,3) uint8: a textured landscape seen by a slowly panning camera, with a
    ball crossing it; deterministic for a given seed."""
    rng = np.random.default_rng(seed)
    big_h, big_w = height + 64, width + 3 * frames
    yy, xx = np.mgrid[0:big_h, 0:big_w].astype(np.float64)
    scene = np.zeros((big_h, big_w, 3))
    for _ in range(12):  # smooth colour waves
        fy, fx = rng.uniform(0.01, 0.08, 2)
        phase = rng.uniform(0, 2 * np.pi)
        colour = rng.uniform(-60, 60, 3)
        scene += np.sin(fy * yy + fx * xx + phase)[..., None] * colour / 4
    horizon = big_h * 0.45 + 8 * np.sin(xx * 0.03)
    scene += np.where((yy < horizon)[..., None], [120, 160, 210], [70, 120, 50])
    scene += rng.normal(0, 6, scene.shape)  # texture
    out = []
    for t in range(frames):
        x0, y0 = 3 * t, int(32 + 10 * np.sin(t / 15))
        frame = scene[y0:y0 + height, x0:x0 + width].copy()
        cy, cx = height * 0.6 - 20 * np.sin(t / 8), (t * 2.5) % width
        mask = (np.mgrid[0:height, 0:width][0] - cy) ** 2 + (np.mgrid[0:height, 0:width][1] - cx) ** 2 < 64
        frame[mask] = [230, 60, 40]
        out.append(np.clip(frame, 0, 255).astype(np.uint8))
    return np.stack(out)


def write_sample_video(path: Path, frames: int = 60, fps: Fraction = Fraction(25), seed: int = 0,
                       height: int = 128, width: int = 128) -> Path:
    write_video(path, sample_frames(frames, height, width, seed=seed), fps)
    return Path(path)


# name, frames, height, width, seed of the sample corpus' videos
SAMPLE_CORPUS = (("street", 16, 360, 640, 3), ("meadow", 60, 128, 128, 0), ("coast", 45, 128, 128, 2))


def write_sample_corpus(folder: Path) -> list[Path]:
    """A small corpus for the quick start, demos and the sample report: three generated videos
    (SAMPLE_CORPUS: one 640x360, two 128x128, different scenes and lengths) and one damaged file,
    which archiving reports as a failure."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [write_sample_video(folder / f"{name}.mkv", frames, seed=seed, height=h, width=w)
             for name, frames, h, w, seed in SAMPLE_CORPUS]
    damaged = folder / "damaged.mp4"
    damaged.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))  # a header and nothing else
    return paths + [damaged]
