"""Data-parallel training with Ray Train: the same training loop runs alone (one process, CPU or
GPU) or as N TorchTrainer workers (one per GPU on a cluster; gloo on CPUs), with DDP-averaged
gradients.

The loops stay ours; they ask a `Workers` object to wrap the model, to agree on time-driven
decisions (stop, checkpoint, learning rate) so every rank takes the same step, and to let only the
chief write logs and checkpoints. A loop returns its summary (rank 0's reaches the caller).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch


@dataclass(frozen=True)
class Workers:
    """Where this training process stands: its rank among world_size data-parallel workers."""

    rank: int = 0
    world_size: int = 1
    device: str = "cpu"

    @property
    def is_chief(self) -> bool:
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.world_size > 1

    def wrap(self, model: torch.nn.Module, find_unused_parameters: bool = False) -> torch.nn.Module:
        """The model to call in the loop: DDP across workers, the model itself when alone."""
        if not self.parallel:
            return model
        from ray.train.torch import prepare_model

        return prepare_model(model, move_to_device=False,
                             parallel_strategy_kwargs={"find_unused_parameters": find_unused_parameters})

    def agree_max(self, value: float) -> float:
        """The largest value over workers (all ranks get the same number)."""
        if not self.parallel:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return float(t.item())

    def average_gradients(self, params: list[torch.nn.Parameter]) -> None:
        """Average .grad over workers for parameters DDP does not sync (e.g. entropy-model quantiles,
        trained by a separate auxiliary loss)."""
        if not self.parallel:
            return
        for p in params:
            if p.grad is not None:
                torch.distributed.all_reduce(p.grad, op=torch.distributed.ReduceOp.SUM)
                p.grad /= self.world_size

    def check_in_sync(self, model: torch.nn.Module) -> None:
        """Raise if the workers' weights differ (they must not under DDP)."""
        if not self.parallel:
            return
        digest = hashlib.sha256()
        for tensor in model.state_dict().values():
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        mine = torch.tensor(list(digest.digest()[:8]), dtype=torch.int64, device=self.device)
        gathered = [torch.zeros_like(mine) for _ in range(self.world_size)]
        torch.distributed.all_gather(gathered, mine)
        if any(not torch.equal(g, gathered[0]) for g in gathered):
            raise RuntimeError("data-parallel workers ended with different weights")


def local_workers(device: str) -> Workers:
    return Workers(0, 1, device)


def ray_train_workers() -> Workers:
    """Inside a Ray Train worker: this worker's rank and device."""
    import ray.train
    import ray.train.torch

    ctx = ray.train.get_context()
    return Workers(ctx.get_world_rank(), ctx.get_world_size(), str(ray.train.torch.get_device()))


def run_with_ray_train(loop: Callable[[dict[str, Any]], None], config: dict[str, Any], num_workers: int,
                       use_gpu: bool, storage_path: str, name: str, address: str | None = None):
    """Run `loop(config)` on num_workers Ray Train workers (TorchTrainer: one GPU each with
    use_gpu, else CPU workers with gloo). Returns Ray Train's Result; its return_value is what
    rank 0's loop returned."""
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=True)
    trainer = TorchTrainer(loop, train_loop_config=config,
                           scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu),
                           run_config=RunConfig(storage_path=storage_path, name=name))
    return trainer.fit()


def _on_ray_train_worker(loop: Callable[[dict[str, Any], Workers], dict], config: dict[str, Any]) -> dict:
    return loop(config, ray_train_workers())


def launch(loop: Callable[[dict[str, Any], Workers], dict], args, name: str) -> dict:
    """A training job's entry: `loop(config, workers)` in this process, or on `args.ray_workers`
    Ray Train workers. args: the job's argparse namespace (out, device, ray_workers, use_gpu,
    address, storage_path; Paths become absolute strings in config). Returns rank 0's summary."""
    config = {k: (str(v.resolve()) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    if not args.ray_workers:
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        return loop(config, local_workers(device))
    use_gpu = args.device != "cpu" and (args.use_gpu or torch.cuda.is_available())
    storage = args.storage_path or str(Path(args.out).resolve().parent / "ray-train")
    result = run_with_ray_train(functools.partial(_on_ray_train_worker, loop), config, args.ray_workers, use_gpu,
                                storage, f"{name}-{Path(args.out).name}", args.address)
    print(f"Ray Train ({args.ray_workers} workers): {result.return_value}", flush=True)
    return result.return_value


def add_training_options(parser, *, batch: int, crop: int, model_file: str) -> None:
    """The options of a job whose training loop is training.ema.train_with_ema on crops: steps,
    batch, crop, learning rate, seed, time budget, device, the model file to resume from
    (`model_file` names it in the help) and the data-parallel options."""
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=batch, help="crops per step (per worker with --ray-workers)")
    parser.add_argument("--crop", type=int, default=crop)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--minutes", type=float, default=None, help="wall-time budget")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--init", type=Path, default=None, help=f"{model_file} to start from (resume)")
    add_ray_train_options(parser)


def add_ray_train_options(parser, batch_note: str = "") -> None:
    """The data-parallel options every training job has."""
    parser.add_argument("--ray-workers", type=int, default=0,
                        help="train data-parallel on this many Ray Train workers (TorchTrainer: one GPU each where "
                             "the cluster has GPUs, else CPU processes with gloo); 0 = in this process. The batch "
                             "is per worker; --out must be on storage the rank-0 worker can write (shared on "
                             "multi-node clusters)")
    parser.add_argument("--use-gpu", action="store_true", help="with --ray-workers: one GPU per worker (default: "
                                                                "when this machine has a GPU)")
    parser.add_argument("--address", default=None, help="with --ray-workers: Ray cluster address (default: "
                                                         "RAY_ADDRESS or a local cluster)")
    parser.add_argument("--storage-path", default=None, help="with --ray-workers: Ray Train storage (results, logs; "
                                                              "s3:// works); default: <out>/../ray-train")
