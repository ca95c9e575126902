"""Which DPM-Solver++ update is closer to the exact probability-flow ODE at few steps?

The "dpm" sampler's two formulas (``sdescore.solvers.dpm.FORMULAS``): "exact", the integral
of the polynomial through the last ``order`` data predictions, and "dpmsolver", the updates
of the official DPM-Solver++ code (2M in its midpoint form, 3M). On the exact score of
``random_mixture(D, 3, seed=D)`` (sub-VP), the same 500 prior draws (float64) are carried from
T to sampling_eps by each, at orders 2 and 3 and 10, 20, 40 log-SNR steps; the error is the
mean distance to the endpoint of a dopri8 solve at rtol = atol = 1e-11. With --trained S, the
same on a trained network too: ``fit`` for S seconds (one thread, seed 0) on scikit-learn's
breast-cancer table (30 columns), its score in float64, 500 draws of its prior carried to its
sampling_eps, the reference a dopri8 solve of the same network at 1e-10. Run from the project
root:

    python -m benchmarks.dpm_formulas [--dims 2 6 16] [--trained 60]
"""
from __future__ import annotations

import argparse
import copy
import warnings

import torch

import sdescore
from sdescore.datasets import random_mixture
from sdescore.solvers.adapters import integrate_probability_flow
from sdescore.solvers.dpm import sample_dpm

from .common import rerun_command, write


def problems(dims: list[int], trained_seconds: float | None):
    """(label, sde, score, dimension, the reference solve's rtol = atol) of each problem."""
    for dim in dims:
        sde = sdescore.get_sde("subvp")
        yield dim, sde, random_mixture(dim, 3, seed=dim).score_fn(sde), dim, 1e-11
    if trained_seconds is not None:
        from sklearn.datasets import load_breast_cancer

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = sdescore.fit(load_breast_cancer().data, max_time=trained_seconds, seed=0,
                                 progress=False)
        network = copy.deepcopy(model).double()
        yield "30 (trained)", network.sde, network._score, 30, 1e-10


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 6, 16])
    parser.add_argument("--trained", type=float, default=None, metavar="SECONDS",
                        help="also a network fitted for this long on a 30-column table")
    parser.add_argument("--out", default="dpm_formulas")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for label, sde, score, dim, tolerance in problems(args.dims, args.trained):
        eps = sde.sampling_eps
        x_T = sde.prior_sample((500, dim), generator=torch.Generator().manual_seed(0),
                               dtype=torch.float64)
        with torch.no_grad():
            exact = integrate_probability_flow(sde, score, x_T, sde.T, eps, solver="dopri8",
                                               rtol=tolerance, atol=tolerance, steps=1)
            for order in (2, 3):
                for steps in (10, 20, 40):
                    error = {formula: (sample_dpm(sde, score, x_T, eps=eps, steps=steps,
                                                  order=order, formula=formula) - exact)
                             .norm(dim=1).mean().item() for formula in ("exact", "dpmsolver")}
                    rows.append({"dim": label, "order": order, "steps": steps,
                                 "exact_err": error["exact"], "dpmsolver_err": error["dpmsolver"],
                                 "exact_over_dpmsolver": error["exact"] / error["dpmsolver"]})
                    print(rows[-1], flush=True)
    command = rerun_command("dpm_formulas", argv)
    print(write(args.out, rows, list(rows[0]), command))


if __name__ == "__main__":
    main()
