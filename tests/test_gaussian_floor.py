"""The fitted Gaussian as the floor of ``fit`` on small tables (issue 32): the default
parameterisation's reference is the training rows' best Gaussian, the untrained model is
that Gaussian, held-out selection offers it as step 0, and a trained model replaces it
only when clearly better on the held-out rows."""
import math
import warnings

import numpy as np
import pytest
import torch

import sdescore
from sdescore import training
from sdescore.nets import MLPScoreNet, zero_output_layer
from sdescore.parameterization import GaussianResidual
from sdescore.training.reference import (RIDGE, SHRINKAGES, choose_shrinkage,
                                         gaussian_log_prob, reference_covariance)


def correlated_rows(n, d, rho, seed, scale=None, shift=None):
    """(n, d) rows of N(shift, D R D), R the equicorrelation matrix rho, D diag(scale)."""
    rng = np.random.default_rng(seed)
    correlation = rho * np.ones((d, d)) + (1 - rho) * np.eye(d)
    rows = rng.multivariate_normal(np.zeros(d), correlation, size=n)
    scale = np.ones(d) if scale is None else np.asarray(scale)
    return rows * scale + (0 if shift is None else np.asarray(shift))


def mle_gaussian_log_prob(train: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """log N(rows; mean, covariance) of the maximum-likelihood Gaussian of ``train``."""
    from scipy.stats import multivariate_normal
    return multivariate_normal(train.mean(0), np.cov(train.T, bias=True)).logpdf(rows)


def test_reference_covariance_moves_the_sample_covariance_to_its_diagonal():
    rows = torch.as_tensor(correlated_rows(50, 3, 0.6, 0, scale=[1, 2, 3]))
    sample = torch.cov(rows.T)
    ridge = RIDGE * torch.diagonal(sample).mean() * torch.eye(3, dtype=torch.float64)
    for shrinkage in (0.0, 0.25, 1.0):
        expected = ((1 - shrinkage) * sample + shrinkage * torch.diag(torch.diagonal(sample))
                    + ridge)
        torch.testing.assert_close(reference_covariance(rows, shrinkage), expected)
    constant = torch.cat([rows[:, :2], torch.zeros(50, 1, dtype=torch.float64)], 1)
    assert torch.linalg.eigvalsh(reference_covariance(constant, 0.5)).min() > 0
    with pytest.raises(ValueError, match="shrinkage must be in"):
        reference_covariance(rows, 1.5)


def test_gaussian_log_prob_is_the_closed_form_density():
    from scipy.stats import multivariate_normal
    rows = torch.as_tensor(correlated_rows(40, 4, 0.5, 1))
    covariance = torch.cov(rows.T)
    expected = multivariate_normal(np.zeros(4), covariance.numpy()).logpdf(rows.numpy())
    np.testing.assert_allclose(gaussian_log_prob(rows, covariance).numpy(), expected, rtol=1e-10)
    singular = torch.ones(4, 4, dtype=torch.float64)
    assert torch.isneginf(gaussian_log_prob(rows, singular)).all()


def test_shrinkage_is_small_for_many_rows_and_large_for_few():
    """Strongly correlated, plentiful rows: the sample covariance is nearly exact, so the
    cross-validated choice stays near 0; 40 rows of 30 independent columns: the sample
    correlations are noise, so it moves most of the way to the diagonal, and the chosen
    Gaussian scores fresh rows better than the maximum-likelihood one."""
    generator = torch.Generator().manual_seed(0)
    many = torch.as_tensor(correlated_rows(5000, 5, 0.9, 2))
    assert choose_shrinkage(many, generator) <= 0.01
    few = torch.as_tensor(correlated_rows(40, 30, 0.0, 3))
    chosen = choose_shrinkage(few, generator)
    assert chosen >= 0.5
    fresh = torch.as_tensor(correlated_rows(4000, 30, 0.0, 4))
    chosen_score = gaussian_log_prob(fresh, reference_covariance(few, chosen)).mean()
    mle_score = gaussian_log_prob(fresh, reference_covariance(few, 0.0)).mean()
    assert chosen_score > mle_score + 1.0  # 30 columns, 40 rows: the MLE over-fits badly
    assert choose_shrinkage(few[:8], generator) == 1.0  # too few rows for 5 folds
    assert max(SHRINKAGES) == 1.0 and min(SHRINKAGES) == 0.0


def _untrained_model(rows: np.ndarray, shrinkage: float):
    """The ScoreModel fit builds before its first step: the default MLP with its output layer
    zeroed, GaussianResidual with the rows' reference covariance, standardised."""
    x = torch.as_tensor(rows)
    datamap = sdescore.DataMap.standardizing(x)
    z = datamap.to_model(x, torch.float64)
    covariance = reference_covariance(z, shrinkage)
    sde = sdescore.get_sde("subvp")
    score = GaussianResidual(zero_output_layer(MLPScoreNet(rows.shape[1])), sde,
                             covariance=covariance)
    return sdescore.ScoreModel(sde, score, (rows.shape[1],), datamap=datamap).double(), \
        datamap, covariance


def _gaussian_under_the_prior(rows, datamap, covariance, sde):
    """The exact log-density of the model whose score is N(0, covariance)'s at every t: the
    flow is linear, y_T = A y with A = (C_T / C_eps)^(1/2) in covariance's eigenbasis
    (C_t = m(t)^2 lambda + s(t)^2), so log p(x) = log N(A y; 0, I) + log det A + log_det."""
    y = datamap.to_model(torch.as_tensor(rows), torch.float64)
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance)

    def c(t):
        t = torch.tensor([t], dtype=torch.float64)
        return sde.mean_scale(t) ** 2 * eigenvalues + sde.marginal_std(t) ** 2
    ratio = (c(sde.T) / c(sde.likelihood_eps)).sqrt()
    y_T = (y @ eigenvectors) * ratio
    prior = -0.5 * (y_T**2).sum(1) - 0.5 * y.shape[1] * math.log(2 * math.pi)
    return prior + ratio.log().sum() + datamap.log_det.double()


