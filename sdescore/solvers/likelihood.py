"""Exact log-likelihoods through the probability-flow ODE (Song et al. 2021, Sec. 4.3, App. D.2).

log p_eps(x) = log prior(x_T) + integral_eps^T div_x(drift)(x_t, t) dt, solving x_t and the
running divergence together from t = eps up to T. The divergence is exact (the trace of the
Jacobian from D vector-Jacobian products, batched) or Hutchinson's estimate E[v^T J v],
with each row's probes drawn once from the seed and that row's values (so a row's estimate
does not depend on its batch) and reused by every solver stage.

``LIKELIHOODS`` holds the methods, as ``SAMPLERS`` holds the samplers, with the same names
for the same integrators: "ode" (torchdiffeq, adaptive or fixed-grid) and "dpm" (the
exponential integrator in log-SNR).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch.func import vmap

from .._checks import choose
from .._row_streams import RowStreams
from .._tensors import seed_or_fresh
from ..sde import tweedie_denoise
from .adapters import (DEFAULT_MAX_STEPS, FIXED_GRID_STEPS, LogDensityODE, ProbabilityFlowODE,
                       probability_flow_drift, solve_ode)
from .dpm import exponential_multistep, polynomial_weights
from .per_row import solve_per_row
from .registry import ODE_OPTIONS, Method, check_ode_options, positive_integer
from .schedules import step_times

__all__ = ["AUTO_EXACT_MAX_DIM", "DPM_STEPS", "draw_probes", "ERROR_SAFETY", "EXACT_TRACE_ROWS",
           "exact_divergence", "GOAL_SCALE", "hutchinson_divergence", "hutchinson_divergences",
           "LIKELIHOODS", "LogDensity", "log_snr_log_prob", "ode_log_prob",
           "probability_flow_log_prob", "resolve_trace", "row_probes", "RowTrace", "TRACES"]

#: Above this many dimensions ``trace="auto"`` takes Hutchinson's estimator instead of the
#: exact trace.
AUTO_EXACT_MAX_DIM = 64
#: Default steps of ``log_prob(method="dpm")``, measured in the likelihood table of the
#: benchmarks.
DPM_STEPS = 60
#: The reported ``solver_error`` is this multiple of the sum over a row's steps of each
#: step's estimated error in log p and of its rounding (it then covered the true error on at
#: least 95% of the benchmark rows at the default tolerances; fewer at looser ones).
ERROR_SAFETY = 2.0
#: The default solver holds each step's error in log p to atol nats per GOAL_SCALE nats of
#: the state's effect on it, ``sum_j abs(d log p / d y_j) abs(y_j)``, where that effect is
#: larger (``solve_per_row``'s ``goal_rtol = atol / GOAL_SCALE``): a float64 row far out
#: (log p about -1e11 nats) is held to about 1e-12 of its size at the default atol rather
#: than to float64's last digit. Rows whose effect is below GOAL_SCALE nats are held to atol
#: (and one ulp of that effect).
GOAL_SCALE = 1e7
#: The exact trace pulls back at most this many rows at once (basis vectors times rows of
#: the batch): larger vectorised backward passes outgrow the CPU's caches and run slower.
EXACT_TRACE_ROWS = 16384


def _vector_jacobian_products(fn, y: torch.Tensor, vectors: torch.Tensor, *,
                              chunk: int | None = None, has_aux: bool = False):
    """fn: (n, D) -> (n, D), applied row by row; returns (fn(y) (n, D), the products
    v^T d fn / d y of each of ``vectors`` (k, n, D) with every row's Jacobian, (k, n, D)):
    one forward pass recorded by autograd, then its pullbacks, ``torch.autograd.grad``
    vectorised over the vectors by ``torch.func.vmap`` in chunks of ``chunk`` (default: all
    at once), or one plain pullback for a single vector. has_aux: fn returns (output, aux),
    and so does this, as (output, products, aux). Outputs that do not depend on y have zero
    products."""
    with torch.enable_grad():
        y_in = y.detach().requires_grad_(True)
        result = fn(y_in)
        out, aux = result if has_aux else (result, None)

        def pullback(vector):
            (product,) = torch.autograd.grad(out, y_in, vector, retain_graph=True,
                                             allow_unused=True)
            return torch.zeros_like(vector) if product is None else product
        if not out.requires_grad:
            products = torch.zeros_like(vectors)
        elif vectors.shape[0] == 1:
            products = pullback(vectors[0])[None]
        else:
            products = vmap(pullback, chunk_size=chunk)(vectors)
    if has_aux:
        return out.detach(), products, aux.detach()
    return out.detach(), products


def exact_divergence(fn, y: torch.Tensor, *, has_aux: bool = False):
    """fn: (n, D) -> (n, D), applied row by row; returns (fn(y), trace of d fn / d y) with
    shapes (n, D) and (n,), from D vector-Jacobian products with the basis vectors (one
    forward pass recorded by autograd, its pullbacks vectorised by ``torch.func.vmap`` in
    chunks of about EXACT_TRACE_ROWS rows, at least one basis vector each). has_aux: fn
    returns (output, aux), and so does this, as (output, trace, aux)."""
    n, dim = y.shape
    basis = torch.eye(dim, dtype=y.dtype, device=y.device).unsqueeze(1).expand(dim, n, dim)
    chunk = max(1, EXACT_TRACE_ROWS // max(n, 1))
    out, rows, *aux = _vector_jacobian_products(
        fn, y, basis, chunk=chunk if chunk < dim else None, has_aux=has_aux)
    # rows[i, b] = row i of sample b's Jacobian
    return (out, torch.einsum("ibi->b", rows), *aux)


def hutchinson_divergences(fn, y: torch.Tensor, probes: torch.Tensor, *,
                           has_aux: bool = False):
    """Hutchinson's estimates v_k^T J v_k, one per fixed probe (k, n, D); returns (fn(y),
    estimates) with shapes (n, D) and (k, n). has_aux: fn returns (output, aux), and so does
    this, as (output, estimates, aux)."""
    out, products, *aux = _vector_jacobian_products(fn, y, probes, has_aux=has_aux)
    return (out, (products * probes).sum(dim=-1), *aux)


def hutchinson_divergence(fn, y: torch.Tensor, probes: torch.Tensor):
    """Hutchinson's estimate mean_k v_k^T J v_k with fixed probes (k, n, D); returns
    (fn(y), estimate) with shapes (n, D) and (n,)."""
    out, estimates = hutchinson_divergences(fn, y, probes)
    return out, estimates.mean(dim=0)


_PROBES = ("rademacher", "gaussian")


def _check_probe(kind: str) -> None:
    if kind not in _PROBES:
        raise ValueError(f"Unknown probe {kind!r}; choose one of: {', '.join(_PROBES)}")


def draw_probes(kind: str, count: int, like: torch.Tensor, generator=None) -> torch.Tensor:
    """``count`` probes shaped like ``like`` (n, D): "rademacher" (+-1) or "gaussian"."""
    _check_probe(kind)
    shape = (count,) + tuple(like.shape)
    if kind == "rademacher":
        bits = torch.randint(0, 2, shape, generator=generator, device=like.device)
        return bits.to(like.dtype) * 2 - 1
    return torch.randn(shape, generator=generator, dtype=like.dtype, device=like.device)


def row_probes(kind: str, count: int, rows: torch.Tensor, seed: int) -> torch.Tensor:
    """``count`` probes (count, n, D) for ``rows`` (n, D), each row's a function of ``seed``
    and of that row's values alone, so that a row gets the same probes alone, in any batch,
    at any position and on any rank: "rademacher" (+-1) or "gaussian" (standard normal), in
    rows' dtype and device. A row's key is the keyed BLAKE2b hash of its bytes (key: seed),
    its numbers SplitMix64's stream from that key (the sign bit, or the inverse normal CDF of
    53 bits). ValueError for another kind."""
    _check_probe(kind)
    n, dim = rows.shape
    streams = RowStreams(rows, seed)
    values = (streams.sign if kind == "rademacher" else streams.normal)(0, count * dim)
    return values.reshape(n, count, dim).transpose(0, 1).contiguous()


#: The ``trace`` arguments of ``log_prob`` (None, chosen by the dimension).
TRACES = {"auto": None, "exact": "exact", "hutchinson": "hutchinson"}


def resolve_trace(trace: str, dim: int) -> str:
    """Map a ``trace`` option to "exact" or "hutchinson" for data of ``dim`` dimensions."""
    choice = choose(trace, TRACES, name="trace")
    if choice is None:
        return "exact" if dim <= AUTO_EXACT_MAX_DIM else "hutchinson"
    return choice


class LogDensity(NamedTuple):
    """log p_eps(x) (n,) in nats, with per-row error estimates (n,): ``solver_error``
    estimates a bound on the solver's error (the adaptive dopri5's; a rougher estimate for
    the dpm preset, which ``log_snr_log_prob`` measures; NaN for the other solvers), ``trace_stderr`` is the
    standard error of Hutchinson's estimate over its probes (None for an exact trace, NaN
    with one probe)."""

    log_prob: torch.Tensor
    solver_error: torch.Tensor
    trace_stderr: torch.Tensor | None


class RowTrace:
    """The divergence of a function of rows, exact or by Hutchinson's probes fixed per row:
    ``trace(fn, y, rows)`` -> (fn(y) (m, D), divergence estimates (k, m)), one per probe (one
    for the exact trace), for the rows ``rows`` of the batch the probes were drawn for;
    ``trace(fn, y, rows, has_aux=True)``, for an fn returning (output, aux), -> (output,
    estimates, aux)."""

    def __init__(self, probes: torch.Tensor | None):
        self.probes = probes
        self.count = 1 if probes is None else probes.shape[0]

    def __call__(self, fn, y: torch.Tensor, rows: torch.Tensor, *, has_aux: bool = False):
        if self.probes is None:
            out, div, *aux = exact_divergence(fn, y, has_aux=has_aux)
            return (out, div[None], *aux)
        return hutchinson_divergences(fn, y, self.probes[:, rows], has_aux=has_aux)

    def mean(self, fn, y: torch.Tensor):
        """(fn(y), the divergence averaged over the probes (n,)) for the whole batch."""
        out, div = self(fn, y, slice(None))
        return out, div.mean(0)


def probability_flow_log_prob(sde, score, shape, x: torch.Tensor, *, trace: str = "auto",
                              eps: float | None = None, method: str = "ode",
                              probes: int = 1, probe: str = "rademacher",
                              seed: int | None = None,
                              labels: torch.Tensor | None = None, **options) -> LogDensity:
    """log p_eps(x) in nats for x ``(n, *shape)``, with its per-row error estimates.

    score(x, t[, y]): the score, given the rows' ``labels`` (n,) as y when there are any.
    trace: "exact", "hutchinson" or "auto" (exact up to AUTO_EXACT_MAX_DIM dimensions);
    probes, probe: number and kind of Hutchinson probes, drawn once per row for the whole
    solve from ``seed`` and the row's values (``row_probes``; seed None: one drawn from
    torch's global generator). eps: the smallest time (default ``sde.likelihood_eps``); the
    result is the density of p_eps, not p_0. method: a ``LIKELIHOODS`` name, with its
    ``options`` (checked by the caller, ``Method.check``).
    """
    eps = sde.likelihood_eps if eps is None else eps
    y = x.reshape(x.shape[0], -1)
    exact = resolve_trace(trace, y.shape[1]) == "exact"
    if exact:
        row_trace = RowTrace(None)
    else:
        row_trace = RowTrace(row_probes(probe, probes, y, seed_or_fresh(seed)))

    def score_of(rows):
        if labels is None:
            return score
        return lambda v, t: score(v, t, labels[rows])
    return LIKELIHOODS[method].run(sde, score_of, shape, x, row_trace, eps=eps, **options)


def _check_tolerances(rtol: float, atol: float, dtype: torch.dtype) -> None:
    """Refuse tolerances below 10 ulps (10 x machine epsilon) of ``dtype``."""
    floor = 10 * torch.finfo(dtype).eps
    for name, value in (("rtol", rtol), ("atol", atol)):
        if value < floor:
            raise ValueError(f"{name}={value:g} is below what {str(dtype).removeprefix('torch.')} "
                             f"resolves ({floor:.1e}): use {name} >= {floor:.1e}"
                             + ("" if dtype == torch.float64 else
                                ", or a float64 model (model.double())"))


def ode_log_prob(sde, score_of, shape, x: torch.Tensor, row_trace: RowTrace, *, eps: float,
                 solver: str = "dopri5", rtol: float = 1e-5, atol: float = 1e-5,
                 steps: int = FIXED_GRID_STEPS, max_steps: int = DEFAULT_MAX_STEPS):
    """log p_eps(x) in nats: x and the running divergence solved together from eps up to T.

    solver "dopri5" (the default): Dormand-Prince with a step size and an error control per
    row (``per_row.solve_per_row``), so that a row's value does not depend on its batch; its
    stages evaluate the drift alone, and each step's divergence integral is a Gauss-Lobatto
    quadrature on the step's dense output (the trace at four points per step). Per step
    the sample is held to ``atol + rtol |x|``, the divergence integral to atol nats whatever
    its size (a relative tolerance on it loosens with the dimension), and so is the step's
    error in the final answer: the quadrature's plus the sample's through the score at the
    step's end (a sample off by delta at time t ends as log p_t(x_t + delta), to first
    order score . delta off), or, where the state's effect on the answer is above
    GOAL_SCALE nats (a float64 row far out), to atol per GOAL_SCALE nats of it. Its
    ``solver_error`` is ERROR_SAFETY times the sum over the row's steps of that last
    estimate (the sample's the larger of the 4th-order embedded solution's and the dense
    output's defect's at the quadrature's interior nodes, where the trace's pass evaluates
    the drift).
    The other solvers are torchdiffeq's: adaptive (dopri8, bosh3, fehlberg2, adaptive_heun:
    rtol, atol, max_steps; one step size for the whole batch) or fixed-grid (euler, midpoint,
    heun3, rk4: ``steps`` equal steps), without an error estimate. score_of(rows) -> the score of
    those rows; row_trace: a ``RowTrace``. Returns a ``LogDensity``. ValueError at once for
    an rtol or atol below 10 ulps of x's dtype, which no step could meet."""
    _check_tolerances(rtol, atol, x.dtype)
    n = x.shape[0]
    y = x.reshape(n, -1)
    if solver == "dopri5":
        def flat_drift(t, rows):  # the drift of those rows, and the score it was built from
            score, m = score_of(rows), len(rows)

            def drift(v):
                x_t = v.reshape((m,) + tuple(shape))
                score_t = score(x_t, t)
                drift = probability_flow_drift(sde, lambda *_: score_t, x_t, t)
                return drift.reshape(m, -1), score_t.reshape(m, -1)
            return drift

        def flow(t, v, rows):  # d log p / d x_t is the score: the goal's weights
            return flat_drift(t, rows)(v)

        def divergence(t, v, rows):
            drift, div, _ = row_trace(flat_drift(t, rows), v, rows, has_aux=True)
            return div, drift

        solution = solve_per_row(flow, divergence, y, eps, sde.T, rtol=rtol, atol=atol,
                                 max_steps=max_steps, goal_rtol=atol / GOAL_SCALE)
        y_T, deltas = solution.y1, solution.integrals
        prior = sde.prior_log_prob(y_T.reshape(x.shape))
        solver_error = ERROR_SAFETY * solution.goal_errors
        return _finish(prior + deltas.mean(1), solver_error, deltas, row_trace)
    ode = LogDensityODE(ProbabilityFlowODE(sde, score_of(slice(None)), shape), row_trace.mean)
    delta0 = torch.zeros(n, dtype=y.dtype, device=y.device)
    y_T, delta_T = solve_ode(ode, (y, delta0), eps, sde.T, solver=solver, rtol=rtol, atol=atol,
                             steps=steps, max_steps=max_steps)
    log_p = sde.prior_log_prob(y_T.reshape(x.shape)) + delta_T
    return _finish(log_p, torch.full_like(log_p, math.nan), None, row_trace)


