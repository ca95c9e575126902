"""Score-matching objectives. Each loss returns one value per example, (n,); the training
loop is the only place that reduces. Weighting, time sampling and eps are set at construction.

- ``DenoisingScoreMatching``: lambda(t) || score(x_t, t) + z / s(t) ||^2 with
  x_t = m(t) x_0 + s(t) z (Vincent 2011; Song et al. 2021, Eq. 7). weighting "score" is
  lambda = s^2, "likelihood" is lambda = g^2 (Song, Durkan, Murray and Ermon 2021), by default
  with t importance-sampled in proportion to g^2 / s^2.
- ``SlicedScoreMatching``: v^T (d score / dx) v + (v^T score)^2 / 2, or with
  variance reduction ||score||^2 / 2 for Gaussian v (Song, Garg, Shi and Ermon 2019), at
  perturbed points x_t; it never uses the kernel's target, so it serves score models whose
  perturbation has no known kernel.
- NCSN (Song and Ermon 2019) is denoising score matching over a discrete geometric ladder
  of noise levels: ``DenoisingScoreMatching(sde, times=LadderTimes(sde, eps, noise_levels))``.

Every time sampler returns (t, weight) with E[weight L(t)] = E_{t ~ U(eps, T)}[L(t)].
"""
from __future__ import annotations

import torch

from ._tensors import append_dims, sum_except_batch
from ._checks import check_flag, choose

__all__ = ["DenoisingScoreMatching", "get_loss", "ImportanceTimes", "LadderTimes", "LOSSES",
           "PROBES", "SlicedScoreMatching", "training_objective", "UniformTimes", "WEIGHTINGS",
           "with_labels_argument"]


class UniformTimes:
    """t ~ U(eps, T), weight 1."""

    def __init__(self, sde, eps: float):
        self.sde, self.eps = sde, eps

    def __call__(self, n, *, dtype, device, generator=None):
        u = torch.rand(n, generator=generator, dtype=dtype, device=device)
        t = self.eps + (self.sde.T - self.eps) * u
        return t, torch.ones_like(t)


class ImportanceTimes:
    """t with density q(t) proportional to g(t)^2 / s(t)^2 on [eps, T], weight 1 / (q (T - eps)).

    With the likelihood weighting lambda = g^2, lambda(t) * weight is Z s(t)^2 / (T - eps):
    the 1/s^2 blow-up of the denoising target near t = 0 is cancelled, so the objective's
    variance stays low. The CDF is tabulated on a grid geometric in t and inverted by
    linear interpolation.
    """

    def __init__(self, sde, eps: float, grid: int = 4096):
        self.sde, self.eps = sde, eps
        t = torch.logspace(torch.log10(torch.tensor(eps)), 0.0, grid, dtype=torch.float64) * sde.T
        density = self.unnormalised(t)
        cdf = torch.cat([torch.zeros(1, dtype=torch.float64),
                         torch.cumsum(0.5 * (density[1:] + density[:-1]) * t.diff(), 0)])
        self.total = cdf[-1].item()
        self.grid_t, self.grid_cdf = t, cdf / cdf[-1]

    def unnormalised(self, t):
        return self.sde.diffusion(t) ** 2 / self.sde.marginal_std(t) ** 2

    def __call__(self, n, *, dtype, device, generator=None, stratum=None):
        """n times and weights; stratum (k, K) draws from the k-th of K equal-probability
        slices of q instead (stratified sampling)."""
        u = torch.rand(n, generator=generator, dtype=torch.float64)
        if stratum is not None:
            u = (stratum[0] + u) / stratum[1]
        return self.at(u, dtype=dtype, device=device)

    def at(self, u: torch.Tensor, *, dtype, device):
        """The times and weights at quantiles u (n,) float64 in (0, 1) of q."""
        index = torch.searchsorted(self.grid_cdf, u).clamp(1, len(self.grid_cdf) - 1)
        lo, hi = self.grid_cdf[index - 1], self.grid_cdf[index]
        frac = (u - lo) / (hi - lo)
        t = self.grid_t[index - 1] + frac * (self.grid_t[index] - self.grid_t[index - 1])
        weight = self.total / (self.unnormalised(t) * (self.sde.T - self.eps))
        return t.to(dtype=dtype, device=device), weight.to(dtype=dtype, device=device)


