"""Does sdescore.fit match a normflows neural spline flow at the same CPU budget?

On analytic mixtures (2-D and 6-D, sdescore.datasets.random_mixture) both models train for
the same wall-clock budget on the same 20,000 draws; the KL gap is the mean over 2,000 test
draws of log p_true(x) - log p_model(x) (an estimate of KL(p || model), with its standard
error). Run from the project root:

    python benchmarks/fit_vs_flow.py [--budget 60] [--dims 2 6] [--out fit_vs_flow]
    python benchmarks/fit_vs_flow.py --fit-option loss=dsm-likelihood --out fit_lever_likelihood
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sdescore  # noqa: E402
from sdescore.baselines import fit_flow  # noqa: E402
from sdescore.datasets import random_mixture  # noqa: E402
from common import fit_options, write  # noqa: E402


def gap(model, mixture, test):
    start = time.perf_counter()
    log_prob = model.log_prob(test.float()).double()
    seconds = time.perf_counter() - start
    diff = mixture.log_prob(test) - log_prob
    return diff.mean().item(), (diff.std() / len(diff) ** 0.5).item(), len(test) / seconds


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 6])
    parser.add_argument("--sde", default="subvp")
    parser.add_argument("--fit-option", action="append", default=[],
                        help="extra fit() keyword as NAME=VALUE, e.g. loss=dsm-likelihood")
    parser.add_argument("--no-flow", action="store_true")
    parser.add_argument("--out", default="fit_vs_flow")
    args = parser.parse_args()
    options = fit_options(args.fit_option)
    rows = []
    for dim in args.dims:
        mixture = random_mixture(dim, components=3, seed=dim)
        data, test = mixture.sample(20000, seed=0).float(), mixture.sample(2000, seed=1)
        candidates = [(f"sdescore.fit({args.sde}{', ' if options else ''}"
                       f"{', '.join(f'{k}={v}' for k, v in options.items())})",
                       lambda: sdescore.fit(data, args.sde, max_time=args.budget, seed=0,
                                            progress=False, **options))]
        if not args.no_flow:
            candidates.append(("normflows nsf", lambda: fit_flow(
                data, "nsf", max_time=args.budget, seed=0, progress=False)))
        for name, train in candidates:
            model = train()
            kl, se, speed = gap(model, mixture, test)
            rows.append({"dim": dim, "model": name, "budget_s": args.budget,
                         "steps": model.history[-1]["step"] if model.history else 0,
                         "kl_gap_nats": kl, "se": se, "log_prob_points_per_s": speed})
            print(rows[-1], flush=True)
    command = "python benchmarks/fit_vs_flow.py " + " ".join(sys.argv[1:])
    print(write(args.out, rows, ["dim", "model", "budget_s", "steps", "kl_gap_nats", "se",
                                 "log_prob_points_per_s"], command.strip()))


if __name__ == "__main__":
    main()
