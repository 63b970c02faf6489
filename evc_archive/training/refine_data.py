"""Training contexts for the refine-diffusion predictor: what the loop really hands it.

A context is one predictor call recorded while the encoder's loop (core.loop.run_loop, the
encoder's own pieces and fast hint policy) codes a short crop clip of a training video at random
loop settings (quality level, LPIPS threshold, residual coding or not): the last two frames the
decoder has before the call, as decoded (SVT-AV1 intra frames, residual-coded frames and accepted
predictions, whatever the loop made), the default predictor's F frames for the next positions,
and the source frames there (what the refiner must learn to add). A share of the clips has
synthetic motion: a still training frame panned at a random velocity with a patch of another
frame moving across it at its own (local motion and occlusion, which the base frame's one
velocity cannot follow).

The contexts file (`.npz`, no pickles):
    context (n,2,S,S,3) uint8    the last two frames the decoder had, oldest first (a segment's
                                 first call repeats its only frame)
    base (n,F,S,S,3) uint8       the default predictor's frames for the next F positions
    target (n,F,S,S,3) uint8     the source's frames at those positions
    quality (n,) int16           the clip's quality level
    coded (n,) bool              whether the context's last frame was coded (not predicted)
    synthetic (n,) bool          whether the clip had synthetic motion
    base_model (B,) uint8        the restoration model file the default predictor ran (what the
                                 refine model file carries, so it makes the same base frames)
    clip_names (c,) str          the frame data set's clips (train split only)
Only train-split clips go in (evc_archive.training.splits).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

from evc_archive.training.restore_data import DEFAULT_QUALITIES
from evc_archive.training.splits import check_train_only

CONTEXT_FRAMES = 2  # decoded frames a context keeps (a model uses the last K <= 2 of them)
THRESHOLDS = (0.08, 0.35)  # the loop's LPIPS threshold, drawn uniformly
RESIDUAL_LEVELS = (None, 0, 1, 2)  # residual coding off, or this many levels above the quality
MAX_SPEED = 3.0  # synthetic motion: pixels a frame, camera and patch
_WORKER: dict = {}


def _pieces():
    """This process's codec, default predictor and LPIPS (built once)."""
    if not _WORKER:
        from evc_archive.core.metrics import shared_lpips
        from evc_archive.core.model_library import ModelLibrary
        from evc_archive.core.registry import DEFAULT_PREDICTOR

        torch.set_num_threads(1)
        library = ModelLibrary()
        _WORKER.update(codec=library.keyframe_named("svtav1"), predictor=library.predictor_named(DEFAULT_PREDICTOR),
                       metric=shared_lpips())
    return _WORKER["codec"], _WORKER["predictor"], _WORKER["metric"]


@dataclass(frozen=True)
class LoopJob:
    """One crop clip (L,S,S,3) uint8 and the loop settings it is coded at."""

    clip: np.ndarray
    quality: int
    threshold: float
    residual_levels: int | None
    synthetic: bool


def record_calls(job: LoopJob) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, bool]]:
    """Code job.clip through the encoder's loop; every predictor call whose F positions lie in the
    clip -> (context (2,S,S,3), base (F,S,S,3), target (F,S,S,3), whether the last context frame
    was coded)."""
    from evc_archive.core.encoder import DirectPieces
    from evc_archive.core.loop import residual_quality_for, run_loop
    from evc_archive.core.predictors.base import take_context
    from evc_archive.core.settings import EncoderSettings

    codec, predictor, metric = _pieces()
    source = torch.from_numpy(np.ascontiguousarray(job.clip))
    settings = replace(EncoderSettings.product("svtav1"), quality=job.quality, lpips_threshold=job.threshold,
                       residual_levels=job.residual_levels, search="fast")
    pieces = DirectPieces(source, codec, predictor, metric, settings, 0)
    pieces.context_frames = CONTEXT_FRAMES  # the default predictor reads the last frame of what it gets
    calls, predict = [], pieces.predict

    def record_predict(context, i):
        call = predict(context, i)
        f = len(call.frames)
        if f == predictor.frames_per_call and i + f <= source.shape[0]:
            calls.append((take_context(context, CONTEXT_FRAMES).numpy(), torch.stack(call.frames).numpy(),
                          job.clip[i:i + f], i))
        return call

    pieces.predict = record_predict
    trace = run_loop(pieces, job.quality, job.threshold,
                     residual_quality_for(codec.qualities, job.quality, job.residual_levels))
    return [(context, base, target, trace.segment.coded[i - 1]) for context, base, target, i in calls]


