"""Adapters between sdescore and its solvers: torchsde modules and torchdiffeq ODE functions.

This is the only file that knows torchsde's (t, y) argument order, its strictly increasing
times (the reverse SDE runs in s = T - t) and its flat (batch, features) state, and the
only one that wraps the probability-flow ODE for torchdiffeq. Every class here takes an
SDE, a score callable ``score(x, t)`` with x ``(n, *shape)`` and t (n,), and the per-sample
``shape``; states crossing into the solvers are flat (n, D) with D = prod(shape).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..sde import SDE
from .._tensors import append_dims

__all__ = ["ADAPTIVE_SOLVERS", "DEFAULT_MAX_STEPS", "FIXED_GRID_STEPS", "FIXED_SOLVERS",
           "ForwardSDE", "integrate_probability_flow", "integrate_reverse_sde", "LogDensityODE",
           "probability_flow_drift", "ProbabilityFlowODE", "ReverseSDE", "solve_ode"]

Score = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class _FlatAdapter(nn.Module):
    """Reshape flat solver states to ``(n, *shape)`` and broadcast a solver's scalar time."""

    def __init__(self, sde: SDE, shape: tuple):
        super().__init__()
        self.sde = sde
        self.shape = tuple(shape)

    def unflatten(self, y: torch.Tensor) -> torch.Tensor:
        return y.reshape((y.shape[0],) + self.shape)

    @staticmethod
    def batch_time(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(t, dtype=y.dtype, device=y.device).expand(y.shape[0])


class ForwardSDE(_FlatAdapter):
    """dx = f(x, t) dt + g(t) dw as a torchsde module (Ito, diagonal noise), t in [0, T]."""

    noise_type = "diagonal"
    sde_type = "ito"

    def f(self, t, y):
        x = self.unflatten(y)
        return self.sde.drift(x, self.batch_time(t, y)).reshape(y.shape)

    def g(self, t, y):
        return append_dims(self.sde.diffusion(self.batch_time(t, y)), 2).expand_as(y)


class ReverseSDE(_FlatAdapter):
    """The reverse-time SDE dx = [f - g^2 score] dt + g dw_bar, written in s = T - t.

    In s the process runs forward, as torchsde requires: dx = -[f - g^2 score](x, T - s) ds
    + g(T - s) dw. Integrating s from 0 to T - eps carries prior samples to p_eps.
    """

    noise_type = "diagonal"
    sde_type = "ito"

    def __init__(self, sde: SDE, score: Score, shape: tuple):
        super().__init__(sde, shape)
        self.score = score

    def f(self, s, y):
        x = self.unflatten(y)
        t = self.sde.T - self.batch_time(s, y)
        g2 = append_dims(self.sde.diffusion(t) ** 2, x.ndim)
        return -(self.sde.drift(x, t) - g2 * self.score(x, t)).reshape(y.shape)

    def g(self, s, y):
        t = self.sde.T - self.batch_time(s, y)
        return append_dims(self.sde.diffusion(t), 2).expand_as(y)

    def euler_maruyama_step(self, x: torch.Tensor, t: torch.Tensor, t_next: torch.Tensor,
                            generator=None) -> torch.Tensor:
        """One Euler-Maruyama step of the reverse SDE from time t down to t_next < t (scalar
        tensors): x ``(n, *shape)`` -> ``(n, *shape)``."""
        y = x.reshape(x.shape[0], -1)
        s, ds = self.sde.T - t, t - t_next
        noise = torch.randn(y.shape, generator=generator, dtype=y.dtype, device=y.device)
        y = y + self.f(s, y) * ds + self.g(s, y) * torch.sqrt(ds) * noise
        return self.unflatten(y)


def integrate_reverse_sde(sde: SDE, score: Score, x: torch.Tensor, eps: float, *, solver: str,
                          steps: int, entropy: int | None = None) -> torch.Tensor:
    """Carry x ``(n, *shape)`` from T down to eps along the reverse SDE with ``torchsde.sdeint``
    in s = T - t, ``steps`` steps of size (T - eps) / steps; ``entropy`` seeds the Brownian
    path. solver: any torchsde method for Ito SDEs with diagonal noise."""
    import torchsde

    y0 = x.reshape(x.shape[0], -1)
    span = sde.T - eps
    ts = torch.tensor([0.0, span], dtype=y0.dtype, device=y0.device)
    brownian = torchsde.BrownianInterval(t0=ts[0], t1=ts[-1], size=y0.shape, dtype=y0.dtype,
                                         device=y0.device, entropy=entropy)
    reverse = ReverseSDE(sde, score, x.shape[1:])
    ys = torchsde.sdeint(reverse, y0, ts, bm=brownian, method=solver, dt=span / steps)
    return ys[-1].reshape(x.shape)


def probability_flow_drift(sde: SDE, score: Score, x: torch.Tensor,
                           t: torch.Tensor) -> torch.Tensor:
    """f(x, t) - g(t)^2 score(x, t) / 2 for x ``(n, *shape)`` at times t (n,)."""
    half_g2 = append_dims(0.5 * sde.diffusion(t) ** 2, x.ndim)
    return sde.drift(x, t) - half_g2 * score(x, t)


class ProbabilityFlowODE(_FlatAdapter):
    """dx/dt = f(x, t) - g(t)^2 score(x, t) / 2 as a torchdiffeq function of flat states."""

    def __init__(self, sde: SDE, score: Score, shape: tuple):
        super().__init__(sde, shape)
        self.score = score

    def forward(self, t, y):
        x = self.unflatten(y)
        return probability_flow_drift(self.sde, self.score, x,
                                      self.batch_time(t, y)).reshape(y.shape)


Divergence = Callable[[Callable[[torch.Tensor], torch.Tensor], torch.Tensor],
                      tuple[torch.Tensor, torch.Tensor]]


class LogDensityODE(nn.Module):
    """The probability-flow ODE augmented with its divergence, for torchdiffeq.

    State (y, delta): y (n, D) flat, delta (n,). d y/dt = drift(y), d delta/dt = div drift(y),
    so delta(T) - delta(eps) is the integral that turns log p_T into log p_eps.
    ``divergence(fn, y)`` returns (fn(y), div fn(y)).
    """

    def __init__(self, flow: ProbabilityFlowODE, divergence: Divergence):
        super().__init__()
        self.flow = flow
        self.divergence = divergence

    def forward(self, t, state):
        y, _ = state
        return self.divergence(lambda v: self.flow(t, v), y)


#: The adaptive torchdiffeq solvers the ``ode`` methods take (with rtol, atol, max_steps).
ADAPTIVE_SOLVERS = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun")
#: The fixed-grid torchdiffeq solvers the ``ode`` methods take (with steps).
FIXED_SOLVERS = ("euler", "midpoint", "heun3", "rk4")


#: Default ``max_steps`` of an adaptive solve; past it the solve stops with an error.
DEFAULT_MAX_STEPS = 5000
#: Default ``steps`` of a fixed-grid solve.
FIXED_GRID_STEPS = 100


def solve_ode(func, y0, t0: float, t1: float, *, solver: str, rtol: float, atol: float,
              steps: int, max_steps: int = DEFAULT_MAX_STEPS):
    """Integrate ``func`` from t0 to t1 with torchdiffeq and return the state at t1.

    Adaptive solvers are told to land on t1 (``step_t``) and start from a step of 1% of the
    interval, so no drift is ever evaluated outside [t0, t1]: left to themselves they step
    past t1 and interpolate back, and their first-step guess can overshoot too. They stop
    with RuntimeError after ``max_steps`` steps (accepted or not) instead of running on:
    tolerances below float32's reach never end otherwise. Fixed-grid solvers take ``steps``
    equal steps. ``y0`` may be a tensor or a tuple of tensors.
    """
    from torchdiffeq import odeint

    first = y0[0] if isinstance(y0, tuple) else y0
    times = torch.tensor([t0, t1], dtype=first.dtype, device=first.device)
    span = abs(t1 - t0)
    if solver in ADAPTIVE_SOLVERS:
        # A tensor, not a list: torchdiffeq negates tensor options when time runs backwards.
        options = {"step_t": times[1:], "first_step": 0.01 * span, "max_num_steps": max_steps}
    elif solver in FIXED_SOLVERS:
        options = {"step_size": span / steps}
    else:
        raise ValueError(f"Unknown solver {solver!r}; choose one of: "
                         f"{', '.join(ADAPTIVE_SOLVERS + FIXED_SOLVERS)}")
    try:
        solution = odeint(func, y0, times, rtol=rtol, atol=atol, method=solver, options=options)
    except AssertionError as err:
        if "max_num_steps" in str(err):
            raise RuntimeError(
                f"The ODE solver {solver!r} took {max_steps} steps (max_steps) without reaching "
                f"the end: loosen rtol={rtol} / atol={atol}, use float64 (model.double()) or a "
                "fixed-step solver, or raise max_steps") from err
        if "underflow" not in str(err):
            raise
        raise RuntimeError(
            f"The ODE solver {solver!r} shrank its step to nothing ({err}). Try a larger eps, "
            "looser rtol/atol, float64 (model.double()), or a fixed-step solver."
        ) from err
    if isinstance(solution, tuple):
        return tuple(s[-1] for s in solution)
    return solution[-1]


def integrate_probability_flow(sde: SDE, score: Score, x: torch.Tensor, t0: float, t1: float,
                               **solver_options) -> torch.Tensor:
    """Carry x ``(n, *shape)`` from t0 to t1 along the probability-flow ODE (``solve_ode``'s
    solver, rtol, atol, steps); returns ``(n, *shape)``."""
    flow = ProbabilityFlowODE(sde, score, x.shape[1:])
    return solve_ode(flow, x.reshape(x.shape[0], -1), t0, t1, **solver_options).reshape(x.shape)
