"""Upper bounds from the likelihood-weighted score-matching objective
(Song, Durkan, Murray and Ermon 2021, "Maximum Likelihood Training of Score-Based Diffusion
Models", Theorems 1-2). Everything here works in the model's own (standardised) space and
converts to the data's coordinates where a density is returned.

Per sample, with x_t = m(t) x + s(t) z and the importance density q(t) ~ g^2 / s^2 on
[eps, T] (normaliser Z):

  -log p_theta^SDE(x) <= E[-log prior(x_T)] + Z/2 E_q[ ||s score(x_t, t) + z||^2 - ||z||^2 ]
                         - D (log m(T) - log m(eps)),

the last term being -integral of div f. The part of the integral below eps is left out.
For the whole data set,

  KL(p_0 || p_theta^SDE) <= (T/2) E_{t ~ U(0, T)} E_{p_t} g^2 ||grad log p_t - score||^2
                            + KL(p_T || prior).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .losses import ImportanceTimes
from .utils import append_dims, sum_except_batch
from .validation import as_batch


def _prior_cross_entropy(sde, y, eps_t):
    """E[-log prior(x_T)] for x_T ~ N(m(T) y, s(T)^2 I), in closed form: y (n, D) -> (n,)."""
    T = torch.full_like(eps_t, sde.T)
    m, s = sde.mean_scale(T), sde.marginal_std(T)
    d, var = y[0].numel(), sde.prior_std**2
    quad = m**2 * sum_except_batch(y**2) + d * s**2
    return 0.5 * d * math.log(2 * math.pi * var) + quad / (2 * var)


def _denoising_excess(scaled_score, z):
    """||s score + z||^2 - ||z||^2 per sample: the denoising residual less its value at a zero
    score. Subtracting ||z||^2 rather than its mean D is exact in expectation and removes the
    chi-square noise that dominates near t = 0."""
    return sum_except_batch(scaled_score * (scaled_score + 2 * z))


def _importance_draws(sde, y, eps, draws, generator):
    """``draws`` times: (t, z, x_t, s(t) broadcast, Z) with t ~ q (g^2 / s^2 on [eps, T]),
    z standard normal and x_t = m(t) y + s(t) z, for y (n, *shape)."""
    times = ImportanceTimes(sde, eps)
    for _ in range(draws):
        t, _ = times(y.shape[0], dtype=y.dtype, device=y.device, generator=generator)
        z = torch.randn(y.shape, generator=generator, dtype=y.dtype, device=y.device)
        std = append_dims(sde.marginal_std(t), y.ndim)
        yield t, z, sde.perturb(y, t, z), std, times.total


def nll_bound_terms(sde, score, y, *, draws: int, eps: float, generator=None):
    """Per-sample bound on -log p_theta^SDE(y) in model space, and its Monte Carlo standard
    error: y (n, *shape) -> ((n,), (n,)) nats. ``draws`` pairs (t, z) per sample."""
    n, d = y.shape[0], y[0].numel()
    eps_t = torch.full((n,), eps, dtype=y.dtype, device=y.device)
    values = torch.stack([0.5 * total * _denoising_excess(std * score(y_t, t), z)
                          for t, z, y_t, std, total in _importance_draws(sde, y, eps, draws,
                                                                          generator)])
    drift_term = -d * (torch.log(sde.mean_scale(torch.full_like(eps_t, sde.T)))
                       - torch.log(sde.mean_scale(eps_t)))
    bound = _prior_cross_entropy(sde, y, eps_t) + values.mean(0) + drift_term
    stderr = values.std(0) / math.sqrt(draws) if draws > 1 else torch.full_like(bound, math.nan)
    return bound, stderr


@dataclass
class KLBound:
    """KL(p_0 || p_theta^SDE) <= score_term + prior_term (nats).

    score_term: (T/2) E_t E_{p_t} g^2 ||grad log p_t - score||^2 with standard error
    score_term_se; prior_term: KL(p_T || prior) (or an upper bound on it, see ``note``).
    When the true score is unknown, ``score_term`` holds the denoising form of the objective:
    the true term minus the data constant (1/2) integral g^2 E||grad log p_t||^2 dt, so
    ``total`` is then not a KL bound by itself, as ``note`` says.
    """

    score_term: float
    score_term_se: float
    prior_term: float
    exact_score: bool
    note: str

    @property
    def total(self) -> float:
        return self.score_term + self.prior_term


def kl_bound(model, data, *, oracle=None, draws: int = 16, prior_samples: int = 100_000,
             seed: int | None = 0) -> KLBound:
    """Bound KL(p_0 || p_theta^SDE) for ``model`` on ``data`` (n, *shape) drawn from p_0.

    oracle: the data's true law as a ``GaussianMixture`` in data coordinates, when known.
    Then score_term is (T/2) E g^2 ||grad log p_t - score||^2 with the exact grad log p_t
    (0 when the model's score is the oracle's), and prior_term is KL(p_T || prior) by Monte
    Carlo over ``prior_samples`` draws of p_T. Without an oracle, score_term is the denoising
    form of the same integral (the true term minus the data constant
    (1/2) integral g^2 E||grad log p_t||^2 dt) and prior_term is E_x KL(p_T(. | x) || prior),
    a closed-form upper bound on KL(p_T || prior); ``note`` says which. ``draws``: (t, z)
    pairs per data row, t importance-sampled in proportion to g^2 / s^2.
    """
    x = as_batch(data, model.shape, name="data", dtype=model.dtype, device=model.device)
    y = model.to_model_space(x)
    sde, eps, n = model.sde, model.sde.likelihood_eps, x.shape[0]
    generator = torch.Generator(device=model.device).manual_seed(seed) if seed is not None else None
    flat = lambda v: v.reshape(v.shape[0], -1)  # noqa: E731
    if oracle is not None:
        truth = oracle.affine(model.loc, model.scale)
        if truth.dim != model.dim:
            raise ValueError(f"oracle has dimension {truth.dim}; the model {model.dim}")
        true_score = truth.score_fn(sde)
    values = []
    with torch.no_grad():
        for t, z, y_t, std, total in _importance_draws(sde, y, eps, draws, generator):
            learned = model.score_fn(y_t, t)
            if oracle is not None:
                target = true_score(flat(y_t).double(), t.double()).to(y.dtype).reshape(y.shape)
                residual2 = sum_except_batch((std * (learned - target)) ** 2)
            else:
                residual2 = _denoising_excess(std * learned, z)
            values.append(0.5 * total * residual2)
    values = torch.stack(values).double().flatten()
    score_term, score_se = values.mean().item(), (values.std() / math.sqrt(values.numel())).item()
    if oracle is not None:
        p_T = truth.marginal(sde, sde.T)
        x_T = p_T.sample(prior_samples, seed=seed)
        prior = sde.prior_log_prob(x_T)
        prior_term = (p_T.log_prob(x_T) - prior).mean().item()
        note = "exact score term; KL(p_T || prior) by Monte Carlo"
    else:
        T = torch.full((n,), sde.T, dtype=torch.float64, device=y.device)
        m, s = sde.mean_scale(T), sde.marginal_std(T)
        var, d = sde.prior_std**2, model.dim
        per_row = 0.5 * (d * s**2 / var + m**2 * sum_except_batch(y.double() ** 2) / var - d
                         + d * torch.log(var / s**2))
        prior_term = per_row.mean().item()
        note = ("no oracle: score_term is the denoising form, the true term minus the data "
                "constant (1/2) int g^2 E||grad log p_t||^2 dt, so total is not a KL bound by "
                "itself; prior_term is E_x KL(p_T(.|x) || prior) >= KL(p_T || prior)")
    return KLBound(score_term, score_se, prior_term, oracle is not None, note)
