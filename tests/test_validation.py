"""Bad input gets a ValueError or TypeError that names the argument and the problem."""
import numpy as np
import pytest
import torch

import sdescore

from conftest import make_sde


@pytest.fixture
def model(mixture2d):
    sde = make_sde("vp")
    return sdescore.ScoreModel(sde, mixture2d.score_fn(sde), (2,))


@pytest.mark.parametrize("x, error, message", [
    (np.zeros((4, 3)), ValueError, r"x must have shape \(n, 2\); got \(4, 3\)"),
    (np.zeros(4), ValueError, r"x must have shape \(n, 2\); got \(4,\)"),
    (np.zeros((0, 2)), ValueError, "x is empty"),
    (np.array([[0.0, np.nan], [1.0, 2.0]]), ValueError, r"x contains NaN or inf \(1 entries\)"),
    (np.array([[0.0, np.inf]]), ValueError, "x contains NaN or inf"),
    (np.array([["a", "b"]]), TypeError, "x must hold real numbers"),
    (torch.zeros(2, 2, dtype=torch.bool), TypeError, "x must hold real numbers"),
    (torch.zeros(2, 2, dtype=torch.complex64), TypeError, "x must hold real numbers"),
])
def test_bad_x_is_rejected_by_every_method(model, x, error, message):
    with pytest.raises(error, match=message):
        model.log_prob(x)
    with pytest.raises(error, match=message):
        model.score(x, 0.5)


def test_integer_and_list_input_are_accepted_as_numbers(model, mixture2d):
    by_list = model.score([[0, 1], [1, 0]], 0.5)
    by_float = model.score(torch.tensor([[0.0, 1.0], [1.0, 0.0]]), 0.5)
    torch.testing.assert_close(by_list, by_float)


@pytest.mark.parametrize("t, message", [
    (1.5, r"t must lie in \[0, 1.0\]"),
    (-0.1, r"t must lie in \[0, 1.0\]"),
    (float("nan"), r"t must lie in \[0, 1.0\]"),
    (torch.ones(3) * 0.5, r"t must be a scalar or have shape \(2,\)"),
])
def test_bad_t_is_rejected(model, t, message):
    with pytest.raises(ValueError, match=message):
        model.score(torch.zeros(2, 2), t)


def test_bad_options_are_rejected(model):
    x = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="Unknown trace 'fast'; choose one of: auto, exact, hutchinson"):
        model.log_prob(x, trace="fast")
    with pytest.raises(ValueError, match="Unknown solver 'rk45'; choose one of: dopri5"):
        model.log_prob(x, solver="rk45")
    with pytest.raises(ValueError, match="Unknown probe 'uniform'"):
        model.log_prob(x, trace="hutchinson", probe="uniform")
    with pytest.raises(ValueError, match="rtol must be > 0"):
        model.log_prob(x, rtol=0)
    with pytest.raises(ValueError, match="eps must be below T"):
        model.log_prob(x, eps=1.0)
    with pytest.raises(ValueError, match="Unknown method 'ddim'; choose one of: ode, sde, pc, langevin"):
        model.sample(5, method="ddim")
    with pytest.raises(ValueError, match="n must be >= 0; got -1"):
        model.sample(-1)
    with pytest.raises(TypeError, match="n must be an integer; got float"):
        model.sample(2.5)
    with pytest.raises(TypeError, match="unexpected keyword argument 'snr'"):
        model.sample(5, method="ode", snr=0.1)


def test_zero_samples_give_an_empty_batch(model):
    assert model.sample(0, "pc").shape == (0, 2)


def test_constructor_checks(mixture2d):
    sde = make_sde("vp")
    with pytest.raises(TypeError, match="sde must be an SDE object"):
        sdescore.ScoreModel("vp", mixture2d.score_fn(sde), (2,))
    with pytest.raises(TypeError, match="score_fn must be callable"):
        sdescore.ScoreModel(sde, 3, (2,))
    with pytest.raises(ValueError, match="shape must be positive integers"):
        sdescore.ScoreModel(sde, mixture2d.score_fn(sde), (0,))
