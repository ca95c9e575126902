"""Sample quality against score evaluations, for every sampler.

On exact mixture scores (the 2-D mixture of tests/test_sampling.py and random_mixture(16)),
quality is the energy distance between a sampler's draws and fresh draws of the mixture,
averaged over seeds, beside its noise floor (the same statistic between two fresh draws);
"z" is how many standard errors of the floor the mean lies above the floor's mean. On a
U-Net trained on scikit-learn's 8 x 8 digits (uint8, levels=17), quality is the energy
distance to the held-out digits, beside that of training digits to the held-out ones.
Run from the project root:

    python -m benchmarks.samplers [--points 2000] [--seeds 3] [--digits-time 150]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch


import sdescore
from sdescore.datasets import GaussianMixture, random_mixture
from sdescore.metrics import energy_distance
from .common import rerun_command, write
from .oracle_core import SAMPLER_MIXTURE

# VE with sigma_max = 50, whose prior matches p_T of these mixtures (benchmarks/oracle_core.py)
SDES = {"vp": {}, "subvp": {}, "ve": {"sigma_max": 50.0}}


def configurations(sde_name: str):
    """(method, options) of every sampler at the step counts compared."""
    yield "ode", {}
    for steps in (100, 300, 1000):
        yield "sde", {"steps": steps}
    for steps in (100, 500):
        yield "pc", {"steps": steps}
    yield "langevin", {}
    if sde_name == "vp":
        for steps in (100, 1000):
            yield "ddpm", {"steps": steps}
    for order in (1, 2, 3):
        for steps in (5, 10, 15, 20, 30):
            yield "dpm", {"steps": steps, "order": order}


def describe(method, options):
    return method + "".join(f" {k}={v}" for k, v in options.items())


def mixture_rows(args):
    rows = []
    targets = {"2-D test mixture": GaussianMixture(*SAMPLER_MIXTURE),
               "random_mixture(16)": random_mixture(16, 3, seed=16)}
    for label, mixture in targets.items():
        floor = [energy_distance(mixture.sample(args.points, seed=1000 + 2 * i),
                                 mixture.sample(args.points, seed=1001 + 2 * i))
                 for i in range(8)]
        floor_mean, floor_sd = statistics.mean(floor), statistics.stdev(floor)
        rows.append({"target": label, "sde": "-", "sampler": "two fresh draws (floor)",
                     "evals": 0, "seconds": 0.0, "energy": floor_mean, "z": 0.0})
        print(rows[-1], flush=True)
        for sde_name, params in SDES.items():
            sde = sdescore.get_sde(sde_name, **params)
            model = sdescore.ScoreModel(sde, mixture.score_fn(sde), (mixture.dim,))
            for method, options in configurations(sde_name):
                values, seconds = [], []
                for seed in range(args.seeds):
                    start = time.perf_counter()
                    draws = model.sample(args.points, method, seed=seed, **options)
                    seconds.append(time.perf_counter() - start)
                    values.append(energy_distance(draws, mixture.sample(args.points,
                                                                        seed=500 + seed)))
                mean = statistics.mean(values)
                rows.append({"target": label, "sde": sde_name,
                             "sampler": describe(method, options),
                             "evals": model.last_score_evals,
                             "seconds": statistics.median(seconds), "energy": mean,
                             "z": (mean - floor_mean) / (floor_sd / args.seeds ** 0.5)})
                print(rows[-1], flush=True)
    return rows


def digits_rows(args):
    from sklearn.datasets import load_digits

    images = load_digits().images.astype(np.uint8)[:, None]  # (1797, 1, 8, 8), 0..16
    order = np.random.default_rng(0).permutation(len(images))
    train, test = images[order[360:]], images[order[:360]]
    rng = np.random.default_rng(1)

    def dequantised(k):
        return torch.from_numpy((k + rng.random(k.shape)) / 17).float()

    held_out = dequantised(test)
    model = sdescore.fit(train, levels=17, max_time=args.digits_time, seed=0, progress=False)
    print(f"digits model: {model.history[-1]['step']} steps", flush=True)
    data_floor = [energy_distance(dequantised(train[rng.permutation(len(train))[:360]]),
                                  held_out) for _ in range(8)]
    rows = [{"target": "digits (U-Net)", "sde": "-", "sampler": "training digits (360)",
             "evals": 0, "seconds": 0.0, "energy": statistics.mean(data_floor), "z": 0.0}]
    for method, options in configurations(model.sde.name):
        start = time.perf_counter()
        draws = model.sample(args.digit_samples, method, seed=0, **options)
        seconds = time.perf_counter() - start
        rows.append({"target": "digits (U-Net)", "sde": model.sde.name,
                     "sampler": describe(method, options), "evals": model.last_score_evals,
                     "seconds": seconds, "energy": energy_distance(draws, held_out),
                     "z": float("nan")})
        print(rows[-1], flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=2000, help="draws per mixture sample")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--digits-time", type=float, default=150.0,
                        help="seconds of training for the digits U-Net")
    parser.add_argument("--digit-samples", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = mixture_rows(args) + digits_rows(args)
    command = rerun_command("samplers")
    print(write("samplers", rows, ["target", "sde", "sampler", "evals", "seconds", "energy",
                                   "z"], command))


if __name__ == "__main__":
    main()
