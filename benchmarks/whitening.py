"""Would a full-covariance (PCA-whitening) data map help on the raw, correlated sets?

fit and fit_flow standardise each column alone. power, protein and MAGIC are raw columns
with strong correlations, and there a neural spline flow beats sdescore (compare_all). Here
both models train for the same budget (1 torch thread) on the raw columns and on the same
columns PCA-whitened with the training rows' mean and covariance, z = (x - mean) V L^-1/2;
the whitened model's log-density in the data's coordinates adds log |det V L^-1/2| =
-(1/2) sum log L. Test NLL in nats (1000 test rows at most). Run from the project root:

    python benchmarks/whitening.py [--sets power protein magic] [--models score nsf]
        [--budget 60] [--seed 0]
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
from common import write  # noqa: E402

FITS = {"score": lambda x, budget, seed: sdescore.fit(x, "subvp", max_time=budget, seed=seed,
                                                        progress=False),
        "nsf": lambda x, budget, seed: fit_flow(x, "nsf", max_time=budget, seed=seed,
                                                progress=False)}


def whitening(train: torch.Tensor):
    """(mean, matrix, log|det matrix|) of the map z = (x - mean) @ matrix that takes the
    rows of ``train`` (n, d) to zero mean and identity covariance."""
    mean = train.mean(0)
    eigenvalues, eigenvectors = torch.linalg.eigh(torch.cov((train - mean).T))
    return mean, eigenvectors / eigenvalues.sqrt(), -0.5 * eigenvalues.log().sum().item()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sets", nargs="+", default=["power", "protein", "magic"])
    parser.add_argument("--models", nargs="+", default=list(FITS), choices=list(FITS))
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data_dir = Path(__file__).resolve().parents[2] / "shared" / "data"
    rows = []
    for name in args.sets:
        split = load_benchmark(name, data_dir)
        train = torch.as_tensor(split.train, dtype=torch.float64)
        test = torch.as_tensor(split.test[:1000], dtype=torch.float64)
        mean, matrix, log_det = whitening(train)
        variants = {"per-column (default)": (train, test, 0.0),
                    "PCA-whitened": ((train - mean) @ matrix, (test - mean) @ matrix, log_det)}
        for model_name in args.models:
            for variant, (rows_train, rows_test, jacobian) in variants.items():
                model = FITS[model_name](rows_train.float(), args.budget, args.seed)
                nll = -(model.log_prob(rows_test.float()).double() + jacobian)
                rows.append({"data": name, "model": model_name, "data_map": variant,
                             "steps": model.history[-1]["step"], "test_nll": nll.mean().item(),
                             "test_nll_se": (nll.std() / len(nll) ** 0.5).item(),
                             "test_nll_median": nll.median().item()})
                print(rows[-1], flush=True)
    command = "python benchmarks/whitening.py " + " ".join(sys.argv[1:])
    print(write("whitening", rows, list(rows[0]), command.strip()))


if __name__ == "__main__":
    main()
