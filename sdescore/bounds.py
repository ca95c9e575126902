"""Upper bounds from the likelihood-weighted score-matching objective
(Song, Durkan, Murray and Ermon 2021, "Maximum Likelihood Training of Score-Based Diffusion
Models", Theorems 1-2). Everything here works in the model's own (standardised) space and
converts to the data's coordinates where a density is returned.

Per sample, with x_t = m(t) x + s(t) z and the importance density q(t) ~ g^2 / s^2 on
[eps, T] (normaliser Z):

  -log p_theta^SDE(x) <= E[-log prior(x_T)] + Z/2 E_q[ ||s score(x_t, t) + z||^2 - ||z||^2 ]
                         - D (log m(T) - log m(eps)),

the last term being -integral of div f. The part of the integral below eps is left out.
The raw estimate is noisy (tens of nats per draw in a few dimensions: at large t the
residual is about -||z||^2, a chi-square), so each draw subtracts the same expression for
the score of N(0, I), -x_t / (m^2 + s^2), whose expectation is added back in closed form
(a control variate; exact in expectation, and most effective on standardised data).
For the whole data set,

  KL(p_0 || p_theta^SDE) <= (T/2) E_{t ~ U(0, T)} E_{p_t} g^2 ||grad log p_t - score||^2
                            + KL(p_T || prior).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .losses import ImportanceTimes
from .metrics import mean_and_se
from ._tensors import append_dims, seed_or_fresh, sum_except_batch
from ._checks import check_positive
from ._row_streams import RowStreams

__all__ = ["importance_values", "kl_bound", "KLBound", "nll_bound_terms"]


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


def _reference_integrals(sde, eps: float, points: int = 20001):
    """(I1, I2) with E_{t, z}[Z/2 excess of the N(0, I) score at x_t = m x + s z] =
    I1 ||x||^2 + I2 D: I1 = 1/2 int g^2 m^2 / v^2 dt, I2 = 1/2 int g^2 (s^2 / v^2 - 2 / v) dt
    over [eps, T], v = m^2 + s^2, by the trapezoid rule on a grid dense near eps."""
    t = torch.cat([torch.logspace(math.log10(eps), math.log10(sde.T), points // 2,
                                  dtype=torch.float64),
                   torch.linspace(eps, sde.T, points - points // 2, dtype=torch.float64)])
    t = t.unique()  # sorted
    g2, m, s = sde.diffusion(t) ** 2, sde.mean_scale(t), sde.marginal_std(t)
    v = m**2 + s**2
    i1 = torch.trapezoid(0.5 * g2 * m**2 / v**2, t).item()
    i2 = torch.trapezoid(0.5 * g2 * (s**2 / v**2 - 2 / v), t).item()
    return i1, i2


def _controlled_excess(sde, scaled_score, y_t, z, t):
    """The denoising excess of a score less that of the N(0, I) score at the same (t, z):
    scaled_score = s(t) score(y_t, t); all ``(n, *shape)`` but t (n,)."""
    reference = append_dims(sde.marginal_std(t), y_t.ndim) * sde.standard_normal_score(y_t, t)
    return _denoising_excess(scaled_score, z) - _denoising_excess(reference, z)


def importance_values(sde, y, eps: float, draws: int, integrand, seed: int,
                      rows_per_call: int | None = None):
    """Monte Carlo values of 1/2 int_eps^T g^2 / s^2 E_z integrand(t, z, y_t, s(t), rows) dt
    for y ``(n, *shape)``: returns (units, n). t is drawn with density proportional to
    g^2 / s^2 (``ImportanceTimes``, normaliser Z, so each value is Z/2 integrand); each unit is
    the mean over an antithetic pair (t, z), (t, -z), and unit k's t comes from the k-th of
    ``units`` = ceil(draws / 2) equal-probability slices. The mean over units is unbiased;
    their spread gives a conservative standard error (it ignores the stratification's gain).
    A row's t and z come from its own stream, a function of ``seed`` and of its values (as
    Hutchinson's probes, ``likelihood.row_probes``), so that its values are the same alone,
    in any batch and on any rank.

    The integrand is called on several draws of the n rows stacked together, at most
    ``rows_per_call`` rows (None: n, one draw per call; at least n): t (m,), z, y_t and s(t)
    ``(m, *shape)``, and rows (m,), the row of y each stacked row is a draw of; it returns
    (m,). The draws, and so the values, do not depend on ``rows_per_call``."""
    times = ImportanceTimes(sde, eps)
    n, units, dim = y.shape[0], -(-draws // 2), y[0].numel()
    streams = RowStreams(y, seed, b"nll_bound")  # numbers 0..units-1: t; then z, unit by unit
    per_call = max(1, (rows_per_call or n) // max(n, 1))  # (unit, sign) draws per call
    draws_in_order = [(k, sign) for k in range(units) for sign in (1, -1)]
    unit_draw = {}  # the (t, z) of the unit being used, drawn in unit order
    values = []
    for first in range(0, len(draws_in_order), per_call):
        group = draws_in_order[first:first + per_call]
        t, z = [], []
        for k, sign in group:
            if k not in unit_draw:
                u = (k + streams.uniform(k, 1)[:, 0]) / units
                unit_draw = {k: (times.at(u, dtype=y.dtype, device=y.device)[0],
                                 streams.normal(units + k * dim, dim).reshape(y.shape))}
            t.append(unit_draw[k][0])
            z.append(sign * unit_draw[k][1])
        t, z = torch.cat(t), torch.cat(z)
        y_t = sde.perturb(y.repeat((len(group),) + (1,) * (y.ndim - 1)), t, z)
        rows = torch.arange(n, device=y.device).repeat(len(group))
        std = append_dims(sde.marginal_std(t), y.ndim)
        values.append(integrand(t, z, y_t, std, rows).reshape(len(group), n))
    return 0.25 * times.total * torch.cat(values).reshape(units, 2, n).sum(1)


def nll_bound_terms(sde, score, y, *, draws: int, eps: float, seed: int, labels=None,
                    rows_per_call: int | None = None):
    """Per-sample bound on -log p_theta^SDE(y) in model space, and its Monte Carlo standard
    error: y ``(n, *shape)`` -> ((n,), (n,)) nats. ``draws`` score evaluations per sample
    (antithetic pairs, stratified in t). score(y_t, t), or score(y_t, t, labels) with labels
    (n,) of a conditional model; seed: the draws' (each row's from its own stream, so that a
    row's bound is the same in any batch); rows_per_call: rows scored together
    (``importance_values``)."""
    n, d = y.shape[0], y[0].numel()
    eps_t = torch.full((n,), eps, dtype=y.dtype, device=y.device)

    def integrand(t, z, y_t, std, rows):
        scores = score(y_t, t) if labels is None else score(y_t, t, labels[rows])
        return _controlled_excess(sde, std * scores, y_t, z, t)

    values = importance_values(sde, y, eps, draws, integrand, seed,
                               rows_per_call=rows_per_call)
    i1, i2 = _reference_integrals(sde, eps)
    reference = i1 * sum_except_batch(y**2) + i2 * d
    drift_term = -d * (torch.log(sde.mean_scale(torch.full_like(eps_t, sde.T)))
                       - torch.log(sde.mean_scale(eps_t)))
    bound = _prior_cross_entropy(sde, y, eps_t) + values.mean(0) + reference + drift_term
    units = values.shape[0]
    stderr = values.std(0) / math.sqrt(units) if units > 1 else torch.full_like(bound, math.nan)
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
    """Bound KL(p_0 || p_theta^SDE) for ``model`` on ``data`` ``(n, *shape)`` drawn from p_0.

    oracle: the data's true law as a ``GaussianMixture`` in data coordinates, when known.
    Then score_term is (T/2) E g^2 ||grad log p_t - score||^2 with the exact grad log p_t
    (0 when the model's score is the oracle's), and prior_term is KL(p_T || prior) by Monte
    Carlo over ``prior_samples`` draws of p_T. Without an oracle, score_term is the denoising
    form of the same integral (the true term minus the data constant
    (1/2) integral g^2 E||grad log p_t||^2 dt) and prior_term is E_x KL(p_T(. | x) || prior),
    a closed-form upper bound on KL(p_T || prior); ``note`` says which. ``draws``: score
    evaluations per data row, in antithetic (t, z), (t, -z) pairs with t importance-sampled
    in proportion to g^2 / s^2 and stratified, each row's drawn from ``seed`` and its values
    (so identical rows share their draws; seed None: a fresh seed).
    """
    check_positive(draws, name="draws", integer=True)
    check_positive(prior_samples, name="prior_samples", integer=True)
    y = model.model_rows(data, name="data")
    sde, eps, n = model.sde, model.sde.likelihood_eps, y.shape[0]
    seed = seed_or_fresh(seed)
    flat = lambda v: v.reshape(v.shape[0], -1)  # noqa: E731
    if oracle is not None:
        truth = oracle.affine(model.datamap.loc, model.datamap.scale)
        if truth.dim != model.dim:
            raise ValueError(f"oracle has dimension {truth.dim}; the model {model.dim}")
        true_score = truth.score_fn(sde)

    def integrand(t, z, y_t, std, rows):
        learned = model.score_fn(y_t, t)
        if oracle is None:
            return _controlled_excess(sde, std * learned, y_t, z, t)
        target = true_score(flat(y_t).double(), t.double()).to(y.dtype).reshape(y_t.shape)
        return sum_except_batch((std * (learned - target)) ** 2)

    with torch.no_grad():
        values = importance_values(sde, y, eps, draws, integrand, seed)
    score_term, score_se = mean_and_se(values)
    if oracle is not None:
        p_T = truth.marginal(sde, sde.T)
        x_T = p_T.sample(prior_samples, seed=seed)
        prior = sde.prior_log_prob(x_T)
        prior_term = (p_T.log_prob(x_T) - prior).mean().item()
        note = "exact score term; KL(p_T || prior) by Monte Carlo"
    else:
        i1, i2 = _reference_integrals(sde, eps)  # the control variate's expectation
        score_term += i1 * sum_except_batch(y.double() ** 2).mean().item() + i2 * model.dim
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
