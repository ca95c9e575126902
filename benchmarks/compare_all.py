"""Does sdescore's exact test NLL beat normalizing flows at equal budget, set by set?

Three views of one question, each training every model for the same wall-clock budget on the
same rows and scoring it on the same test rows. Run from the project root:

    python -m benchmarks.compare_all [--max-time 60] [--sets redwine digits] [--models score nsf]
                                     [--threads 1] [--seed 0] [--method dpm]
    python -m benchmarks.compare_all --paired mixture2:realnvp parkinsons:nsf [--seeds 0 1]
    python -m benchmarks.compare_all --small-tables [--sizes 100 1000] [--max-time 10]
                                     [--fit-option - select_by=loss]

- The nine sets (default): ``sdescore.compare`` on every benchmark set
  (``sdescore.datasets.load_benchmark``); one table (results/compare_all.md, .json) and one
  figure (.png). Image-only models (glow) run only on sets whose rows are images (digits),
  where the score model sees images too; --method sets the score model's log_prob method.
- --paired SET:FLOW: is a lead more than noise? The mean and paired standard error of the
  per-row NLL difference (sdescore minus the flow; negative: sdescore ahead) on the first
  1000 test rows, at each --seeds seed.
- --small-tables: scikit-learn's wine (133 training rows, 45 test), the first n training rows
  of power, protein and MAGIC for each --sizes n, and RedWine, WhiteWine, Parkinsons (up to
  the largest size), against the full-covariance Gaussian fitted to the same rows; sdescore
  once per --fit-option group, NSF and MAF at their defaults.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np
import torch

import sdescore
from sdescore.baselines import fit_flow
from sdescore.comparison import IMAGE_MODELS, MODELS, compare, write_report
from sdescore.datasets import BENCHMARK_SETS, load_benchmark
from sdescore.metrics import mean_and_se
from sdescore.oracle import GaussianMixture
from sdescore.solvers.likelihood import LIKELIHOODS

from .common import RESULTS, fit_options, machine, write


def nine_sets(args) -> str:
    rows = []
    for name in args.sets:
        try:
            split = load_benchmark(name, args.data_dir)
        except (FileNotFoundError, ValueError) as err:
            print(f"skipping {name}: {err}")
            continue
        models = [m for m in args.models if m not in IMAGE_MODELS or split.image_shape]
        for row in compare(split, models, max_time=args.max_time, seed=args.seed,
                           method=args.method):
            print(row, flush=True)
            rows.append(row)
    return write_report(rows, RESULTS / (args.out or "compare_all"), _command(), machine())


def paired(args) -> str:
    rows = []
    for pair in args.paired:
        name, flow = pair.split(":")
        split = load_benchmark(name, args.data_dir)
        test = torch.as_tensor(split.test[:1000])
        for seed in args.seeds:
            score = sdescore.fit(split.train, "subvp", max_time=args.max_time, seed=seed,
                                 progress=False)
            baseline = fit_flow(split.train, flow, max_time=args.max_time, seed=seed,
                                progress=False)
            nll_score = -score.log_prob(test, method=args.method).double()
            nll_flow = -baseline.log_prob(test).double()
            (score_mean, score_se), (flow_mean, flow_se) = (mean_and_se(nll_score),
                                                            mean_and_se(nll_flow))
            difference, difference_se = mean_and_se(nll_score - nll_flow)
            rows.append({"data": name, "flow": flow, "seed": seed, "sdescore_nll": score_mean,
                         "sdescore_se": score_se, "flow_nll": flow_mean, "flow_se": flow_se,
                         "difference": difference, "paired_se": difference_se})
            print(rows[-1], flush=True)
    return write(args.out or "paired_difference", rows, list(rows[0]), _command())


def small_tables(args) -> str:
    columns = ["table", "n", "d", "model", "fit_s", "steps", "selected", "mean_nll",
               "median_nll"]
    rows = []
    for name, train, test in _small_tables(args.sizes, args.data_dir):
        base = {"table": name, "n": len(train), "d": train.shape[1]}
        nll = _gaussian_nll(train, test)
        rows.append({**base, "model": "gaussian", "fit_s": 0.0, "steps": 0, "selected": "-",
                     "mean_nll": float(nll.mean()), "median_nll": float(np.median(nll))})
        print(rows[-1], flush=True)
        runs = [("sdescore", group) for group in args.groups] + [(k, "-") for k in ("nsf", "maf")]
        for model_name, group in runs:
            options = {} if group == "-" else fit_options(group.split(","))
            start = time.perf_counter()
            if model_name == "sdescore":
                model = sdescore.fit(train, max_time=args.max_time, seed=args.seed,
                                     progress=False, **options)
            else:
                model = fit_flow(train, model_name, max_time=args.max_time, seed=args.seed,
                                 progress=False)
            fit_s = time.perf_counter() - start
            chosen = [r["step"] for r in model.history if r.get("selected")]
            nll = -model.log_prob(test).double().numpy()
            label = model_name if group == "-" else f"{model_name} {group}"
            rows.append({**base, "model": label, "fit_s": fit_s,
                         "steps": model.history[-1]["step"],
                         "selected": str(chosen[0] if chosen else None),
                         "mean_nll": float(nll.mean()), "median_nll": float(np.median(nll))})
            print(rows[-1], flush=True)
    return write(args.out or f"small_tables_{args.max_time:g}s", rows, columns, _command())


def _small_tables(sizes, data_dir):
    """(name, train, test) float64 arrays."""
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(load_wine().data, test_size=45, random_state=0)
    yield "sklearn-wine", train, test
    for name in ("power", "protein", "magic"):
        split = load_benchmark(name, data_dir)
        for n in sizes:
            yield name, split.train[:n].astype(np.float64), split.test.astype(np.float64)
    for name in ("redwine", "whitewine", "parkinsons"):
        split = load_benchmark(name, data_dir)
        yield name, split.train[:max(sizes)].astype(np.float64), split.test.astype(np.float64)


def _gaussian_nll(train, test):
    """-log p of the test rows under the full-covariance Gaussian fitted by maximum
    likelihood (ridge 1e-6 x mean variance)."""
    cov = np.cov(train, rowvar=False, bias=True)
    cov = cov + 1e-6 * np.trace(cov) / len(cov) * np.eye(len(cov))
    law = GaussianMixture([train.mean(0).tolist()], [cov.tolist()])
    return -law.log_prob(torch.as_tensor(test)).numpy()


def _command() -> str:
    return ("python -m benchmarks.compare_all " + " ".join(sys.argv[1:])).strip()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--paired", nargs="+", metavar="SET:FLOW",
                      help="paired per-row differences against these flows")
    mode.add_argument("--small-tables", action="store_true", help="the small-table suite")
    parser.add_argument("--max-time", type=float, default=None,
                        help="training seconds per model (default 60; small tables 10)")
    parser.add_argument("--sets", nargs="+", default=list(BENCHMARK_SETS))
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--seed", type=int, default=0, help="training seed of every model")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="--paired seeds")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000],
                        help="--small-tables training rows")
    parser.add_argument("--fit-option", nargs="+", default=["-"], dest="groups",
                        help="--small-tables: sdescore once per NAME=VALUE[,...] group")
    parser.add_argument("--method", default="ode", choices=list(LIKELIHOODS),
                        help="the score model's log_prob method")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: 1 for --paired and --small-tables)")
    parser.add_argument("--data-dir", default=None, help="default: $SDESCORE_DATA")
    parser.add_argument("--out", default=None, help="results file name")
    args = parser.parse_args(argv)
    if args.max_time is None:
        args.max_time = 10.0 if args.small_tables else 60.0
    threads = args.threads or (1 if args.paired or args.small_tables else None)
    if threads:
        torch.set_num_threads(threads)
    warnings.simplefilter("ignore")
    view = paired if args.paired else small_tables if args.small_tables else nine_sets
    print(view(args))


if __name__ == "__main__":
    main()
