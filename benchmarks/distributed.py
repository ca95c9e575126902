"""Training steps/s and evaluated points/s for 1 and 2 processes (torch.distributed, gloo).

Each process uses one torch thread. fit: ``sdescore.fit`` on 20,000 rows of N(0, I) in 6
dimensions, the default network, batch --batch per rank, --steps steps (so 2 processes see
twice the examples per step). log_prob: ``sdescore.distributed.log_prob`` at its defaults on
the exact score of ``random_mixture(6, 3, seed=6)``, --points points shared by the ranks.
Run from the project root:

    python -m benchmarks.distributed [--steps 1000] [--batch 256] [--points 4000]
"""
from __future__ import annotations

import argparse
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


import sdescore
from sdescore import distributed
from .common import rerun_command, write


def _worker(rank, processes, folder, steps, batch, points):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank,
                            world_size=processes)
    x = torch.randn(20_000, 6, generator=torch.Generator().manual_seed(0))
    model = sdescore.fit(x, steps=steps, batch_size=batch, validation=0, seed=0,
                         progress=False, log_every=steps)
    fit_seconds = model.history[-1]["seconds"]
    mixture = sdescore.datasets.random_mixture(6, 3, seed=6)
    sde = sdescore.get_sde("subvp")
    exact = sdescore.ScoreModel(sde, mixture.score_fn(sde), (6,))
    points_x = mixture.sample(points, seed=1).float()
    dist.barrier()
    start = time.perf_counter()
    distributed.log_prob(exact, points_x)
    log_prob_seconds = time.perf_counter() - start
    if rank == 0:
        torch.save({"fit_seconds": fit_seconds, "log_prob_seconds": log_prob_seconds},
                   f"{folder}/result.pt")
    dist.destroy_process_group()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--points", type=int, default=4000)
    parser.add_argument("--out", default="distributed")
    args = parser.parse_args()
    rows = []
    for processes in (1, 2):
        with tempfile.TemporaryDirectory() as folder:
            mp.spawn(_worker, args=(processes, folder, args.steps, args.batch, args.points),
                     nprocs=processes)
            result = torch.load(f"{folder}/result.pt", weights_only=True)
        rows.append({"processes": processes, "batch_per_rank": args.batch,
                     "fit_steps_per_s": args.steps / result["fit_seconds"],
                     "fit_examples_per_s": args.steps * args.batch * processes
                     / result["fit_seconds"],
                     "log_prob_points_per_s": args.points / result["log_prob_seconds"]})
        print(rows[-1], flush=True)
    command = rerun_command("distributed")
    print(write(args.out, rows, list(rows[0]), command))


if __name__ == "__main__":
    main()
