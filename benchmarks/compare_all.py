"""Does sdescore's exact test NLL beat normalizing flows at equal budget, set by set?

Three views of one question, each training every model for the same wall-clock budget on the
same rows and scoring it on the same test rows. Run from the project root:

    python -m benchmarks.compare_all [--max-time 60] [--sets redwine digits] [--models score nsf]
                                     [--threads 1] [--seed 0] [--method dpm]
    python -m benchmarks.compare_all --paired mixture2:realnvp parkinsons:nsf [--seeds 0 1]

- The nine sets (default): ``sdescore.compare`` on every benchmark set
  (``sdescore.datasets.load_benchmark``); one table (results/compare_all.md, .json) and one
  figure (.png). Image-only models (glow) run only on sets whose rows are images (digits),
  where the score model sees images too; --method sets the score model's log_prob method.
- --paired SET:FLOW: is a lead more than noise? The mean and paired standard error of the
  per-row NLL difference (sdescore minus the flow; negative: sdescore ahead) on the first
  1000 test rows, at each --seeds seed.

Small tables against the fitted Gaussian and scikit-learn's estimators are
``benchmarks.small_tables``.
"""
from __future__ import annotations

import argparse
import warnings

import torch

import sdescore
from sdescore.baselines import fit_flow
from sdescore.comparison import IMAGE_MODELS, MODELS, compare, write_report
from sdescore.datasets import BENCHMARK_SETS, load_benchmark
from sdescore.metrics import mean_and_se
from sdescore.solvers.likelihood import LIKELIHOODS

from .common import RESULTS, machine, rerun_command, write


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
    return write_report(rows, RESULTS / (args.out or "compare_all"), rerun_command("compare_all"),
                        machine())


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
    return write(args.out or "paired_difference", rows, list(rows[0]),
                 rerun_command("compare_all"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paired", nargs="+", metavar="SET:FLOW",
                        help="paired per-row differences against these flows")
    parser.add_argument("--max-time", type=float, default=60.0,
                        help="training seconds per model")
    parser.add_argument("--sets", nargs="+", default=list(BENCHMARK_SETS))
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--seed", type=int, default=0, help="training seed of every model")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="--paired seeds")
    parser.add_argument("--method", default="ode", choices=list(LIKELIHOODS),
                        help="the score model's log_prob method")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: 1 for --paired)")
    parser.add_argument("--data-dir", default=None, help="default: $SDESCORE_DATA")
    parser.add_argument("--out", default=None, help="results file name")
    args = parser.parse_args(argv)
    threads = args.threads or (1 if args.paired else None)
    if threads:
        torch.set_num_threads(threads)
    warnings.simplefilter("ignore")
    view = paired if args.paired else nine_sets
    print(view(args))


if __name__ == "__main__":
    main()
