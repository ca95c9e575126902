"""Which training batch, learning rate and lr schedule give the best test NLL at a fixed budget?

On a CPU a small score network is dominated by fixed per-step costs, so a larger batch
costs little more than a small one. For each set, model, BATCH:LR pair and schedule:
`fit(train, "subvp", batch_size=BATCH, lr=LR, lr_schedule=SCHEDULE, max_time=budget,
seed=seed)` (model "score"; a pair "default:default" leaves batch and lr to fit) or
`fit_flow(train, "nsf", ...)` with the same options (model "nsf"), on one torch thread,
defaults otherwise, then the test NLL on the first 1000 test rows (the score model's by
`log_prob(solver="dpm")`, within 0.01 nats of the default solver on these sizes,
BENCHMARKS.md "Exponential integrators"). Run from the project root:

    python benchmarks/batch_lr.py [--sets power magic] [--configs 256:2e-3 1024:6e-3]
        [--schedules cosine constant] [--models score nsf] [--budget 60] [--seed 0]
        [--out batch_lr]
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
    parser.add_argument("--sets", nargs="+", default=["power", "protein", "magic"])
    parser.add_argument("--configs", nargs="+", default=["256:2e-3", "1024:6e-3"],
                        help="BATCH:LR pairs ('default' for fit's own)")
    parser.add_argument("--schedules", nargs="+", default=["cosine"])
    parser.add_argument("--models", nargs="+", default=["score"], choices=["score", "nsf"])
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="batch_lr")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name in args.sets:
        split = load_benchmark(name, DATA_DIR)
        test = torch.as_tensor(split.test[:1000])
        for model_name in args.models:
            for config in args.configs:
                batch, lr = config.split(":")
                for schedule in args.schedules:
                    options = {"lr_schedule": schedule, "max_time": args.budget,
                               "seed": args.seed, "progress": False}
                    if batch != "default":
                        options["batch_size"] = int(batch)
                    if lr != "default":
                        options["lr"] = float(lr)
                    if model_name == "score":
                        model = sdescore.fit(split.train, "subvp", **options)
                        nll = -model.log_prob(test, solver="dpm").double()
                    else:
                        model = fit_flow(split.train, "nsf", **options)
                        nll = -model.log_prob(test).double()
                    mean, se = mean_and_se(nll)
                    selected = next(r["step"] for r in model.history if r.get("selected"))
                    rows.append({"data": name, "model": model_name, "batch": batch, "lr": lr,
                                 "schedule": schedule, "steps": model.history[-1]["step"],
                                 "selected_step": selected, "test_nll": mean, "se": se,
                                 "median": nll.median().item()})
                    print(rows[-1], flush=True)
    command = "python benchmarks/batch_lr.py " + " ".join(sys.argv[1:])
    print(write(args.out, rows, list(rows[0]), command.strip()))


if __name__ == "__main__":
    main()
