"""Deterministic DDIM (eta=0) for a continuous-time variance-preserving cosine schedule with
v-prediction (Salimans & Ho 2022). Same contract as a diffusers scheduler: `timesteps(n)` then
`step(v, t, t_next, sample)`. Given the initial noise, sampling is a pure function."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def alpha_sigma(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine schedule: t in [0,1] -> (alpha, sigma) with alpha**2 + sigma**2 = 1."""
    return torch.cos(0.5 * math.pi * t), torch.sin(0.5 * math.pi * t)


def _bcast(a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return a.reshape(-1, *([1] * (x.dim() - 1))) if a.dim() else a


def add_noise(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Training: (x0, eps, t (N,)) -> (x_t, v target), both shaped like x0."""
    alpha, sigma = alpha_sigma(t)
    alpha, sigma = _bcast(alpha, x0), _bcast(sigma, x0)
    return alpha * x0 + sigma * noise, alpha * noise - sigma * x0


@dataclass(frozen=True)
class DDIMSampler:
    """eta = 0: the only randomness is the starting noise, which the caller seeds."""

    steps: int

    def timesteps(self) -> torch.Tensor:
        """(steps+1,) from 1 (pure noise) down to 0."""
        return torch.linspace(1.0, 0.0, self.steps + 1)

    @staticmethod
    def step(v: torch.Tensor, t: torch.Tensor, t_next: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
        alpha, sigma = alpha_sigma(t)
        alpha_n, sigma_n = alpha_sigma(t_next)
        x0 = alpha * sample - sigma * v
        eps = sigma * sample + alpha * v
        return alpha_n * x0 + sigma_n * eps
