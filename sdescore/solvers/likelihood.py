"""Exact log-likelihoods through the probability-flow ODE (Song et al. 2021, Sec. 4.3, App. D.2).

log p_eps(x) = log prior(x_T) + integral_eps^T div_x(drift)(x_t, t) dt, solving x_t and the
running divergence together from t = eps up to T. The divergence is exact (the trace of the
Jacobian from D vectorised vector-Jacobian products) or Hutchinson's estimate E[v^T J v],
with probes drawn once per solve and reused by every solver stage.

``LIKELIHOODS`` holds the methods, as ``SAMPLERS`` holds the samplers, with the same names
for the same integrators: "ode" (torchdiffeq, adaptive or fixed-grid) and "dpm" (the
exponential integrator in log-SNR).
"""
from __future__ import annotations

import math

import torch
from torch.func import vjp, vmap

from .._checks import choose
from ..sde import tweedie_denoise
from .adapters import (DEFAULT_MAX_STEPS, FIXED_GRID_STEPS, LogDensityODE, ProbabilityFlowODE,
                       solve_ode)
from .dpm import exponential_multistep, polynomial_weights
from .registry import ODE_OPTIONS, Method, check_ode_options, positive_integer
from .schedules import step_times

__all__ = ["AUTO_EXACT_MAX_DIM", "DPM_STEPS", "draw_probes", "exact_divergence",
           "hutchinson_divergence", "LIKELIHOODS", "log_snr_log_prob", "ode_log_prob",
           "probability_flow_log_prob", "resolve_trace", "TRACES"]

# Above this many dimensions "auto" switches from the exact trace to Hutchinson's estimator.
AUTO_EXACT_MAX_DIM = 64
# Default steps of method "dpm": the fewest that kept exact mixture scores in 2, 6 and 16
# dimensions within 0.01 nats (BENCHMARKS.md, "Exponential integrators in log-SNR").
DPM_STEPS = 60


def exact_divergence(fn, y: torch.Tensor):
    """fn: (n, D) -> (n, D), applied row by row; returns (fn(y), trace of d fn / d y) with
    shapes (n, D) and (n,), from D vectorised vector-Jacobian products."""
    out, pullback = vjp(fn, y)
    n, dim = y.shape
    basis = torch.eye(dim, dtype=y.dtype, device=y.device).unsqueeze(1).expand(dim, n, dim)
    (rows,) = vmap(pullback)(basis)  # rows[i, b] = row i of sample b's Jacobian
    return out, torch.einsum("ibi->b", rows)


def hutchinson_divergence(fn, y: torch.Tensor, probes: torch.Tensor):
    """Hutchinson's estimate mean_k v_k^T J v_k with fixed probes (k, n, D); returns
    (fn(y), estimate) with shapes (n, D) and (n,)."""
    out, pullback = vjp(fn, y)
    (vjps,) = vmap(pullback)(probes)
    return out, (vjps * probes).sum(dim=-1).mean(dim=0)


def draw_probes(kind: str, count: int, like: torch.Tensor, generator=None) -> torch.Tensor:
    """``count`` probes shaped like ``like`` (n, D): "rademacher" (+-1) or "gaussian"."""
    shape = (count,) + tuple(like.shape)
    if kind == "rademacher":
        bits = torch.randint(0, 2, shape, generator=generator, device=like.device)
        return bits.to(like.dtype) * 2 - 1
    if kind == "gaussian":
        return torch.randn(shape, generator=generator, dtype=like.dtype, device=like.device)
    raise ValueError(f"Unknown probe {kind!r}; choose one of: rademacher, gaussian")


TRACES = {"auto": None, "exact": "exact", "hutchinson": "hutchinson"}


def resolve_trace(trace: str, dim: int) -> str:
    """Map a ``trace`` option to "exact" or "hutchinson" for data of ``dim`` dimensions."""
    choice = choose(trace, TRACES, name="trace")
    if choice is None:
        return "exact" if dim <= AUTO_EXACT_MAX_DIM else "hutchinson"
    return choice


def probability_flow_log_prob(sde, score, shape, x: torch.Tensor, *, trace: str = "auto",
                              eps: float | None = None, method: str = "ode",
                              probes: int = 1, probe: str = "rademacher", generator=None,
                              **options) -> torch.Tensor:
    """log p_eps(x) in nats for x (n, *shape); returns (n,).

    trace: "exact", "hutchinson" or "auto" (exact up to AUTO_EXACT_MAX_DIM dimensions);
    probes, probe: number and kind of Hutchinson probes, drawn once for the whole solve
    (from ``generator``). eps: the smallest time (default ``sde.likelihood_eps``); the
    result is the density of p_eps, not p_0. method: a ``LIKELIHOODS`` name, with its
    ``options`` (checked by the caller, ``Method.check``).
    """
    eps = sde.likelihood_eps if eps is None else eps
    y = x.reshape(x.shape[0], -1)
    if resolve_trace(trace, y.shape[1]) == "exact":
        divergence = exact_divergence
    else:
        fixed = draw_probes(probe, probes, y, generator)
        divergence = lambda fn, v: hutchinson_divergence(fn, v, fixed)  # noqa: E731
    return LIKELIHOODS[method].run(sde, score, shape, x, divergence, eps=eps, **options)


