"""At a fixed wall-clock budget, which network width gives the best test NLL?

A narrower network takes more optimiser steps in the same seconds. For each set, model,
width and seed: fit for --budget seconds on one torch thread (sdescore: `fit(train, "subvp",
net=MLPScoreNet(d, hidden=width))`, defaults otherwise; nsf: `fit_flow(train, "nsf",
hidden=width)`), then the exact test NLL on the first 1000 test rows. Width 0 means the
model's default. Run from the project root:

    python benchmarks/network_width.py [--sets power magic] [--models score nsf]
        [--widths 0 64] [--seeds 0 1] [--budget 60] [--out network_width]
"""
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sdescore  # noqa: E402
from sdescore.baselines import fit_flow  # noqa: E402
from sdescore.datasets import load_benchmark  # noqa: E402
from sdescore.metrics import mean_and_se  # noqa: E402
from sdescore.nets import MLPScoreNet, default_width  # noqa: E402
from common import DATA_DIR, write  # noqa: E402


def fit_model(model: str, train, width: int, budget: float, seed: int):
    """One fit at ``width`` (0: the model's default); returns (model, width used)."""
    dim = train.shape[1]
    if model == "score":
        width = width or default_width(dim)
        return sdescore.fit(train, "subvp", net=MLPScoreNet(dim, hidden=width),
                            max_time=budget, seed=seed, progress=False), width
    width = width or 128
    return fit_flow(train, model, hidden=width, max_time=budget, seed=seed,
                    progress=False), width


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sets", nargs="+", default=["power", "protein", "magic"])
    parser.add_argument("--models", nargs="+", default=["score"])
    parser.add_argument("--widths", type=int, nargs="+", default=[0, 64])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--out", default="network_width")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name in args.sets:
        split = load_benchmark(name, DATA_DIR)
        test = torch.as_tensor(split.test[:1000])
        for model, width, seed in itertools.product(args.models, args.widths, args.seeds):
            fitted, used = fit_model(model, split.train, width, args.budget, seed)
            nll = -fitted.log_prob(test).double()
            mean, se = mean_and_se(nll)
            rows.append({"data": name, "model": model, "width": used, "seed": seed,
                         "steps": fitted.history[-1]["step"], "test_nll": mean,
                         "test_nll_se": se, "test_nll_median": nll.median().item()})
            print(rows[-1], flush=True)
    command = "python benchmarks/network_width.py " + " ".join(sys.argv[1:])
    print(write(args.out, rows, list(rows[0]), command.strip()))


if __name__ == "__main__":
    main()