def test_the_untrained_model_is_the_fitted_gaussian():
    """log_prob of the untrained model equals, row by row, the Gaussian's density pushed
    through the probability-flow ODE onto the model's N(0, I) prior (to 1e-4 nats: the
    solver's error), and the fitted Gaussian's own density up to that prior mismatch
    (about m(T)^2 = 4e-5 times the covariance's eigenvalues: 1e-3 nats here)."""
    rows = correlated_rows(100, 4, 0.8, 5, scale=[1, 2, 3, 4], shift=[0, 1, 2, 3])
    model, datamap, covariance = _untrained_model(rows, 0.03)
    fresh = correlated_rows(300, 4, 0.8, 6, scale=[1, 2, 3, 4], shift=[0, 1, 2, 3])
    got = model.log_prob(torch.as_tensor(fresh)).double()
    pushed = _gaussian_under_the_prior(fresh, datamap, covariance, model.sde)
    assert (got - pushed).abs().max() < 1e-4
    gaussian = (gaussian_log_prob(datamap.to_model(torch.as_tensor(fresh), torch.float64),
                                  covariance) + datamap.log_det.double())
    assert (got - gaussian).abs().max() < 1e-3


def test_selection_returns_the_fitted_gaussian_when_training_cannot_beat_it():
    """lr = 3 blows the network up at its first step: selection keeps step 0, says so in one
    warning line, and fit returns the Gaussian refitted to every given row (held-out ones
    too), with the shrinkage it chose: its log_prob is that Gaussian's."""
    rows = correlated_rows(100, 4, 0.8, 7, scale=[1, 2, 3, 4], shift=[0, 1, 2, 3])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = sdescore.fit(rows, steps=3, log_every=1, lr=3.0, seed=0, progress=False)
    messages = [str(w.message) for w in caught]
    assert any(m.startswith("the fitted Gaussian (step 0) scored best")
               for m in messages), messages
    first = model.history[0]
    assert first["step"] == 0 and first["selected"] and first["reference"] == "gaussian"
    assert "loss" not in first and not any(r.get("selected") for r in model.history[1:])
    expected, datamap, covariance = _untrained_model(rows, first["shrinkage"])
    torch.testing.assert_close(model.datamap.loc, datamap.loc.to(model.datamap.loc))
    fresh = torch.as_tensor(correlated_rows(200, 4, 0.8, 8, scale=[1, 2, 3, 4],
                                            shift=[0, 1, 2, 3]))
    pushed = _gaussian_under_the_prior(fresh.numpy(), datamap, covariance, model.sde)
    assert (model.double().log_prob(fresh).double() - pushed).abs().max() < 1e-4


