"""No garbage answers (issue 33, items 9-10, 12-15, 17-19, 21): finite inputs of any size
get a value or a clear error, never NaN; values that would fail deep inside are refused at
the door by name; absurd samples and diverged baselines say so; warnings point at the
caller's line."""
import copy
import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sdescore
from sdescore.baselines import fit_flow
from sdescore.sklearn import ScoreDensity

X = np.random.default_rng(0).normal(size=(200, 2))


@pytest.fixture(scope="module")
def model():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sdescore.fit(X, steps=40, seed=0, progress=False)


@pytest.fixture(scope="module")
def flow():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_flow(X, steps=20, seed=0, progress=False)


@pytest.fixture(scope="module")
def estimator():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ScoreDensity(steps=20, seed=0).fit(X)


magnitudes = st.floats(min_value=-1e300, max_value=1e300, allow_nan=False,
                       allow_infinity=False)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(magnitudes, magnitudes), min_size=1, max_size=3))
def test_any_finite_rows_get_a_value_or_a_clear_error_never_nan(model, flow, estimator, rows):
    """log_prob (default and a fixed grid), nll_bound, score_samples and a flow's log_prob
    over finite rows of any magnitude: a finite value or a ValueError that names the rows'
    reach and what to do."""
    x = np.array(rows, dtype=np.float64)
    calls = {"log_prob": lambda: model.log_prob(x),
             "log_prob rk4": lambda: model.log_prob(x, solver="rk4", steps=5),
             "nll_bound": lambda: model.nll_bound(x, draws=4, seed=0),
             "score_samples": lambda: torch.as_tensor(estimator.score_samples(x)),
             "flow": lambda: flow.log_prob(x)}
    for name, call in calls.items():
        try:
            value = call()
        except ValueError as err:
            assert "training standard deviations out" in str(err), (name, str(err))
            assert np.abs(x).max() > 1e17, (name, x)  # refused only where float32 overflows
            continue
        assert torch.isfinite(value).all(), (name, x, value)


def test_rows_beyond_float32_are_refused_by_name_and_float64_answers(model):
    far = X[:3] * 1e20
    with pytest.raises(ValueError, match=r"3 row\(s\) .* use model\.double\(\)"):
        model.log_prob(far)
    assert torch.isfinite(copy.deepcopy(model).double().log_prob(far)).all()


def test_a_float64_row_far_out_is_held_to_its_own_scale_and_covered(model):
    """A million training deviations out |log p| is about 1e11 nats: no step can hold it to
    atol = 1e-5 nats, so each step's error is held to atol per GOAL_SCALE (1e7) nats of the
    state's effect on log p instead, 1e-12 of it; the value is within 2e-12 of its size of a
    float64 dopri8 solve at rtol = atol = 1e-13, and within the error it reports (measured:
    3.8e-13 of its size, the reported error 900x the true one; 6.4e-12 at 1e-10 of the
    effect; held to float64's last digit, 7e-15 in 6x more steps). A tighter atol keeps its
    meaning: at atol = 1e-6 the reported error is 1/6 of the default's."""
    double = copy.deepcopy(model).double()
    far = torch.as_tensor(X[:3] * 1e6)
    tight = double.log_prob(far, solver="dopri8", rtol=1e-13, atol=1e-13)
    estimate = double.log_prob(far, return_error=True)
    error = (estimate.log_prob - tight).abs()
    assert (error <= 2e-12 * tight.abs()).all(), (error / tight.abs()).tolist()
    assert (error <= estimate.solver_error).all()
    tighter = double.log_prob(far, atol=1e-6, return_error=True)
    assert (tighter.solver_error < 0.3 * estimate.solver_error).all()


def test_tolerances_below_the_dtype_are_refused_at_once(model):
    with pytest.raises(ValueError, match=r"rtol=1e-12 is below what float32 resolves "
                                         r".*model\.double\(\)"):
        model.log_prob(X[:3], rtol=1e-12, atol=1e-12)
    assert torch.isfinite(copy.deepcopy(model).double().log_prob(X[:3], rtol=1e-10,
                                                               atol=1e-10)).all()