def ode_log_prob(sde, score, shape, x: torch.Tensor, divergence, *, eps: float,
                 solver: str = "dopri5", rtol: float = 1e-5, atol: float = 1e-5,
                 steps: int = FIXED_GRID_STEPS, max_steps: int = DEFAULT_MAX_STEPS):
    """log p_eps(x) (n,) in nats by torchdiffeq: x and the running divergence solved together
    from eps up to T. solver: adaptive (dopri5, ...: rtol, atol, max_steps) or fixed-grid
    (euler, midpoint, heun3, rk4: ``steps`` equal steps). divergence(fn, y) -> (fn(y), div)."""
    n = x.shape[0]
    y = x.reshape(n, -1)
    ode = LogDensityODE(ProbabilityFlowODE(sde, score, shape), divergence)
    delta0 = torch.zeros(n, dtype=y.dtype, device=y.device)
    y_T, delta_T = solve_ode(ode, (y, delta0), eps, sde.T, solver=solver, rtol=rtol, atol=atol,
                             steps=steps, max_steps=max_steps)
    return sde.prior_log_prob(y_T.reshape(x.shape)) + delta_T


def log_snr_log_prob(sde, score, shape, x: torch.Tensor, divergence, *, eps: float,
                     steps: int = DPM_STEPS, order: int = 3,
                     trace_every: int = 2) -> torch.Tensor:
    """log p_eps(x) (n,) in nats by the exponential integrator in lambda = log(m / s).

    In lambda the probability-flow ODE is dx/dlambda = (dlog s / dlambda) x + m D(x), D the
    data prediction, whose divergence is d (dlog s / dlambda) + m div D (d = numbers per
    row). x is carried from eps to T by ``exponential_multistep`` on ``steps`` steps even in
    u = sqrt(t), and log p_eps(x) = log prior(x_T) + d log(s_T / s_eps) + integral m div D
    dlambda, the last split as d integral m dlambda (div D -> d as t -> 0; a scalar integral,
    taken on a fine grid) plus integral m (div D - d) (dlambda/du) du, which vanishes at
    t = 0 and is taken by local cubics in u over the nodes where the divergence was
    computed: every ``trace_every``-th step and T (one more evaluation); the other steps
    evaluate D alone. divergence(fn, y) -> (fn(y), div): exact or Hutchinson's."""
    n, dim = x.shape[0], x[0].numel()
    times = step_times(sde, eps, steps, "quadratic", x).flip(0)  # eps -> T, even in sqrt t
    traced = sorted(set(range(0, steps + 1, trace_every)) | {steps})
    remainders = []  # m (div D - d) at the traced nodes, (n,) each
    step = iter(range(steps + 1))

    def predict(y, t):
        def flat_prediction(v):
            return tweedie_denoise(sde, score, v.reshape((n,) + tuple(shape)), t).reshape(n, -1)
        if next(step) not in traced:
            return flat_prediction(y)
        prediction, div = divergence(flat_prediction, y)
        remainders.append(sde.mean_scale(t) * (div - dim))
        return prediction

    y_T = exponential_multistep(sde, predict, x.reshape(n, -1), times, order=order)
    predict(y_T, times[-1].to(x.dtype).expand(n))
    with torch.enable_grad():  # dlambda/du at the nodes (log_prob runs under no_grad)
        u = times.cpu().sqrt().requires_grad_(True)
        (lambda_per_u,) = torch.autograd.grad(sde.log_snr(u**2).sum(), u)
    nodes = [u[k].item() for k in traced]
    integral = torch.zeros(n, dtype=x.dtype, device=x.device)
    points = min(4, len(nodes))
    for i in range(len(nodes) - 1):  # the local cubic's nodes straddle [u_i, u_i+1]
        first = min(max(i - (points - 2) // 2, 0), len(nodes) - points)
        window = range(first, first + points)
        h = nodes[i + 1] - nodes[i]
        moments = [h ** (j + 1) / math.factorial(j + 1) for j in range(points)]
        weights = polynomial_weights(moments, [nodes[k] - nodes[i] for k in window])
        integral = integral + sum(w * lambda_per_u[traced[k]].item() * remainders[k]
                                  for w, k in zip(weights, window))
    fine = torch.linspace(math.sqrt(eps), math.sqrt(sde.T), 100001, dtype=torch.float64) ** 2
    mean_scale_integral = torch.trapezoid(sde.mean_scale(fine), sde.log_snr(fine)).item()
    std = sde.marginal_std(times[[0, -1]]).tolist()
    return (sde.prior_log_prob(y_T.reshape(x.shape)) + integral
            + dim * (mean_scale_integral + math.log(std[1] / std[0])))


LIKELIHOODS = {
    "ode": Method(ode_log_prob, ODE_OPTIONS, together=check_ode_options),
    "dpm": Method(log_snr_log_prob, {"steps": positive_integer}),
}
