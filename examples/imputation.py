"""
Imputation on a real table
==========================

Fill missing entries from the model's conditional.

.. code-block:: bash

    python examples/imputation.py [--data power] [--max-time 60] [--data-dir DIR]

Fits a score model to the training rows of a benchmark table (default: the UCI power-plant
set), hides one random entry of each test row, fills it with ``model.impute`` (the mean of
``--draws`` draws from p(missing | observed)) and prints the root-mean-square error against
the hidden values, beside two baselines: the column's training mean, and the conditional
mean under a single Gaussian fitted to the training rows (linear regression on the
observed entries). Needs the data files (see the benchmarks page); not run in the docs build.
"""
import argparse
import sys

import numpy as np

import sdescore
from sdescore.datasets import GaussianMixture, load_benchmark

parser = argparse.ArgumentParser(description="Impute hidden entries of a real table.")
parser.add_argument("--data", default="power")
parser.add_argument("--max-time", type=float, default=60.0, help="training budget, seconds")
parser.add_argument("--draws", type=int, default=10, help="imputations per row")
parser.add_argument("--rows", type=int, default=500, help="test rows to impute")
parser.add_argument("--data-dir", default=None,
                    help="folder of the tables (default: $SDESCORE_DATA)")
args = parser.parse_args()

try:
    split = load_benchmark(args.data, args.data_dir)
except (FileNotFoundError, ValueError) as err:
    sys.exit(f"The {args.data} data set is not here, so this example stops: {err}\n(here: --data-dir FOLDER, or set SDESCORE_DATA=FOLDER)")
model = sdescore.fit(split.train, "subvp", max_time=args.max_time, seed=0)

test = split.test[: args.rows]
rng = np.random.default_rng(0)
column = rng.integers(0, test.shape[1], size=len(test))  # one hidden entry per row
rows = np.arange(len(test))
hidden = test.copy()
hidden[rows, column] = np.nan

truth = test[rows, column]
guesses = {"score model": model.impute(hidden, draws=args.draws, seed=0, progress=True)
           .mean(0).numpy()[rows, column],
           "column mean": split.train.mean(0)[column]}
gaussian = GaussianMixture([split.train.mean(0)], [np.cov(split.train, rowvar=False)])
guesses["Gaussian conditional mean"] = np.array([
    gaussian.conditional(row[~np.isnan(row)], ~np.isnan(row)).means[0, 0].item()
    for row in hidden])
print(f"{args.data}: {len(test)} test rows, one hidden entry each; RMSE against the hidden "
      "values, overall and (by hidden column):")
for name, guess in guesses.items():
    by_column = [np.sqrt(np.mean((guess - truth)[column == c] ** 2)) for c in range(test.shape[1])]
    print(f"  {name:>26}: {np.sqrt(np.mean((guess - truth) ** 2)):.4g}   (" +
          ", ".join(f"{value:.3g}" for value in by_column) + ")")
