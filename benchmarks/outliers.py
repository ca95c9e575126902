"""Where a score model's mean test NLL explodes: a few rows, and is it the model or the solver?

For each set, fits sdescore as in compare_all (60 s, sub-VP, one torch thread), then reports
the mean, median and largest test NLL, how many rows exceed 100 nats, and the three worst
rows re-solved in float64 at rtol = atol = 1e-8 (if those agree, the values are the model's
density, not a solver failure). With several --input-clips and --seeds it compares the
clip of parameterization.GaussianResidual (in standard deviations) fit by fit. Run from the project root:

    python benchmarks/outliers.py [--sets redwine whitewine magic] [--budget 60]
        [--input-clips 3 5] [--seeds 0 1] [--fit-option lr=1e-3] [--out outliers]
"""
from __future__ import annotations

import argparse
import copy
import functools
import itertools
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sdescore  # noqa: E402
from sdescore.datasets import load_benchmark  # noqa: E402
from sdescore.parameterization import GaussianResidual  # noqa: E402
from common import DATA_DIR, fit_options, write  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sets", nargs="+", default=["redwine", "whitewine", "magic"])
    parser.add_argument("--losses", nargs="+", default=["dsm", "dsm-likelihood"])
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--input-clips", type=float, nargs="+", default=[3.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--fit-option", action="append", default=[],
                        help="extra fit() keyword as NAME=VALUE, e.g. lr=1e-3")
    parser.add_argument("--out", default="outliers")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name in args.sets:
        split = load_benchmark(name, DATA_DIR)
        test = torch.as_tensor(split.test[:1000])
        for loss, clip, seed in itertools.product(args.losses, args.input_clips, args.seeds):
            wrap = functools.partial(GaussianResidual, input_clip=clip)
            model = sdescore.fit(split.train, "subvp", loss=loss, parameterization=wrap,
                                 max_time=args.budget, seed=seed, progress=False,
                                 **fit_options(args.fit_option))
            nll = -model.log_prob(test).double()
            worst = nll.argsort(descending=True)[:3]
            tight = -copy.deepcopy(model).double().log_prob(test[worst].double(), rtol=1e-8,
                                                             atol=1e-8)
            rows.append({"data": name, "loss": loss, "input_clip": clip, "seed": seed,
                         "steps": model.history[-1]["step"], "mean_nll": nll.mean().item(),
                         "median_nll": nll.median().item(), "max_nll": nll.max().item(),
                         "rows_over_100": int((nll > 100).sum()), "rows": len(test),
                         "worst_3": ", ".join(f"{v:.4g}" for v in nll[worst].tolist()),
                         "worst_3_float64_1e-8": ", ".join(f"{v:.4g}" for v in tight.tolist())})
            print(rows[-1], flush=True)
    command = "python benchmarks/outliers.py " + " ".join(sys.argv[1:])
    print(write(args.out, rows, list(rows[0]), command.strip()))


if __name__ == "__main__":
    main()
