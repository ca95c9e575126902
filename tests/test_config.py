"""One options object for every fit (TrainConfig): checked at construction, the same field
meaning the same thing in fit, fit_flow, fit_classifier, the estimators and the command."""
import dataclasses
import inspect
import warnings

import numpy as np
import pytest
import torch

import sdescore
from sdescore.baselines import fit_flow
from sdescore.losses import training_objective
from sdescore.sklearn import FlowDensity, ScoreDensity
from sdescore.training import DEFAULTS, TrainConfig

X = np.random.default_rng(0).normal(size=(120, 2))
LABELS = np.arange(120) % 2
FITS = {"fit": lambda **o: sdescore.fit(X, **o),
        "fit_flow": lambda **o: fit_flow(X, hidden=8, layers=2, **o),
        "fit_classifier": lambda **o: sdescore.fit_classifier(X, LABELS, **o)}


@pytest.mark.parametrize("name", list(FITS))
def test_every_fit_takes_every_field_and_refuses_other_names(name):
    """device, schedule, clipping, patience, validation and the weight average work for all
    three fits (fit_flow had no device; fit_classifier no schedule, clipping or patience)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = FITS[name](steps=6, log_every=3, device="cpu", lr_schedule="cosine",
                           grad_clip=0.5, patience=1, validation=0.25, ema=0.9, seed=0,
                           progress=False)
    assert [r["step"] for r in model.history if r["step"] > 0] == [3, 6]
    assert all("val_loss" in r for r in model.history)
    with pytest.raises(TypeError, match=f"{name}\\(\\) got an unexpected keyword argument "
                                        "'learning_rate'; its training options are: max_time"):
        FITS[name](steps=1, learning_rate=1e-3)
    with pytest.raises(ValueError, match="device 'cuda:7' is not available on this machine"
                       if not torch.cuda.is_available() else "device 'cuda:7'"):
        FITS[name](steps=1, device="cuda:7")


@pytest.mark.parametrize("options, error, message", [
    ({"max_time": 0}, ValueError, "max_time must be > 0"),
    ({"steps": 2.5}, TypeError, "steps must be an integer"),
    ({"batch_size": np.int64(0)}, ValueError, "batch_size must be > 0"),
    ({"lr_schedule": "warm"}, ValueError, "Unknown lr_schedule 'warm'; choose one of: cosine"),
    ({"ema": 1.0}, ValueError, "ema must be in \\[0, 1\\)"),
    ({"callback": 3}, TypeError, "callback must be callable"),
    ({"dtype": "float16"}, ValueError, "dtype must be float32 or float64"),
    ({"device": "meta"}, ValueError, "device 'meta' cannot train or evaluate a model"),
    ({"seed": -1}, ValueError, "seed must be in"),
    ({"progress": "yes"}, TypeError, "progress must be True or False"),
])
def test_a_config_is_checked_when_it_is_made_not_when_training_starts(options, error, message):
    with pytest.raises(error, match=message):
        TrainConfig(**options)
    with pytest.raises(error, match=message):
        dataclasses.replace(TrainConfig(), **options)


def test_a_config_and_keyword_overrides_give_the_same_model():
    config = TrainConfig(steps=20, lr=3e-3, validation=0, seed=1, progress=False)
    by_config = sdescore.fit(X, config=config)
    by_keywords = sdescore.fit(X, steps=20, lr=3e-3, validation=0, seed=1, progress=False)
    overridden = sdescore.fit(X, config=dataclasses.replace(config, lr=1.0), lr=3e-3)
    x = torch.as_tensor(X[:7])
    torch.testing.assert_close(by_config.log_prob(x), by_keywords.log_prob(x))
    torch.testing.assert_close(overridden.log_prob(x), by_keywords.log_prob(x))


def test_the_estimators_parameters_are_the_fits_options_with_their_defaults():
    """ScoreDensity and FlowDensity list their fit's model options and every TrainConfig
    field, with the fit's defaults (no progress bar)."""
    fields = [f.name for f in dataclasses.fields(TrainConfig)]
    for estimator, kind in ((ScoreDensity, "score"), (FlowDensity, "flow")):
        params = estimator().get_params()
        assert set(fields) <= set(params)
        for name in fields:
            expected = getattr(DEFAULTS[kind], name)
            if name == "progress":
                expected = False
            elif name == "dtype":
                expected = "float32"
            assert params[name] == expected, (estimator.__name__, name)
    assert list(inspect.signature(ScoreDensity).parameters)[:2] == ["sde", "loss"]


def test_label_dropout_lives_in_the_loss_and_replaces_labels_at_its_rate():
    """The engine hands the loss a batch's labels; the objective replaces each with the null
    label with probability p, then adds the dequantisation noise."""
    seen = {}

    def loss(module, x0, y):
        seen["x0"], seen["y"] = x0, y
        return torch.zeros(len(x0))

    objective = training_objective(loss, augment=lambda x: x + 1.0, label_dropout=0.3,
                                   null_label=5)
    torch.manual_seed(0)
    objective(None, torch.zeros(20000, 1), torch.zeros(20000, dtype=torch.long))
    dropped = (seen["y"] == 5).double().mean().item()
    assert abs(dropped - 0.3) < 4 * (0.3 * 0.7 / 20000) ** 0.5
    assert set(seen["y"].unique().tolist()) == {0, 5} and (seen["x0"] == 1.0).all()
