"""What does a float64 row far out cost, and how exact is it?

A float64 score model of the two moons (``fit``, --steps steps, seed 0) scores its first
--rows test rows moved --scales times farther from the data's mean (anomalies far beyond the
training data, where |log p| grows as the square of the distance). For each scale, the
default ``log_prob`` as it is (each step held to atol, or to atol per
``likelihood.GOAL_SCALE`` nats of the sample's effect on log p where that is larger) and with
GOAL_SCALE = inf (each step held to atol or one ulp of that effect, the solver before
2026-12-06): score-network calls (a batched call counts once), seconds, and the relative
error of the worst row against a float64 dopri8 solve at rtol = atol = 1e-13, beside the
relative error the solver reports. Run from the project root:

    python -m benchmarks.far_rows [--steps 300] [--rows 5] [--scales 1e3 1e6 1e20]
"""
from __future__ import annotations

import argparse
import math
import time
import warnings

import torch

import sdescore
import sdescore.solvers.likelihood as likelihood
from sdescore.datasets import toy

from .common import rerun_command, write


def counted(model, fn):
    """(fn(), the number of calls of the model's score network during it)."""
    calls = [0]
    hook = model.score_fn.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    try:
        return fn(), calls[0]
    finally:
        hook.remove()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rows", type=int, default=5)
    parser.add_argument("--scales", type=float, nargs="+", default=[1e3, 1e6, 1e20])
    parser.add_argument("--out", default="far_rows")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    data = toy("moons", 2000, seed=0)
    model = sdescore.fit(data, steps=args.steps, seed=0, progress=False).double()
    test = torch.as_tensor(toy("moons", args.rows, seed=1), dtype=torch.float64)
    center = torch.as_tensor(data, dtype=torch.float64).mean(0)
    rows = []
    for scale in args.scales:
        far = center + scale * (test - center)
        try:
            tight = model.log_prob(far, solver="dopri8", rtol=1e-13, atol=1e-13)
        except RuntimeError:  # dopri8 at 1e-13 gives up on rows too far out
            tight = torch.full((len(far),), math.nan, dtype=torch.float64)
        for name, goal_scale in (("default", likelihood.GOAL_SCALE),
                                 ("held to the ulp (GOAL_SCALE = inf)", math.inf)):
            default_scale, likelihood.GOAL_SCALE = likelihood.GOAL_SCALE, goal_scale
            try:
                start = time.perf_counter()
                result, calls = counted(model, lambda: model.log_prob(far, return_error=True))
                seconds = time.perf_counter() - start
            finally:
                likelihood.GOAL_SCALE = default_scale
            size = result.log_prob.abs()
            rows.append({"scale": scale, "solver": name, "score_calls": calls,
                         "seconds": seconds, "log_p_min": result.log_prob.min().item(),
                         "worst_rel_err": ((result.log_prob - tight).abs() / size).max().item(),
                         "reported_rel_err": (result.solver_error / size).max().item()})
            print(rows[-1], flush=True)
    command = rerun_command("far_rows", argv)
    print(write(args.out, rows, list(rows[0]), command))


if __name__ == "__main__":
    main()
