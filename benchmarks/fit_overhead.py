"""What ``fit`` costs per step beside a bare PyTorch loop on the same network and loss.

The bare loop is what a user would write: the default network for d-dimensional rows
(``MLPScoreNet`` under the Gaussian-residual parameterisation with fit's envelope for
vectors), the same DSM loss, random batches, ``torch.optim.Adam``, nothing else; once with
Adam's default implementation and once with the fused kernel that ``fit`` uses (where the
device has it), which isolates what the library adds. ``fit`` adds its weight average,
gradient clipping, the finite-loss check and history (held-out selection off,
``validation=0``, so that both see the same rows); it is also timed with ``ema=0,
grad_clip=None``, which shows what those two cost, and as a user calls it, with held-out
selection (its wall clock, the selection's scoring and the fitted Gaussian's exact check
included; per step taken). All run ``--steps`` steps after a short warm-up;
steps per second are medians of ``--repeats`` runs, alternated. Run from the project root:

    python -m benchmarks.fit_overhead [--device cpu] [--dim 6] [--rows 20000]
                                      [--batch-sizes 256 4096] [--steps 2000] [--repeats 3]
                                      [--threads 1]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch


import sdescore
from sdescore.losses import get_loss
from sdescore.nets import MLPScoreNet
from sdescore.parameterization import GaussianResidual
from sdescore.sde import sde_for_data
from sdescore.training.optim import adam
from .common import rerun_command, write


def synchronize(device):
    """Wait for the device's queued work (CUDA), so that a clock reading means it is done."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_loop_seconds(x, device, batch_size, steps, fused=False):
    """Seconds for ``steps`` steps of the plain loop on rows x (n, d) already standardised;
    fused: Adam's fused kernel as ``fit`` picks it, else torch's default Adam."""
    sde = sde_for_data("subvp", x)
    score_fn = GaussianResidual(MLPScoreNet(x.shape[1]), sde, envelope="snr").to(device)
    loss_fn = get_loss("dsm", sde, sde.likelihood_eps)
    optimizer = (adam(score_fn.parameters(), 1e-3) if fused
                 else torch.optim.Adam(score_fn.parameters(), lr=1e-3))
    train = x.to(device)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        batch = train[torch.randint(0, train.shape[0], (batch_size,), device=device)]
        loss = loss_fn(score_fn, batch).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    synchronize(device)
    return time.perf_counter() - start


def fit_seconds(x, device, batch_size, steps, **options):
    """Seconds of ``sdescore.fit`` for ``steps`` steps (its own clock, from its history)."""
    model = sdescore.fit(x, steps=steps, batch_size=batch_size, validation=0, device=device,
                         progress=False, log_every=steps, **options)
    synchronize(device)
    return model.history[-1]["seconds"]


def selecting_fit_seconds(x, device, batch_size, steps):
    """Wall-clock seconds per step of the whole default ``sdescore.fit`` call for at most
    ``steps`` steps: rows held out, scored by the selection bound at every history record,
    and the exact check of the fitted Gaussian at the end; per step taken, since its patience
    may stop it sooner."""
    start = time.perf_counter()
    model = sdescore.fit(x, steps=steps, batch_size=batch_size, device=device, progress=False)
    synchronize(device)
    return (time.perf_counter() - start) / model.history[-1]["step"]


def overhead_rows(dim, rows_of_data, device, batch_sizes, steps, repeats):
    """One row per batch size: steps/s of fit (without and with held-out selection) and of
    the two bare loops, and the ratios, on ``rows_of_data`` rows of N(0, I) in ``dim``-D."""
    x = torch.randn(rows_of_data, dim)
    rows = []
    for batch_size in batch_sizes:
        bare_loop_seconds(x, device, batch_size, 50)  # warm-up (kernels, allocator)
        fit_seconds(x, device, batch_size, 50)
        bare, fused, library, plain, selecting = [], [], [], [], []
        for _ in range(repeats):
            bare.append(bare_loop_seconds(x, device, batch_size, steps))
            fused.append(bare_loop_seconds(x, device, batch_size, steps, fused=True))
            library.append(fit_seconds(x, device, batch_size, steps))
            plain.append(fit_seconds(x, device, batch_size, steps, ema=0, grad_clip=None))
            selecting.append(selecting_fit_seconds(x, device, batch_size, steps))
        bare_rate, fused_rate, fit_rate, plain_rate = (
            steps / statistics.median(s) for s in (bare, fused, library, plain))
        selecting_rate = 1 / statistics.median(selecting)
        rows.append({"device": str(device), "dim": dim, "rows": rows_of_data,
                     "batch_size": batch_size,
                     "bare_steps_per_s": bare_rate, "bare_fused_steps_per_s": fused_rate,
                     "fit_steps_per_s": fit_rate, "fit_no_average_no_clip_steps_per_s": plain_rate,
                     "fit_selecting_steps_per_s": selecting_rate,
                     "fit_over_bare": fit_rate / bare_rate,
                     "fit_over_bare_fused": fit_rate / fused_rate})
        print(rows[-1], flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dim", type=int, default=6)
    parser.add_argument("--rows", type=int, default=20_000, help="rows of N(0, I) data")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 4096])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="fit_overhead")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = overhead_rows(args.dim, args.rows, torch.device(args.device), args.batch_sizes,
                         args.steps, args.repeats)
    command = rerun_command("fit_overhead")
    print(write(args.out, rows, list(rows[0]), command))


if __name__ == "__main__":
    main()
