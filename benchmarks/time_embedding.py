"""How the score network's time embedding trades fit against log_prob's cost.

The MLP embeds t with sinusoids at geometric frequencies; up to 1000 (t in [0, 1], the
default until this benchmark) a trained network varies quickly in t and the adaptive ODE
solver of log_prob takes hundreds of steps. Here the same fit (3000 steps, seed 0) runs with
frequencies up to 1000, up to 30 (the default now), and with a log t input (frequencies up to
100), on analytic and real sets. Run from the
project root:

    python benchmarks/time_embedding.py
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sdescore  # noqa: E402
from sdescore.datasets import load_benchmark  # noqa: E402
from sdescore.nets import MLPScoreNet  # noqa: E402
from common import DATA_DIR, write  # noqa: E402

EMBEDDINGS = {"linear t, up to 1000": {"max_frequency": 1000.0},
              "linear t, up to 30 (default)": {},
              "log t, up to 100": {"time_input": "log", "max_frequency": 100.0}}
CASES = [("mixture2", "subvp"), ("mixture6", "subvp"), ("mixture6", "vp"), ("mixture6", "ve"),
         ("whitewine", "subvp")]


def main():
    rows = []
    for name, sde in CASES:
        split = load_benchmark(name, DATA_DIR)
        train, test = torch.as_tensor(split.train), torch.as_tensor(split.test[:200])
        for label, options in EMBEDDINGS.items():
            net = MLPScoreNet(train.shape[1], **options)
            model = sdescore.fit(train, sde, net=net, steps=3000, seed=0, progress=False)
            start = time.perf_counter()
            log_prob = model.log_prob(test)
            seconds = time.perf_counter() - start
            nll = -log_prob.double().mean().item()
            row = {"data": name, "sde": sde, "embedding": label,
                   "score_evals": model.last_score_evals, "points_per_s": len(test) / seconds,
                   "test_nll": nll, "kl_gap": float("nan")}
            if split.oracle is not None:
                row["kl_gap"] = nll + split.oracle.log_prob(test.double()).mean().item()
            rows.append(row)
            print(row, flush=True)
    print(write("time_embedding", rows, list(rows[0]), "python benchmarks/time_embedding.py"))


if __name__ == "__main__":
    main()
