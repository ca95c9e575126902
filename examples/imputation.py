"""Imputation on a real table: fill missing entries from the model's conditional.

    python examples/imputation.py [--data power] [--seconds 60] [--data-dir ../shared/data]

Fits a score model to the training rows of a benchmark table (default: the UCI power-plant
set), hides one random entry of each test row, fills it with ``model.impute`` (the mean of
``--draws`` draws from p(missing | observed)) and prints the root-mean-square error against
the hidden values, beside two baselines: the column's training mean, and the conditional
mean under a single Gaussian fitted to the training rows (linear regression on the
observed entries).
"""
import argparse

import numpy as np

import sdescore
from sdescore.datasets import GaussianMixture, load_benchmark

parser = argparse.ArgumentParser(description="Impute hidden entries of a real table.")
parser.add_argument("--data", default="power")
parser.add_argument("--seconds", type=float, default=60.0, help="training budget")
parser.add_argument("--draws", type=int, default=10, help="imputations per row")
parser.add_argument("--rows", type=int, default=500, help="test rows to impute")
parser.add_argument("--data-dir", default="../shared/data")
args = parser.parse_args()

split = load_benchmark(args.data, args.data_dir)
model = sdescore.fit(split.train, "subvp", max_time=args.seconds, seed=0)

test = split.test[: args.rows]
rng = np.random.default_rng(0)
column = rng.integers(0, test.shape[1], size=len(test))  # one hidden entry per row
rows = np.arange(len(test))
hidden = test.copy()
hidden[rows, column] = np.nan

filled = model.impute(hidden, draws=args.draws, seed=0, progress=True).mean(0).numpy()
truth = test[rows, column]
model_rmse = np.sqrt(np.mean((filled[rows, column] - truth) ** 2))
mean_rmse = np.sqrt(np.mean((split.train.mean(0)[column] - truth) ** 2))
print(f"{args.data}: {len(test)} rows, one hidden entry each; RMSE of the score model's "
      f"imputation {model_rmse:.4g} against {mean_rmse:.4g} for the column mean "
      f"({model_rmse / mean_rmse:.0%} of it)")
per_column = {c: (np.sqrt(np.mean((filled[rows, column][column == c] - truth[column == c]) ** 2)),
                  np.sqrt(np.mean((split.train.mean(0)[c] - truth[column == c]) ** 2)))
              for c in range(test.shape[1])}
for c, (ours, baseline) in per_column.items():
    print(f"  column {c}: score model {ours:.4g}, column mean {baseline:.4g}")
