"""Dormand-Prince 5(4) with a time, a step size and an error control of its own for every row.

An adaptive solver that steps a whole batch together (torchdiffeq's) makes each row's value
depend on the rows beside it: one hard row shrinks everyone's step, an easy batch lets a
hard row's error grow to the batch's average, and two shards of a job disagree. Here every
row is its own initial value problem: each iteration attempts one step of every unfinished
row, all rows in one batched evaluation per stage, each at its own time and step; each row
accepts or rejects by its own error, and a row that has reached t1 leaves the batch. A row's
result is then the same alone, in any batch and in any order, up to the float rounding of
batched arithmetic, and the batch costs the sum of its rows' steps, not its hardest row's
steps for every row.

The tableau, the error norm (the root mean square of each part of the state, the largest
part deciding), the step-size controller (safety 0.9, growth at most 10x, shrinkage at most
5x) and the initial step (Hairer, Norsett and Wanner's rule) follow torchdiffeq's dopri5, so a
row solved here matches that row solved alone by torchdiffeq. On top of that norm a caller
may hold each step's error in one quantity computed from the solution to atol (a ``goal``:
the log-density, through its sensitivity to each column), which no torchdiffeq solver does.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["PerRowSolution", "solve_per_row"]

# Dormand and Prince (1980): nodes, stages, 5th-order weights, and 5th minus 4th-order weights.
_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_A = ((), (1 / 5,), (3 / 40, 9 / 40), (44 / 45, -56 / 15, 32 / 9),
      (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
      (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
      (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84))
_B = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
_B_LOW = (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)
_E = tuple(b - low for b, low in zip(_B, _B_LOW))
_SAFETY, _GROW, _SHRINK, _ORDER = 0.9, 10.0, 0.2, 5


@dataclass
class PerRowSolution:
    """y1: (n, S) the state at t1; goal_errors: (n,) the sum over each row's accepted steps
    of ``abs(weights . error)``, error the embedded (4th-order) estimate, a bound on the
    scale of the 5th-order solution's error that is kept, and of the rounding of the state,
    ``u sum_j abs(weights_j y_j)``, u the unit roundoff of y's dtype (``solve_per_row``'s goal;
    zeros without one);
    steps: (n,) accepted steps; evaluations: batched function calls (all rows together)."""

    y1: torch.Tensor
    goal_errors: torch.Tensor
    steps: torch.Tensor
    evaluations: int


def solve_per_row(func, y0: torch.Tensor, t0: float, t1: float, *, parts: list[slice],
                  rtol: float, atol: float, max_steps: int,
                  absolute: slice | None = None,
                  quadrature: slice | None = None, goal: bool = False,
                  goal_rtol: float = 0.0) -> PerRowSolution:
    """Integrate dy/dt = func(t, y, rows) for each row of y0 (n, S) from t0 to t1 > t0.

    func(t (m,), y (m, S), rows (m,) int64) -> (m, S): the derivative of the rows ``rows`` of
    the batch (indices into y0) at their own times t. parts: slices of the S columns whose
    root-mean-square errors are compared, the largest deciding (torchdiffeq's norm for a
    tuple state: e.g. the flat sample and its log-density). absolute: columns whose error is
    held to ``atol`` alone, whatever their size (a log-density in nats, say), where the
    others are held to ``atol + rtol |y|``. quadrature: columns that ``func`` does not read (a
    running integral such as a log-density): where a stage's value of them is never used
    (the second stage of Dormand-Prince has weight 0 in both solutions), ``func`` is called
    with ``quadrature=False`` and may leave them 0. goal: error control on one quantity
    computed from the solution (a log-density, say) besides the parts: the last stage of
    every step (at the step's end) calls ``func(..., goal=True)``, which returns (derivative,
    weights (m, S)), the first-order sensitivity of that quantity to each column of y there;
    the step's error in it, ``abs(weights . error)``, is held to ``atol + 2 u effect`` (atol
    widened by one ulp of the state's effect on the quantity, ``effect = sum_j
    abs(weights_j y_j)``, u the unit roundoff), or to ``goal_rtol effect`` where that is
    larger; it is summed, with the rounding ``u effect``, into ``goal_errors``. A row stops
    at t1 exactly.
    RuntimeError when a row has taken ``max_steps`` steps (accepted or not) without reaching
    t1, or when its step shrinks below float resolution.
    """
    n = y0.shape[0]
    rows = torch.arange(n, device=y0.device)
    t = torch.full((n,), float(t0), dtype=torch.float64, device=y0.device)
    y, span = y0.clone(), float(t1) - float(t0)
    evaluations = 0

    def call(time, state, which, **options):
        nonlocal evaluations
        evaluations += 1
        return func(time.to(state.dtype), state, which, **options)

    def norm(value):
        return torch.stack([value[:, part].square().mean(1).sqrt() for part in parts]).amax(0)

    k1 = call(t, y, rows)
    h = _initial_step(call, t, y, k1, rows, norm, rtol, atol, span)
    goal_errors = y.new_zeros(n)
    unit_roundoff = torch.finfo(y.dtype).eps / 2
    steps = torch.zeros(n, dtype=torch.long, device=y0.device)
    attempts = torch.zeros(n, dtype=torch.long, device=y0.device)
    active = rows
    while active.numel():
        ta, ya, ha, ka = t[active], y[active], h[active], k1[active]
        last = ha >= float(t1) - ta  # this step would reach t1: land on it exactly
        ha = torch.where(last, float(t1) - ta, ha)
        hs = ha.to(y.dtype)[:, None]
        stages = [ka]
        for stage, (c, a) in enumerate(zip(_C[1:], _A[1:]), start=1):
            state = ya + hs * sum(coef * k for coef, k in zip(a, stages) if coef)
            unused = quadrature is not None and _B[stage] == 0 and _E[stage] == 0
            if goal and stage == len(_C) - 1:  # the step's end: the goal's weights there
                derivative, weights = call(ta + c * ha, state, active, goal=True)
            else:
                derivative = call(ta + c * ha, state, active,
                                  **({"quadrature": False} if unused else {}))
            stages.append(derivative)
        y_new = state  # the last stage is evaluated at the 5th-order solution (FSAL)
        error = hs * sum(e * k for e, k in zip(_E, stages) if e)
        scale = atol + rtol * torch.maximum(ya.abs(), y_new.abs())
        if absolute is not None:
            scale[:, absolute] = atol
        ratio = norm(error / scale)
        if goal:
            goal_error = (weights * error).sum(1).abs()
            effect = (weights * y_new).abs().sum(1)
            rounding = effect * unit_roundoff
            # no finer than the state's own rounding (an ulp), which no step could beat, nor
            # than goal_rtol of the state's effect
            allowed = torch.maximum(atol + 2 * rounding, goal_rtol * effect)
            ratio = torch.maximum(ratio, goal_error / allowed)
        accept = ratio <= 1
        attempts[active] += 1
        done_now = accept & last
        moved = active[accept]
        t[moved] = torch.where(last[accept], torch.full_like(ta[accept], float(t1)),
                               ta[accept] + ha[accept])
        y[moved] = y_new[accept]
        k1[moved] = stages[-1][accept]
        if goal:
            goal_errors[moved] += goal_error[accept] + rounding[accept]
        steps[moved] += 1
        h[active] = _next_step(ha, ratio)
        if ((attempts[active] >= max_steps) & ~done_now).any():
            raise RuntimeError(f"The ODE solver 'dopri5' took {max_steps} steps (max_steps) "
                               f"without reaching the end (a row): loosen rtol={rtol} / "
                               f"atol={atol}, use float64 (model.double()) or a fixed-step "
                               "solver, or raise max_steps")
        if not torch.isfinite(ratio).all():
            raise RuntimeError("the ODE's derivative is not finite for some row: the score "
                               "returned NaN or inf along its path")
        if (h[active] <= 1e-12 * torch.maximum(ta.abs(), torch.ones_like(ta))).any():
            raise RuntimeError("the ODE solver shrank a row's step to nothing: try a larger "
                               "eps, looser rtol/atol, float64 (model.double()), or a "
                               "fixed-step solver")
        active = active[~done_now]
    return PerRowSolution(y, goal_errors, steps, evaluations)


def _next_step(h: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """torchdiffeq's controller, row by row: h * clamp(0.9 ratio^(-1/5), 0.2, 10), never
    shrinking after an accepted step, growing 10x where the error is 0."""
    ratio = ratio.to(h.dtype)
    factor = (_SAFETY / ratio.clamp(min=1e-300) ** (1 / _ORDER)).clamp(max=_GROW)
    floor = torch.where(ratio < 1, torch.ones_like(h), torch.full_like(h, _SHRINK))
    factor = torch.where(ratio == 0, torch.full_like(h, _GROW), torch.maximum(factor, floor))
    return h * factor


def _initial_step(call, t, y, f0, rows, norm, rtol, atol, span: float) -> torch.Tensor:
    """Hairer, Norsett and Wanner's first step (Solving ODEs I, II.4), row by row, as
    torchdiffeq chooses it, with its trial step held within the ``span`` of the solve (no
    derivative is asked for beyond t1): one more evaluation of the batch."""
    scale = atol + y.abs() * rtol
    d0, d1 = norm(y / scale).double(), norm(f0 / scale).double()
    h0 = torch.where((d0 < 1e-5) | (d1 < 1e-5), torch.full_like(d0, 1e-6),
                     0.01 * d0 / d1.clamp(min=1e-300)).clamp(max=span)
    f1 = call(t + h0, y + h0.to(y.dtype)[:, None] * f0, rows)
    d2 = norm((f1 - f0) / scale).double() / h0
    largest = torch.maximum(d1, d2)
    h1 = torch.where(largest <= 1e-15, torch.clamp(h0 * 1e-3, min=1e-6),
                     (0.01 / largest.clamp(min=1e-300)) ** (1 / (_ORDER + 1)))
    return torch.minimum(100 * h0, h1).clamp(max=span)
