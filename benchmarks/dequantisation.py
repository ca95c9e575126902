"""Per-batch against once-only dequantisation (issue 17, item 2), on scikit-learn's 8 x 8
digits as 64-vectors with 17 levels (1437 training rows, 360 test rows, split seed 0).

"per batch": ``fit(k, levels=17)`` draws fresh u at every batch; "once": ``fit`` on
``dequantize(k, 17, seed=0)``, the rows fixed for the whole run. Same steps, seed and
network; test bits/dim of both by ``model.bits_per_dim(k_test, draws=1, seed=0)`` with
Hutchinson's trace (one probe).

    python benchmarks/dequantisation.py --steps 2000
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sdescore  # noqa: E402
from sdescore.datasets import dequantize  # noqa: E402
from common import write  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    digits = load_digits().data.astype(np.int64)
    train, test = train_test_split(digits, test_size=0.2, random_state=0)
    rows = []
    for name, data, levels in (("per batch", train, 17),
                               ("once", dequantize(train, 17, seed=0), None)):
        model = sdescore.fit(data, levels=levels, steps=args.steps, seed=args.seed,
                             progress=False)
        model.levels = 17  # the once-only model saw floats; score both as 17-level data
        bits = model.bits_per_dim(test, seed=0, trace="hutchinson")
        rows.append({"dequantisation": name, "steps": model.history[-1]["step"],
                     "selected": next(r["step"] for r in model.history if r.get("selected")),
                     "test_bpd": bits.mean().item(),
                     "test_bpd_se": bits.std().item() / len(bits) ** 0.5})
        print(rows[-1], flush=True)
    command = "python benchmarks/dequantisation.py " + " ".join(argv or sys.argv[1:])
    print(write("dequantisation", rows, list(rows[0]), command))


if __name__ == "__main__":
    main()
