"""One GPU benchmark (issue 17): likelihoods, training speed, MNIST bits/dim, sampling.

    python -m benchmarks.gpu [--device cuda] [--points 50000] [--mnist-budget 120]
                             [--data-dir DIR] [--out gpu] [--quick]

Sections, in one run (about 8 minutes on one GPU at the defaults):
1. ``log_prob`` at its defaults, and with ``method="dpm"``, on the exact score of
   ``random_mixture(D, 3, seed=D)`` (D = 2, 6, 16; --points points), against the reference recipe (scipy RK45 at
   rtol = atol = 1e-5, one Rademacher probe, the score on the device) and against the old
   fixed batch of 2048: points/s and mean |error| in nats against the closed form.
2. ``fit`` steps/s against a bare PyTorch loop on the same 6-D network
   (benchmarks/fit_overhead.py), batches of 256 and 4096.
3. MNIST: ``fit`` on the uint8 training images and ``fit_flow(..., "glow")`` for
   --mnist-budget seconds each; test bits/dim of 2,000 test images (one dequantisation,
   exact ODE with Hutchinson's trace for sdescore).
4. Sampling: seconds and score evaluations per method for 256 images of that model.
--quick shrinks every size (a check that the script runs, e.g. on a CPU). Results go to
results/OUT.json and are printed as tables.
"""
from __future__ import annotations

import argparse
import time

import torch


import sdescore
from sdescore.baselines import fit_flow
from sdescore.datasets import load_mnist, random_mixture
from .common import rerun_command, write
from .fit_overhead import overhead_rows, synchronize
from .log_prob_levers import reference_log_prob


def _timed(device, fn):
    synchronize(device)
    start = time.perf_counter()
    result = fn()
    synchronize(device)
    return result, time.perf_counter() - start


def log_prob_rows(device, points):
    rows = []
    for dim in (2, 6, 16):
        mixture = random_mixture(dim, 3, seed=dim)
        sde = sdescore.get_sde("subvp")
        model = sdescore.ScoreModel(sde, mixture.score_fn(sde), (dim,)).to(device)
        x = mixture.sample(points, seed=1).float().to(device)
        truth = mixture.log_prob(x.double().cpu())
        model.log_prob(x[:64], progress=False)  # warm-up: kernels, allocator
        recipes = {"sdescore default": lambda: model.log_prob(x, progress=False),
                   "sdescore, batches of 2048": lambda: model.log_prob(x, batch_size=2048,
                                                                       progress=False),
                   "sdescore solver=dpm": lambda: model.log_prob(x, method="dpm",
                                                                 progress=False),
                   "reference (scipy RK45, 1 probe)": lambda: reference_log_prob(model, x)[0]}
        for name, run in recipes.items():
            log_p, seconds = _timed(device, run)
            rows.append({"dim": dim, "recipe": name, "points_per_s": points / seconds,
                         "mean_abs_err": (log_p.double().cpu() - truth).abs().mean().item()})
            print(rows[-1], flush=True)
    return rows


def mnist_rows(device, budget, data_dir, test_images, train_images):
    train, _ = load_mnist(data_dir, "train")
    test, _ = load_mnist(data_dir, "test")
    train = train[:train_images]
    test = torch.as_tensor(test[:test_images], dtype=torch.float32)
    x = (test + torch.rand(test.shape, generator=torch.Generator().manual_seed(0))) / 256
    rows, models = [], {}
    fits = {"sdescore subvp": lambda: sdescore.fit(train, "subvp", max_time=budget,
                                                   batch_size=512, device=device, seed=0,
                                                   progress=False),
            "glow": lambda: fit_flow(train, "glow", max_time=budget, seed=0, progress=False)}
    for name, run in fits.items():
        model = run().to(device)
        bits, seconds = _timed(device, lambda: model.bits_per_dim(x.to(device)))
        rows.append({"model": name, "train_s": model.history[-1]["seconds"],
                     "steps": model.history[-1]["step"], "test_images": len(x),
                     "bits_per_dim": bits.mean().item(),
                     "bits_per_dim_se": (bits.std() / len(x) ** 0.5).item(),
                     "eval_s": seconds})
        print(rows[-1], flush=True)
        models[name] = model
    return rows, models["sdescore subvp"]


def sampling_rows(device, model, n):
    rows = []
    for method, options in (("ode", {}), ("sde", {}), ("pc", {}), ("langevin", {}),
                            ("dpm", {})):
        _, seconds = _timed(device, lambda: model.sample(n, method, seed=0, **options))
        rows.append({"method": method, "samples": n, "seconds": seconds,
                     "score_evals": model.last_score_evals})
        print(rows[-1], flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--points", type=int, default=50_000)
    parser.add_argument("--mnist-budget", type=float, default=120.0)
    parser.add_argument("--data-dir", default=None, help="MNIST folder (default: $SDESCORE_DATA/mnist)")
    parser.add_argument("--out", default="gpu")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: does it run?")
    args = parser.parse_args()
    device = torch.device(args.device)
    quick = args.quick
    points = 500 if quick else args.points
    results = {"log_prob": log_prob_rows(device, points),
               "fit": overhead_rows(6, device, [256, 4096], 100 if quick else 2000,
                                    1 if quick else 3)}
    mnist, model = mnist_rows(device, 5 if quick else args.mnist_budget, args.data_dir,
                              8 if quick else 2000, 512 if quick else None)
    results["mnist"] = mnist
    results["sampling"] = sampling_rows(device, model, 4 if quick else 256)
    command = rerun_command("gpu")
    for name, rows in results.items():
        print(f"\n{name}\n" + write(f"{args.out}_{name}", rows, list(rows[0]), command))


if __name__ == "__main__":
    main()