class LadderTimes:
    """t uniform over ``noise_levels`` times whose stds s(t) run geometrically from s(T) down
    to s(eps): the discrete noise ladder of NCSN; weight 1."""

    def __init__(self, sde, eps: float, noise_levels: int = 10):
        ends = sde.marginal_std(torch.tensor([sde.T, eps], dtype=torch.float64))
        stds = torch.exp(torch.linspace(ends[0].log().item(), ends[1].log().item(), noise_levels,
                                        dtype=torch.float64))
        self.times = sde.time_at_std(stds).clamp(eps, sde.T)

    def __call__(self, n, *, dtype, device, generator=None):
        index = torch.randint(0, len(self.times), (n,), generator=generator)
        t = self.times[index].to(dtype=dtype, device=device)
        return t, torch.ones_like(t)


#: Weighting name -> lambda(t) of denoising score matching.
WEIGHTINGS = {"score": "s(t)^2", "likelihood": "g(t)^2"}


class _ScoreMatchingLoss:
    """Shared set-up: SDE, eps, weighting, time sampler; subclasses define ``per_time``."""

    def __init__(self, sde, *, weighting: str = "score", eps: float | None = None, times=None):
        choose(weighting, WEIGHTINGS, name="weighting")
        self.sde, self.weighting = sde, weighting
        self.eps = sde.likelihood_eps if eps is None else eps
        if times is None:
            sampler = ImportanceTimes if weighting == "likelihood" else UniformTimes
            times = sampler(sde, self.eps)
        self.times = times

    def weight_over_std2(self, t):
        """lambda(t) / s(t)^2: 1 for the "score" weighting, g^2 / s^2 for "likelihood"."""
        if self.weighting == "score":
            return torch.ones_like(t)
        return self.sde.diffusion(t) ** 2 / self.sde.marginal_std(t) ** 2

    def __call__(self, score_fn, x0, *, t=None, generator=None, y=None):
        """Per-example loss (n,) for data x0 ``(n, *shape)``; ``t`` (n,) fixes the times
        (weight 1) instead of drawing them; ``y`` (n,) labels go to a conditional
        score_fn(x, t, y)."""
        if t is None:
            t, weight = self.times(x0.shape[0], dtype=x0.dtype, device=x0.device,
                                   generator=generator)
        else:
            weight = torch.ones_like(t)
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
        x_t = self.sde.perturb(x0, t, noise)
        return weight * self.per_time(score_fn, x_t, t, noise, generator, y)


def _with_labels(score_fn, y):
    """score_fn(x, t) itself, or with the labels y bound as its third argument."""
    return score_fn if y is None else (lambda x, t: score_fn(x, t, y))


class DenoisingScoreMatching(_ScoreMatchingLoss):
    """lambda(t) || score(x_t, t) + z / s ||^2, computed as (lambda / s^2) || s score + z ||^2.

    A parameterisation (``sdescore.parameterization``) gives s score + z from its own
    training target (``denoising_residual``); any other score callable through its score."""

    def per_time(self, score_fn, x_t, t, noise, generator, y=None):
        own_residual = getattr(score_fn, "denoising_residual", None)
        if own_residual is not None:
            residual = own_residual(x_t, t, noise, y)
        else:
            std = append_dims(self.sde.marginal_std(t), x_t.ndim)
            residual = std * _with_labels(score_fn, y)(x_t, t) + noise
        return self.weight_over_std2(t) * sum_except_batch(residual**2)