def _finish(log_p, solver_error, deltas, row_trace: RowTrace) -> LogDensity:
    """The LogDensity, with Hutchinson's standard error over the probes' own integrals
    (``deltas`` (n, k); None: not kept)."""
    if row_trace.probes is None:
        return LogDensity(log_p, solver_error, None)
    if deltas is None or deltas.shape[1] < 2:
        return LogDensity(log_p, solver_error, torch.full_like(log_p, math.nan))
    return LogDensity(log_p, solver_error, deltas.std(1) / math.sqrt(deltas.shape[1]))


def _local_polynomial_integrals(nodes: list[float], values: list[torch.Tensor],
                                points: int) -> torch.Tensor:
    """The integral over each interval [nodes[i], nodes[i + 1]] of the polynomial through
    ``points`` neighbouring (nodes, values), the interval straddled as centrally as the ends
    allow (points = 2: the trapezoid rule; 4: local cubics): values (k, n) each ->
    (intervals, k, n)."""
    points = min(points, len(nodes))
    pieces = []
    for i in range(len(nodes) - 1):
        first = min(max(i - (points - 2) // 2, 0), len(nodes) - points)
        window = range(first, first + points)
        h = nodes[i + 1] - nodes[i]
        moments = [h ** (j + 1) / math.factorial(j + 1) for j in range(points)]
        weights = polynomial_weights(moments, [nodes[k] - nodes[i] for k in window])
        pieces.append(sum(w * values[k] for w, k in zip(weights, window)))
    return torch.stack(pieces)


def log_snr_log_prob(sde, score_of, shape, x: torch.Tensor, row_trace: RowTrace, *,
                     eps: float, steps: int = DPM_STEPS, order: int = 3,
                     trace_every: int = 2) -> LogDensity:
    """log p_eps(x) in nats by the exponential integrator in lambda = log(m / s), a
    ``LogDensity`` whose ``solver_error`` is an estimate, not a bound (a fixed grid).

    In lambda the probability-flow ODE is dx/dlambda = (dlog s / dlambda) x + m D(x), D the
    data prediction, whose divergence is d (dlog s / dlambda) + m div D (d = numbers per
    row). x is carried from eps to T by ``exponential_multistep`` on ``steps`` steps spaced
    as ``sde.likelihood_spacing`` says (even in sqrt(t) for VP and sub-VP, in t for VE),
    and log p_eps(x) = log prior(x_T) + d log(s_T / s_eps) + integral m div D dlambda, the
    last split as d integral m dlambda (div D -> d as t -> 0; a scalar integral, taken on a
    fine grid) plus integral m (div D - d) (dlambda/du) du in u = sqrt(t), which vanishes
    at t = 0 and is taken by local cubics in u over the nodes where the divergence was
    computed: every ``trace_every``-th step and T (one more evaluation); the other steps
    evaluate D alone. score_of(rows) -> the score of those rows; row_trace: a ``RowTrace``
    (each Hutchinson probe's integral is kept, for its standard error).

    ``solver_error`` (n,) nats is the sum over the intervals between traced nodes of the
    absolute difference between the cubic's integral and the trapezoid rule's, on the same
    nodes (no extra evaluation): an estimate of the quadrature's error, not a bound, since a
    feature of the divergence narrower than the nodes' spacing escapes both rules. How often
    it covers the true error is measured in the benchmarks' likelihood table."""
    n, dim = x.shape[0], x[0].numel()
    score = score_of(slice(None))
    times = step_times(sde, eps, steps, sde.likelihood_spacing, x).flip(0)  # eps -> T
    traced = sorted(set(range(0, steps + 1, trace_every)) | {steps})
    remainders = []  # m (div D - d) at the traced nodes, (k, n) each
    step = iter(range(steps + 1))

    def predict(y, t):
        def flat_prediction(v):
            return tweedie_denoise(sde, score, v.reshape((n,) + tuple(shape)), t).reshape(n, -1)
        if next(step) not in traced:
            return flat_prediction(y)
        prediction, div = row_trace(flat_prediction, y, slice(None))
        remainders.append(sde.mean_scale(t) * (div - dim))
        return prediction

    y_T = exponential_multistep(sde, predict, x.reshape(n, -1), times, order=order)
    predict(y_T, times[-1].to(x.dtype).expand(n))
    with torch.enable_grad():  # dlambda/du at the nodes (log_prob runs under no_grad)
        u = times.cpu().sqrt().requires_grad_(True)
        (lambda_per_u,) = torch.autograd.grad(sde.log_snr(u**2).sum(), u)
    nodes = [u[k].item() for k in traced]
    integrand = [lambda_per_u[k].item() * value for k, value in zip(traced, remainders)]
    cubic = _local_polynomial_integrals(nodes, integrand, 4)
    trapezoid = _local_polynomial_integrals(nodes, integrand, 2)
    fine = torch.linspace(math.sqrt(eps), math.sqrt(sde.T), 100001, dtype=torch.float64) ** 2
    mean_scale_integral = torch.trapezoid(sde.mean_scale(fine), sde.log_snr(fine)).item()
    std = sde.marginal_std(times[[0, -1]]).tolist()
    deltas = cubic.sum(0).T + dim * (mean_scale_integral + math.log(std[1] / std[0]))
    log_p = sde.prior_log_prob(y_T.reshape(x.shape)) + deltas.mean(1)
    solver_error = (cubic - trapezoid).mean(1).abs().sum(0)  # (n,): the probes' mean
    return _finish(log_p, solver_error, deltas, row_trace)


#: Method name -> the likelihood method ``log_prob(method=name)`` runs, with the options it
#: takes.
LIKELIHOODS = {
    "ode": Method(ode_log_prob, ODE_OPTIONS, together=check_ode_options),
    "dpm": Method(log_snr_log_prob, {"steps": positive_integer}),
}
