"""Is sdescore's lead over a flow on a set more than noise? The paired test-row difference.

Both models are scored on the same test rows, so the standard error of the difference of
their mean NLLs is that of the per-row differences, usually far below either model's own SE.
For each SET:FLOW pair and seed: `fit(train, "subvp", max_time=B)` and
`fit_flow(train, FLOW, max_time=B)` on one torch thread, then the per-row NLL difference
(sdescore minus flow; negative: sdescore ahead) on the first 1000 test rows. Run from the
project root:

    python benchmarks/paired_difference.py [--pairs mixture2:realnvp parkinsons:nsf]
        [--seeds 0 1] [--budget 60] [--out paired_difference]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sdescore  # noqa: E402
from sdescore.baselines import fit_flow  # noqa: E402
from sdescore.datasets import load_benchmark  # noqa: E402
from sdescore.metrics import mean_and_se  # noqa: E402
from common import DATA_DIR, write  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", nargs="+", default=["mixture2:realnvp", "parkinsons:nsf"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--out", default="paired_difference")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for pair in args.pairs:
        name, flow = pair.split(":")
        split = load_benchmark(name, DATA_DIR)
        test = torch.as_tensor(split.test[:1000])
        for seed in args.seeds:
            score = sdescore.fit(split.train, "subvp", max_time=args.budget, seed=seed,
                                 progress=False)
            baseline = fit_flow(split.train, flow, max_time=args.budget, seed=seed,
                                progress=False)
            nll_score = -score.log_prob(test).double()
            nll_flow = -baseline.log_prob(test).double()
            (score_mean, score_se), (flow_mean, flow_se) = mean_and_se(nll_score), mean_and_se(nll_flow)
            difference, difference_se = mean_and_se(nll_score - nll_flow)
            rows.append({"data": name, "flow": flow, "seed": seed, "sdescore_nll": score_mean,
                         "sdescore_se": score_se, "flow_nll": flow_mean, "flow_se": flow_se,
                         "difference": difference, "paired_se": difference_se})
            print(rows[-1], flush=True)
    command = "python benchmarks/paired_difference.py " + " ".join(sys.argv[1:])
    print(write(args.out, rows, list(rows[0]), command.strip()))


if __name__ == "__main__":
    main()
