"""What does the exact trace cost against the reference recipe's evaluation, and do the levers
for the trace pay?

On the exact score of ``random_mixture(D, 3, seed=D)`` (VP, --points rows, one torch thread),
milliseconds per call on all rows at t = 0.3 (medians of --repeats, the four alternated) of:
the probability-flow drift alone (what the default's Runge-Kutta stages evaluate); the drift
and one autograd pullback (the reference recipe's evaluation, one Rademacher probe); the exact
trace by D pullbacks vectorised with ``torch.func.vmap`` (the default's,
``exact_divergence``); and by D forward-mode products (``torch.func.jvp`` under vmap). Then
the counts of one solve: the reference's evaluations (scipy RK45 at rtol = atol = 1e-5), the
default's accepted steps per row, traced evaluations per row and batched drift calls, and the
break-even: how many traced evaluations per row would cost what the whole reference solve
costs (its evaluations times its cost per evaluation, over the trace's cost per row), with
nothing else paid for. With --fit-seconds, the same four timings on a network fitted that long
to scikit-learn's breast-cancer table (30 columns, its 20% test rows), and Hutchinson's
variance per Rademacher probe of its score's trace (twice the off-diagonal Jacobian entries'
squares, median over the rows) at several t, of the whole score and of the network's residual
alone (the Gaussian part's divergence being analytic). Run from the project root:

    python -m benchmarks.trace_cost [--points 1000] [--dims 2 6 16 64] [--repeats 20]
                                    [--fit-seconds 60] [--out trace_cost]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.func import jacrev, jvp, vmap

import sdescore
from sdescore.datasets import random_mixture
from sdescore.solvers import likelihood, per_row
from sdescore.solvers.adapters import ProbabilityFlowODE
from sdescore.solvers.likelihood import draw_probes, exact_divergence

from .common import rerun_command, write
from .log_prob_levers import reference_log_prob

#: The times t at which the trained network's Hutchinson variance is taken.
VARIANCE_TIMES = (0.01, 0.1, 0.3, 0.7)


def call_costs(drift, y: torch.Tensor, repeats: int) -> dict:
    """ms per call on all rows of y (n, D): the drift, drift + one pullback, the exact trace
    by vmapped pullbacks and by vmapped forward-mode products (medians, alternated)."""
    n, dim = y.shape
    (probe,) = draw_probes("rademacher", 1, y, torch.Generator().manual_seed(0))
    basis = torch.eye(dim, dtype=y.dtype).unsqueeze(1).expand(dim, n, dim)

    def one_pullback():
        with torch.enable_grad():
            v = y.detach().requires_grad_(True)
            out = drift(v)
            torch.autograd.grad((out * probe).sum(), v)

    def forward_mode():
        tangents = vmap(lambda e: jvp(drift, (y,), (e,))[1])(basis)
        return torch.einsum("ibi->b", tangents)

    calls = {"drift_ms": lambda: drift(y), "pullback_ms": one_pullback,
             "trace_ms": lambda: exact_divergence(drift, y), "jvp_trace_ms": forward_mode}
    seconds = {name: [] for name in calls}
    for fn in calls.values():
        fn()  # warm-up
    for _ in range(repeats):
        for name, fn in calls.items():
            start = time.perf_counter()
            fn()
            seconds[name].append(time.perf_counter() - start)
    return {name: 1e3 * statistics.median(values) for name, values in seconds.items()}


def default_counts(model, x: torch.Tensor) -> dict:
    """The default log_prob's accepted steps per row (mean), traced evaluations per row and
    batched calls, counted around ``per_row.solve_per_row``."""
    counted = {}
    solve = per_row.solve_per_row

    def counting(flow, integrand, *args, **options):
        rows = [0]

        def traced(t, y, which):
            rows[0] += len(which)
            return integrand(t, y, which)
        solution = solve(flow, traced, *args, **options)
        counted.update(steps=solution.steps.double().mean().item(),
                       traced_per_row=rows[0] / len(x), calls=solution.evaluations)
        return solution
    likelihood.solve_per_row = counting
    try:
        model.log_prob(x)
    finally:
        likelihood.solve_per_row = solve
    return counted


def mixture_rows(args) -> list[dict]:
    rows = []
    for dim in args.dims:
        mixture = random_mixture(dim, components=3, seed=dim)
        sde = sdescore.get_sde("vp")
        model = sdescore.ScoreModel(sde, mixture.score_fn(sde), (dim,))
        x = mixture.sample(args.points, seed=1).float()
        flow = ProbabilityFlowODE(sde, model._score, model.shape)
        t = torch.full((len(x),), 0.3)
        costs = call_costs(lambda v: flow(t, v), x, args.repeats)
        _, reference_evaluations = reference_log_prob(model, x)
        counts = default_counts(model, x)
        per_row_trace = costs["trace_ms"] / len(x)
        break_even = reference_evaluations * costs["pullback_ms"] / len(x) / per_row_trace
        rows.append({"model": f"mixture, D = {dim}", "dim": dim, **costs,
                     "trace_per_evaluation": costs["trace_ms"] / costs["pullback_ms"],
                     "reference_evaluations": reference_evaluations, **counts,
                     "break_even_traced": break_even})
        print(rows[-1], flush=True)
    return rows


def trained_rows(args) -> tuple[list[dict], list[dict]]:
    """The four timings on a breast-cancer fit, and its Hutchinson variances."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(load_breast_cancer().data, test_size=0.2, random_state=0)
    torch.manual_seed(0)
    model = sdescore.fit(train, max_time=args.fit_seconds, progress=False)
    y = model.datamap.to_model(torch.as_tensor(test, dtype=torch.float32)).reshape(len(test), -1)
    flow = ProbabilityFlowODE(model.sde, model._score, model.shape)
    t = torch.full((len(y),), 0.3)
    costs = call_costs(lambda v: flow(t, v), y, args.repeats)
    timing = [{"model": f"breast-cancer fit ({args.fit_seconds:g} s), D = 30",
               "dim": y.shape[1], **costs,
               "trace_per_evaluation": costs["trace_ms"] / costs["pullback_ms"]}]
    residual = model.score_fn

    def off_diagonal(jacobians):  # (n, D, D) -> (n,) the sum of the off-diagonal squares
        return jacobians.square().sum((1, 2)) - jacobians.diagonal(dim1=1, dim2=2).square().sum(1)
    variances = []
    for time_ in VARIANCE_TIMES:
        at = torch.full((1,), time_)

        def score(v):
            return model._score(v[None], at)[0]

        def gaussian_part(v):  # the Gaussian's score -C_t^-1 v, its noise over -s
            std, noise, _ = residual._gaussian_noise_and_output(v[None], at, None)
            return -(noise / std[:, None])[0]
        whole = vmap(jacrev(score))(y)
        part = vmap(jacrev(gaussian_part))(y)
        full, rest = 2 * off_diagonal(whole), 2 * off_diagonal(whole - part)
        variances.append({"t": time_, "whole_score": full.median().item(),
                          "residual_alone": rest.median().item(),
                          "ratio": (full / rest).median().item()})
        print(variances[-1], flush=True)
    return timing, variances


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 6, 16, 64])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--fit-seconds", type=float, default=60.0,
                        help="the breast-cancer fit's time; 0: no trained network")
    parser.add_argument("--out", default="trace_cost")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = mixture_rows(args)
    variances = []
    if args.fit_seconds > 0:
        timing, variances = trained_rows(args)
        rows += timing
    command = rerun_command("trace_cost", argv)
    columns = ["model", "drift_ms", "pullback_ms", "trace_ms", "jvp_trace_ms",
               "trace_per_evaluation"]
    print(write(args.out, rows, columns, command))
    if variances:
        print(write(f"{args.out}_variance", variances, list(variances[0]), command))


if __name__ == "__main__":
    main()
