"""Small tables: is sdescore ever worse than the fitted Gaussian, and how does it compare
with scikit-learn's density estimators and a spline flow on the same rows?

Twelve tables of 100-1000 training rows and 4-30 columns: scikit-learn's bundled iris,
wine, breast cancer and diabetes (raw, with integer-valued columns), and subsets of the
shared data (power, protein, MAGIC, kin8nm, the raw red and white wine CSVs with their
rounded columns, Parkinsons). Every model is fitted to the same training rows and scored on
the same test rows (-log p in nats per row, in the table's own units):

- gaussian: the maximum-likelihood full-covariance Gaussian (a 1e-9 ridge on the
  correlations);
- gmm: scikit-learn's GaussianMixture, components (1-6) and covariance type (full, diag)
  chosen by 5-fold cross-validation, on standardised columns;
- kde: KernelDensity, bandwidth chosen by 5-fold cross-validation, on standardised columns;
- nsf: ``fit_flow(kind="nsf")`` for the budget;
- sdescore: ``sdescore.fit`` at its defaults for the budget and for a fifth of it.

Each row of the table gives the mean NLL, its standard error, and for sdescore the paired
difference from the Gaussian with its standard error (negative: sdescore better). Run from
the project root:

    python -m benchmarks.small_tables [--max-time 20] [--seeds 0 1] [--tables iris wine]
                                      [--threads 1] [--data-dir ../shared/data]
"""
from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import sdescore
from sdescore.baselines import fit_flow
from sdescore.datasets import load_benchmark
from sdescore.metrics import mean_and_se

from .common import rerun_command, write

TEST_ROWS = 500


def _sklearn_table(loader, **options):
    def load(data_dir):
        from sklearn.model_selection import train_test_split
        rows = loader(**options).data.astype(np.float64)
        return train_test_split(rows, test_size=0.3, random_state=0)
    return load


def _benchmark_subset(name: str, n: int):
    def load(data_dir):
        split = load_benchmark(name, data_dir)
        return split.train[:n].astype(np.float64), split.test[:TEST_ROWS].astype(np.float64)
    return load


def _text_subset(path: str, n: int, delimiter=None, skip_header=0, drop_last=False):
    """The first n rows of a text table to train on, the next TEST_ROWS to test on, after a
    fixed shuffle (seed 0), raw units."""
    def load(data_dir):
        rows = np.genfromtxt(Path(data_dir) / path, delimiter=delimiter,
                             skip_header=skip_header)
        rows = rows[:, :-1] if drop_last else rows
        rows = rows[np.random.default_rng(0).permutation(len(rows))]
        return rows[:n], rows[n:n + TEST_ROWS]
    return load


def _tables():
    from sklearn import datasets
    return {
        "iris": _sklearn_table(datasets.load_iris),
        "wine": _sklearn_table(datasets.load_wine),
        "breast-cancer": _sklearn_table(datasets.load_breast_cancer),
        "diabetes-raw": _sklearn_table(datasets.load_diabetes, scaled=False),
        "power-200": _benchmark_subset("power", 200),
        "power-1000": _benchmark_subset("power", 1000),
        "protein-300": _benchmark_subset("protein", 300),
        "magic-500": _benchmark_subset("magic", 500),
        "kin8nm-500": _text_subset("uci/kin8nm.txt", 500),
        "redwine-raw-300": _text_subset("wine/winequality-red.csv", 300, ",", 1, True),
        "whitewine-raw-1000": _text_subset("wine/winequality-white.csv", 1000, ",", 1, True),
        "parkinsons-400": _benchmark_subset("parkinsons", 400),
    }


def _standardised(train, test):
    loc, scale = train.mean(0), train.std(0)
    return (train - loc) / scale, (test - loc) / scale, -np.log(scale).sum()


def gaussian_nll(train, test, seed):
    """The maximum-likelihood Gaussian, computed on standardised columns with a ridge of
    1e-9 on their correlation matrix, so that a nearly collinear table (whitewine's density,
    breast cancer's radius, perimeter and area) stays positive definite."""
    from scipy.stats import multivariate_normal
    z_train, z_test, log_det = _standardised(train, test)
    covariance = np.cov(z_train.T, bias=True) + 1e-9 * np.eye(train.shape[1])
    return -(multivariate_normal(np.zeros(train.shape[1]), covariance).logpdf(z_test) + log_det)


def gmm_nll(train, test, seed):
    from sklearn.mixture import GaussianMixture
    from sklearn.model_selection import GridSearchCV
    z_train, z_test, log_det = _standardised(train, test)
    grid = {"n_components": list(range(1, 7)), "covariance_type": ["full", "diag"]}
    search = GridSearchCV(GaussianMixture(random_state=seed, reg_covar=1e-4), grid, cv=5)
    search.fit(z_train)
    return -(search.best_estimator_.score_samples(z_test) + log_det)


def kde_nll(train, test, seed):
    from sklearn.model_selection import GridSearchCV
    from sklearn.neighbors import KernelDensity
    z_train, z_test, log_det = _standardised(train, test)
    search = GridSearchCV(KernelDensity(), {"bandwidth": np.logspace(-1.5, 0.5, 21)}, cv=5)
    search.fit(z_train)
    return -(search.best_estimator_.score_samples(z_test) + log_det)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-time", type=float, default=20.0,
                        help="training seconds of sdescore and NSF (sdescore also at a fifth)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--tables", nargs="+", default=None, help="default: all twelve")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-dir", default=None, help="default: $SDESCORE_DATA")
    parser.add_argument("--out", default="small_tables")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    tables = _tables()
    rows = []
    for name in args.tables or list(tables):
        try:
            train, test = tables[name](args.data_dir)
        except (FileNotFoundError, ValueError, OSError) as err:
            print(f"skipping {name}: {err}", flush=True)
            continue
        gaussian = gaussian_nll(train, test, 0)
        for seed in args.seeds:
            runs = {"gaussian": lambda: (gaussian, None),
                    "gmm": lambda: (gmm_nll(train, test, seed), None),
                    "kde": lambda: (kde_nll(train, test, seed), None),
                    "nsf": lambda: _trained(fit_flow(train, "nsf", max_time=args.max_time,
                                                     seed=seed, progress=False), test),
                    "sdescore": lambda: _trained(sdescore.fit(train, max_time=args.max_time,
                                                              seed=seed, progress=False), test),
                    "sdescore/5": lambda: _trained(sdescore.fit(
                        train, max_time=args.max_time / 5, seed=seed, progress=False), test)}
            for model, run in runs.items():
                start = time.perf_counter()
                nll, selected = run()
                mean, se = mean_and_se(torch.as_tensor(nll))
                difference, paired_se = mean_and_se(torch.as_tensor(nll - gaussian))
                rows.append({"table": name, "n": len(train), "d": train.shape[1],
                             "test": len(test), "seed": seed, "model": model,
                             "seconds": time.perf_counter() - start, "mean_nll": mean,
                             "se": se, "minus_gaussian": difference, "paired_se": paired_se,
                             "selected_step": selected})
                print(rows[-1], flush=True)
    columns = ["table", "n", "d", "test", "seed", "model", "mean_nll", "se", "minus_gaussian",
               "paired_se", "selected_step"]
    command = rerun_command("small_tables")
    print(write(args.out, rows, columns, command))


def _trained(model, test):
    """(-log p of the test rows, the selected step or None) of a fitted model."""
    chosen = [r["step"] for r in model.history if r.get("selected")]
    nll = -model.log_prob(torch.as_tensor(test)).double().numpy()
    return nll, chosen[0] if chosen else None


if __name__ == "__main__":
    main()
