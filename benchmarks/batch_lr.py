"""Which training batch and learning rate give the best test NLL at a fixed budget?

On a CPU a small score network is dominated by fixed per-step costs, so a larger batch
costs little more than a small one. For each set and BATCH:LR pair: `fit(train, "subvp",
batch_size=BATCH, lr=LR, max_time=budget, seed=seed)` on one torch thread, defaults
otherwise, then the test NLL by `log_prob(solver="dpm")` (within 0.01 nats of the default
solver on these sizes, BENCHMARKS.md "Exponential integrators") on the first 1000 test rows.
Run from the project root:

    python benchmarks/batch_lr.py [--sets power magic] [--configs 256:2e-3 1024:6e-3]
        [--budget 60] [--seed 0] [--out batch_lr]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sdescore  # noqa: E402
from sdescore.datasets import load_benchmark  # noqa: E402
from sdescore.metrics import mean_and_se  # noqa: E402
from common import DATA_DIR, write  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sets", nargs="+", default=["power", "protein", "magic"])
    parser.add_argument("--configs", nargs="+", default=["256:2e-3", "1024:6e-3"],
                        help="BATCH:LR pairs")
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="batch_lr")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name in args.sets:
        split = load_benchmark(name, DATA_DIR)
        test = torch.as_tensor(split.test[:1000])
        for config in args.configs:
            batch, lr = config.split(":")
            model = sdescore.fit(split.train, "subvp", batch_size=int(batch), lr=float(lr),
                                 max_time=args.budget, seed=args.seed, progress=False)
            nll = -model.log_prob(test, solver="dpm").double()
            mean, se = mean_and_se(nll)
            selected = next(r["step"] for r in model.history if r.get("selected"))
            rows.append({"data": name, "batch": int(batch), "lr": float(lr),
                         "steps": model.history[-1]["step"], "selected_step": selected,
                         "test_nll": mean, "se": se, "median": nll.median().item()})
            print(rows[-1], flush=True)
    command = "python benchmarks/batch_lr.py " + " ".join(sys.argv[1:])
    print(write(args.out, rows, list(rows[0]), command.strip()))


if __name__ == "__main__":
    main()
