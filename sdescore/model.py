"""ScoreModel: a score function and an SDE, with exact likelihoods and samplers."""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from .likelihood import probability_flow_log_prob
from .modules import ForwardSDE, ReverseSDE
from .sampling import SAMPLERS, tweedie_denoise
from .sde import SDE
from .validation import as_batch, as_times, check_count, check_positive, choose
from .utils import make_generator


class ScoreModel(nn.Module):
    """A score-based model: ``sde`` plus ``score_fn(x, t)`` ~ grad_x log p_t(x).

    sde: an SDE object (``sdescore.get_sde``); score_fn: a callable or nn.Module taking
    x (n, *shape) and t (n,) and returning a tensor like x; shape: the shape of one sample,
    e.g. (d,) or (c, h, w). Computation runs in the model's dtype and device (``.double()``,
    ``.to(device)``). After each call of ``score``, ``log_prob`` or ``sample``,
    ``last_score_evals`` holds the number of batched score evaluations that call used.
    """

    def __init__(self, sde: SDE, score_fn: Callable, shape):
        super().__init__()
        if not isinstance(sde, SDE):
            raise TypeError(f"sde must be an SDE object (see sdescore.get_sde); "
                            f"got {type(sde).__name__}")
        if not callable(score_fn):
            raise TypeError(f"score_fn must be callable; got {type(score_fn).__name__}")
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        if not shape or not all(isinstance(s, int) and s > 0 for s in shape):
            raise ValueError(f"shape must be positive integers, e.g. (2,); got {shape}")
        self.sde = sde
        self.score_fn = score_fn
        self.shape = shape
        self.last_score_evals = 0
        self._score_evals = 0
        # An empty buffer that follows .to()/.double(), telling the model's dtype and device.
        self.register_buffer("_anchor", torch.empty(0), persistent=False)

    @property
    def dtype(self) -> torch.dtype:
        return self._anchor.dtype

    @property
    def device(self) -> torch.device:
        return self._anchor.device

    @property
    def dim(self) -> int:
        """D, the number of numbers in one sample."""
        return math.prod(self.shape)

    def _score(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The unchecked, counted score used by solvers: x (n, *shape), t (n,)."""
        self._score_evals += 1
        return self.score_fn(x, t)

    def _finish(self, result):
        self.last_score_evals, self._score_evals = self._score_evals, 0
        return result

    @property
    def forward_sde(self) -> ForwardSDE:
        """The forward SDE as a torchsde module on flat (n, D) states."""
        return ForwardSDE(self.sde, self.shape)

    @property
    def reverse_sde(self) -> ReverseSDE:
        """The reverse SDE, holding this model's score, as a torchsde module in s = T - t."""
        return ReverseSDE(self.sde, self._score, self.shape)

    def _batch(self, x, name="x"):
        return as_batch(x, self.shape, name=name, dtype=self.dtype, device=self.device)

    @torch.no_grad()
    def score(self, x, t) -> torch.Tensor:
        """grad_x log p_t(x): x (n, *shape), t scalar or (n,) in [0, T] -> (n, *shape)."""
        x = self._batch(x)
        t = as_times(t, x.shape[0], self.sde.T, dtype=self.dtype, device=self.device)
        self._score_evals = 0
        return self._finish(self._score(x, t))

    @torch.no_grad()
    def log_prob(self, x, trace: str = "auto", *, eps: float | None = None,
                 solver: str = "dopri5", rtol: float = 1e-5, atol: float = 1e-5,
                 steps: int = 100, probes: int = 1, probe: str = "rademacher",
                 seed: int | None = None) -> torch.Tensor:
        """Exact log-density log p_eps(x) in nats by the probability-flow ODE: x (n, *shape) -> (n,).

        This is the density at t = eps (default ``sde.likelihood_eps``), the prior pushed back
        through the flow. trace: "auto" (exact up to 64 dimensions, else Hutchinson), "exact"
        or "hutchinson"; probes/probe/seed set Hutchinson's probes, drawn once per solve.
        solver, rtol, atol: torchdiffeq options; steps: for fixed-grid solvers.
        """
        x = self._batch(x)
        eps = self._check_eps(eps, self.sde.likelihood_eps)
        check_positive(rtol, name="rtol")
        check_positive(atol, name="atol")
        check_positive(steps, name="steps", integer=True)
        check_positive(probes, name="probes", integer=True)
        self._score_evals = 0
        result = probability_flow_log_prob(
            self.sde, self._score, self.shape, x, trace=trace, eps=eps, solver=solver,
            rtol=rtol, atol=atol, steps=steps, probes=probes, probe=probe,
            generator=make_generator(seed, self.device))
        return self._finish(result)

    @torch.no_grad()
    def sample(self, n: int, method: str = "ode", *, eps: float | None = None,
               denoise: bool = True, seed: int | None = None, progress: bool = False,
               **options) -> torch.Tensor:
        """Draw n samples (n, *shape).

        method: "ode" (probability-flow ODE; options solver, rtol, atol, steps), "sde"
        (reverse SDE with torchsde; solver, steps), "pc" (predictor-corrector; steps, snr,
        corrector_steps) or "langevin" (annealed Langevin; levels, steps_per_level, snr).
        eps: the last time (default ``sde.sampling_eps``); denoise: finish with Tweedie's
        E[x_0 | x_eps]; seed: makes the draw repeatable.
        """
        n = check_count(n)
        sampler = choose(method, SAMPLERS, name="method")
        eps = self._check_eps(eps, self.sde.sampling_eps)
        generator = make_generator(seed, self.device)
        self._score_evals = 0
        x = self.sde.prior_sample((n,) + self.shape, generator=generator, device=self.device,
                                  dtype=self.dtype)
        if n == 0:
            return self._finish(x)
        x = sampler(self.sde, self._score, x, eps=eps, generator=generator, progress=progress,
                    **options)
        if denoise:
            t = torch.full((n,), eps, dtype=self.dtype, device=self.device)
            x = tweedie_denoise(self.sde, self._score, x, t)
        return self._finish(x)

    def _check_eps(self, eps, default):
        if eps is None:
            return default
        check_positive(eps, name="eps")
        if eps >= self.sde.T:
            raise ValueError(f"eps must be below T = {self.sde.T}; got {eps}")
        return float(eps)