@pytest.mark.parametrize("call, error, message", [
    (lambda m: m.to("cuda") if not torch.cuda.is_available() else m.to("meta"), ValueError,
     "device '(cuda|meta)'"),
    (lambda m: m.to("meta"), ValueError, "device 'meta' cannot train or evaluate"),
    (lambda m: sdescore.load("x.pt", map_location="meta"), ValueError, "map_location 'meta'"),
    (lambda m: m.log_prob(torch.tensor(X[:3]).to_sparse()), TypeError, "must be a dense tensor"),
    (lambda m: m.log_prob(torch.empty(3, 2, device="meta")), ValueError, "meta tensor"),
    (lambda m: m.log_prob(X[:3].astype(np.longdouble)), TypeError, "convert it to float64"),
    (lambda m: m.sample(2**70, method="dpm", steps=1), ValueError, "would need .* GiB"),
    (lambda m: m.impute(np.array([[1e300, np.nan]])), ValueError, "training standard deviations"),
    (lambda m: sdescore.fit(X, steps=2, labels=np.arange(200) % 2, label_dropout="0.1"),
     TypeError, "label_dropout must be a number"),
    (lambda m: sdescore.fit(X, max_time=math.inf), ValueError, "must be a finite number > 0"),
    (lambda m: sdescore.fit_classifier(X, np.arange(200) % 2, hidden=-1, steps=1), ValueError,
     "hidden must be > 0"),
    (lambda m: sdescore.fit_classifier(X, np.arange(200) % 2, hidden=1.5, steps=1), TypeError,
     "hidden must be an integer"),
    (lambda m: sdescore.fit_classifier(X, np.arange(200) % 2, model=3, steps=1), TypeError,
     "model must be the ScoreModel"),
    (lambda m: fit_flow(X, hidden=-1, steps=1), ValueError, "hidden must be > 0"),
    (lambda m: fit_flow(X, layers=0, steps=1), ValueError, "layers must be > 0"),
    (lambda m: fit_flow(X, layers=1.5, steps=1), TypeError, "layers must be an integer"),
])
def test_values_that_would_fail_deep_inside_are_refused_at_the_door(model, call, error,
                                                                   message, tmp_path,
                                                                   monkeypatch):
    monkeypatch.chdir(tmp_path)
    model.save("x.pt")
    with pytest.raises(error, match=message):
        call(model)


@pytest.mark.parametrize("batch_size", [np.int64(8), 2**62, 10**20])
def test_any_integer_batch_size_works(batch_size):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = sdescore.fit(X, steps=2, batch_size=batch_size, seed=0, progress=False)
    assert torch.isfinite(fitted.log_prob(X[:2])).all()


def test_nan_weights_are_named_not_blamed_on_the_solver(model):
    broken = sdescore.fit(X, steps=2, seed=0, progress=False, validation=0)
    with torch.no_grad():
        next(broken.parameters()).fill_(math.nan)
    for call in (lambda: broken.log_prob(X[:2]), lambda: broken.sample(2, seed=0)):
        with pytest.raises(RuntimeError, match="weights hold NaN or inf"):
            call()


def test_absurd_samples_are_flagged_with_their_count():
    labels = np.arange(300) % 2
    rows = np.random.default_rng(1).normal(size=(300, 2)) + labels[:, None] * 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        conditional = sdescore.fit(rows, steps=50, seed=0, progress=False, labels=labels)
    with pytest.warns(UserWarning, match=r"of 40 samples lie beyond 100 training standard"):
        drawn = conditional.sample(40, y=1, guidance_scale=1e6, seed=0, method="dpm")
    assert drawn.abs().max() > 100


def test_a_flow_that_returns_non_finite_values_says_so(flow, monkeypatch):
    real = flow.flow.log_prob
    monkeypatch.setattr(flow.flow, "log_prob",
                        lambda x: torch.where(torch.arange(len(x)) == 1, -math.inf, real(x)))
    with pytest.raises(RuntimeError, match=r"NaN or inf for 1 of 3 rows \(first: row 1\)"):
        flow.log_prob(X[:3])


def test_warnings_point_at_the_callers_line():
    """Raised deep in the training engine, told at this file's line."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sdescore.fit(X, steps=3, log_every=1, lr=3.0, seed=0, progress=False)
    assert caught and all(w.filename == __file__ for w in caught), [
        (w.filename, str(w.message)) for w in caught]


def test_pandas_like_read_only_arrays_raise_no_torch_warning(model):
    rows = X[:4].copy()
    rows.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.isfinite(model.log_prob(rows)).all()


def test_the_energy_distance_standard_error_matches_its_spread_over_repeats():
    """Forty pairs of fresh 200-row samples of a 3-D normal (one pair shifted by 0.3): the
    jackknife SE of each energy distance is, on average, within 30% of the distances'
    standard deviation over the repeats."""
    from sdescore.metrics import energy_distance, energy_distance_se
    generator = torch.Generator().manual_seed(0)
    for shift in (0.0, 0.3):
        values, errors = [], []
        for _ in range(40):
            x = torch.randn(200, 3, generator=generator, dtype=torch.float64)
            y = torch.randn(200, 3, generator=generator, dtype=torch.float64) + shift
            values.append(energy_distance(x, y))
            errors.append(energy_distance_se(x, y))
        spread = torch.tensor(values).std().item()
        assert 0.7 < (sum(errors) / len(errors)) / spread < 1.3, (shift, spread, errors[:3])
