"""The DDPM connection: schedule correspondence, noise <-> score, ancestral sampling."""
import math

import pytest
import torch

import sdescore
from sdescore.ddpm import alphas_bar, ddpm_betas, noise_to_score, score_to_noise, vp_sde_from_betas
from sdescore.nets import MLPScoreNet
from sdescore.parameterization import NoisePrediction


def test_ddpm_betas_are_the_vp_schedule_and_the_map_inverts():
    sde = sdescore.VPSDE(beta_min=0.1, beta_max=20.0)
    n = 1000
    betas = ddpm_betas(sde, n)
    i = torch.arange(1, n + 1, dtype=torch.float64)
    expected = 0.1 / n + (i - 1) * (20.0 - 0.1) / (n * (n - 1))
    torch.testing.assert_close(betas, expected, rtol=1e-12, atol=0)
    # beta_i = beta(t) / N at t = (i - 1) / (N - 1)
    torch.testing.assert_close(betas * n, sde.beta((i - 1) / (n - 1)), rtol=1e-12, atol=0)
    back = vp_sde_from_betas(betas)
    assert back.beta_min == pytest.approx(0.1) and back.beta_max == pytest.approx(20.0)


def test_ddpm_marginals_converge_to_the_vp_sdes_at_rate_one_over_n():
    """sqrt(abar_i) and sqrt(1 - abar_i) at step i approach m(t) and s(t) at t = i / N with
    an error of order 1/N: ten times the steps, a tenth of the error."""
    sde = sdescore.VPSDE()

    def errors(n):
        abar = alphas_bar(ddpm_betas(sde, n))
        t = torch.arange(1, n + 1, dtype=torch.float64) / n
        mean_error = (abar.sqrt() - sde.mean_scale(t)).abs().max().item()
        std_error = ((1 - abar).sqrt() / sde.marginal_std(t) - 1).abs()[n // 10:].max().item()
        return mean_error, std_error

    coarse, fine = errors(100), errors(1000)
    for before, after in zip(coarse, fine):
        assert after < 5e-3 and 7 < before / after < 13, (before, after)


def test_noise_and_score_convert_exactly():
    sde = sdescore.VPSDE()
    t = torch.rand(7, dtype=torch.float64) * 0.99 + 0.01
    noise = torch.randn(7, 3, dtype=torch.float64)
    std = sde.marginal_std(t)
    score = noise_to_score(noise, std)
    torch.testing.assert_close(score, -noise / std[:, None], rtol=0, atol=0)
    torch.testing.assert_close(score_to_noise(score, std), noise, rtol=1e-15, atol=1e-15)
    # a noise-predicting network's score is the same conversion
    net = MLPScoreNet(3, hidden=16).double()
    x = torch.randn(7, 3, dtype=torch.float64)
    torch.testing.assert_close(NoisePrediction(net, sde)(x, t), noise_to_score(net(x, t), std))
    # the DSM target: for x_t = m x0 + s z, the kernel's score is exactly noise_to_score(z)
    x0 = torch.randn(7, 3, dtype=torch.float64)
    x_t = sde.perturb(x0, t, noise)
    kernel_score = -(x_t - sde.marginal_mean(x0, t)) / std[:, None] ** 2
    torch.testing.assert_close(kernel_score, score, rtol=1e-10, atol=1e-10)


def test_ddpm_needs_a_vp_model():
    sde = sdescore.SubVPSDE()
    model = sdescore.ScoreModel(sde, lambda x, t: -x, (2,))
    with pytest.raises(ValueError, match="the DDPM schedule belongs to the VP SDE"):
        model.sample(4, "ddpm")
    vp = sdescore.ScoreModel(sdescore.VPSDE(), lambda x, t: -x, (2,))
    with pytest.raises(ValueError, match="steps must be >= 2 and above beta_max = 20.0"):
        vp.sample(4, "ddpm", steps=20)
    with pytest.raises(ValueError, match="betas must be linear"):
        vp_sde_from_betas(torch.tensor([0.1, 0.2, 0.4]))
    assert math.isfinite(vp_sde_from_betas([1e-4, 2e-2]).beta_max)
