"""Per-row step control for log_prob: torchode (each row its own adaptive steps) against
torchdiffeq (one step size for the whole batch, sdescore's default), on the exact score of
random_mixture(D, 3, seed=D), exact trace, dopri5, eps = 1e-5.

For each: points/s on one batch (median of 3), mean |error| against the analytic density,
score evaluations (torchode: of the batch, and the median row's), and how far a row's value
moves with its batch: 20 rows solved alone against the same rows inside the batch.
torchode is not a dependency of sdescore: `pip install torchode` to run this. From the
project root:

    python benchmarks/per_row_steps.py [--points 500] [--dims 2 6 16] [--tol 1e-5]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torchode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sdescore  # noqa: E402
from sdescore.datasets import random_mixture  # noqa: E402
from sdescore.likelihood import exact_divergence  # noqa: E402
from sdescore.modules import ProbabilityFlowODE  # noqa: E402
from common import timed, write  # noqa: E402


def torchode_log_prob(model, x, tol):
    """log p_eps(x) (n,) with per-row dopri5 steps; also (batch evaluations, per-row steps)."""
    sde, n = model.sde, x.shape[0]
    flow = ProbabilityFlowODE(sde, model._score, model.shape)

    def augmented(t, state):  # state (n, D + 1): the point and its running divergence
        drift, div = exact_divergence(lambda v: flow(t, v), state[:, :-1])
        return torch.cat([drift, div[:, None]], dim=1)

    term = torchode.ODETerm(augmented)
    solver = torchode.AutoDiffAdjoint(torchode.Dopri5(term=term),
                                      torchode.IntegralController(atol=tol, rtol=tol, term=term))
    start = torch.cat([x.reshape(n, -1), torch.zeros(n, 1, dtype=x.dtype)], dim=1)
    problem = torchode.InitialValueProblem(
        y0=start, t_start=torch.full((n,), sde.likelihood_eps, dtype=x.dtype),
        t_end=torch.full((n,), sde.T, dtype=x.dtype))
    with torch.no_grad():
        solution = solver.solve(problem)
    final = solution.ys[:, -1]
    log_p = sde.prior_log_prob(final[:, :-1].reshape(x.shape)) + final[:, -1]
    return log_p, int(solution.stats["n_f_evals"].max()), solution.stats["n_steps"].double()


def rows_for(dim, args):
    mixture = random_mixture(dim, 3, seed=dim)
    sde = sdescore.get_sde("subvp")
    model = sdescore.ScoreModel(sde, mixture.score_fn(sde), (dim,))
    x = mixture.sample(args.points, seed=1)
    truth = mixture.log_prob(x)
    x = x.float()
    alone = range(20)
    rows = []
    (shared, seconds) = timed(lambda: model.log_prob(x, rtol=args.tol, atol=args.tol), 3)
    evals = model.last_score_evals
    singles = torch.cat([model.log_prob(x[i:i + 1], rtol=args.tol, atol=args.tol)
                         for i in alone])
    rows.append({"dim": dim, "solver": "torchdiffeq (shared steps)",
                 "points_per_s": args.points / seconds, "batch_evals": evals,
                 "median_row_steps": float("nan"),
                 "mean_abs_err": (shared.double() - truth).abs().mean().item(),
                 "batch_effect": (singles - shared[list(alone)]).abs().max().item()})
    print(rows[-1], flush=True)
    (result, seconds) = timed(lambda: torchode_log_prob(model, x, args.tol), 3)
    own, evals, steps = result
    singles = torch.cat([torchode_log_prob(model, x[i:i + 1], args.tol)[0] for i in alone])
    rows.append({"dim": dim, "solver": "torchode (per-row steps)",
                 "points_per_s": args.points / seconds, "batch_evals": evals,
                 "median_row_steps": steps.median().item(),
                 "mean_abs_err": (own.double() - truth).abs().mean().item(),
                 "batch_effect": (singles - own[list(alone)]).abs().max().item()})
    print(rows[-1], flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=500)
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 6, 16])
    parser.add_argument("--tol", type=float, default=1e-5, help="rtol = atol of both")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [row for dim in args.dims for row in rows_for(dim, args)]
    command = "python benchmarks/per_row_steps.py " + " ".join(sys.argv[1:])
    print(write("per_row_steps", rows, ["dim", "solver", "points_per_s", "batch_evals",
                                        "median_row_steps", "mean_abs_err", "batch_effect"],
                command.strip()))


if __name__ == "__main__":
    main()
