"""Every sampler reproduces an analytic mixture, judged against the two-sample noise floor."""
import pytest
import torch

import sdescore
from sdescore.datasets import GaussianMixture
from sdescore.metrics import energy_distance, mean_and_se, mmd

from conftest import SAMPLER_BANDWIDTHS, make_sde, mmd_floor

N = 4000
BANDWIDTHS = SAMPLER_BANDWIDTHS


@pytest.fixture(scope="module")
def mixture(sampler_mixture):
    return sampler_mixture


@pytest.fixture(scope="module")
def threshold(mixture):
    """Mean + 3 sd of the statistic between two fresh draws of N points (its noise floor)."""
    return mmd_floor(mixture, N)


def _respread(mixture, component, factor):
    covs = mixture.covs.clone()
    covs[component] *= factor**2
    return GaussianMixture(mixture.means, covs, mixture.weights)


@pytest.mark.parametrize("component", [0, 1])
@pytest.mark.parametrize("factor", [0.8, 1.2])
def test_statistic_catches_a_20_percent_error_in_one_components_spread(mixture, threshold,
                                                                        component, factor):
    wrong = _respread(mixture, component, factor).sample(N, seed=100)
    assert mmd(wrong, mixture.sample(N, seed=101), BANDWIDTHS) > threshold


@pytest.mark.parametrize("method", ["ode", "sde", "pc", "langevin", "dpm"])
def test_sampler_reproduces_the_mixture_with_its_exact_score(mixture, threshold, sde, method):
    model = sdescore.ScoreModel(sde, mixture.score_fn(sde), (2,))
    samples = model.sample(N, method, seed=3)
    assert samples.shape == (N, 2) and samples.dtype == torch.float32
    statistic = mmd(samples, mixture.sample(N, seed=11), BANDWIDTHS)
    assert statistic < threshold, f"MMD {statistic:.5f} above the noise floor {threshold:.5f}"
    assert model.last_score_evals > 0


def test_ddpm_ancestral_sampling_reproduces_the_mixture(mixture, threshold):
    sde = make_sde("vp")
    model = sdescore.ScoreModel(sde, mixture.score_fn(sde), (2,))
    samples = model.sample(N, "ddpm", seed=3)
    statistic = mmd(samples, mixture.sample(N, seed=11), BANDWIDTHS)
    assert statistic < threshold, f"MMD {statistic:.5f} above the noise floor {threshold:.5f}"
    assert model.last_score_evals == 1000, "no extra denoising step after DDPM's own last step"


def test_seed_makes_every_sampler_repeatable(mixture):
    sde = make_sde("vp")
    model = sdescore.ScoreModel(sde, mixture.score_fn(sde), (2,))
    for method in ["sde", "pc", "langevin", "ddpm"]:
        options = {"langevin": {"noise_levels": 5}, "ddpm": {"steps": 50}}.get(method, {"steps": 20})
        first = model.sample(50, method, seed=7, **options)
        torch.testing.assert_close(first, model.sample(50, method, seed=7, **options))


def test_energy_distance_is_zero_for_one_sample_and_positive_for_a_shift(mixture):
    x = mixture.sample(500, seed=1)
    assert abs(energy_distance(x, mixture.sample(500, seed=2))) < 0.02
    assert energy_distance(x, x + 1.0) > 0.5


def test_mean_and_se_is_the_sample_mean_and_its_standard_error():
    """[1, 2, 3, 4]: mean 2.5, sample variance 5/3, so SE sqrt(5/3) / 2; for many N(0, 1)
    draws the SE approaches 1 / sqrt(n)."""
    mean, se = mean_and_se(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert mean == pytest.approx(2.5)
    assert se == pytest.approx((5 / 3) ** 0.5 / 2)
    _, se = mean_and_se(torch.randn(40_000, generator=torch.Generator().manual_seed(0)))
    assert se == pytest.approx(1 / 200, rel=0.02)
