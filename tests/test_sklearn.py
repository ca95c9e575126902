"""scikit-learn estimators (issue 18): the conventions check_estimator tests, and a grid
search that picks the better density by held-out log-likelihood."""
import math
import warnings

from unittest import SkipTest

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import estimator_checks_generator  # noqa: E402

from sdescore.sklearn import FlowDensity, ScoreDensity  # noqa: E402

# Checks a density model of this kind cannot pass, with the reason.
BATCH_ROUNDING = ("a row's log-density moves in float32's last digits (~1e-6 relative) "
                  "with the rows computed beside it (batched matrix products)")
EXPECTED_FAILURES = {
    ScoreDensity: {
        "check_methods_subset_invariance": BATCH_ROUNDING,
        "check_methods_sample_order_invariance": BATCH_ROUNDING},
    FlowDensity: {"check_methods_subset_invariance": BATCH_ROUNDING,
                  "check_methods_sample_order_invariance": BATCH_ROUNDING},
}


@pytest.mark.parametrize("estimator", [ScoreDensity(steps=5, seed=0),
                                       FlowDensity(steps=5, hidden=8, layers=2, seed=0)],
                         ids=["ScoreDensity", "FlowDensity"])
def test_check_estimator(estimator):
    """Every check of sklearn.utils.estimator_checks.check_estimator but the listed ones
    (skipped: they fail for the reason given)."""
    passed = 0
    for instance, check in estimator_checks_generator(
            estimator, expected_failed_checks=EXPECTED_FAILURES[type(estimator)], mark="skip"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                check(instance)
                passed += 1
            except SkipTest:
                pass
    assert passed > 30


def test_grid_search_picks_the_trained_model_by_held_out_log_likelihood():
    """On two separated Gaussians (0.5 N((-2, 0), I / 4) + 0.5 N((2, 0), I / 4)), which no
    Gaussian fits, 600 steps beat 1 step (about the fitted Gaussian) by held-out
    log-likelihood, and the chosen estimator's cross-validated score is near the true mean
    log-density."""
    rng = np.random.default_rng(0)
    centres = np.array([[-2.0, 0.0], [2.0, 0.0]])
    x = centres[rng.integers(0, 2, 400)] + 0.5 * rng.normal(size=(400, 2))
    search = GridSearchCV(ScoreDensity(validation=0, seed=0), {"steps": [1, 600]}, cv=2,
                          refit=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search.fit(x)
    squared = ((x[:, None, :] - centres[None]) ** 2).sum(-1) / 0.25  # (400, 2)
    per_row = np.logaddexp(*(-0.5 * squared).T) + math.log(0.5) - math.log(2 * math.pi * 0.25)
    truth = per_row.mean()
    assert search.best_params_ == {"steps": 600}
    scores = search.cv_results_["mean_test_score"]
    assert scores[1] > scores[0] + 0.5 and abs(scores[1] - truth) < 0.1, (scores, truth)


def test_pipeline_and_clone_keep_the_parameters():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 3)) * 10 + 5
    pipeline = make_pipeline(StandardScaler(), FlowDensity(steps=20, hidden=8, layers=1, seed=0))
    pipeline.fit(x)
    assert pipeline.score_samples(x[:4]).shape == (4,)
    flow = pipeline[-1]
    first, again = flow.sample(3, random_state=0), flow.sample(3, random_state=0)
    assert first.dtype == np.float64 and np.array_equal(first, again)
    assert not np.array_equal(first, flow.sample(3, random_state=1))
    copy = clone(ScoreDensity(sde="vp", steps=7, seed=3, lr_schedule="constant"))
    assert copy.get_params()["sde"] == "vp" and copy.get_params()["steps"] == 7
    assert copy.get_params()["lr_schedule"] == "constant"
    with pytest.raises(ValueError, match="Unknown lr_schedule 'step'"):
        FlowDensity(steps=1, lr_schedule="step").fit(x)
    with pytest.raises(ValueError, match="X has 2 features, but FlowDensity is expecting 3"):
        pipeline[-1].score_samples(x[:4, :2])


def test_score_samples_of_a_wide_table_repeat_and_do_not_depend_on_the_batch():
    """Over 64 columns log_prob's trace is Hutchinson's; score_samples draws its probes with
    seed 0 from each row's values, so a row's score repeats and is the same among fewer rows
    (up to float32's batched rounding)."""
    x = np.random.default_rng(5).normal(size=(10, 70))
    estimator = ScoreDensity(steps=3, validation=0, seed=0).fit(x)
    scores = estimator.score_samples(x)
    np.testing.assert_array_equal(estimator.score_samples(x), scores)
    np.testing.assert_allclose(estimator.score_samples(x[6:9]), scores[6:9], rtol=0, atol=2e-3)
    assert np.abs(estimator.model_.log_prob(x, seed=1).double().numpy() - scores).max() > 0.1
