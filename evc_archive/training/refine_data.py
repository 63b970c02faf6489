"""Training contexts for the refine-diffusion predictor: what the loop really hands it.

One context: a crop of a training-clip frame coded at one of the loop's quality levels (SVT-AV1
intra, decoded), then the default predictor's call on it (restore-hint-int with the hint the
encoder's fast policy picks for the source's next F frames). Each of the call's F frames is a
triplet: the decoded context frame, the base frame the default predictor made for position d and
the source frame there (what the refiner must learn to add).

The contexts file (`.npz`, no pickles):
    decoded (n,S,S,3) uint8      the coded context frame as the decoder has it
    base (n,F,S,S,3) uint8       the default predictor's frames for the next F positions
    target (n,F,S,S,3) uint8     the source's frames at those positions
    quality (n,) int16           the context's quality level
    base_model (B,) uint8        the restoration model file the default predictor ran (what the
                                 refine model file carries, so it makes the same base frames)
    clip_names (c,) str          the frame data set's clips (train split only)
Only train-split clips go in (evc_archive.training.splits).
"""

from __future__ import annotations

from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

from evc_archive.training.restore_data import DEFAULT_QUALITIES
from evc_archive.training.splits import check_train_only

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


def loop_context(frames: np.ndarray, quality: int) -> tuple[np.ndarray, np.ndarray]:
    """frames (1+F,S,S,3) uint8 source frames -> (decoded frame 0 (S,S,3), the default predictor's
    call on it for frames 1..F (F,S,S,3)), as the encoder's loop makes them (fast hint policy)."""
    from evc_archive.core.encoder import predict_call
    from evc_archive.core.hint_search import HintSearch
    from evc_archive.core.source_scores import SourceScores

    codec, predictor, metric = _pieces()
    source = torch.from_numpy(np.ascontiguousarray(frames))
    s = source.shape[1]
    decoded = codec.decode(codec.encode(source[0], quality), quality, s, source.shape[2])
    base, _, _ = predict_call(predictor, SourceScores(metric, source), HintSearch("fast", source), decoded[None],
                              0, 1, 1)
    return decoded.numpy(), base.numpy()


def default_base_model() -> bytes:
    """The file of the restoration model the default predictor runs (shipped)."""
    from evc_archive.core.model_library import shipped_file
    from evc_archive.core.predictors.restore_hint import INT_WEIGHT_FILE

    return shipped_file(INT_WEIGHT_FILE).read_bytes()


def _job(job: tuple[np.ndarray, int]) -> tuple[np.ndarray, np.ndarray]:
    return loop_context(*job)


def prepare_refine_contexts(frames_path: Path, out_path: Path, *, contexts: int = 600, crop: int = 96,
                            frames_per_call: int = 4, qualities: tuple[int, ...] = DEFAULT_QUALITIES,
                            seed: int = 0, processes: int = 2, progress=None) -> dict:
    """Sample `contexts` (clip, frame, crop, quality) from the frame data set's video frames, make
    each loop context, write the contexts file. Returns a summary."""
    from evc_archive.training.data import FrameDataset

    dataset = FrameDataset.load(frames_path)
    rng = np.random.default_rng(seed)
    usable = [c for c in dataset.clips if c.shape[0] > frames_per_call and min(c.shape[1:3]) >= crop]
    jobs, qualities_used = [], []
    for _ in range(contexts):
        clip = usable[int(rng.integers(len(usable)))]
        n, h, w, _ = clip.shape
        i = int(rng.integers(n - frames_per_call))
        y, x = int(rng.integers(h - crop + 1)), int(rng.integers(w - crop + 1))
        q = int(rng.choice(qualities))
        jobs.append((clip[i:i + 1 + frames_per_call, y:y + crop, x:x + crop].numpy(), q))
        qualities_used.append(q)
    decoded, base = [], []
    with get_context("spawn").Pool(processes) as pool:
        for k, (d, b) in enumerate(pool.imap(_job, jobs, chunksize=4)):
            decoded.append(d)
            base.append(b)
            if progress and (k + 1) % 50 == 0:
                progress(k + 1, len(jobs))
    target = np.stack([j[0][1:] for j in jobs])
    np.savez_compressed(out_path, decoded=np.stack(decoded), base=np.stack(base), target=target,
                        quality=np.asarray(qualities_used, np.int16), base_model=np.frombuffer(default_base_model(), np.uint8),
                        clip_names=np.asarray(dataset.clip_names))
    return {"contexts": len(jobs), "triplets": len(jobs) * frames_per_call, "crop": crop,
            "bytes": int(Path(out_path).stat().st_size)}


@dataclass
class RefineContexts:
    """Loaded contexts on `device`: base, target (N,3,S,S) uint8, one row per predicted frame, the
    call position d (N,) of each (1..F), and the restoration model file that made the base frames."""

    base: torch.Tensor
    target: torch.Tensor
    position: torch.Tensor
    base_model: bytes

    @classmethod
    def load(cls, path: Path, device: str = "cpu") -> "RefineContexts":
        z = np.load(path, allow_pickle=False)
        check_train_only(z["clip_names"], f"contexts file {path}")
        base, target = torch.from_numpy(z["base"]), torch.from_numpy(z["target"])
        n, f = base.shape[:2]
        position = torch.arange(1, f + 1).repeat(n)
        return cls(base.flatten(0, 1).permute(0, 3, 1, 2).contiguous().to(device),
                   target.flatten(0, 1).permute(0, 3, 1, 2).contiguous().to(device), position.to(device),
                   z["base_model"].tobytes())

    def __len__(self) -> int:
        return self.base.shape[0]

    def sample(self, batch: int, crop: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(base, target): (batch,3,crop,crop) float in [-1,1], aligned random sub-crops, random flips."""
        idx = torch.randint(len(self), (batch,), generator=gen)
        size = self.base.shape[-1]
        y = int(torch.randint(size - crop + 1, (1,), generator=gen))
        x = int(torch.randint(size - crop + 1, (1,), generator=gen))
        base = self.base[idx, :, y:y + crop, x:x + crop].float()
        target = self.target[idx, :, y:y + crop, x:x + crop].float()
        flip = (torch.rand(batch, generator=gen) < 0.5).to(base.device)
        base[flip], target[flip] = base[flip].flip(-1), target[flip].flip(-1)
        return base / 127.5 - 1.0, target / 127.5 - 1.0
