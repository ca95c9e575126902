"""Which DPM-Solver++ update is closer to the exact probability-flow ODE at few steps?

The "dpm" sampler's two formulas (``sdescore.solvers.dpm.FORMULAS``): "exact", the integral
of the polynomial through the last ``order`` data predictions, and "dpmsolver", the updates
of the official DPM-Solver++ code (2M in its midpoint form, 3M). On the exact score of
``random_mixture(D, 3, seed=D)`` (sub-VP), the same 500 prior draws (float64) are carried from
T to sampling_eps by each, at orders 2 and 3 and 10, 20, 40 log-SNR steps; the error is the
mean distance to the endpoint of a dopri8 solve at rtol = atol = 1e-11. Run from the project
root:

    python -m benchmarks.dpm_formulas [--dims 2 6 16]
"""
from __future__ import annotations

import argparse
import sys

import torch

import sdescore
from sdescore.datasets import random_mixture
from sdescore.solvers.adapters import integrate_probability_flow
from sdescore.solvers.dpm import sample_dpm

from .common import write


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 6, 16])
    parser.add_argument("--out", default="dpm_formulas")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for dim in args.dims:
        mixture = random_mixture(dim, 3, seed=dim)
        sde = sdescore.get_sde("subvp")
        score, eps = mixture.score_fn(sde), sde.sampling_eps
        x_T = torch.randn(500, dim, generator=torch.Generator().manual_seed(0),
                          dtype=torch.float64)
        exact = integrate_probability_flow(sde, score, x_T, sde.T, eps, solver="dopri8",
                                           rtol=1e-11, atol=1e-11, steps=1)
        for order in (2, 3):
            for steps in (10, 20, 40):
                error = {formula: (sample_dpm(sde, score, x_T, eps=eps, steps=steps,
                                              order=order, formula=formula) - exact)
                         .norm(dim=1).mean().item() for formula in ("exact", "dpmsolver")}
                rows.append({"dim": dim, "order": order, "steps": steps,
                             "exact_err": error["exact"], "dpmsolver_err": error["dpmsolver"],
                             "exact_over_dpmsolver": error["exact"] / error["dpmsolver"]})
                print(rows[-1], flush=True)
    command = "python -m benchmarks.dpm_formulas " + " ".join(argv or sys.argv[1:])
    print(write(args.out, rows, list(rows[0]), command.strip()))


if __name__ == "__main__":
    main()
