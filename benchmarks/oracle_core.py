"""How fast and how right are log_prob and each sampler at their defaults, on exact scores?

The score is the analytic score of a Gaussian mixture, so every error is the solver's (plus
the prior-mismatch floor, zero here: the mixtures have mean 0). Run from the project root:

    python -m benchmarks.oracle_core
"""
from __future__ import annotations


import torch


import sdescore
from sdescore.metrics import mmd
from sdescore.datasets import GaussianMixture, random_mixture
from .common import timed, write

COMMAND = "python -m benchmarks.oracle_core"
# VE's prior N(0, sigma_max^2 I) must match p_T: with sigma_max = 10 the 6-D mixture keeps a
# prior-mismatch floor of about 0.02 nats a point (the row "ve(10)" shows it); 50 removes it.
SDES = {"vp": {}, "subvp": {}, "ve": {"sigma_max": 50.0}, "ve(10)": {"sigma_max": 10.0}}
# The sampler test's mixture and kernel bandwidths (tests/test_sampling.py).
SAMPLER_MIXTURE = ([[1.0, 0.5], [-1.0, -0.5]], [[[0.3, 0.1], [0.1, 0.2]], [[0.1, 0.0], [0.0, 0.25]]])
BANDWIDTHS = (0.2, 0.5, 1.0)


def make_sde(label):
    return sdescore.get_sde(label.split("(")[0], **SDES[label])


def likelihood_rows(points=1000, repeats=3):
    rows = []
    for dim in (2, 6):
        mixture = random_mixture(dim, seed=dim)
        x = mixture.sample(points, seed=1)
        truth = mixture.log_prob(x)
        for name in SDES:
            sde = make_sde(name)
            model = sdescore.ScoreModel(sde, mixture.score_fn(sde), (dim,))
            estimate, seconds = timed(lambda: model.log_prob(x.float()), repeats)
            error = (estimate.double() - truth).abs()
            rows.append({"dim": dim, "sde": name, "points_per_s": points / seconds,
                         "score_evals": model.last_score_evals,
                         "mean_abs_err": error.mean().item(), "max_abs_err": error.max().item()})
    return rows


def sampler_rows(n=4000):
    mixture = GaussianMixture(*SAMPLER_MIXTURE)
    floor = torch.tensor([mmd(mixture.sample(n, seed=2 * i), mixture.sample(n, seed=2 * i + 1),
                              BANDWIDTHS) for i in range(8)])
    rows = [{"sde": "-", "method": "two fresh draws (floor)", "seconds": 0.0, "score_evals": 0,
             "mmd": floor.mean().item(), "mmd_sd": floor.std().item()}]
    for component in (0, 1):
        for factor in (0.8, 1.2):
            covs = mixture.covs.clone()
            covs[component] *= factor**2
            wrong = GaussianMixture(mixture.means, covs, mixture.weights).sample(n, seed=100)
            rows.append({"sde": "-", "method": f"component {component} spread x{factor}",
                         "seconds": 0.0, "score_evals": 0, "mmd_sd": float("nan"),
                         "mmd": mmd(wrong, mixture.sample(n, seed=101), BANDWIDTHS)})
    for name in ("vp", "subvp", "ve"):
        sde = make_sde(name)
        model = sdescore.ScoreModel(sde, mixture.score_fn(sde), (2,))
        for method in ("ode", "sde", "pc", "langevin") + (("ddpm",) if name == "vp" else ()):
            samples, seconds = timed(lambda: model.sample(n, method, seed=3), 1)
            rows.append({"sde": name, "method": method, "seconds": seconds,
                         "score_evals": model.last_score_evals,
                         "mmd": mmd(samples, mixture.sample(n, seed=11), BANDWIDTHS),
                         "mmd_sd": float("nan")})
    return rows


if __name__ == "__main__":
    print(write("oracle_log_prob", likelihood_rows(),
                ["dim", "sde", "points_per_s", "score_evals", "mean_abs_err", "max_abs_err"],
                COMMAND))
    print()
    print(write("oracle_samplers", sampler_rows(),
                ["sde", "method", "seconds", "score_evals", "mmd", "mmd_sd"], COMMAND))
