"""Would another data map help on the raw, skewed and correlated sets?

fit and fit_flow standardise each column alone. power, protein and MAGIC are raw columns,
skewed and correlated, and there a neural spline flow beats sdescore (compare_all). Here each
model trains for the same budget (1 torch thread) on the same training rows under three maps
fitted to those rows: the default (each column standardised inside the model), PCA-whitening
z = (x - mean) V L^-1/2, and a per-column Yeo-Johnson power transform (sklearn's
PowerTransformer, lambda by maximum likelihood) of the standardised columns u. A model's
log-density in the data's coordinates adds the map's log |det Jacobian|: -(1/2) sum log L
for the whitening, sum_j [(lambda_j - 1) sign(u_j) log(1 + |u_j|) - log std_j] for
Yeo-Johnson. Test NLL in nats (1000 test
rows at most). Run from the project root:

    python benchmarks/data_maps.py [--sets power protein magic] [--models score nsf]
        [--maps per-column pca-whitened yeo-johnson] [--budget 60] [--seed 0] [--out data_maps]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from sklearn.preprocessing import PowerTransformer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sdescore  # noqa: E402
from sdescore.baselines import fit_flow  # noqa: E402
from sdescore.datasets import load_benchmark  # noqa: E402
from common import DATA_DIR, write  # noqa: E402

FITS = {"score": lambda x, budget, seed: sdescore.fit(x, "subvp", max_time=budget, seed=seed,
                                                        progress=False),
        "nsf": lambda x, budget, seed: fit_flow(x, "nsf", max_time=budget, seed=seed,
                                                progress=False)}


def per_column(train: torch.Tensor):
    """The identity: the models standardise each column themselves."""
    return lambda x: (x, torch.zeros(x.shape[0], dtype=x.dtype))


def pca_whitened(train: torch.Tensor):
    """z = (x - mean) @ V L^-1/2 from the covariance V L V^T of ``train`` (n, d)."""
    mean = train.mean(0)
    eigenvalues, eigenvectors = torch.linalg.eigh(torch.cov((train - mean).T))
    matrix, log_det = eigenvectors / eigenvalues.sqrt(), -0.5 * eigenvalues.log().sum()
    return lambda x: ((x - mean) @ matrix, log_det.expand(x.shape[0]))


def yeo_johnson(train: torch.Tensor):
    """Per-column Yeo-Johnson transform of the standardised columns, lambda fitted by
    maximum likelihood on ``train`` (raw columns near 1000 would collapse in float32)."""
    mean, std = train.mean(0), train.std(0)
    transform = PowerTransformer(method="yeo-johnson", standardize=False)
    transform.fit(((train - mean) / std).numpy())
    lambdas = torch.as_tensor(transform.lambdas_, dtype=train.dtype)

    def apply(x):
        u = (x - mean) / std
        z = torch.as_tensor(transform.transform(u.numpy()), dtype=x.dtype)
        log_slope = (lambdas - 1) * u.sign() * u.abs().log1p() - std.log()
        return z, log_slope.sum(1)
    return apply


MAPS = {"per-column": per_column, "pca-whitened": pca_whitened, "yeo-johnson": yeo_johnson}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sets", nargs="+", default=["power", "protein", "magic"])
    parser.add_argument("--models", nargs="+", default=list(FITS), choices=list(FITS))
    parser.add_argument("--maps", nargs="+", default=list(MAPS), choices=list(MAPS))
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="data_maps")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name in args.sets:
        split = load_benchmark(name, DATA_DIR)
        train = torch.as_tensor(split.train, dtype=torch.float64)
        test = torch.as_tensor(split.test[:1000], dtype=torch.float64)
        for map_name in args.maps:
            data_map = MAPS[map_name](train)
            mapped_train, _ = data_map(train)
            mapped_test, log_det = data_map(test)
            for model_name in args.models:
                model = FITS[model_name](mapped_train.float(), args.budget, args.seed)
                nll = -(model.log_prob(mapped_test.float()).double() + log_det)
                rows.append({"data": name, "model": model_name, "data_map": map_name,
                             "steps": model.history[-1]["step"], "test_nll": nll.mean().item(),
                             "test_nll_se": (nll.std() / len(nll) ** 0.5).item(),
                             "test_nll_median": nll.median().item()})
                print(rows[-1], flush=True)
    command = "python benchmarks/data_maps.py " + " ".join(sys.argv[1:])
    print(write(args.out, rows, list(rows[0]), command.strip()))


if __name__ == "__main__":
    main()
