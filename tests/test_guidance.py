"""Conditional generation and imputation, checked against a labelled mixture's closed forms.

Each component of the mixture is one class, so p(x | y) is that component and the exact
noisy classifier q(y | x_t, t) is its share of p_t(x_t), both in closed form.
"""
import math

import numpy as np
import pytest
import torch

import sdescore
from sdescore.datasets import GaussianMixture
from sdescore import NoisyClassifier, fit_classifier
from sdescore.metrics import mmd

from conftest import make_sde

N = 2000
BANDWIDTHS = (0.2, 0.5, 1.0)


@pytest.fixture(scope="module")
def labelled():
    return GaussianMixture([[1.0, 0.5], [-1.0, -0.5], [0.0, 1.5]],
                           [[[0.3, 0.1], [0.1, 0.2]], [[0.1, 0.0], [0.0, 0.25]],
                            [[0.2, 0.0], [0.0, 0.1]]])


def _labelled_draws(mixture, n, seed):
    """(x (n, d) float32, labels (n,)) with labels the component each row came from."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.multinomial(mixture.weights, n, replacement=True, generator=gen)
    x = torch.cat([mixture.component(k).sample(int((labels == k).sum()), seed=seed + k)
                   for k in range(len(mixture.weights))])
    return x.float(), labels.sort().values


@pytest.fixture(scope="module")
def floors(labelled):
    """Per class: mean + 3 sd of the MMD between two fresh draws of that component."""
    out = []
    for k in range(3):
        component = labelled.component(k)
        values = torch.tensor([mmd(component.sample(N, seed=50 + 2 * i),
                                   component.sample(N, seed=51 + 2 * i), BANDWIDTHS)
                               for i in range(5)])
        out.append((values.mean() + 3 * values.std()).item())
    return out


@pytest.mark.parametrize("sde_name, method", [("vp", "ode"), ("subvp", "ode"), ("vp", "dpm"),
                                              ("ve", "dpm")])
def test_exact_classifier_guidance_reproduces_each_class(labelled, floors, sde_name, method):
    """VE with sigma_max = 50: at the tests' usual 10, one class's p_T(x | y) sits off the
    prior by a tenth of its spread, which a deterministic flow (ode or dpm alike) carries
    to 2-3x the floor; the reverse SDE contracts it away."""
    sde = sdescore.get_sde("ve", sigma_max=50.0) if sde_name == "ve" else make_sde(sde_name)
    model = sdescore.ScoreModel(sde, labelled.score_fn(sde), (2,))
    log_q = labelled.noisy_class_log_prob(sde)
    for k in range(3):
        samples = model.sample(N, method, y=k, classifier=log_q, guidance_scale=1.0, seed=k)
        statistic = mmd(samples, labelled.component(k).sample(N, seed=90 + k), BANDWIDTHS)
        assert statistic < floors[k], f"class {k}: MMD {statistic:.5f} > floor {floors[k]:.5f}"
    # without guidance the same draws follow the whole mixture, far from one class
    unguided = model.sample(N, seed=0)
    assert mmd(unguided, labelled.component(0).sample(N, seed=90), BANDWIDTHS) > 10 * floors[0]


def test_exact_noisy_classifier_is_bayes_rule_at_every_time(labelled):
    sde = make_sde("vp")
    log_q = labelled.noisy_class_log_prob(sde)
    x = torch.randn(50, 2, dtype=torch.float64)
    for t in (0.05, 0.5, 1.0):
        times = torch.full((50,), t, dtype=torch.float64)
        marginal = labelled.marginal(sde, t)
        for k in range(3):
            joint = (math.log(labelled.weights[k]) + GaussianMixture(
                marginal.means[k:k + 1], marginal.covs[k:k + 1]).log_prob(x))
            expected = joint - marginal.log_prob(x)
            torch.testing.assert_close(log_q(torch.full((50,), k), x, times), expected)


def test_trained_classifier_guidance_comes_close(labelled, floors):
    """A classifier trained for a model built from a given score function, in that model's
    SDE and coordinates (fit_classifier(..., model=model)), guides it to each class."""
    sde = make_sde("vp")
    model = sdescore.ScoreModel(sde, labelled.score_fn(sde), (2,))
    x, labels = _labelled_draws(labelled, 6000, seed=0)
    classifier = fit_classifier(x, labels, model=model, steps=1500, seed=0, progress=False)
    # on clean data, the classifier's probabilities approach Bayes' rule
    test, _ = _labelled_draws(labelled, 2000, seed=7)
    exact = labelled.noisy_class_log_prob(sde)
    t0 = torch.full((2000,), 1e-3, dtype=torch.float64)
    bayes = torch.stack([exact(torch.full((2000,), k), test.double(), t0) for k in range(3)], 1)
    learned = classifier.predict_proba(test, t=1e-3).double()
    assert (learned - bayes.exp()).abs().mean() < 0.03

    unguided = model.sample(N, seed=0)
    for k in range(3):
        component = labelled.component(k).sample(N, seed=90 + k)
        statistic = mmd(model.sample(N, y=k, classifier=classifier, seed=k), component,
                        BANDWIDTHS)
        # a learned classifier's gradient is not exact: ask for under 5% of the distance
        # (0.55-0.82 here) from the whole mixture to the class that guidance has to cover
        distance = mmd(unguided, component, BANDWIDTHS)
        assert statistic < 0.05 * distance, f"class {k}: MMD {statistic:.5f} of {distance:.3f}"


def test_classifier_free_guidance_and_conditional_log_prob(labelled, floors):
    """A label-conditional fit (600 steps): each class's samples within 5x the two-sample
    MMD floor (measured 0.01-1.3x), its conditional KL estimate within (-0.05, 0.1) nats
    (0.003-0.015), and guidance_scale 0 samples the whole mixture."""
    x, labels = _labelled_draws(labelled, 8000, seed=1)
    model = sdescore.fit(x, "subvp", labels=labels, steps=600, seed=0, progress=False)
    assert model.classes == 3
    for k in range(3):
        component = labelled.component(k)
        samples = model.sample(N, y=k, seed=k)
        statistic = mmd(samples, component.sample(N, seed=90 + k), BANDWIDTHS)
        assert statistic < 5 * floors[k], f"class {k}: MMD {statistic:.5f}"
        test = component.sample(300, seed=20 + k)
        # KL(p(x | y) || model(x | y)) estimated on fresh draws of the class
        gap = (component.log_prob(test) - model.log_prob(test.float(), y=k).double()).mean()
        assert -0.05 < gap < 0.1, f"class {k}: conditional KL estimate {gap:.3f}"
    # guidance_scale 0 ignores the label: samples follow the whole mixture (learned from the
    # 10% of steps whose label was dropped), not class 0
    free = model.sample(N, y=0, guidance_scale=0.0, seed=5)
    to_mixture = mmd(free, labelled.sample(N, seed=6), BANDWIDTHS)
    assert to_mixture < 0.05 * mmd(free, labelled.component(0).sample(N, seed=7), BANDWIDTHS)


def test_classifier_free_model_saves_and_loads(tmp_path, labelled):
    x, labels = _labelled_draws(labelled, 500, seed=2)
    model = sdescore.fit(x, "vp", labels=labels, steps=20, seed=0, progress=False)
    model.save(tmp_path / "cond.pt")
    loaded = sdescore.load(tmp_path / "cond.pt")
    assert loaded.classes == 3
    torch.testing.assert_close(loaded.log_prob(x[:5], y=labels[:5]), model.log_prob(x[:5], y=labels[:5]))


def test_imputation_draws_from_the_gaussian_conditional():
    corr = torch.tensor([[1.0, 0.8, 0.5], [0.8, 1.0, 0.7], [0.5, 0.7, 1.0]], dtype=torch.float64)
    gaussian = GaussianMixture([[0.5, -1.0, 2.0]], [corr * torch.tensor([1.0, 2.0, 0.5])[:, None]
                                                      * torch.tensor([1.0, 2.0, 0.5])[None]])
    sde = make_sde("vp")
    model = sdescore.ScoreModel(sde, gaussian.score_fn(sde), (3,)).double()
    rows = torch.tensor([[1.5, math.nan, math.nan], [math.nan, 0.0, math.nan],
                         [math.nan, -2.0, 2.5], [0.0, 1.0, 2.0]], dtype=torch.float64)
    filled = model.impute(rows, draws=1500, seed=0)
    assert filled.shape == (1500, 4, 3)
    for i, row in enumerate(rows):
        observed = ~torch.isnan(row)
        torch.testing.assert_close(filled[:, i, observed], row[observed].expand(1500, -1),
                                   rtol=0, atol=0)
        if observed.all():
            continue
        truth = gaussian.conditional(row[observed], observed.numpy())
        draws = filled[:, i, ~observed]
        sd = truth.covs[0].diagonal().sqrt()
        # the mean within 4 standard errors; the spread within 10%
        assert ((draws.mean(0) - truth.means[0]).abs() < 4 * sd / math.sqrt(1500)).all(), i
        assert ((draws.std(0) / sd - 1).abs() < 0.1).all(), (i, draws.std(0), sd)
    single = model.impute(rows[:2], seed=1)
    assert single.shape == (2, 3) and torch.isfinite(single).all()


def test_guidance_and_imputation_reject_bad_input(labelled):
    sde = make_sde("vp")
    model = sdescore.ScoreModel(sde, labelled.score_fn(sde), (2,))
    log_q = labelled.noisy_class_log_prob(sde)
    with pytest.raises(ValueError, match="y needs a class-conditional model"):
        model.sample(3, y=0)
    with pytest.raises(ValueError, match="classifier needs labels"):
        model.sample(3, classifier=log_q)
    for scale in (3.0, math.nan):  # nothing to guide towards: it would be ignored
        with pytest.raises(ValueError, match="needs labels to guide towards: pass y="):
            model.sample(3, guidance_scale=scale)
    with pytest.raises(ValueError, match="guidance_scale must be a finite number >= 0"):
        model.sample(3, y=0, classifier=log_q, guidance_scale=-1.0)
    with pytest.raises(TypeError, match="classifier must be a NoisyClassifier or a callable"):
        model.sample(3, y=0, classifier="exact")
    with pytest.raises(ValueError, match="y must be one integer or have shape \\(3,\\)"):
        model.sample(3, y=[0, 1], classifier=log_q)
    with pytest.raises(TypeError, match="y must be integers"):
        model.sample(3, y=0.5, classifier=log_q)
    with pytest.raises(ValueError, match="x contains NaN or inf"):
        model.impute([[math.inf, math.nan]])
    with pytest.raises(ValueError, match="x must have shape \\(n, 2\\)"):
        model.impute([[1.0, math.nan, 2.0]])
    with pytest.raises(ValueError, match="draws must be > 0"):
        model.impute([[1.0, math.nan]], draws=0)
    x, labels = _labelled_draws(labelled, 200, seed=3)
    with pytest.raises(ValueError, match="labels must be one integer or have shape \\(200,\\)"):
        sdescore.fit(x, labels=labels[:10], steps=1, progress=False)
    with pytest.raises(ValueError, match="labels must be >= 0"):
        sdescore.fit(x, labels=labels - 1, steps=1, progress=False)
    classifier = fit_classifier(x, labels, sde="vp", steps=1, progress=False)
    assert isinstance(classifier, NoisyClassifier)
    fix = r"fit_classifier\(data, labels, model=model\)"
    other = sdescore.ScoreModel(make_sde("subvp"), labelled.score_fn(make_sde("subvp")), (2,))
    with pytest.raises(ValueError, match="classifier was trained with VPSDE.*" + fix):
        other.sample(3, y=0, classifier=classifier)
    with pytest.raises(ValueError, match="y must be below the model's 3 classes"):
        sdescore.ScoreModel(sde, labelled.score_fn(sde), (2,),
                            datamap=classifier.datamap).sample(3, y=3, classifier=classifier)
    with pytest.raises(ValueError, match="standardised differently from this model: .*" + fix):
        model.sample(3, y=0, classifier=classifier)
    assert np.isfinite(classifier.history[-1]["loss"])
    matched = fit_classifier(x, labels, model=model, steps=1, progress=False)
    assert torch.isfinite(model.sample(3, y=0, classifier=matched)).all()  # accepted
    with pytest.raises(ValueError, match="sde='subvp' differs from the model's VPSDE"):
        fit_classifier(x, labels, "subvp", model=model, steps=1, progress=False)
    with pytest.raises(ValueError, match=r"data rows have shape \(3,\); the model's samples"):
        fit_classifier(np.zeros((10, 3)), np.zeros(10, dtype=int), model=model, steps=1)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1.0\]"):
        classifier.predict_proba(x[:2], t=5.0)