#: The probe distributions of sliced score matching.
PROBES = ("rademacher", "gaussian")


class SlicedScoreMatching(_ScoreMatchingLoss):
    """lambda(t) [v^T J v + (v^T score)^2 / 2] at x_t, J = d score / dx; with
    ``variance_reduced`` the second term is ||score||^2 / 2 and v is Gaussian."""

    def __init__(self, sde, *, variance_reduced: bool = False, probe: str = "rademacher", **kw):
        super().__init__(sde, **kw)
        if probe not in PROBES:
            raise ValueError(f"Unknown probe {probe!r}; choose one of: {', '.join(PROBES)}")
        self.variance_reduced = check_flag(variance_reduced, name="variance_reduced")
        self.probe = "gaussian" if variance_reduced else probe

    def per_time(self, score_fn, x_t, t, noise, generator, y=None):
        with torch.enable_grad():
            x_t = x_t.detach().requires_grad_(True)
            score = _with_labels(score_fn, y)(x_t, t)
            v = torch.randn(x_t.shape, generator=generator, dtype=x_t.dtype, device=x_t.device)
            if self.probe == "rademacher":
                v = torch.sign(v)
            (vjp,) = torch.autograd.grad((score * v).sum(), x_t, create_graph=True)
            trace_term = sum_except_batch(vjp * v)
            if self.variance_reduced:
                square_term = 0.5 * sum_except_batch(score**2)
            else:
                square_term = 0.5 * sum_except_batch(score * v) ** 2
        std2 = self.sde.marginal_std(t) ** 2
        return self.weight_over_std2(t) * std2 * (trace_term + square_term)


#: Loss name -> a function (sde, eps) -> the loss object ``fit(loss=name)`` trains with.
LOSSES = {
    "dsm": lambda sde, eps: DenoisingScoreMatching(sde, eps=eps),
    "dsm-likelihood": lambda sde, eps: DenoisingScoreMatching(sde, weighting="likelihood", eps=eps),
    "ssm": lambda sde, eps: SlicedScoreMatching(sde, eps=eps),
    "ssm-vr": lambda sde, eps: SlicedScoreMatching(sde, variance_reduced=True, eps=eps),
    "ncsn": lambda sde, eps: DenoisingScoreMatching(sde, eps=eps, times=LadderTimes(sde, eps)),
}


def get_loss(loss, sde, eps: float):
    """A loss object from a LOSSES name, or ``loss`` itself when it is callable."""
    if callable(loss):
        return loss
    return choose(loss, LOSSES, name="loss")(sde, eps)


def training_objective(loss, *, augment=None, label_dropout: float = 0.0,
                       null_label: int | None = None):
    """The per-step objective ``objective(module, x0[, y]) -> (n,)`` for the training engine:
    ``loss(module, x0[, y])`` on the batch after what training does to it: each label y
    replaced by ``null_label`` with probability ``label_dropout`` (classifier-free guidance
    learns the unconditional score from those rows), then ``augment(x0)`` (fresh
    dequantisation noise; None: rows as they are). Held-out scoring uses ``loss`` itself."""
    def objective(module, x0, y=None):
        if y is not None and label_dropout:
            dropped = torch.rand(y.shape[0], device=y.device) < label_dropout
            y = y.masked_fill(dropped, null_label)
        if augment is not None:
            x0 = augment(x0)
        return loss(module, x0) if y is None else loss(module, x0, y)
    return objective


def with_labels_argument(loss):
    """``loss(module, x0, y=None, generator=None)`` for a loss with the signature of this
    module's, ``loss(score_fn, x0, *, generator=None[, y=labels])``: the engine passes a
    batch's labels by position; a loss without labels never sees ``y``."""
    def per_example(module, x0, y=None, generator=None):
        if y is None:
            return loss(module, x0, generator=generator)
        return loss(module, x0, generator=generator, y=y)
    return per_example
