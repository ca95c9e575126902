"""Score-matching losses on Gaussian data, where the true score of every p_t is known:
the true score gives the closed-form loss value and is the population minimiser."""
import math

import pytest
import torch

from sdescore.datasets import GaussianMixture
from sdescore.losses import (DenoisingScoreMatching, ImportanceTimes, LadderTimes, SlicedScoreMatching, get_loss)

from conftest import make_sde

N = 100_000


@pytest.fixture
def gaussian():
    """N(mu, Sigma) in 3-D with correlations."""
    cov = torch.tensor([[1.0, 0.3, 0.0], [0.3, 0.5, 0.1], [0.0, 0.1, 0.8]], dtype=torch.float64)
    return GaussianMixture([[0.5, -1.0, 0.2]], cov[None])


def trace_inverse_cov(gaussian, sde, t):
    """tr C_t^{-1} with C_t = m^2 Sigma + s^2 I, the covariance of p_t."""
    tt = torch.tensor([t], dtype=torch.float64)
    m, s = sde.mean_scale(tt).item(), sde.marginal_std(tt).item()
    cov = m**2 * gaussian.covs[0] + s**2 * torch.eye(3, dtype=torch.float64)
    return torch.linalg.inv(cov).trace().item(), s


def assert_mean_close(values, expected, sigmas=4.0):
    sem = values.std().item() / math.sqrt(values.numel())
    assert abs(values.mean().item() - expected) < sigmas * sem + 1e-12, \
        f"mean {values.mean().item():.5f} vs closed form {expected:.5f} (sem {sem:.5f})"


@pytest.mark.parametrize("t", [0.01, 0.3, 0.9])
def test_dsm_at_true_score_equals_d_minus_s2_trace_inverse_cov(gaussian, sde, t):
    """E || s score(x_t) + z ||^2 = d - s^2 tr C_t^{-1} at the true score."""
    x0 = gaussian.sample(N, seed=1)
    times = torch.full((N,), t, dtype=torch.float64)
    loss = DenoisingScoreMatching(sde)(gaussian.score_fn(sde), x0, t=times,
                                       generator=torch.Generator().manual_seed(2))
    trace, s = trace_inverse_cov(gaussian, sde, t)
    assert_mean_close(loss, 3 - s**2 * trace)


def test_dsm_excess_over_true_score_is_lambda_times_squared_error(gaussian, sde):
    """With common noise, loss(score + c) - loss(score) averages lambda ||c||^2: the true score
    minimises the population loss, and by exactly the squared error."""
    x0, t = gaussian.sample(N, seed=3), torch.full((N,), 0.2, dtype=torch.float64)
    shift = torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64)
    loss = DenoisingScoreMatching(sde)
    score = gaussian.score_fn(sde)
    true = loss(score, x0, t=t, generator=torch.Generator().manual_seed(4))
    off = loss(lambda x, tt: score(x, tt) + shift, x0, t=t,
               generator=torch.Generator().manual_seed(4))
    s2 = sde.marginal_std(t[:1]).item() ** 2
    assert_mean_close(off - true, s2 * shift.square().sum().item())


def test_likelihood_weighting_with_importance_sampling_matches_the_uniform_time_integral(gaussian):
    """E_t~q [weight g^2 ||...||^2] = 1/(T - eps) integral g^2/s^2 (d - s^2 tr C_t^{-1}) dt."""
    sde = make_sde("vp")
    loss = DenoisingScoreMatching(sde, weighting="likelihood")
    assert isinstance(loss.times, ImportanceTimes)
    values = loss(gaussian.score_fn(sde), gaussian.sample(N, seed=5),
                  generator=torch.Generator().manual_seed(6))
    def integrand(u):
        trace, s = trace_inverse_cov(gaussian, sde, u)
        g2 = sde.diffusion(torch.tensor([u], dtype=torch.float64)).item() ** 2
        return g2 / s**2 * (3 - s**2 * trace)

    grid = torch.logspace(-5, 0, 2001, dtype=torch.float64)
    integral = torch.trapezoid(torch.tensor([integrand(u) for u in grid.tolist()]), grid).item()
    assert_mean_close(values, integral / (1 - 1e-5), sigmas=5.0)


def test_importance_times_reweight_to_the_uniform_average():
    sde = make_sde("subvp")
    times = ImportanceTimes(sde, 1e-5)
    t, weight = times(N, dtype=torch.float64, device="cpu",
                      generator=torch.Generator().manual_seed(7))
    assert t.min() >= 1e-5 and t.max() <= 1.0
    f = torch.sin(3 * t) + 1
    exact = (1 + (math.cos(3e-5) - math.cos(3.0)) / 3 / (1 - 1e-5))
    assert_mean_close(weight * f, exact)


@pytest.mark.parametrize("variance_reduced", [False, True])
@pytest.mark.parametrize("t", [0.05, 0.5])
def test_sliced_score_matching_at_true_score_is_minus_half_s2_trace(gaussian, t, variance_reduced):
    """E[v^T J v + (v^T score)^2 / 2] = tr J + E||score||^2 / 2 = -tr C^{-1} / 2, times s^2."""
    sde = make_sde("vp")
    loss = SlicedScoreMatching(sde, variance_reduced=variance_reduced)
    times = torch.full((N,), t, dtype=torch.float64)
    values = loss(gaussian.score_fn(sde), gaussian.sample(N, seed=8), t=times,
                  generator=torch.Generator().manual_seed(9))
    trace, s = trace_inverse_cov(gaussian, sde, t)
    assert_mean_close(values, -0.5 * s**2 * trace)


def test_sliced_score_matching_excess_is_half_lambda_squared_error(gaussian):
    """Hyvarinen: the SSM objective is E||score - true||^2 / 2 + const."""
    sde = make_sde("vp")
    loss = SlicedScoreMatching(sde, variance_reduced=True)
    x0, t = gaussian.sample(N, seed=10), torch.full((N,), 0.3, dtype=torch.float64)
    shift = torch.tensor([0.4, 0.0, -0.3], dtype=torch.float64)
    score = gaussian.score_fn(sde)
    true = loss(score, x0, t=t, generator=torch.Generator().manual_seed(11))
    off = loss(lambda x, tt: score(x, tt) + shift, x0, t=t,
               generator=torch.Generator().manual_seed(11))
    s2 = sde.marginal_std(t[:1]).item() ** 2
    assert_mean_close(off - true, 0.5 * s2 * shift.square().sum().item())


def test_ncsn_ladder_is_geometric_in_the_kernel_std(sde):
    ladder = LadderTimes(sde, 1e-5, noise_levels=10)
    stds = sde.marginal_std(ladder.times)
    ratios = stds[1:] / stds[:-1]
    torch.testing.assert_close(ratios, ratios[0].expand(9), rtol=1e-6, atol=0)
    loss = get_loss("ncsn", sde, 1e-5)
    t, _ = loss.times(1000, dtype=torch.float64, device="cpu")
    assert set(t.tolist()) <= set(ladder.times.tolist())


def test_unknown_loss_and_weighting_are_rejected():
    sde = make_sde("vp")
    with pytest.raises(ValueError, match="Unknown loss 'mse'; choose one of: dsm, dsm-likelihood"):
        get_loss("mse", sde, 1e-5)
    with pytest.raises(ValueError, match="Unknown weighting 'flat'"):
        DenoisingScoreMatching(sde, weighting="flat")
