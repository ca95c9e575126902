"""Which log_prob recipe is exact (<= 0.01 nats per point) and fastest?

Against the reference recipe of the original implementation (scipy's RK45 on the
probability-flow ODE, rtol = atol = 1e-5, eps = 1e-5, one Rademacher Hutchinson probe), on the
same exact mixture score in the same run, for D = 2, 6, 16. Error is mean |log p - log p_true|
per point against the analytic log-density. Besides solver, tolerance, trace, batch size and
dtype, the ODE is also solved in other time variables u (sqrt t, log t, log s(t), the log
signal-to-noise ratio), t = t(u). The same recipes and the reference then run on networks
trained on those mixtures, against a tight float64 solve of the same network. Run from the
project root:

    python -m benchmarks.log_prob_levers [--points 500] [--dims 2 6 16] [--sde subvp]
                                         [--recipes "rk4 8" dpm] [--no-trained] [--out NAME]
"""
from __future__ import annotations

import argparse
import math

import numpy as np
import torch
from scipy.integrate import solve_ivp
from torch import nn
from torch.func import jvp


import sdescore
from sdescore.datasets import random_mixture
from sdescore.solvers.likelihood import draw_probes, exact_divergence
from sdescore.solvers.adapters import LogDensityODE, ProbabilityFlowODE, solve_ode
from .common import rerun_command, timed, write


def reference_log_prob(model, x, seed=0, *, exact=False):
    """scipy RK45 (rtol = atol = 1e-5) from eps = 1e-5 to T with one Rademacher probe v, the
    divergence as score_sde_pytorch's ``get_div_fn`` takes it (one autograd pullback of
    sum(drift * v) per evaluation), or with ``exact`` the exact trace (``exact_divergence``,
    D pullbacks) in the same integrator; the score runs on x's device, the solver's state
    lives in NumPy on the CPU."""
    sde, n = model.sde, x.shape[0]
    y0 = model.datamap.to_model(x).reshape(n, -1)
    flow = ProbabilityFlowODE(sde, model._score, model.shape)
    (probe,) = draw_probes("rademacher", 1, y0, torch.Generator(y0.device).manual_seed(seed))
    counter = {"evals": 0}

    def rhs(t, state):
        counter["evals"] += 1
        y = torch.as_tensor(state[: y0.numel()], dtype=x.dtype,
                            device=x.device).reshape(y0.shape)
        if exact:
            drift, div = exact_divergence(lambda v: flow(torch.tensor(t), v), y)
        else:
            with torch.enable_grad():
                y.requires_grad_(True)
                drift = flow(torch.tensor(t), y)
                (pullback,) = torch.autograd.grad((drift * probe).sum(), y)
            div = (pullback * probe).sum(1)
        return np.concatenate([drift.detach().reshape(-1).cpu().numpy(),
                               div.cpu().numpy()]).astype(np.float64)

    state0 = np.concatenate([y0.reshape(-1).cpu().numpy(), np.zeros(n)])
    solution = solve_ivp(rhs, (sde.likelihood_eps, sde.T), state0, rtol=1e-5, atol=1e-5,
                         method="RK45")
    final = torch.as_tensor(solution.y[:, -1], dtype=x.dtype, device=x.device)
    y_T, delta = final[: y0.numel()].reshape(x.shape), final[y0.numel():]
    return sde.prior_log_prob(y_T) + delta + model.datamap.log_det, counter["evals"]


def _scalar(fn, t):
    return float(fn(torch.tensor(t, dtype=torch.float64)))


# Each time variable u as (t(u), u(t)) for an SDE; t(u) takes and returns float64 tensors.
TIME_VARIABLES = {
    "sqrt t": (lambda sde: (torch.square, math.sqrt)),
    "log t": (lambda sde: (torch.exp, math.log)),
    "log s(t)": (lambda sde: (lambda u: sde.time_at_std(torch.exp(u)),
                              lambda t: math.log(_scalar(sde.marginal_std, t)))),
    "-log SNR": (lambda sde: (lambda u: sde.time_at_log_snr(-u / 2),
                              lambda t: 2 * math.log(_scalar(sde.marginal_std, t)
                                                     / _scalar(sde.mean_scale, t)))),
}


class InTimeVariable(nn.Module):
    """An ODE function of t rewritten in u, with t = t(u): d state/du = f(t(u), state) dt/du."""

    def __init__(self, func, time_of):
        super().__init__()
        self.func, self.time_of = func, time_of

    def forward(self, u, state):
        u = u.to(torch.float64)
        t, dt_du = jvp(self.time_of, (u,), (torch.ones_like(u),))
        return tuple(part * dt_du.to(part.dtype)
                     for part in self.func(t.to(state[0].dtype), state))


