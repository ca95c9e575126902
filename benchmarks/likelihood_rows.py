"""Is log_prob exact for every row, whatever its batch, and faster than the reference recipe?

On the exact score of ``random_mixture(D, 3, seed=D)`` (VP, sub-VP, and VE with sigma_max =
50), --points rows, one torch thread. The truth is a float64 solve of the same ODE (torchdiffeq
dopri8, rtol = atol = 1e-10, exact trace). For each recipe: the error per row against it
(mean, 99th percentile, worst), the batch effect (the largest change of a row's value between
its batch and: the first 20 rows solved alone, the batch reversed, the batch split in two
halves as two ranks would), how often the reported ``solver_error`` covers the true error,
and points/s against the reference recipe of the original implementation (scipy RK45 on the
whole batch at rtol = atol = 1e-5, one Rademacher probe; ``log_prob_levers``), timed in the
same run, each the median of --repeats runs alternated; and the worst error on --far-rows
rows far out (the mixture's draws times 3, as anomalies would be; not timed). With
--exact-reference, the reference's integrator with the exact trace is timed and scored
beside them (its batch effect too). Run from the project root:

    python -m benchmarks.likelihood_rows [--points 1000] [--dims 2 6 16 64]
                                         [--sdes vp subvp ve] [--repeats 3]
                                         [--recipes default] [--exact-reference]
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

import sdescore
from sdescore.datasets import random_mixture

from .common import rerun_command, write
from .log_prob_levers import reference_log_prob

RECIPES = {
    "ode dopri5 (default)": {},
    "ode dopri5 1e-4": {"rtol": 1e-4, "atol": 1e-4},
    "ode dopri5, hutchinson x1": {"trace": "hutchinson", "seed": 0},
    "ode bosh3 (torchdiffeq, shared steps)": {"solver": "bosh3"},
    "ode rk4 10 steps": {"solver": "rk4", "steps": 10},
    "dpm 60 (preset)": {"method": "dpm"},
    "dpm 120": {"method": "dpm", "steps": 120},
}
SDES = {"vp": {}, "subvp": {}, "ve": {"sigma_max": 50.0}}
REFERENCE = "reference (scipy RK45, 1 probe)"
#: The reference recipe's integrator (scipy RK45 on the whole batch) with the exact trace.
EXACT_REFERENCE = "reference integrator, exact trace"


def batch_effect(log_prob, x, value) -> float:
    """The largest |change| of a row's ``log_prob(rows)`` between ``value`` (its batch) and:
    alone (the first 20 rows), the batch reversed, and the batch in two halves."""
    alone = torch.cat([log_prob(x[i:i + 1]) for i in range(min(20, len(x)))])
    reversed_ = log_prob(x.flip(0)).flip(0)
    half = len(x) // 2
    halves = torch.cat([log_prob(x[:half]), log_prob(x[half:])])
    return max((alone - value[:len(alone)]).abs().max().item(),
               (reversed_ - value).abs().max().item(), (halves - value).abs().max().item())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 6, 16, 64])
    parser.add_argument("--sdes", nargs="+", default=list(SDES), choices=list(SDES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--far-rows", type=int, default=50)
    parser.add_argument("--recipes", nargs="+", default=None,
                        help="only the recipes whose names contain one of these")
    parser.add_argument("--exact-reference", action="store_true",
                        help="also the reference's integrator with the exact trace")
    parser.add_argument("--out", default="likelihood_rows")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    recipes = {name: options for name, options in RECIPES.items()
               if not args.recipes or any(part in name for part in args.recipes)}
    rows = []
    for dim in args.dims:
        mixture = random_mixture(dim, components=3, seed=dim)
        for sde_name in args.sdes:
            sde = sdescore.get_sde(sde_name, **SDES[sde_name])
            model = sdescore.ScoreModel(sde, mixture.score_fn(sde), (dim,))
            x = mixture.sample(args.points, seed=1)
            truth = copy.deepcopy(model).double().log_prob(x.double(), trace="exact",
                                                          solver="dopri8", rtol=1e-10,
                                                          atol=1e-10)
            far = 3 * mixture.sample(args.far_rows, seed=2)
            truth_far = copy.deepcopy(model).double().log_prob(far.double(), trace="exact",
                                                              solver="dopri8", rtol=1e-10,
                                                              atol=1e-10)
            x, far = x.float(), far.float()

            def far_worst(log_prob):
                return (log_prob.double() - truth_far).abs().max().item()
            model.log_prob(x[:10])  # warm torch.func up before any timing
            references = {REFERENCE: {}, **({EXACT_REFERENCE: {"exact": True}}
                                            if args.exact_reference else {})}
            seconds = {name: [] for name in [*references, *recipes]}
            results = {}
            for _ in range(args.repeats):  # alternated, so that drifts hit all alike
                for name, options in references.items():
                    start = time.perf_counter()
                    results[name], _ = reference_log_prob(model, x, **options)
                    seconds[name].append(time.perf_counter() - start)
                for name, options in recipes.items():
                    start = time.perf_counter()
                    results[name] = model.log_prob(x, return_error=True, **options)
                    seconds[name].append(time.perf_counter() - start)
            reference_speed = len(x) / statistics.median(seconds[REFERENCE])
            for name, options in references.items():
                error = (results[name].double() - truth).abs()
                speed = len(x) / statistics.median(seconds[name])
                effect = (float("nan") if not options else batch_effect(
                    lambda part: reference_log_prob(model, part, **options)[0], x,
                    results[name]))
                rows.append({"dim": dim, "sde": sde_name, "recipe": name,
                             "points_per_s": speed, "speedup": speed / reference_speed,
                             "mean_err": error.mean().item(),
                             "p99_err": error.quantile(0.99).item(),
                             "worst_err": error.max().item(), "batch_effect": effect,
                             "covered": float("nan"),
                             "far_worst_err": far_worst(reference_log_prob(model, far,
                                                                           **options)[0])})
                print(rows[-1], flush=True)
            for name, options in recipes.items():
                result = results[name]
                error = (result.log_prob.double() - truth).abs()
                speed = len(x) / statistics.median(seconds[name])
                covered = (error <= result.solver_error.double()).double().mean().item()
                rows.append({"dim": dim, "sde": sde_name, "recipe": name, "points_per_s": speed,
                             "speedup": speed / reference_speed,
                             "mean_err": error.mean().item(),
                             "p99_err": error.quantile(0.99).item(),
                             "worst_err": error.max().item(),
                             "batch_effect": batch_effect(
                                 lambda part: model.log_prob(part, **options), x,
                                 result.log_prob),
                             "covered": covered,
                             "far_worst_err": far_worst(model.log_prob(far, **options))})
                print(rows[-1], flush=True)
    command = rerun_command("likelihood_rows", argv)
    print(write(args.out, rows, list(rows[0]), command))


if __name__ == "__main__":
    main()
