"""The normflows baselines behind the ScoreModel interface."""
import numpy as np
import pytest
import torch

from sdescore.baselines import fit_flow
from sdescore.datasets import GaussianMixture


@pytest.fixture(scope="module")
def gaussian():
    return GaussianMixture([[3.0, -1.0]], [[[2.0, 0.8], [0.8, 1.0]]])


@pytest.mark.parametrize("kind", ["nsf", "realnvp", "maf"])
def test_flow_learns_a_gaussian(gaussian, kind):
    """The identity flow on standardised data is 0.2 nats off (the correlation it ignores,
    -log(1 - rho^2) / 2); training must remove most of that."""
    flow = fit_flow(gaussian.sample(4000, seed=0).float(), kind, steps=800, seed=0,
                    progress=False)
    test = gaussian.sample(1000, seed=1)
    gap = (gaussian.log_prob(test) - flow.log_prob(test.float()).double()).mean()
    assert -0.02 < gap < 0.08, f"{kind}: KL estimate {gap:.3f}"
    samples = flow.sample(4000, seed=2).double()
    torch.testing.assert_close(samples.mean(0), gaussian.means[0], atol=0.2, rtol=0)
    torch.testing.assert_close(flow.sample(5, seed=3), flow.sample(5, seed=3))


def test_flow_log_prob_includes_the_standardisation(gaussian):
    flow = fit_flow(gaussian.sample(500, seed=0).float(), "realnvp", steps=5, progress=False)
    y = torch.randn(4, 2)
    x = flow.loc + flow.scale * y
    expected = flow.flow.log_prob(y) - flow.scale.log().sum()
    torch.testing.assert_close(flow.log_prob(x), expected, rtol=1e-5, atol=1e-5)


def test_fit_flow_rejects_bad_input():
    data = np.random.default_rng(0).normal(size=(50, 2))
    with pytest.raises(ValueError, match="Unknown kind 'glow2'; choose one of: nsf, realnvp, maf"):
        fit_flow(data, "glow2")
    with pytest.raises(ValueError, match="fit_flow takes \\(n, d\\) vectors"):
        fit_flow(np.zeros((4, 1, 2, 2)), steps=1)
    with pytest.raises(ValueError, match="max_time must be > 0"):
        fit_flow(data, max_time=0)