def log_prob_in_time_variable(model, x, variable, *, solver="dopri5", rtol=1e-3, atol=1e-3,
                              steps=10):
    """log p_eps(x) with the exact trace, the ODE solved in ``variable`` (TIME_VARIABLES)."""
    sde, n = model.sde, x.shape[0]
    time_of, variable_of = TIME_VARIABLES[variable](sde)
    y = model.datamap.to_model(x).reshape(n, -1)
    ode = InTimeVariable(LogDensityODE(ProbabilityFlowODE(sde, model._score, model.shape),
                                       exact_divergence), time_of)
    model._score_evals = 0
    y_T, delta = solve_ode(ode, (y, torch.zeros(n, dtype=y.dtype)),
                           variable_of(sde.likelihood_eps), variable_of(sde.T), solver=solver,
                           rtol=rtol, atol=atol, steps=steps)
    model.last_score_evals = model._score_evals
    return sde.prior_log_prob(y_T.reshape(x.shape)) + delta + model.datamap.log_det


RECIPES = {
    "exact dopri5 1e-5 (default)": {},
    "exact dopri5 1e-4": {"rtol": 1e-4, "atol": 1e-4},
    "exact dopri5 1e-3": {"rtol": 1e-3, "atol": 1e-3},
    "exact bosh3 1e-4": {"solver": "bosh3", "rtol": 1e-4, "atol": 1e-4},
    "exact rk4 20 steps": {"solver": "rk4", "steps": 20},
    "exact rk4 10 steps": {"solver": "rk4", "steps": 10},
    "exact rk4 8 steps": {"solver": "rk4", "steps": 8},
    "exact rk4 5 steps": {"solver": "rk4", "steps": 5},
    "hutchinson x1 dopri5 1e-5": {"trace": "hutchinson", "seed": 0},
    "hutchinson x8 dopri5 1e-5": {"trace": "hutchinson", "probes": 8, "seed": 0},
    "exact dopri5 1e-5, batches of 100": {"batch_size": 100, "progress": False},
    "exact dopri5 1e-5, float64": {"float64": True},
    "exact dopri5 1e-3, float64": {"float64": True, "rtol": 1e-3, "atol": 1e-3},
    **{f"exact dopri5 1e-3 in {variable}": {"variable": variable}
       for variable in TIME_VARIABLES},
    **{f"exact rk4 8 steps in {variable}": {"variable": variable, "solver": "rk4", "steps": 8}
       for variable in TIME_VARIABLES},
    **{f"exact dpm {steps} steps": {"method": "dpm", "steps": steps}
       for steps in (20, 30, 40, 60, 80)},
}


def run_recipe(model, x, options):
    """model.log_prob(x, **options); the pseudo-options "float64" (a float64 copy) and
    "variable" (the ODE in another time variable) go around it."""
    options = dict(options)
    if "variable" in options:
        return log_prob_in_time_variable(model, x, options.pop("variable"), **options), model
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
        (ref, evals), seconds = timed(lambda: reference_log_prob(model, x), 1)
        reference_speed = len(x) / seconds
        rows.append({"dim": f"{dim} (trained)", "recipe": "reference: scipy RK45 1e-5, 1 probe",
                     "points_per_s": reference_speed, "speedup": 1.0, "score_evals": evals,
                     "mean_abs_err": (ref.double() - truth).abs().mean().item()})
        for name, options in RECIPES.items():
            (estimate, used), seconds = timed(lambda: run_recipe(model, x, options), 1)
            rows.append({"dim": f"{dim} (trained)", "recipe": name,
                         "points_per_s": len(x) / seconds,
                         "speedup": len(x) / seconds / reference_speed,
                         "score_evals": used.last_score_evals,
                         "mean_abs_err": (estimate.double() - truth).abs().mean().item()})
            print(rows[-1], flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=500)
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 6, 16])
    parser.add_argument("--sde", default="subvp")
    parser.add_argument("--recipes", nargs="+", default=None,
                        help="run only the recipes whose names contain one of these")
    parser.add_argument("--no-trained", action="store_true",
                        help="skip the rows on trained networks")
    parser.add_argument("--out", default="log_prob_levers")
    args = parser.parse_args()
    if args.recipes:
        for name in list(RECIPES):
            if not any(part in name for part in args.recipes):
                del RECIPES[name]
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
    if not args.no_trained:
        rows += trained_rows(args)
    command = rerun_command("log_prob_levers")
    print(write(args.out, rows, ["dim", "recipe", "points_per_s", "speedup",
                                          "score_evals", "mean_abs_err"], command))


if __name__ == "__main__":
    main()
