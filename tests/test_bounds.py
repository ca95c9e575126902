"""The likelihood-weighted bounds: tight for the exact score, above the exact KL otherwise."""
import math

import pytest
import torch

import sdescore
from sdescore.datasets import random_mixture

from conftest import make_sde


def test_nll_bound_equals_minus_log_p_for_the_exact_score(sde):
    """With the exact score the SDE model is the data law, so the per-sample variational
    bound has zero gap: bound(x) + log p(x) averages to 0 within its standard error, and
    each point's z-score (gap / its own standard error) is standard normal. Scored one draw
    of the 300 points at a time (batch_size 300) it takes 128 evaluations and gives the same
    values: the default's stacked draws are the same draws."""
    mixture = random_mixture(3, seed=3)
    model = sdescore.ScoreModel(sde, mixture.score_fn(sde), (3,)).double()
    x = mixture.sample(300, seed=1)
    bound, stderr = model.nll_bound(x, draws=128, seed=0, return_stderr=True)
    gap = bound + mixture.log_prob(x)
    assert abs(gap.mean()) < 3 * math.sqrt((stderr**2).mean() / len(x))
    assert 0.8 < (gap / stderr).std() < 1.2
    assert model.last_score_evals < 128
    one_draw_per_call = model.nll_bound(x, draws=128, seed=0, return_stderr=True, batch_size=300)
    assert model.last_score_evals == 128
    torch.testing.assert_close(one_draw_per_call, (bound, stderr), rtol=1e-12, atol=1e-12)


def test_control_variate_makes_the_bound_exact_for_standard_normal_data(sde):
    """The bound subtracts the N(0, I) score's residual draw by draw and adds its expectation
    back in closed form (a time integral by quadrature). For N(0, I) data and its exact
    score the random part is then zero: every draw gives the same value, and it must equal
    -log p(x) (up to the part of the integral below eps)."""
    gaussian = sdescore.datasets.GaussianMixture([[0.0, 0.0, 0.0]], [[1.0, 1.0, 1.0]])
    model = sdescore.ScoreModel(sde, gaussian.score_fn(sde), (3,)).double()
    x = gaussian.sample(50, seed=0) * 1.5
    bound, stderr = model.nll_bound(x, draws=8, seed=0, return_stderr=True)
    assert stderr.abs().max() < 1e-9
    torch.testing.assert_close(bound, -gaussian.log_prob(x), rtol=0, atol=2e-3)


def test_kl_bound_with_the_oracle_score_reduces_to_the_prior_term(sde):
    mixture = random_mixture(2, seed=0)
    model = sdescore.ScoreModel(sde, mixture.score_fn(sde), (2,)).double()
    result = sdescore.kl_bound(model, mixture.sample(500, seed=1), oracle=mixture)
    assert result.exact_score and result.score_term == 0.0
    assert abs(result.prior_term) < 1e-3  # mean 0, so p_T is all but the prior
    assert result.total == result.prior_term


def test_prior_term_is_kl_of_shifted_data_at_T():
    """A mixture far from the origin leaves p_T off the prior: the Monte Carlo KL(p_T || prior)
    matches the closed form for a Gaussian, KL(N(m mu, C) || N(0, I))."""
    sde = make_sde("vp")
    gaussian = sdescore.datasets.GaussianMixture([[300.0, -200.0]], [[1.0, 1.0]])
    model = sdescore.ScoreModel(sde, gaussian.score_fn(sde), (2,)).double()
    result = sdescore.kl_bound(model, gaussian.sample(100, seed=0), oracle=gaussian)
    T = torch.ones(1, dtype=torch.float64)
    m, s = sde.mean_scale(T).item(), sde.marginal_std(T).item()
    var = m**2 + s**2
    closed = 0.5 * (2 * var + m**2 * (300**2 + 200**2) - 2 - 2 * math.log(var))
    assert result.prior_term == pytest.approx(closed, rel=0.02)


@pytest.fixture(scope="module")
def trained_on_mixture():
    mixture = random_mixture(2, seed=5)
    model = sdescore.fit(mixture.sample(5000, seed=0).float(), "subvp", steps=300, seed=0,
                         progress=False)
    return mixture, model


def test_trained_model_exact_kl_sits_below_both_bounds(trained_on_mixture):
    """KL measured by the exact ODE likelihood (mean log p_true - log p_model on fresh draws)
    against the KL bound with the oracle and the mean per-sample NLL bound."""
    mixture, model = trained_on_mixture
    x = mixture.sample(2000, seed=1)
    measured = (mixture.log_prob(x) - model.log_prob(x.float()).double()).mean().item()
    result = sdescore.kl_bound(model, x.float(), oracle=mixture, draws=32)
    assert result.score_term > 0
    assert measured < result.total + 3 * result.score_term_se, (measured, result)
    bound, stderr = model.nll_bound(x[:1000].float(), draws=64, seed=0, return_stderr=True)
    excess = (bound.double() + mixture.log_prob(x[:1000])).mean()
    assert excess > measured - 3 * math.sqrt((stderr.double() ** 2).mean() / 1000)


def test_kl_bound_without_oracle_says_what_it_reports(trained_on_mixture):
    mixture, model = trained_on_mixture
    result = sdescore.kl_bound(model, mixture.sample(500, seed=2).float())
    assert not result.exact_score and "denoising form" in result.note
    assert result.prior_term > 0


def test_a_conditional_bound_scores_each_row_with_its_own_label():
    """Rows of three classes (the components of a mixture), each scored by the exact score of
    its own class: the bound equals -log p(x | y) within its standard error, and scoring many
    draws of the rows together (rows_per_call) gives the same values as one draw at a time."""
    from sdescore.bounds import nll_bound_terms

    sde = make_sde("vp")
    mixture = random_mixture(2, 3, seed=4)
    classes = [mixture.component(k) for k in range(3)]
    scores = [component.score_fn(sde) for component in classes]
    labels = torch.arange(60) % 3  # the classes interleaved
    x = torch.empty(60, 2, dtype=torch.float64)
    for k in range(3):
        x[labels == k] = classes[k].sample(20, seed=k)

    def conditional_score(x_t, t, y):
        out = torch.empty_like(x_t)
        for k in range(3):
            out[y == k] = scores[k](x_t[y == k], t[y == k])
        return out

    def bound(rows_per_call):
        return nll_bound_terms(sde, conditional_score, x, draws=64, eps=sde.likelihood_eps,
                               seed=0, labels=labels,
                               rows_per_call=rows_per_call)
    stacked, stderr = bound(60 * 64)
    torch.testing.assert_close((stacked, stderr), bound(None), rtol=1e-12, atol=1e-12)
    gap = stacked + torch.stack([classes[k].log_prob(row[None])[0]
                                 for row, k in zip(x, labels.tolist())])
    assert abs(gap.mean()) < 3 * math.sqrt((stderr**2).mean() / len(x)), gap.mean()
