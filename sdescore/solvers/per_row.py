"""Dormand-Prince 5(4) with a time, a step size and an error control of its own for every row,
and running integrals along each row's solution by Gauss-Lobatto quadrature.

An adaptive solver that steps a whole batch together (torchdiffeq's) makes each row's value
depend on the rows beside it: one hard row shrinks everyone's step, an easy batch lets a
hard row's error grow to the batch's average, and two shards of a job disagree. Here every
row is its own initial value problem: each iteration attempts one step of every unfinished
row, all rows in one batched evaluation per stage, each at its own time and step; each row
accepts or rejects by its own error, and a row that has reached t1 leaves the batch. A row's
result is then the same alone, in any batch and in any order, up to the float rounding of
batched arithmetic, and the batch costs the sum of its rows' steps, not its hardest row's
steps for every row.

The tableau, the step-size controller (safety 0.9, growth at most 10x, shrinkage at most 5x),
the initial step (Hairer, Norsett and Wanner's rule) and the dense output (Shampine's
4th-order interpolant) follow torchdiffeq's dopri5. The running integrals, I_k = integral of
g_k(t, y(t)) dt, are not part of the Runge-Kutta state: their integrand may cost many times
the derivative (a divergence, D pullbacks against one forward pass), so the stages evaluate
the derivative alone and each accepted step integrates g by the 4-point Gauss-Lobatto rule
(nodes 0, (5 -+ sqrt 5) / 10, 1 of the step; exact for quintics) on the dense output: four
evaluations of g per step (its three nodes after the start, the end's value reused as the
next step's start, and its midpoint), where integrals carried in the state take five. The
rule's error is estimated by the degree-6 polynomial through its four nodes and three more:
the previous step's first three, or its two interior ones and this step's midpoint, the
larger of the two (on a row's first step, or where the previous step was more than
HISTORY_SPAN times longer, the midpoint and two more nodes inside the step). Extrapolated
from the previous step alone the estimate misses a feature that enters the step between
its nodes (a switch between a mixture's components in t: 1e-2 of the error on one 32-D
step); the midpoint sees it. It is held to atol with the state's. On top of that a caller
holds each step's error in one quantity computed from the solution (a log-density: the
integrals' mean plus a function of y, through its sensitivity to each column) to atol,
which no torchdiffeq solver does. The
state's error there is the larger of two estimates: the embedded 4th-order solution's
difference, and the dense output's defect (its slope less the derivative at the two interior
nodes, where the integrand's call evaluates the derivative anyway) integrated over the step,
which sees what changes between the stages' times and the embedded pair can miss; within
DEFECT_ROUNDING ulps of the state's effect the defect is the rounding of the derivative, and
does not count.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["DEFECT_ROUNDING", "HISTORY_SPAN", "PerRowSolution", "solve_per_row"]

# Dormand and Prince (1980): nodes, stages, and 5th minus 4th-order weights; the last stage is
# evaluated at the 5th-order solution (first same as last).
_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_A = ((), (1 / 5,), (3 / 40, 9 / 40), (44 / 45, -56 / 15, 32 / 9),
      (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
      (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
      (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84))
_B = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
_B_LOW = (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)
_E = tuple(b - low for b, low in zip(_B, _B_LOW))
# Shampine's weights for the solution at the step's midpoint (torchdiffeq's DPS_C_MID).
_MID = (6025192743 / 30085553152 / 2, 0.0, 51252292925 / 65400821598 / 2,
        -2691868925 / 45128329728 / 2, 187940372067 / 1594534317056 / 2,
        -1776094331 / 19743644256 / 2, 11237099 / 235043384 / 2)
_SAFETY, _GROW, _SHRINK, _ORDER = 0.9, 10.0, 0.2, 5
# 4-point Gauss-Lobatto: interior nodes and the weights of (0, interior, 1) on a unit step.
_LOBATTO = ((5 - math.sqrt(5)) / 10, (5 + math.sqrt(5)) / 10)
_LOBATTO_WEIGHTS = (1 / 12, 5 / 12, 5 / 12, 1 / 12)
# Every step's midpoint is traced for the quadrature's estimate; where a row has no usable
# previous step, the estimate takes it and two more nodes of the step (_FRESH_NODES).
_MIDPOINT = 0.5
_FRESH_NODES = (0.1, _MIDPOINT, 0.9)
#: A previous step more than this many times the current one is not used for the quadrature's
#: error estimate (the current step's own extra nodes are): interpolating through far nodes
#: is ill-conditioned and says little about the current step.
HISTORY_SPAN = 4.0
#: The dense output's defect counts in a step's error only beyond this many times the
#: rounding of the state's effect on the goal (u effect): below it, it is the rounding of
#: a float32 derivative, which changes with the rows beside it and would move the steps.
DEFECT_ROUNDING = 2.0


@dataclass
class PerRowSolution:
    """y1: (n, D) the state at t1; integrals: (n, k) the running integrals over [t0, t1];
    goal_errors: (n,) the sum over each row's accepted steps of its estimated error in the
    goal, ``max(abs(weights . y_error), abs(weights . y_defect)) + abs(mean of the
    integrals' errors)`` (y_error the embedded 4th-order estimate, a bound on the scale of
    the 5th-order solution's error that is kept; y_defect the dense output's defect
    integrated over the step, to first order the error of the solution kept, its goal term
    less DEFECT_ROUNDING u effect and at least 0; the integrals' the larger of the
    Gauss-Lobatto rule's two estimates), and of its rounding,
    ``u effect``, u the unit roundoff of y's dtype; steps: (n,) accepted steps;
    evaluations: batched calls of the derivative and of the integrand (all rows together)."""

    y1: torch.Tensor
    integrals: torch.Tensor
    goal_errors: torch.Tensor
    steps: torch.Tensor
    evaluations: int


def solve_per_row(flow, integrand, y0: torch.Tensor, t0: float, t1: float, *, rtol: float,
                  atol: float, max_steps: int, goal_rtol: float = 0.0) -> PerRowSolution:
    """Integrate dy/dt = f(t, y) for each row of y0 (n, D) from t0 to t1 > t0, and the
    running integrals of g(t, y(t)) along it.

    flow(t (m,), y (m, D), rows (m,) int64) -> (f (m, D), weights (m, D)): the derivative of
    the rows ``rows`` of the batch (indices into y0) at their own times t, and the goal's
    first-order sensitivity to each column of y there (read at each step's end).
    integrand(t (m,), y (m, D), rows) -> (g (k, m), f (m, D)): the k integrands at those
    rows, and the derivative there (for the dense output's defect; a divergence's pass
    computes it anyway).

    Each step holds y's error to ``atol + rtol |y|`` (root mean square over the columns),
    the integrals' to atol (root mean square over the k), and the goal's (``goal_errors``
    of ``PerRowSolution``, one step's term) to ``atol + 2 u effect``
    (atol widened by one ulp of the state's effect on the goal, ``effect = sum_j
    abs(weights_j y_j) + mean_k abs(I_k)``, u the unit roundoff), or to ``goal_rtol
    effect`` where that is larger. A row stops at t1 exactly. Returns a ``PerRowSolution``.
    RuntimeError when a row has taken ``max_steps`` steps (accepted or not) without reaching
    t1, when a derivative or integrand is not finite, or when a row's step shrinks below
    float resolution.
    """
    n = y0.shape[0]
    rows = torch.arange(n, device=y0.device)
    t = torch.full((n,), float(t0), dtype=torch.float64, device=y0.device)
    y, span = y0.clone(), float(t1) - float(t0)
    evaluations = 0

    def call(fn, time, state, which):
        nonlocal evaluations
        evaluations += 1
        return fn(time.to(state.dtype), state, which)

    def rms(value, dim=1):
        return value.square().mean(dim).sqrt()

    k1 = call(flow, t, y, rows)[0]
    g0 = call(integrand, t, y, rows)[0]  # (k, n): the integrands at each row's current time
    count = g0.shape[0]
    h = _initial_step(lambda *a: call(flow, *a)[0], t, y, k1, rows, rms, rtol, atol, span)
    integrals = y.new_zeros(count, n, dtype=torch.float64)
    goal_errors = y.new_zeros(n)
    unit_roundoff = torch.finfo(y.dtype).eps / 2
    history = _History(count, n, y)
    steps = torch.zeros(n, dtype=torch.long, device=y0.device)
    attempts = torch.zeros(n, dtype=torch.long, device=y0.device)
    active = rows
    while active.numel():
        ta, ya, ha, ka = t[active], y[active], h[active], k1[active]
        last = ha >= float(t1) - ta  # this step would reach t1: land on it exactly
        ha = torch.where(last, float(t1) - ta, ha)
        hs = ha.to(y.dtype)[:, None]
        stages = [ka]
        for c, a in zip(_C[1:], _A[1:]):
            state = ya + hs * sum(coef * k for coef, k in zip(a, stages) if coef)
            derivative, weights = call(flow, ta + c * ha, state, active)
            stages.append(derivative)
        y_new = state  # the last stage is evaluated at the 5th-order solution (FSAL)
        error = hs * sum(e * k for e, k in zip(_E, stages) if e)
        scale = atol + rtol * torch.maximum(ya.abs(), y_new.abs())
        goal_error = (weights * error).sum(1).abs()
        effect = (weights * y_new).abs().sum(1) + integrals[:, active].abs().mean(0).to(y.dtype)
        rounding = effect * unit_roundoff
        # no finer than the state's own rounding (an ulp of its effect), which no step could
        # beat, nor than goal_rtol of the state's effect
        allowed = torch.maximum(atol + 2 * rounding, goal_rtol * effect)
        ratio = torch.maximum(rms(error / scale), goal_error / allowed)
        step_integrals = y.new_zeros(count, len(active), dtype=torch.float64)
        # the quadrature only where the state's error passed: a rejected step costs no g
        passed = (ratio <= 1).nonzero().squeeze(1)
        if passed.numel():
            value, quadrature_error, nodes, defect = _lobatto_step(
                lambda *a: call(integrand, *a), history, active[passed], ta[passed],
                ha[passed], ya[passed], y_new[passed], [k[passed] for k in stages],
                g0[:, active[passed]])
            step_integrals[:, passed] = value
            ratio[passed] = torch.maximum(ratio[passed],
                                          (rms(quadrature_error, 0) / atol).to(ratio.dtype))
            # the defect is the derivative evaluated at a rounded point less the dense
            # output's slope: up to a few ulps of the state's effect it is rounding, which
            # moves with the batch
            defect_error = ((weights[passed].double() * defect).sum(1).abs()
                            - DEFECT_ROUNDING * rounding[passed].double()).clamp(min=0)
            goal_error[passed] = torch.maximum(goal_error[passed],
                                               defect_error.to(goal_error.dtype))
            goal_error[passed] += quadrature_error.mean(0).abs().to(goal_error.dtype)
            ratio[passed] = torch.maximum(ratio[passed], goal_error[passed] / allowed[passed])
        accept = ratio <= 1
        attempts[active] += 1
        done_now = accept & last
        moved = active[accept]
        if passed.numel():
            kept = accept[passed]
            history.keep(active[passed][kept], ta[passed][kept], ha[passed][kept],
                         nodes[:-1, :, kept])
            g0[:, active[passed][kept]] = nodes[-1][:, kept]
        t[moved] = torch.where(last[accept], torch.full_like(ta[accept], float(t1)),
                               ta[accept] + ha[accept])
        y[moved] = y_new[accept]
        k1[moved] = stages[-1][accept]
        integrals[:, moved] += step_integrals[:, accept]
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
    return PerRowSolution(y, integrals.T.to(y.dtype), goal_errors, steps, evaluations)


class _History:
    """Each row's last accepted step: its start and interior Gauss-Lobatto nodes (times,
    float64) and the integrands there (k values each), for the next step's error estimate."""

    def __init__(self, count: int, n: int, like: torch.Tensor):
        nodes = 1 + len(_LOBATTO)
        self.times = torch.full((nodes, n), math.nan, dtype=torch.float64, device=like.device)
        self.values = like.new_zeros(nodes, count, n)

    def usable(self, rows: torch.Tensor, start: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """(m,) bool: the row has a previous step at most HISTORY_SPAN times this one."""
        previous = start - self.times[0, rows]
        return torch.isfinite(previous) & (previous <= HISTORY_SPAN * h)

    def keep(self, rows, start, h, values) -> None:
        """Record the accepted steps of ``rows`` (m; starts and sizes (m,)), with the
        integrands at their start and interior nodes, values (3, k, m)."""
        for j, tau in enumerate((0.0, *_LOBATTO)):
            self.times[j, rows] = start + tau * h
            self.values[j][:, rows] = values[j]


def _lobatto_step(integrand, history: _History, rows, start, h, y0, y1, stages, g_start):
    """The integrals over one step of each of ``rows`` (m) by 4-point Gauss-Lobatto on the
    dense output, with the estimate of its error: returns (values (k, m), errors (k, m),
    both float64, the integrands at the step's four nodes (4, k, m): its start, the two
    interior nodes and its end, in g's dtype, and the dense output's defect integrated over
    the step (m, D), float64). One batched call of ``integrand`` on the two interior nodes,
    the end, the midpoint and, for rows without a usable previous step, two more nodes.

    The defect u' - f(t, u) of the dense output u vanishes at both ends of the step (u
    takes the derivative there from the first and last stages); the rule's interior nodes
    integrate it, and its integral is to first order y1's error against the solution
    through y0."""
    m = len(rows)
    hs = h.to(y0.dtype)[:, None]
    dense = _DenseOutput(y0, stages, hs)
    fresh = (~history.usable(rows, start, h)).nonzero().squeeze(1)
    taus = [*_LOBATTO, 1.0]
    points = [dense(tau) for tau in _LOBATTO] + [y1, dense(_MIDPOINT)]
    times = [start + tau * h for tau in (*taus, _MIDPOINT)]
    which = [rows] * (len(taus) + 1)
    outer = [tau for tau in _FRESH_NODES if tau != _MIDPOINT]
    for tau in outer:
        points.append(dense(tau)[fresh])
        times.append(start[fresh] + tau * h[fresh])
        which.append(rows[fresh])
    values, derivatives = integrand(torch.cat(times), torch.cat(points), torch.cat(which))
    values = values.double()
    defect = h[:, None] * sum(
        w * (dense.slope(tau) - derivatives[j * m:(j + 1) * m].double())
        for j, (w, tau) in enumerate(zip(_LOBATTO_WEIGHTS[1:3], _LOBATTO)))
    own = [g_start.double()] + [values[:, j * m:(j + 1) * m] for j in range(len(taus))]
    midpoint = values[:, len(taus) * m:(len(taus) + 1) * m]
    extra = values[:, (len(taus) + 1) * m:].reshape(len(values), len(outer), len(fresh))
    # two estimates, each the degree-6 interpolant's integral on the step's four nodes and
    # three more, less the rule's: with the previous step's first three nodes, and with its
    # two interior ones and this step's midpoint, which sees what enters the step between
    # its nodes; the larger is kept. A row without a usable previous step takes three of
    # its own (its outer nodes and the midpoint) for both.
    earlier = torch.stack([(history.times[j, rows] - start) / h for j in range(3)], 1)
    earlier_values = history.values[:, :, rows].double()
    inner = torch.cat([earlier[:, 1:], torch.full_like(earlier[:, :1], _MIDPOINT)], 1)
    inner_values = torch.cat([earlier_values[1:], midpoint[None]])
    if fresh.numel():
        nodes = torch.tensor(_FRESH_NODES, dtype=earlier.dtype, device=earlier.device)
        own_values = torch.stack([extra[:, 0], midpoint[:, fresh], extra[:, 1]])
        for extra_nodes, extra_values in ((earlier, earlier_values), (inner, inner_values)):
            extra_nodes[fresh] = nodes
            extra_values[:, :, fresh] = own_values
    value = h * sum(w * v for w, v in zip(_LOBATTO_WEIGHTS, own))
    backward = _rule_error(earlier, earlier_values, own, h)
    within = _rule_error(inner, inner_values, own, h)
    error = torch.where(within.abs() > backward.abs(), within, backward)
    return value, error, torch.stack(own).to(g_start.dtype), defect


def _rule_error(earlier, earlier_values, own, h):
    """The 4-point Gauss-Lobatto rule's error on a step, estimated by the degree-6
    interpolant through its nodes and three more: earlier (m, 3) those nodes in units of the
    step, earlier_values (3, k, m) and own (the rule's four nodes' values, each (k, m)) the
    integrands there, h (m,); -> (k, m) float64. One sum in float64 with the two rules'
    weights subtracted first: the two integrals agree to many digits, and their float32
    difference would be rounding."""
    m = earlier.shape[0]
    nodes = torch.cat([earlier, torch.tensor([0.0, *_LOBATTO, 1.0], dtype=earlier.dtype,
                                             device=earlier.device).expand(m, 4)], 1)
    rule = torch.tensor((0.0,) * 3 + _LOBATTO_WEIGHTS, dtype=nodes.dtype, device=nodes.device)
    difference = _interpolatory_weights(nodes) - rule  # (m, 7)
    return h * sum(difference[:, j] * v for j, v in enumerate([*earlier_values, *own]))


def _interpolatory_weights(nodes: torch.Tensor) -> torch.Tensor:
    """nodes (m, p) in units of the step, float64 -> (m, p) the weights of the integral over
    [0, 1] of the polynomial of degree p - 1 through them."""
    p = nodes.shape[1]
    powers = torch.stack([nodes ** j for j in range(p)], 1)  # (m, power, node)
    moments = 1 / torch.arange(1, p + 1, dtype=nodes.dtype, device=nodes.device)
    return torch.linalg.solve(powers, moments.expand(nodes.shape[0], p))


class _DenseOutput:
    """Shampine's 4th-order interpolant of one Dormand-Prince step (torchdiffeq's dopri5
    dense output): ``dense(tau)`` -> y at start + tau h, tau in [0, 1], (m, D) in y's dtype;
    ``dense.slope(tau)`` -> its derivative in t there, (m, D) float64. Its coefficients are
    taken in float64 from the step's increments (h times the stages' sums), not from
    differences of the states: those cancel to the increments, and carry the rounding of
    the states' size, tens of ulps of |y| in every coefficient, which would swamp the slope
    (and the defect built from it) on rows far out."""

    def __init__(self, y0, stages, hs):
        self.dtype, self.h = y0.dtype, hs.double()
        stages = [k.double() for k in stages]
        step = self.h * sum(b * k for b, k in zip(_B, stages) if b)  # y1 - y0
        half = self.h * sum(w * k for w, k in zip(_MID, stages) if w)  # y(mid) - y0
        f0, f1 = self.h * stages[0], self.h * stages[-1]
        # Shampine's coefficients with y1 = y0 + step and y(mid) = y0 + half substituted
        self.coefficients = (y0.double(), f0, f1 - 4 * f0 - 5 * step + 16 * half,
                             5 * f0 - 3 * f1 + 14 * step - 32 * half,
                             2 * (f1 - f0) - 8 * step + 16 * half)

    def slope(self, tau: float) -> torch.Tensor:
        _, c1, c2, c3, c4 = self.coefficients
        return (c1 + tau * (2 * c2 + tau * (3 * c3 + tau * 4 * c4))) / self.h

    def __call__(self, tau: float) -> torch.Tensor:
        total = self.coefficients[-1]
        for coefficient in reversed(self.coefficients[:-1]):
            total = coefficient + tau * total
        return total.to(self.dtype)


def _next_step(h: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """torchdiffeq's controller, row by row: h * clamp(0.9 ratio^(-1/5), 0.2, 10), never
    shrinking after an accepted step, growing 10x where the error is 0."""
    ratio = ratio.to(h.dtype)
    factor = (_SAFETY / ratio.clamp(min=1e-300) ** (1 / _ORDER)).clamp(max=_GROW)
    floor = torch.where(ratio < 1, torch.ones_like(h), torch.full_like(h, _SHRINK))
    factor = torch.where(ratio == 0, torch.full_like(h, _GROW), torch.maximum(factor, floor))
    return h * factor


def _initial_step(flow, t, y, f0, rows, rms, rtol, atol, span: float) -> torch.Tensor:
    """Hairer, Norsett and Wanner's first step (Solving ODEs I, II.4), row by row, as
    torchdiffeq chooses it, with its trial step held within the ``span`` of the solve (no
    derivative is asked for beyond t1): one more evaluation of the batch."""
    scale = atol + y.abs() * rtol
    d0, d1 = rms(y / scale).double(), rms(f0 / scale).double()
    h0 = torch.where((d0 < 1e-5) | (d1 < 1e-5), torch.full_like(d0, 1e-6),
                     0.01 * d0 / d1.clamp(min=1e-300)).clamp(max=span)
    f1 = flow(t + h0, y + h0.to(y.dtype)[:, None] * f0, rows)
    d2 = rms((f1 - f0) / scale).double() / h0
    largest = torch.maximum(d1, d2)
    h1 = torch.where(largest <= 1e-15, torch.clamp(h0 * 1e-3, min=1e-6),
                     (0.01 / largest.clamp(min=1e-300)) ** (1 / (_ORDER + 1)))
    return torch.minimum(100 * h0, h1).clamp(max=span)
