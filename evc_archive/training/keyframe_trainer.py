"""Rate-distortion training of one keyframe quality level (loss = bpp + lambda * D)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from evc_archive.core.hyperprior import HyperpriorModel, KeyframeConfig, compact_state, load_compact_state
from evc_archive.training.data import FrameDataset
from evc_archive.training.log import CheckpointClock, TrainingLog
from evc_archive.training.parallel import Workers, local_workers
from evc_archive.training.schedule import ProgressSchedule


@dataclass(frozen=True)
class KeyframeTrainConfig:
    lmbda: float  # weight of 255**2 * MSE (compressai's convention)
    lpips_weight: float = 0.0  # weight of LPIPS beside MSE, in the same lambda units
    steps: int = 20000
    batch: int = 16
    crop: int = 128
    lr: float = 2e-4
    minutes: float | None = None  # stop early at this wall time (GPU windows are short)
    checkpoint_seconds: float = 60.0
    seed: int = 0


def rd_loss(model: HyperpriorModel, x: torch.Tensor, cfg: KeyframeTrainConfig, lpips=None) -> dict:
    """x (N,3,H,W) in [0,1] -> {"loss", "bpp", "mse", "lpips"} scalars."""
    out = model(x)
    num_pixels = x.shape[0] * x.shape[2] * x.shape[3]
    bpp = sum(torch.log(l).sum() for l in out["likelihoods"].values()) / (-math.log(2) * num_pixels)
    x_hat = out["x_hat"]
    mse = torch.mean((x_hat - x) ** 2)
    dist = 255.0**2 * mse
    terms = {"bpp": bpp, "mse": mse}
    if lpips is not None and cfg.lpips_weight > 0:
        lp = lpips.loss(x_hat.clamp(0, 1) * 2 - 1, x * 2 - 1).mean()
        dist = dist + cfg.lpips_weight * lp
        terms["lpips"] = lp
    terms["loss"] = bpp + cfg.lmbda * dist
    return terms


def train_keyframe(dataset: FrameDataset, model_config: KeyframeConfig, cfg: KeyframeTrainConfig,
                   out_path: Path, log: TrainingLog, device: str = "cpu", lpips=None,
                   init: dict | None = None, workers: Workers | None = None) -> HyperpriorModel:
    """Train one quality level (from `init`, a compact state, when given: fine-tuning or a resumed
    run); checkpoints (compact state) go to out_path as it runs. With `workers` from Ray Train,
    each worker trains on its own crops and DDP averages the gradients; the chief logs and
    checkpoints."""
    workers = workers or local_workers(device)
    torch.manual_seed(cfg.seed)  # the same initial weights on every worker
    gen = torch.Generator().manual_seed(cfg.seed + 7919 * workers.rank)  # different crops per worker
    model = HyperpriorModel(model_config)
    if init is not None:
        load_compact_state(model, init)
    model = model.to(device)
    net = workers.wrap(model, find_unused_parameters=True)  # quantiles get no gradient from the RD loss
    main_params = [p for n, p in model.named_parameters() if not n.endswith(".quantiles")]
    aux_params = [p for n, p in model.named_parameters() if n.endswith(".quantiles")]
    opt = torch.optim.Adam(main_params, lr=cfg.lr)
    aux_opt = torch.optim.Adam(aux_params, lr=1e-3)
    sched = ProgressSchedule(opt, cfg.lr, cfg.steps, cfg.minutes, agree=workers.agree_max)
    clock = CheckpointClock(cfg.checkpoint_seconds)
    terms: dict = {}
    for step in range(1, cfg.steps + 1):
        x = dataset.random_crops(cfg.batch, cfg.crop, gen).to(device)
        terms = rd_loss(net, x, cfg, lpips)
        opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        torch.nn.utils.clip_grad_norm_(main_params, 1.0)
        lr, finished = sched.step(step)
        opt.step()
        aux = model.aux_loss()
        aux_opt.zero_grad(set_to_none=True)
        aux.backward()
        workers.average_gradients(aux_params)
        aux_opt.step()
        if workers.is_chief and log.due(step):
            log.write(step, aux=aux.item(), lr=lr, **{k: v.item() for k, v in terms.items()})
        if workers.is_chief and clock.due(finished):
            torch.save({"step": step, "state": compact_state(model)}, out_path)
        if finished:
            break
    workers.check_in_sync(model)
    return model
