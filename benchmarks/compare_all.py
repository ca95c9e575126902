"""Does sdescore's exact test NLL beat normalizing flows at equal budget, set by set?

Trains each model for the same wall-clock budget on the same split of every benchmark set
(sdescore.datasets.load_benchmark) and writes one table (results/compare_all.md and .json)
and one figure (results/compare_all.png). Run from the project root:

    python benchmarks/compare_all.py [--budget 60] [--sets redwine digits] [--models score nsf]
                                     [--threads 1] [--seed 0] [--solver dpm]

Image-only models (glow) run only on the sets whose rows are images (digits), where the
score model sees images too (fit's U-Net); --solver sets the score model's log_prob solver.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from sdescore.compare import IMAGE_MODELS, MODELS, SOLVERS, compare, write_report  # noqa: E402
from sdescore.datasets import BENCHMARK_SETS, load_benchmark  # noqa: E402
from common import DATA_DIR, RESULTS, machine  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--sets", nargs="+", default=list(BENCHMARK_SETS))
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--data-dir", default=str(DATA_DIR))
    parser.add_argument("--out", default="compare_all")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--seed", type=int, default=0, help="training seed of every model")
    parser.add_argument("--solver", default="dopri5", choices=sorted(SOLVERS),
                        help="the score model's log_prob solver")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for name in args.sets:
        try:
            split = load_benchmark(name, args.data_dir)
        except FileNotFoundError as err:
            print(f"skipping {name}: {err}")
            continue
        models = [m for m in args.models if m not in IMAGE_MODELS or split.image_shape]
        for row in compare(split, models, max_time=args.budget, seed=args.seed,
                           solver=args.solver):
            print(row, flush=True)
            rows.append(row)
    command = "python benchmarks/compare_all.py " + " ".join(sys.argv[1:])
    print(write_report(rows, RESULTS / args.out, command.strip(), machine()))


if __name__ == "__main__":
    main()
