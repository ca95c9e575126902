"""How noisy is nll_bound? The plain importance-sampled estimator against the one in
sdescore (N(0, I) control variate, antithetic z, stratified t), at equal score evaluations.

On random_mixture(6, 3, seed=6), standardised as fit does: with the exact score, the bound
equals -log p(x) in expectation, so the per-point RMS of bound + log p is the estimator's
noise; with a trained network (fit, 3000 steps), the spread over seeds of the mean bound on
400 test points. Run from the project root:

    python benchmarks/bound_variance.py
"""
from __future__ import annotations

import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sdescore  # noqa: E402
from sdescore.bounds import _denoising_excess, _prior_cross_entropy  # noqa: E402
from sdescore.datasets import random_mixture  # noqa: E402
from sdescore.losses import ImportanceTimes  # noqa: E402
from common import write  # noqa: E402


def plain_bound(model, x, draws, seed):
    """The estimator before the control variate: iid (t ~ g^2/s^2, z) draws of the raw
    denoising residual, as in Song, Durkan, Murray and Ermon (2021)."""
    sde, y = model.sde, model.datamap.to_model(x)
    generator = torch.Generator().manual_seed(seed)
    times = ImportanceTimes(sde, sde.likelihood_eps)
    values = []
    for _ in range(draws):
        t, _ = times(len(y), dtype=y.dtype, device=y.device, generator=generator)
        z = torch.randn(y.shape, generator=generator, dtype=y.dtype)
        std = sde.marginal_std(t)[:, None]
        values.append(0.5 * times.total * _denoising_excess(
            std * model.score_fn(sde.perturb(y, t, z), t), z))
    eps_t = torch.full((len(y),), sde.likelihood_eps, dtype=y.dtype)
    drift = -y.shape[1] * (torch.log(sde.mean_scale(torch.ones_like(eps_t)))
                           - torch.log(sde.mean_scale(eps_t)))
    return (_prior_cross_entropy(sde, y, eps_t) + torch.stack(values).mean(0) + drift
            - model.datamap.log_det)


def main():
    mixture = random_mixture(6, components=3, seed=6)
    train = mixture.sample(20000, seed=0).float()
    test = mixture.sample(400, seed=1)
    truth = mixture.log_prob(test)
    network = sdescore.fit(train, "subvp", steps=3000, seed=0, progress=False)
    loc, scale = network.datamap.loc.double(), network.datamap.scale.double()
    oracle = sdescore.ScoreModel(network.sde, mixture.affine(loc, scale).score_fn(network.sde),
                                 (6,), loc=loc, scale=scale).double()
    estimators = {"plain": lambda m, x, d, s: plain_bound(m, x, d, s),
                  "sdescore": lambda m, x, d, s: m.nll_bound(x, draws=d, seed=s)}
    rows = []
    for draws in (16, 64):
        for name, estimate in estimators.items():
            noise = [((estimate(oracle, test, draws, seed) + truth) ** 2).mean().sqrt().item()
                     for seed in range(3)]
            means = [estimate(network, test.float(), draws, seed).double().mean().item()
                     for seed in range(5)]
            rows.append({"draws": draws, "estimator": name,
                         "oracle_rms_noise_per_point": statistics.mean(noise),
                         "trained_mean_bound": statistics.mean(means),
                         "trained_sd_over_seeds": statistics.stdev(means)})
            print(rows[-1], flush=True)
    exact = -network.log_prob(test.float()).double().mean().item()
    print(f"trained network: exact NLL {exact:.4f}, entropy {-truth.mean().item():.4f}")
    print(write("bound_variance", rows, list(rows[0]), "python benchmarks/bound_variance.py"))


if __name__ == "__main__":
    main()
