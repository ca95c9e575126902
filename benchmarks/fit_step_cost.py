"""What one optimiser step of ``fit`` and ``fit_flow`` costs on one CPU thread.

Times ``sdescore.fit(x, net=MLPScoreNet(d, hidden=width), steps=N)`` and
``fit_flow(x, "nsf", steps=N)`` on N(0, I) data (10,000 rows), median of --repeats calls,
and reports milliseconds per step. Run from the project root (on two checkouts to compare
two versions of the training loop):

    python benchmarks/fit_step_cost.py [--steps 1000] [--repeats 3] [--out fit_step_cost]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sdescore  # noqa: E402
from sdescore.baselines import fit_flow  # noqa: E402
from sdescore.nets import MLPScoreNet  # noqa: E402
from common import timed, write  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="fit_step_cost")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for dim in (5, 10):
        x = torch.randn(10_000, dim)
        runs = {f"score, width {width}": lambda width=width: sdescore.fit(
                    x, net=MLPScoreNet(dim, hidden=width), steps=args.steps, progress=False)
                for width in (64, 128)}
        runs["nsf, width 128"] = lambda: fit_flow(x, "nsf", steps=args.steps, progress=False)
        for name, run in runs.items():
            _, seconds = timed(run, args.repeats)
            rows.append({"dim": dim, "model": name, "ms_per_step": 1e3 * seconds / args.steps})
            print(rows[-1], flush=True)
    command = "python benchmarks/fit_step_cost.py " + " ".join(sys.argv[1:])
    print(write(args.out, rows, list(rows[0]), command.strip()))


if __name__ == "__main__":
    main()
