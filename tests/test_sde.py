"""The SDE table of DESIGN.md: kernels, diffusions and torchsde modules against closed forms."""
import math

import pytest
import torch
import torchsde

import sdescore
from sdescore.solvers.adapters import ForwardSDE, ReverseSDE

from conftest import make_sde


def test_kernel_moments_solve_the_moment_odes(sde):
    """m' = f_coef m and (s^2)' = 2 f_coef s^2 + g^2 with m(0) = 1, s(0) = 0: the kernel in
    the table is the one the SDE's drift and diffusion imply."""
    t = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
    h = 1e-6
    dm = (sde.mean_scale(t + h) - sde.mean_scale(t - h)) / (2 * h)
    var = lambda u: sde.marginal_std(u) ** 2  # noqa: E731
    dvar = (var(t + h) - var(t - h)) / (2 * h)
    torch.testing.assert_close(dm, sde.drift_coef(t) * sde.mean_scale(t), rtol=1e-6, atol=1e-8)
    expected = 2 * sde.drift_coef(t) * var(t) + sde.diffusion(t) ** 2
    torch.testing.assert_close(dvar, expected, rtol=1e-5, atol=1e-6)
    zero = torch.zeros(1, dtype=torch.float64)
    assert sde.mean_scale(zero).item() == 1.0 and sde.marginal_std(zero).item() == 0.0


def test_subvp_std_keeps_its_digits_in_float32_near_zero():
    """s(1e-5) ~ 1e-6 for sub-VP: computed with expm1 it keeps float32 precision."""
    sde = sdescore.get_sde("subvp")
    t = torch.tensor([1e-5, 1e-4])
    exact = sde.marginal_std(t.double())
    torch.testing.assert_close(sde.marginal_std(t).double(), exact, rtol=1e-5, atol=0)


def test_forward_sde_by_torchsde_matches_closed_form_marginal(sde):
    """x_t | x_0 ~ N(m(t) x_0, s(t)^2 I): torchsde.sdeint on ForwardSDE reproduces it. Euler's
    own bias at dt = 2e-3 (from its moment recursions) is at most 0.002 in the mean (0.4
    standard errors of these 20000 paths) and 0.9% in the std, inside both bounds."""
    torch.manual_seed(0)
    n, x0 = 20000, torch.tensor([1.5, -0.5], dtype=torch.float64)
    module = ForwardSDE(sde, (2,))
    ts = torch.tensor([0.0, 0.3, 1.0], dtype=torch.float64)
    ys = torchsde.sdeint(module, x0.expand(n, 2).clone(), ts, method="euler", dt=2e-3)
    for y, t in zip(ys[1:], ts[1:]):
        tt = t.reshape(1)
        mean = sde.mean_scale(tt) * x0
        std = sde.marginal_std(tt)
        sem = std / math.sqrt(n)
        assert ((y.mean(0) - mean).abs() < 4 * sem).all()
        # the sample variance has relative standard error sqrt(2 / n) ~ 1%
        torch.testing.assert_close(y.std(0), std.expand(2), rtol=0.04, atol=0)


def test_reverse_module_drift_is_minus_f_minus_g2_score_in_reversed_time(mixture2d, sde):
    """In s = T - t the reverse module's drift is -(f - g^2 score) and its noise g."""
    score = mixture2d.score_fn(sde)
    reverse = ReverseSDE(sde, score, (2,))
    x = mixture2d.sample(7, seed=1)
    s = torch.tensor(0.3, dtype=torch.float64)
    t = torch.full((7,), 0.7, dtype=torch.float64)
    g = sde.diffusion(t)[:, None]
    expected = -(sde.drift(x, t) - g**2 * score(x, t))
    torch.testing.assert_close(reverse.f(s, x), expected)
    torch.testing.assert_close(reverse.g(s, x), g.expand(7, 2))
    assert reverse.noise_type == "diagonal" and reverse.sde_type == "ito"


def test_prior_log_prob_is_the_gaussian_density(sde):
    z = torch.randn(5, 3, dtype=torch.float64)
    normal = torch.distributions.Normal(0.0, sde.prior_std)
    torch.testing.assert_close(sde.prior_log_prob(z), normal.log_prob(z).sum(1))


def test_get_sde_names_and_errors():
    assert isinstance(sdescore.get_sde("VP"), sdescore.VPSDE)
    assert isinstance(sdescore.get_sde("subvp", beta_max=10), sdescore.SubVPSDE)
    with pytest.raises(ValueError, match="Unknown sde 'vpp'; choose one of: ve, vp, subvp"):
        sdescore.get_sde("vpp")
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        sdescore.VESDE(sigma_min=1.0, sigma_max=0.5)
    with pytest.raises(ValueError, match="beta_min"):
        sdescore.VPSDE(beta_min=-1)
    with pytest.raises(TypeError, match="sde must be"):
        sdescore.get_sde(3)


def test_model_exposes_torchsde_modules_that_share_its_score(mixture2d):
    sde = make_sde("vp")
    model = sdescore.ScoreModel(sde, mixture2d.score_fn(sde), (2,)).double()
    ys = torchsde.sdeint(model.reverse_sde, sde.prior_sample((4, 2), dtype=torch.float64),
                         torch.tensor([0.0, 0.5], dtype=torch.float64), dt=0.01)
    assert torch.isfinite(ys).all()
    model._score_evals = 0
    model.reverse_sde.f(torch.tensor(0.1, dtype=torch.float64), ys[-1])
    assert model._score_evals == 1  # the module calls the model's own (counted) score
