"""Shared fixtures: analytic Gaussian mixtures whose every p_t is known in closed form."""
import pytest

import sdescore
from sdescore.datasets import random_mixture

SDE_PARAMS = {"ve": {"sigma_max": 10.0}, "vp": {}, "subvp": {}}


def make_sde(name):
    """The three SDEs; VE with sigma_max = 10, several times the data's spread, so that its
    prior N(0, 100 I) matches p_T."""
    return sdescore.get_sde(name, **SDE_PARAMS[name])


@pytest.fixture(params=list(SDE_PARAMS))
def sde(request):
    return make_sde(request.param)


@pytest.fixture
def mixture2d():
    return random_mixture(2)


@pytest.fixture
def double_model():
    """Build a float64 ScoreModel on the exact score of a mixture."""
    def build(mixture, sde):
        return sdescore.ScoreModel(sde, mixture.score_fn(sde), (mixture.dim,)).double()
    return build