def synthetic_clip(still: np.ndarray, patch_source: np.ndarray, length: int, crop: int,
                   rng: np.random.Generator) -> np.ndarray:
    """A crop clip (length,crop,crop,3) uint8 with made motion: a window panning over `still`
    (H,W,3) at a random velocity, and a patch of `patch_source` moving across at its own."""
    h, w, _ = still.shape
    v = rng.uniform(-MAX_SPEED, MAX_SPEED, 2)
    span = np.abs(v) * (length - 1)
    room = np.array([h - crop, w - crop]) - span
    if (room < 0).any():  # too fast for this frame: the camera stands still
        v, room = v * 0, np.array([h - crop, w - crop], float)
    start = rng.uniform(0, room + 1e-9) + np.where(v < 0, span, 0)
    side = int(rng.integers(crop // 4, crop // 2 + 1))
    py, px = int(rng.integers(patch_source.shape[0] - side + 1)), int(rng.integers(patch_source.shape[1] - side + 1))
    patch = patch_source[py:py + side, px:px + side]
    u = rng.uniform(-MAX_SPEED, MAX_SPEED, 2)
    p0 = rng.uniform(0, crop - side, 2)
    frames = []
    for t in range(length):
        y, x = np.clip(np.round(start + v * t).astype(int), 0, [h - crop, w - crop])
        frame = still[y:y + crop, x:x + crop].copy()
        qy, qx = np.round(p0 + u * t).astype(int)
        y0, x0, y1, x1 = max(qy, 0), max(qx, 0), min(qy + side, crop), min(qx + side, crop)
        if y1 > y0 and x1 > x0:
            frame[y0:y1, x0:x1] = patch[y0 - qy:y1 - qy, x0 - qx:x1 - qx]
        frames.append(frame)
    return np.stack(frames)


def default_base_model() -> bytes:
    """The file of the restoration model the default predictor runs (shipped)."""
    from evc_archive.core.model_library import shipped_file
    from evc_archive.core.predictors.restore_hint import INT_WEIGHT_FILE

    return shipped_file(INT_WEIGHT_FILE).read_bytes()


def loop_jobs(clips: list[torch.Tensor], count: int, crop: int, length: int, synthetic_share: float,
              qualities: tuple[int, ...], rng: np.random.Generator) -> list[LoopJob]:
    """`count` crop clips of `length` frames from `clips` (n,H,W,3) uint8, with their loop settings."""
    usable = [c for c in clips if c.shape[0] >= length and min(c.shape[1:3]) >= crop]
    jobs = []
    for _ in range(count):
        clip = usable[int(rng.integers(len(usable)))]
        n, h, w, _ = clip.shape
        synthetic = bool(rng.random() < synthetic_share)
        if synthetic:
            other = usable[int(rng.integers(len(usable)))]
            frames = synthetic_clip(clip[int(rng.integers(n))].numpy(), other[int(rng.integers(other.shape[0]))].numpy(),
                                    length, crop, rng)
        else:
            i = int(rng.integers(n - length + 1))
            y, x = int(rng.integers(h - crop + 1)), int(rng.integers(w - crop + 1))
            frames = clip[i:i + length, y:y + crop, x:x + crop].numpy()
        jobs.append(LoopJob(frames, int(rng.choice(qualities)), float(rng.uniform(*THRESHOLDS)),
                            RESIDUAL_LEVELS[int(rng.integers(len(RESIDUAL_LEVELS)))], synthetic))
    return jobs


def prepare_refine_contexts(frames_path: Path, out_path: Path, *, clips: int = 300, crop: int = 96, length: int = 12,
                            synthetic_share: float = 0.3, qualities: tuple[int, ...] = DEFAULT_QUALITIES,
                            seed: int = 0, processes: int = 2, progress=None) -> dict:
    """Code `clips` crop clips of the frame data set's videos (a `synthetic_share` of them with
    made motion) through the loop, record every call, write the contexts file. Returns a summary."""
    from evc_archive.training.data import FrameDataset

    dataset = FrameDataset.load(frames_path)
    jobs = loop_jobs(dataset.clips, clips, crop, length, synthetic_share, qualities, np.random.default_rng(seed))
    rows: list[tuple] = []
    with get_context("spawn").Pool(processes) as pool:
        for k, (job, calls) in enumerate(zip(jobs, pool.imap(record_calls, jobs, chunksize=2))):
            rows += [(*call, job.quality, job.synthetic) for call in calls]
            if progress and (k + 1) % 25 == 0:
                progress(k + 1, len(jobs))
    if not rows:
        raise ValueError("no predictor call fits in the clips: use longer clips")
    context, base, target, coded, quality, synthetic = (np.stack([r[j] for r in rows]) for j in range(6))
    np.savez_compressed(out_path, context=context, base=base, target=target, quality=quality.astype(np.int16),
                        coded=coded, synthetic=synthetic,
                        base_model=np.frombuffer(default_base_model(), np.uint8),
                        clip_names=np.asarray(dataset.clip_names))
    return {"clips": len(jobs), "contexts": len(rows), "triplets": int(base.shape[0] * base.shape[1]),
            "coded_last": int(coded.sum()), "synthetic": int(synthetic.sum()), "crop": crop,
            "bytes": int(Path(out_path).stat().st_size)}


@dataclass
class RefineContexts:
    """Loaded contexts on `device`, one row per predicted frame: base, target (N,3,S,S) uint8, the
    row's call (N,) into context (C,3 CONTEXT_FRAMES,S,S) uint8 (the decoded frames, oldest first),
    the call position d (N,) of each (1..F), and the restoration model file that made the base frames."""

    base: torch.Tensor
    target: torch.Tensor
    call: torch.Tensor
    context: torch.Tensor
    position: torch.Tensor
    base_model: bytes

    @classmethod
    def load(cls, path: Path, device: str = "cpu") -> "RefineContexts":
        z = np.load(path, allow_pickle=False)
        check_train_only(z["clip_names"], f"contexts file {path}")
        base, target = torch.from_numpy(z["base"]), torch.from_numpy(z["target"])
        n, f = base.shape[:2]
        context = torch.from_numpy(z["context"]).permute(0, 1, 4, 2, 3).reshape(n, 3 * CONTEXT_FRAMES, *base.shape[2:4])
        position = torch.arange(1, f + 1).repeat(n)
        return cls(base.flatten(0, 1).permute(0, 3, 1, 2).contiguous().to(device),
                   target.flatten(0, 1).permute(0, 3, 1, 2).contiguous().to(device),
                   torch.arange(n).repeat_interleave(f).to(device), context.contiguous().to(device),
                   position.to(device), z["base_model"].tobytes())

    def __len__(self) -> int:
        return self.base.shape[0]

    def condition(self, idx: torch.Tensor, k: int) -> torch.Tensor:
        """Rows idx -> (len(idx),3(1+k),S,S) uint8: the base frame, then the last k decoded frames."""
        return torch.cat([self.base[idx], self.context[self.call[idx], 3 * (CONTEXT_FRAMES - k):]], 1)

    def sample(self, batch: int, crop: int, k: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(condition (batch,3(1+k),crop,crop), target (batch,3,crop,crop)) float in [-1,1]: aligned
        random sub-crops, random flips."""
        idx = torch.randint(len(self), (batch,), generator=gen)
        size = self.base.shape[-1]
        y = int(torch.randint(size - crop + 1, (1,), generator=gen))
        x = int(torch.randint(size - crop + 1, (1,), generator=gen))
        condition = self.condition(idx, k)[:, :, y:y + crop, x:x + crop].float()
        target = self.target[idx, :, y:y + crop, x:x + crop].float()
        flip = (torch.rand(batch, generator=gen) < 0.5).to(condition.device)
        condition[flip], target[flip] = condition[flip].flip(-1), target[flip].flip(-1)
        return condition / 127.5 - 1.0, target / 127.5 - 1.0
