"""The analytic oracle: a Gaussian mixture's density, perturbed marginals and samples."""
import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from sdescore.oracle import GaussianMixture

def test_mixture_log_prob_matches_scipy(mixture2d):
    x = mixture2d.sample(20, seed=0)
    expected = np.log(sum(
        w * multivariate_normal(mu, cov).pdf(x.numpy())
        for w, mu, cov in zip(mixture2d.weights.numpy(), mixture2d.means.numpy(),
                              mixture2d.covs.numpy())))
    np.testing.assert_allclose(mixture2d.log_prob(x).numpy(), expected, rtol=1e-10)

def test_marginal_score_is_the_gradient_of_the_marginal_log_density(mixture2d, sde):
    x = mixture2d.sample(10, seed=1).requires_grad_(True)
    t = torch.linspace(0.01, 1.0, 10, dtype=torch.float64)
    (grad,) = torch.autograd.grad(mixture2d.marginal_log_prob(x, t, sde).sum(), x)
    torch.testing.assert_close(mixture2d.marginal_score(x, t, sde), grad)

def test_marginal_mixture_is_the_perturbed_density(mixture2d, sde):
    """p_t as a mixture N(m mu_k, m^2 Sigma_k + s^2 I) equals the kernel-based formula."""
    x = mixture2d.sample(10, seed=2)
    t = torch.full((10,), 0.4, dtype=torch.float64)
    torch.testing.assert_close(mixture2d.marginal(sde, 0.4).log_prob(x),
                               mixture2d.marginal_log_prob(x, t, sde))

def test_mixture_samples_have_the_mixture_moments(mixture2d):
    x = mixture2d.sample(200000, seed=3)
    mean = (mixture2d.weights[:, None] * mixture2d.means).sum(0)
    second = sum(w * (c + torch.outer(m, m)) for w, m, c in
                 zip(mixture2d.weights, mixture2d.means, mixture2d.covs))
    torch.testing.assert_close(x.mean(0), mean, atol=0.01, rtol=0)
    torch.testing.assert_close(x.T @ x / len(x), second, atol=0.02, rtol=0)

def test_mixture_rejects_bad_parameters():
    with pytest.raises(ValueError, match="positive definite"):
        GaussianMixture([[0.0, 0.0]], [[[1.0, 2.0], [2.0, 1.0]]])
    with pytest.raises(ValueError, match=r"covs must have shape \(1, 2, 2\) or \(1, 2\)"):
        GaussianMixture([[0.0, 0.0]], [[1.0]])
    with pytest.raises(ValueError, match="weights must be 2 positive numbers"):
        GaussianMixture([[0.0], [1.0]], [[1.0], [1.0]], weights=[1.0, -1.0])
