"""Held-out NLL on small tables (issue 16): sdescore, NSF, MAF and a full-covariance Gaussian,
each trained on the same rows for the same wall-clock budget, scored on the same test rows.

Tables: scikit-learn's wine (133 training rows, 45 test, as the issue's reproducer), the
first n training rows of power, protein and MAGIC for each --sizes n (test: the set's test
rows), and RedWine, WhiteWine, Parkinsons (their training splits, up to the largest size).
sdescore runs choosing its weights by the held-out NLL bound (the default), by the training
loss ("sdescore-select-by-loss"), or without held-out rows ("sdescore-no-validation").

    python benchmarks/small_tables.py --budget 10 --sizes 100 1000
    python benchmarks/small_tables.py --budget 10 --models sdescore --widths 0 32 128
    python benchmarks/small_tables.py --budget 10 --models sdescore --weight-decays 0 0.01 0.1
    python benchmarks/small_tables.py --budget 10 --models sdescore --dropouts 0 0.1 0.3
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sdescore  # noqa: E402
from sdescore.baselines import fit_flow  # noqa: E402
from sdescore.datasets import load_benchmark  # noqa: E402
from sdescore.nets import MLPScoreNet  # noqa: E402
from sdescore.oracle import GaussianMixture  # noqa: E402
from common import DATA_DIR, write  # noqa: E402

COLUMNS = ["table", "n", "d", "model", "fit_s", "steps", "selected", "mean_nll", "median_nll"]


def tables(sizes):
    """(name, train, test) float64 arrays."""
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(load_wine().data, test_size=45, random_state=0)
    yield "sklearn-wine", train, test
    for name in ("power", "protein", "magic"):
        split = load_benchmark(name, DATA_DIR)
        for n in sizes:
            yield name, split.train[:n].astype(np.float64), split.test.astype(np.float64)
    for name in ("redwine", "whitewine", "parkinsons"):
        split = load_benchmark(name, DATA_DIR)
        yield name, split.train[:max(sizes)].astype(np.float64), split.test.astype(np.float64)


def gaussian_nll(train, test):
    """The full-covariance Gaussian fitted by maximum likelihood (ridge 1e-6 x mean variance)."""
    cov = np.cov(train, rowvar=False, bias=True)
    cov = cov + 1e-6 * np.trace(cov) / len(cov) * np.eye(len(cov))
    law = GaussianMixture([train.mean(0).tolist()], [cov.tolist()])
    return -law.log_prob(torch.as_tensor(test)).numpy()


def run(model_name, train, budget, seed, width=0, weight_decay=0.0, dropout=None):
    start = time.perf_counter()
    if model_name.startswith("sdescore"):
        options = {"sdescore": {}, "sdescore-select-by-loss": {"select_by": "loss"},
                   "sdescore-no-validation": {"validation": 0}}[model_name]
        if width or dropout is not None:
            torch.manual_seed(seed)  # the same initial weights for every dropout
            options["net"] = MLPScoreNet(train.shape[1], hidden=width or None,
                                         dropout=dropout or 0.0)
        if weight_decay:
            options["weight_decay"] = weight_decay
        model = sdescore.fit(train, max_time=budget, seed=seed, progress=False, **options)
    else:
        model = fit_flow(train, model_name, max_time=budget, seed=seed, progress=False)
    fit_s = time.perf_counter() - start
    chosen = [r["step"] for r in model.history if r.get("selected")]
    return model, fit_s, model.history[-1]["step"], chosen[0] if chosen else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=10.0, help="seconds per fit")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", nargs="+",
                        default=["sdescore", "sdescore-select-by-loss", "nsf", "maf"])
    parser.add_argument("--widths", type=int, nargs="+", default=[0],
                        help="sdescore network widths (0: the default width)")
    parser.add_argument("--weight-decays", type=float, nargs="+", default=[0.0],
                        help="sdescore weight decays (AdamW; 0: Adam)")
    parser.add_argument("--dropouts", type=float, nargs="+", default=[None],
                        help="sdescore MLP dropout on each residual block (default: none given)")
    parser.add_argument("--out", help="results file name (default small_tables_<budget>s)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    rows = []
    for name, train, test in tables(args.sizes):
        nll = gaussian_nll(train, test)
        base = {"table": name, "n": len(train), "d": train.shape[1]}
        rows.append({**base, "model": "gaussian", "fit_s": 0.0, "steps": 0, "selected": "-",
                     "mean_nll": float(nll.mean()), "median_nll": float(np.median(nll))})
        print(rows[-1], flush=True)
        runs = [(m, w, decay, drop) for m in args.models
                for w in (args.widths if m.startswith("sdescore") else [0])
                for decay in (args.weight_decays if m.startswith("sdescore") else [0.0])
                for drop in (args.dropouts if m.startswith("sdescore") else [None])]
        for model_name, width, decay, drop in runs:
            model, fit_s, steps, chosen = run(model_name, train, args.budget, args.seed, width,
                                              decay, drop)
            nll = -model.log_prob(test).double().numpy()
            label = (model_name + (f"-w{width}" if width else "")
                     + (f"-wd{decay:g}" if decay else "")
                     + (f"-dropout{drop:g}" if drop is not None else ""))
            rows.append({**base, "model": label, "fit_s": fit_s, "steps": steps,
                         "selected": str(chosen), "mean_nll": float(nll.mean()),
                         "median_nll": float(np.median(nll))})
            print(rows[-1], flush=True)
    command = "python benchmarks/small_tables.py " + " ".join(argv or sys.argv[1:])
    print(write(args.out or f"small_tables_{args.budget:g}s", rows, COLUMNS, command))


if __name__ == "__main__":
    main()
