"""scikit-learn estimators: ``ScoreDensity`` (a score-based model) and ``FlowDensity`` (a
normflows baseline), with the density-estimator API of ``KernelDensity`` and
``GaussianMixture``: ``fit(X)``, ``score_samples(X)`` (log-density in nats),
``score(X)`` (mean log-likelihood, nats per row) and ``sample(n_samples, random_state)``.
They work in ``Pipeline``, ``clone`` and ``GridSearchCV``; arrays in, float64 arrays out.
"""
from __future__ import annotations

import inspect

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from .training import DEFAULTS, fit, fit_flow
from .training.config import FIELDS as TRAIN_FIELDS

__all__ = ["FLOW_OPTIONS", "FlowDensity", "SCORE_OPTIONS", "ScoreDensity"]

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data
except ImportError:  # older: the estimator's own method
    def validate_data(estimator, X, reset=True, **options):
        return estimator._validate_data(X, reset=reset, **options)


class _Density(DensityMixin, BaseEstimator):
    """What both estimators share: input checks, scoring and sampling of ``model_``."""

    def _rows(self, X, reset: bool) -> np.ndarray:
        """X checked by scikit-learn: float64 or float32 kept, uint8 kept (the model
        dequantises it), anything else as float64."""
        return validate_data(self, X, reset=reset, dtype=[np.float64, np.float32, np.uint8],
                             ensure_min_samples=2 if reset else 1)

    def fit(self, X, y=None):
        """Train on rows X (n, d); y is ignored. Returns self, with ``model_`` the trained
        sdescore model and ``n_features_in_`` = d."""
        self.model_ = self._train(self._rows(X, reset=True))
        return self

    def score_samples(self, X) -> np.ndarray:
        """log p(x) in nats for each row of X (n, d) -> (n,) float64. For a model fitted on
        uint8 rows and uint8 X: the log-probability of each row's integers, by the
        dequantisation bound (-bits_per_dim x d x ln 2, one draw of the dequantisation noise).
        Any randomness (the dequantisation, Hutchinson's probes over 64 columns) is drawn
        with seed 0 from each row's own values, so that a row's score repeats and does not
        depend on the rows scored with it."""
        check_is_fitted(self)
        rows = self._rows(X, reset=False)
        if self.model_.levels and rows.dtype == np.uint8:
            bits = self.model_.bits_per_dim(rows, seed=0).double().cpu().numpy()
            return -bits * self.model_.dim * np.log(2.0)
        return self.model_.log_prob(rows, seed=0).double().cpu().numpy()

    def score(self, X, y=None) -> float:
        """Mean log-likelihood of the rows of X, in nats per row (higher is better)."""
        return float(np.mean(self.score_samples(X)))

    def sample(self, n_samples: int = 1, random_state=None) -> np.ndarray:
        """n_samples draws (n_samples, d) float64; random_state: int, RandomState or None."""
        check_is_fitted(self)
        seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
        return self.model_.sample(n_samples, seed=seed).double().cpu().numpy()


def _derived_init(model_options: dict, training_defaults):
    """An ``__init__`` whose parameters are ``model_options`` (name -> default) and then every
    ``TrainConfig`` field at ``training_defaults`` (with progress off and the dtype by
    name), so that an estimator's options are its fit's and mean what they mean there;
    scikit-learn reads the signature (``get_params``, ``clone``, ``GridSearchCV``)."""
    defaults = {**model_options, **{name: getattr(training_defaults, name)
                                    for name in TRAIN_FIELDS}, "progress": False,
                "dtype": str(training_defaults.dtype).removeprefix("torch.")}
    parameters = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    parameters += [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                     default=value) for name, value in defaults.items()]
    signature = inspect.Signature(parameters)

    def __init__(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        for name, value in list(bound.arguments.items())[1:]:
            setattr(self, name, value)
    __init__.__signature__ = signature
    return __init__


def _split_options(estimator, model_options: dict) -> tuple[dict, dict]:
    """(the fit's model options, its training options) from the estimator's parameters."""
    params = estimator.get_params()
    return ({name: params[name] for name in model_options},
            {name: params[name] for name in TRAIN_FIELDS})


#: ScoreDensity's model parameters and their defaults (its TrainConfig fields come beside
#: them).
SCORE_OPTIONS = {"sde": "subvp", "loss": "dsm", "parameterization": "residual",
                 "standardize": True, "eps": None, "levels": None}
#: FlowDensity's model parameters and their defaults (its TrainConfig fields come beside
#: them).
FLOW_OPTIONS = {"kind": "nsf", "hidden": 128, "layers": 6, "standardize": True, "levels": None}


class ScoreDensity(_Density):
    """A score-based density estimator: ``sdescore.fit`` with these options, ``log_prob``
    by the probability-flow ODE. Its parameters are fit's model options (sde, loss,
    parameterization, standardize, eps, levels) and every ``TrainConfig`` field (max_time,
    steps, batch_size, lr, ...), with fit's defaults (``DEFAULTS["score"]``) and no progress
    bar."""

    __init__ = _derived_init(SCORE_OPTIONS, DEFAULTS["score"])

    def _train(self, rows):
        model_options, training = _split_options(self, SCORE_OPTIONS)
        return fit(rows, **model_options, **training)


class FlowDensity(_Density):
    """A normalizing-flow density estimator: ``sdescore.baselines.fit_flow`` with these
    options: kind ("nsf", "realnvp" or "maf"), hidden, layers, standardize, levels and
    every ``TrainConfig`` field, with fit_flow's defaults (``DEFAULTS["flow"]``)."""

    __init__ = _derived_init(FLOW_OPTIONS, DEFAULTS["flow"])

    def _train(self, rows):
        model_options, training = _split_options(self, FLOW_OPTIONS)
        return fit_flow(rows, **model_options, **training)
