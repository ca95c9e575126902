"""How fast is the exact log_prob of a trained model beside a flow's, and how exact per row?

Fits sdescore (``fit``) and NSF (``fit_flow``) for --max-time seconds each on one torch
thread, on scikit-learn's breast-cancer table (569 rows x 30 columns, 20% test), on its
8 x 8 digits as 1 x 8 x 8 images (uint8 levels 17; the score model's U-Net) and on the UCI
power-plant table (``load_benchmark("power")``, read from --data-dir or $SDESCORE_DATA).
Then, on the same --rows test rows (table, digits, power): rows/s of the score model's
``log_prob`` at its defaults, with ``method="dpm"`` and, with --extra-atol, on a float64
copy at that atol, and of NSF's ``log_prob``; each score recipe's error per row against a
float64 solve of the same network (per-row dopri5 at rtol = atol = --truth-tol, default
1e-8) on the first --truth-rows of them (default: all), mean and worst, and the share of
those rows whose error is at most the reported ``solver_error``. With --widths, each table
(not the digits) is also fitted with the default MLP at each of those widths
(``net=MLPScoreNet(d, hidden=width)``) and scored at the defaults beside it. Run from the
project root:

    python -m benchmarks.likelihood_trained [--max-time 60] [--rows 200 32 1000]
        [--sets table digits power] [--truth-tol 1e-8] [--truth-rows 200 32 1000]
        [--extra-atol 1e-7] [--widths 128 64] [--data-dir ../shared/data]
"""
from __future__ import annotations

import argparse
import copy
import warnings

import numpy as np
import torch

import sdescore
from sdescore.baselines import fit_flow
from sdescore.datasets import load_benchmark
from sdescore.nets import MLPScoreNet

from .common import rerun_command, timed, write


SETS = ["table", "digits", "power"]
DEFAULT_ROWS = [200, 32, 1000]


def tables(rows: list[int], sets: list[str], data_dir=None):
    """(set, name, train, test, fit options) of each of ``sets``, the test rows cut to ``rows``
    (one count per name of SETS)."""
    from sklearn.datasets import load_breast_cancer, load_digits
    from sklearn.model_selection import train_test_split

    if "table" in sets:
        x = load_breast_cancer().data
        train, test = train_test_split(x, test_size=0.2, random_state=0)
        yield "table", "breast-cancer (30 columns)", train, test[:rows[0]], {}
    if "digits" in sets:
        digits = load_digits().data.astype(np.uint8).reshape(-1, 1, 8, 8)
        train, test = train_test_split(digits, test_size=0.2, random_state=0)
        yield "digits", "digits (1 x 8 x 8 U-Net)", train, test[:rows[1]], {"levels": 17}
    if "power" in sets:
        split = load_benchmark("power", data_dir)
        yield ("power", f"power plant ({split.train.shape[1]} columns)",
               split.train.astype(np.float64), split.test[:rows[2]].astype(np.float64), {})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-time", type=float, default=60.0, help="seconds per fit")
    parser.add_argument("--rows", type=int, nargs="+", default=[],
                        help="test rows scored: table, digits, power (default 200 32 1000)")
    parser.add_argument("--sets", nargs="+", default=["table", "digits"], choices=SETS)
    parser.add_argument("--truth-tol", type=float, default=1e-8,
                        help="rtol = atol of the float64 reference solve")
    parser.add_argument("--truth-rows", type=int, nargs="+", default=[],
                        help="rows of each set checked against the reference (default: --rows)")
    parser.add_argument("--extra-atol", type=float, default=None,
                        help="also score a float64 copy of the model at this atol")
    parser.add_argument("--widths", type=int, nargs="+", default=[],
                        help="also fit each table's MLP at these widths (default recipe only)")
    parser.add_argument("--data-dir", default=None, help="the power table's folder "
                        "(default: $SDESCORE_DATA)")
    parser.add_argument("--out", default="likelihood_trained")
    args = parser.parse_args(argv)
    for name in ("rows", "truth_rows"):
        if len(getattr(args, name)) > len(SETS):
            parser.error(f"--{name.replace('_', '-')} takes at most {len(SETS)} counts "
                         f"({', '.join(SETS)})")
    counts = args.rows + DEFAULT_ROWS[len(args.rows):]
    truth_rows = dict(zip(SETS, args.truth_rows + counts[len(args.truth_rows):]))
    # name -> (log_prob options, on a float64 copy): an atol below float32's needs float64
    recipes = {"default": ({}, False), "dpm 60": ({"method": "dpm"}, False)}
    if args.extra_atol is not None:
        recipes[f"float64, atol {args.extra_atol:g}"] = ({"atol": args.extra_atol}, True)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    rows = []
    for key, name, train, test, options in tables(counts, args.sets, args.data_dir):
        fits = {"sdescore": (sdescore.fit(train, max_time=args.max_time, seed=0,
                                          progress=False, **options), recipes)}
        for width in args.widths if train.ndim == 2 else []:
            net = MLPScoreNet(train.shape[1], hidden=width)
            fits[f"sdescore, {width} wide"] = (
                sdescore.fit(train, max_time=args.max_time, seed=0, progress=False, net=net),
                {"default": recipes["default"]})
        flow = fit_flow(train.reshape(len(train), -1), "nsf", max_time=args.max_time, seed=0,
                        progress=False, **options)
        if options:  # both fitted to (k + u) / 17: score one dequantised draw of the test rows
            test = (test + np.random.default_rng(0).uniform(size=test.shape)) / 17
        test = torch.as_tensor(test, dtype=torch.float32)
        flow_rows = test.reshape(len(test), -1)
        checked = min(truth_rows[key], len(test))
        (flow_lp, flow_s) = timed(lambda: flow.log_prob(flow_rows), 1)
        flow_speed = len(test) / flow_s
        rows.append({"data": name, "model": "nsf", "recipe": "log_prob", "rows_per_s": flow_speed,
                     "vs_nsf": 1.0, "mean_nll": float(-flow_lp.double().mean()),
                     "checked_rows": 0, "mean_err": float("nan"), "worst_err": float("nan"),
                     "covered": float("nan")})
        print(rows[-1], flush=True)
        for label, (score, score_recipes) in fits.items():
            truth = copy.deepcopy(score).double().log_prob(test[:checked].double(),
                                                           rtol=args.truth_tol,
                                                           atol=args.truth_tol)
            for recipe, (opts, float64) in score_recipes.items():
                model, rows_in = ((copy.deepcopy(score).double(), test.double()) if float64
                                  else (score, test))
                result, seconds = timed(
                    lambda: model.log_prob(rows_in, return_error=True, **opts), 1)
                log_p = result.log_prob
                error = (log_p[:checked].double() - truth).abs()
                covered = (error <= result.solver_error[:checked].double()).double().mean()
                rows.append({"data": name, "model": label, "recipe": recipe,
                             "rows_per_s": len(test) / seconds,
                             "vs_nsf": len(test) / seconds / flow_speed,
                             "mean_nll": float(-log_p.double().mean()),
                             "checked_rows": checked, "mean_err": error.mean().item(),
                             "worst_err": error.max().item(), "covered": covered.item()})
                print(rows[-1], flush=True)
    command = rerun_command("likelihood_trained", argv)
    print(write(args.out, rows, list(rows[0]), command))


if __name__ == "__main__":
    main()
