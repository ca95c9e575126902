"""
Quick start: a 2-D toy set
==========================

Fit a score model to a 2-D toy set, print its exact test NLL, save a figure.

.. code-block:: bash

    python examples/quickstart.py [--data moons] [--sde subvp] [--max-time 60] [--quiet]

Trains for at most ``--max-time`` seconds (a minute by default), then prints the test
negative log-likelihood from the probability-flow ODE (exact divergence) and saves
``quickstart.png``: the training data, the learned density and samples drawn with the ODE
sampler.
"""
import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import sdescore  # noqa: E402
from sdescore.datasets import TOYS, toy  # noqa: E402

parser = argparse.ArgumentParser(description="Fit a score model to a 2-D toy set.")
parser.add_argument("--data", default="moons", choices=list(TOYS))
parser.add_argument("--sde", default="subvp", choices=["ve", "vp", "subvp"])
parser.add_argument("--max-time", type=float, default=60.0, help="training budget, seconds")
parser.add_argument("--out", default="quickstart.png")
parser.add_argument("--quiet", action="store_true", help="no progress bars")
args = parser.parse_args()
bars = False if args.quiet else None  # None: a bar where the work is long

train, test = toy(args.data, 20000, seed=0), toy(args.data, 2000, seed=1)
model = sdescore.fit(train, args.sde, max_time=args.max_time, seed=0, progress=not args.quiet)
nll = -model.log_prob(test, progress=bars).mean().item()
print(f"{args.data}, {args.sde}: exact test NLL {nll:.4f} nats per point "
      f"({model.history[-1]['step']} steps, {model.last_score_evals} score evaluations "
      "per log_prob solve)")

lim = 4.0
grid = torch.linspace(-lim, lim, 80)
xx, yy = torch.meshgrid(grid, grid, indexing="xy")
points = torch.stack([xx.ravel(), yy.ravel()], 1)
# The picture needs less precision than the reported NLL: looser tolerances are faster.
density = model.log_prob(points, rtol=1e-3, atol=1e-3, progress=bars).exp().reshape(xx.shape)
samples = model.sample(4000, "ode", seed=0, progress=bars)

fig, axes = plt.subplots(1, 3, figsize=(13, 4.4), sharex=True, sharey=True)
axes[0].scatter(*train[:4000].T, s=1, alpha=0.4)
axes[0].set_title(f"training data ({args.data})")
axes[1].pcolormesh(xx, yy, density, shading="auto", cmap="magma")
axes[1].set_title(f"learned density, test NLL {nll:.3f} nats")
axes[2].scatter(*samples.T, s=1, alpha=0.4, color="C1")
axes[2].set_title('samples, model.sample(4000, "ode")')
for ax in axes:
    ax.set_aspect("equal")
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
fig.tight_layout()
fig.savefig(args.out, dpi=110)
print(f"saved {args.out}")
