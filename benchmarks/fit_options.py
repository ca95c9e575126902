"""Which value of a fit option gives the best test NLL at a fixed budget?

One script for every one-option sweep (batch size and lr, schedule, width, time input, ...).
For each set, model, option group and seed: ``sdescore.fit(train, "subvp", **options)``
(model "score") or ``fit_flow(train, FLOW, **options)`` (a flow kind) for --max-time seconds
on one torch thread, then the exact test NLL on the first 1000 test rows (the score model's
by ``log_prob(method=--method)``) with its standard error and median. Each --fit-option is
one group of comma-separated NAME=VALUE keywords of the fit (VALUE a Python literal where it
is one); ``net.NAME=VALUE`` builds the score model's MLP with that option
(``MLPScoreNet(d, NAME=VALUE)``, e.g. ``net.hidden=64``); ``-`` is the defaults. Run from the
project root:

    python -m benchmarks.fit_options --sets power magic --models score \
        --fit-option - batch_size=256,lr=2e-3 lr_schedule=constant --seeds 0 1 --max-time 60
    python -m benchmarks.fit_options --models score nsf --fit-option - hidden=64 net.hidden=64
"""
from __future__ import annotations

import argparse
import itertools
import warnings

import torch

import sdescore
from sdescore.baselines import FLOWS, fit_flow
from sdescore.datasets import load_benchmark
from sdescore.metrics import mean_and_se
from sdescore.nets import MLPScoreNet

from .common import fit_options, rerun_command, write


def fit_with(model: str, train, options: dict, budget: float, seed: int):
    """One fit of ``model`` ("score" or a flow kind) with the group's ``options``."""
    options = dict(options)
    net = {key[4:]: options.pop(key) for key in list(options) if key.startswith("net.")}
    if model == "score":
        if net:
            torch.manual_seed(seed)
            options["net"] = MLPScoreNet(train.shape[1], **net)
        return sdescore.fit(train, "subvp", max_time=budget, seed=seed, progress=False,
                            **options)
    return fit_flow(train, model, max_time=budget, seed=seed, progress=False, **options)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=["power", "protein", "magic"])
    parser.add_argument("--models", nargs="+", default=["score"],
                        choices=["score", *FLOWS])
    parser.add_argument("--fit-option", nargs="+", default=["-"], dest="groups",
                        help="option groups: NAME=VALUE[,NAME=VALUE...], '-' for defaults")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--max-time", type=float, default=60.0, help="seconds per fit")
    parser.add_argument("--method", default="ode", help="the score model's log_prob method")
    parser.add_argument("--data-dir", default=None, help="default: $SDESCORE_DATA")
    parser.add_argument("--out", default="fit_options")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    rows = []
    for name in args.sets:
        split = load_benchmark(name, args.data_dir)
        test = torch.as_tensor(split.test[:1000])
        for model, group, seed in itertools.product(args.models, args.groups, args.seeds):
            options = {} if group == "-" else fit_options(group.split(","))
            fitted = fit_with(model, split.train, options, args.max_time, seed)
            log_p = (fitted.log_prob(test, method=args.method) if model == "score"
                     else fitted.log_prob(test))
            mean, se = mean_and_se(-log_p.double())
            rows.append({"data": name, "model": model, "options": group, "seed": seed,
                         "steps": fitted.history[-1]["step"], "test_nll": mean,
                         "test_nll_se": se, "test_nll_median": (-log_p).median().item()})
            print(rows[-1], flush=True)
    command = rerun_command("fit_options", argv)
    print(write(args.out, rows, list(rows[0]), command))


if __name__ == "__main__":
    main()
