"""Which log_prob recipe is exact (<= 0.01 nats per point) and fastest?

Against the reference recipe of the original implementation (scipy's RK45 on the
probability-flow ODE, rtol = atol = 1e-5, eps = 1e-5, one Rademacher Hutchinson probe), on the
same exact mixture score in the same run, for D = 2, 6, 16. Error is mean |log p - log p_true|
per point against the analytic log-density. The same recipes then run on networks trained on
those mixtures, against a tight float64 solve of the same network. Run from the project root:

    python benchmarks/log_prob_levers.py [--points 500] [--dims 2 6 16]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.integrate import solve_ivp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sdescore  # noqa: E402
from sdescore.datasets import random_mixture  # noqa: E402
from sdescore.likelihood import draw_probes, hutchinson_divergence  # noqa: E402
from sdescore.modules import ProbabilityFlowODE  # noqa: E402
from common import timed, write  # noqa: E402


def reference_log_prob(model, x, seed=0):
    """scipy RK45 (rtol = atol = 1e-5) from eps = 1e-5 to T with one Rademacher probe."""
    sde, n = model.sde, x.shape[0]
    y0 = x.reshape(n, -1)
    flow = ProbabilityFlowODE(sde, model._score, model.shape)
    probe = draw_probes("rademacher", 1, y0, torch.Generator().manual_seed(seed))
    counter = {"evals": 0}

    def rhs(t, state):
        counter["evals"] += 1
        y = torch.as_tensor(state[: y0.numel()], dtype=x.dtype).reshape(y0.shape)
        with torch.no_grad():
            drift, div = hutchinson_divergence(lambda v: flow(torch.tensor(t), v), y, probe)
        return np.concatenate([drift.reshape(-1).numpy(), div.numpy()]).astype(np.float64)

    state0 = np.concatenate([y0.reshape(-1).numpy(), np.zeros(n)])
    solution = solve_ivp(rhs, (sde.likelihood_eps, sde.T), state0, rtol=1e-5, atol=1e-5,
                         method="RK45")
    final = torch.as_tensor(solution.y[:, -1], dtype=x.dtype)
    y_T, delta = final[: y0.numel()].reshape(x.shape), final[y0.numel():]
    return sde.prior_log_prob(y_T) + delta, counter["evals"]


RECIPES = {
    "exact dopri5 1e-5 (default)": {},
    "exact dopri5 1e-4": {"rtol": 1e-4, "atol": 1e-4},
    "exact dopri5 1e-3": {"rtol": 1e-3, "atol": 1e-3},
    "exact bosh3 1e-4": {"solver": "bosh3", "rtol": 1e-4, "atol": 1e-4},
    "exact rk4 20 steps": {"solver": "rk4", "steps": 20},
    "exact rk4 10 steps": {"solver": "rk4", "steps": 10},
    "hutchinson x1 dopri5 1e-5": {"trace": "hutchinson", "seed": 0},
    "hutchinson x8 dopri5 1e-5": {"trace": "hutchinson", "probes": 8, "seed": 0},
    "exact dopri5 1e-5, batches of 100": {"batch_size": 100, "progress": False},
    "exact dopri5 1e-5, float64": {"float64": True},
    "exact dopri5 1e-3, float64": {"float64": True, "rtol": 1e-3, "atol": 1e-3},
}


def run_recipe(model, x, options):
    """model.log_prob(x, **options); the pseudo-option "float64" runs a float64 copy."""
    options = dict(options)
    if options.pop("float64", False):
        import copy

        model = copy.deepcopy(model).double()
        return model.log_prob(x.double(), **options), model
    return model.log_prob(x, **options), model


def trained_rows(args):
    """The same recipes on trained networks (3000 steps of fit on each mixture), where the
    truth is a float64 solve of the same model at rtol = atol = 1e-8, exact trace."""
    import copy

    rows = []
    for dim in (d for d in args.dims if d <= 6):
        mixture = random_mixture(dim, components=3, seed=dim)
        model = sdescore.fit(mixture.sample(20000, seed=0).float(), args.sde, steps=3000,
                             seed=0, progress=False)
        x = mixture.sample(args.points // 5, seed=1).float()
        truth = copy.deepcopy(model).double().log_prob(x.double(), trace="exact", rtol=1e-8,
                                                        atol=1e-8)
        for name, options in RECIPES.items():
            (estimate, used), seconds = timed(lambda: run_recipe(model, x, options), 1)
            rows.append({"dim": f"{dim} (trained)", "recipe": name,
                         "points_per_s": len(x) / seconds, "speedup": float("nan"),
                         "score_evals": used.last_score_evals,
                         "mean_abs_err": (estimate.double() - truth).abs().mean().item()})
            print(rows[-1], flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=500)
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 6, 16])
    parser.add_argument("--sde", default="subvp")
    args = parser.parse_args()
    rows = []
    for dim in args.dims:
        mixture = random_mixture(dim, components=3, seed=dim)
        sde = sdescore.get_sde(args.sde)
        model = sdescore.ScoreModel(sde, mixture.score_fn(sde), (dim,))
        x = mixture.sample(args.points, seed=1)
        truth = mixture.log_prob(x)
        model.log_prob(x[:10].float())  # warm torch.func up before any timing
        (ref, evals), seconds = timed(lambda: reference_log_prob(model, x.float()), 3)
        reference_speed = args.points / seconds
        rows.append({"dim": dim, "recipe": "reference: scipy RK45 1e-5, 1 probe",
                     "points_per_s": reference_speed, "speedup": 1.0, "score_evals": evals,
                     "mean_abs_err": (ref.double() - truth).abs().mean().item()})
        print(rows[-1], flush=True)
        for name, options in RECIPES.items():
            (estimate, used), seconds = timed(lambda: run_recipe(model, x.float(), options), 3)
            rows.append({"dim": dim, "recipe": name, "points_per_s": args.points / seconds,
                         "speedup": args.points / seconds / reference_speed,
                         "score_evals": used.last_score_evals,
                         "mean_abs_err": (estimate.double() - truth).abs().mean().item()})
            print(rows[-1], flush=True)
    rows += trained_rows(args)
    command = "python benchmarks/log_prob_levers.py " + " ".join(sys.argv[1:])
    print(write("log_prob_levers", rows, ["dim", "recipe", "points_per_s", "speedup",
                                          "score_evals", "mean_abs_err"], command.strip()))


if __name__ == "__main__":
    main()