def test_a_trained_record_replaces_step_zero_only_when_clearly_better():
    """Engine: step 0 scores 1 on 100 rows of noise 0.1 (fresh per record, so the paired
    difference has a standard error of 0.014); a record at 0.995 (0.35 SE better) does not
    replace it, one at 0.9 (7 SE better) does."""
    for later, chosen in ((0.995, 0), (0.9, 10)):
        module = torch.nn.Linear(1, 1, bias=False)
        generator = torch.Generator().manual_seed(0)
        calls = iter([1.0, later])
        config = training.TrainConfig(steps=10, log_every=10, lr_schedule="constant",
                                      grad_clip=None, patience=None, progress=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            history = training.train_loop(
                module, torch.optim.SGD(module.parameters(), lr=0.0),
                lambda m, b, generator=None: m(b).sum(1), (torch.zeros(8, 1),), config,
                batch_size=8, validate=lambda m: next(calls) + 0.1 * torch.randn(100, generator=generator),
                initial={"name": "the start", "record": {"marker": 1}})
        assert [r["step"] for r in history] == [0, 10] and history[0]["marker"] == 1
        assert [r["step"] for r in history if r.get("selected")] == [chosen]


@pytest.mark.parametrize("table", ["correlated", "integer columns"])
def test_the_default_fit_is_not_worse_than_the_fitted_gaussian(table):
    """100 rows of a strongly correlated Gaussian (nothing to learn beyond it) and a table
    with integer-valued columns: the default fit's mean log-density on 2000 fresh rows is
    within two standard errors of the paired difference of the maximum-likelihood Gaussian
    of the same 100 rows, or better."""
    def draw(n, seed):
        rows = correlated_rows(n, 5, 0.9, seed, scale=[1, 2, 3, 4, 5], shift=[3, 3, 3, 3, 3])
        if table == "integer columns":
            rows[:, :2] = np.round(rows[:, :2] * 3)
        return rows
    train, fresh = draw(100, 10), draw(2000, 11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = sdescore.fit(train, steps=1500, seed=0, progress=False)
    difference = (model.log_prob(torch.as_tensor(fresh)).double().numpy()
                  - mle_gaussian_log_prob(train, fresh))
    se = difference.std() / math.sqrt(len(difference))
    assert difference.mean() > -2 * se, (difference.mean(), se)


def test_the_exact_check_returns_the_gaussian_when_the_bound_chose_a_worse_model():
    """check_the_floor: a model trained to be poor (lr 3) whose record the bound had chosen
    loses to the fitted Gaussian by the exact log-density on the held-out rows, so step 0 is
    selected instead (fit then returns that Gaussian), said in one warning."""
    from types import SimpleNamespace
    from sdescore.training.reference import check_the_floor
    rows = correlated_rows(200, 3, 0.7, 12, scale=[1, 2, 3])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        poor = sdescore.fit(rows, steps=3, lr=3.0, validation=0, seed=0, progress=False)
    covariance = torch.as_tensor(poor.score_fn.config["covariance"], dtype=torch.float64)
    held = torch.as_tensor(correlated_rows(50, 3, 0.7, 13, scale=[1, 2, 3]))
    data = SimpleNamespace(held=(poor.datamap.to_model(held, torch.float32),),
                           datamap=poor.datamap)
    history = [{"step": 0, "val_loss": 5.0}, {"step": 3, "val_loss": 4.0, "selected": True}]
    with pytest.warns(UserWarning, match=r"the fitted Gaussian \(step 0\) has the higher exact"):
        check_the_floor(poor, data, covariance, history)
    assert history[0]["selected"] and "selected" not in history[1]
    expected = (gaussian_log_prob(data.held[0], covariance)
                + data.datamap.log_det.double())
    assert history[0]["held_out_log_prob"] == pytest.approx(expected.mean().item())
    assert history[0]["held_out_log_prob"] > history[1]["held_out_log_prob"]


def test_the_exact_check_keeps_a_model_that_beats_the_gaussian():
    """Two well-separated clusters: a trained model is far above any Gaussian on held-out
    rows, so check_the_floor keeps its record."""
    from types import SimpleNamespace
    from sdescore.training.reference import check_the_floor
    rng = np.random.default_rng(14)
    rows = np.concatenate([rng.normal(-3, 0.5, (300, 2)), rng.normal(3, 0.5, (300, 2))])
    model = sdescore.fit(rows, steps=600, validation=0, seed=0, progress=False)
    covariance = torch.as_tensor(model.score_fn.config["covariance"], dtype=torch.float64)
    fresh = np.concatenate([rng.normal(-3, 0.5, (40, 2)), rng.normal(3, 0.5, (40, 2))])
    data = SimpleNamespace(held=(model.datamap.to_model(torch.as_tensor(fresh), torch.float32),),
                           datamap=model.datamap)
    history = [{"step": 0, "val_loss": 5.0}, {"step": 600, "val_loss": 4.0, "selected": True}]
    check_the_floor(model, data, covariance, history)
    assert history[1]["selected"] and "selected" not in history[0]
    assert history[1]["held_out_log_prob"] > history[0]["held_out_log_prob"] + 0.5
