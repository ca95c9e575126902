"""Could the divergence cost less? Per-call costs, and the divergence integral by quadrature.

Issue 4 asks for >= 3x the reference recipe's throughput at <= 0.01 nats. The reference spends
one vector-Jacobian product (one Hutchinson probe) per score evaluation; an exact trace spends
D of them. Part 1 times one call of each on 500 points of the exact mixture score. Part 2
tries to spend few exact traces: solve the trajectory with plain score evaluations
(torchdiffeq dopri5, no gradients), take the exact trace only at Q Gauss-Legendre nodes in a
time variable u (all nodes in one batched call), and subtract the N(0, I) data's divergence,
which depends on t alone and is integrated on a fine grid. The error is against the analytic
log-density; points/s are timed against the reference recipe (``log_prob_levers.py``) on the
same points in the same run. Run from the project root:

    python benchmarks/divergence_quadrature.py [--points 500] [--dims 2 6 16]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torchdiffeq import odeint

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sdescore  # noqa: E402
from sdescore.datasets import random_mixture  # noqa: E402
from sdescore.likelihood import draw_probes, exact_divergence, hutchinson_divergence  # noqa: E402
from sdescore.modules import ProbabilityFlowODE  # noqa: E402
from common import timed, write  # noqa: E402
from log_prob_levers import reference_log_prob  # noqa: E402

# Rows per batched exact-trace call: the nodes go in groups of about this many rows, since one
# call over all of them (up to 12000 rows x D probes in 16-D) runs slower than a few smaller ones.
TRACE_ROWS = 4000

# u(t) on a fine geometric grid of t: the variable the Gauss-Legendre nodes are uniform in
VARIABLES = {"t": lambda t, m, s: t, "sqrt t": lambda t, m, s: np.sqrt(t),
             "log(s/m)": lambda t, m, s: np.log(s / m)}


def gaussian_divergence(sde, t, dim):
    """div of the drift when the data are N(0, I): D (f(t) + g(t)^2 / (2 (m^2 + s^2)))."""
    m, s = sde.mean_scale(t), sde.marginal_std(t)
    return dim * (sde.drift_coef(t) + 0.5 * sde.diffusion(t) ** 2 / (m**2 + s**2))


def quadrature_log_prob(model, x, nodes: int, variable: str, rtol: float = 1e-4):
    """log p_eps(x) with the divergence integral by ``nodes``-point Gauss-Legendre in
    ``variable``; returns (log p (n,), score evaluations of the trajectory)."""
    sde, (n, dim) = model.sde, x.shape
    grid = np.geomspace(sde.likelihood_eps, sde.T, 200001)
    fine = torch.tensor(grid)
    u = VARIABLES[variable](grid, sde.mean_scale(fine).numpy(), sde.marginal_std(fine).numpy())
    points, weights = np.polynomial.legendre.leggauss(nodes)
    u_nodes = (u[-1] - u[0]) / 2 * points + (u[-1] + u[0]) / 2
    t_nodes = np.interp(u_nodes, u, grid)
    dt_du = 1 / np.interp(u_nodes, u, np.gradient(u, grid))
    weights = torch.tensor(weights * (u[-1] - u[0]) / 2 * dt_du)
    flow = ProbabilityFlowODE(sde, model._score, model.shape)
    calls = [0]

    def counted(t, y):
        calls[0] += 1
        return flow(t, y)

    times = torch.tensor([sde.likelihood_eps, *t_nodes, sde.T], dtype=x.dtype)
    with torch.no_grad():
        path = odeint(counted, x, times, rtol=rtol, atol=rtol, method="dopri5",
                      options={"step_t": times[-1:], "first_step": 0.01})
    group = max(1, TRACE_ROWS // n)
    divs, at_nodes = [], path[1:-1]
    for start in range(0, nodes, group):
        node_times = torch.tensor(t_nodes[start:start + group], dtype=x.dtype)
        rows = at_nodes[start:start + group]
        _, div = exact_divergence(
            lambda y: flow(node_times.repeat_interleave(n), y),  # each row at its own time
            rows.reshape(-1, dim))
        divs.append(div.reshape(len(rows), n))
    excess = torch.cat(divs).double() - gaussian_divergence(sde, torch.tensor(t_nodes),
                                                                  dim)[:, None]
    baseline = torch.trapezoid(gaussian_divergence(sde, fine, dim), fine).item()
    integral = (weights[:, None] * excess).sum(0) + baseline
    return sde.prior_log_prob(path[-1].double()) + integral, calls[0]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=500)
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 6, 16])
    args = parser.parse_args()
    torch.set_num_threads(1)
    costs, rows = [], []
    for dim in args.dims:
        mixture = random_mixture(dim, components=3, seed=dim)
        sde = sdescore.get_sde("subvp")
        model = sdescore.ScoreModel(sde, mixture.score_fn(sde), (dim,))
        x = mixture.sample(args.points, seed=1)
        flow = ProbabilityFlowODE(sde, model._score, model.shape)
        y, t = x.float(), torch.tensor(0.3)
        fn = lambda v: flow(t, v)  # noqa: E731
        probe = draw_probes("rademacher", 1, y)

        def forward_only():
            with torch.no_grad():
                return fn(y)

        calls = {"score only": forward_only,
                 "one probe (reference)": lambda: hutchinson_divergence(fn, y, probe),
                 "exact trace": lambda: exact_divergence(fn, y)}
        for name, call in calls.items():
            call()
            _, seconds = timed(lambda: [call() for _ in range(20)], 5)
            costs.append({"dim": dim, "call": name, "ms_per_call": 1e3 * seconds / 20})
            print(costs[-1], flush=True)
        truth = mixture.log_prob(x)
        _, reference_seconds = timed(lambda: reference_log_prob(model, y), 3)
        settings = [(variable, 1e-4) for variable in VARIABLES] + [("t", 1e-3)]
        for variable, rtol in settings:
            for nodes in (8, 12, 16, 24):
                (estimate, evals), seconds = timed(
                    lambda: quadrature_log_prob(model, y, nodes, variable, rtol), 3)
                rows.append({"dim": dim, "variable": variable, "trajectory_rtol": rtol,
                             "nodes": nodes, "trajectory_evals": evals,
                             "points_per_s": args.points / seconds,
                             "x_reference": reference_seconds / seconds,
                             "mean_abs_err": (estimate - truth).abs().mean().item()})
                print(rows[-1], flush=True)
    command = "python benchmarks/divergence_quadrature.py " + " ".join(sys.argv[1:])
    print(write("divergence_cost", costs, ["dim", "call", "ms_per_call"], command.strip()))
    print(write("divergence_quadrature", rows,
                ["dim", "variable", "trajectory_rtol", "nodes", "trajectory_evals",
                 "points_per_s", "x_reference", "mean_abs_err"], command.strip()))


if __name__ == "__main__":
    main()
