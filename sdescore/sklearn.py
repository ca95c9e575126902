"""scikit-learn estimators: ``ScoreDensity`` (a score-based model) and ``FlowDensity`` (a
normflows baseline), with the density-estimator API of ``KernelDensity`` and
``GaussianMixture``: ``fit(X)``, ``score_samples(X)`` (log-density in nats),
``score(X)`` (mean log-likelihood, nats per row) and ``sample(n_samples, random_state)``.
They work in ``Pipeline``, ``clone`` and ``GridSearchCV``; arrays in, float64 arrays out.
"""
from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from .baselines import fit_flow
from .train import fit

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data
except ImportError:  # older: the estimator's own method
    def validate_data(estimator, X, reset=True, **options):
        return estimator._validate_data(X, reset=reset, **options)


class _Density(DensityMixin, BaseEstimator):
    """What both estimators share: input checks, scoring and sampling of ``model_``."""

    def _rows(self, X, reset: bool) -> np.ndarray:
        return validate_data(self, X, reset=reset, dtype=[np.float64, np.float32],
                             ensure_min_samples=2 if reset else 1)

    def fit(self, X, y=None):
        """Train on rows X (n, d); y is ignored. Returns self, with ``model_`` the trained
        sdescore model and ``n_features_in_`` = d."""
        self.model_ = self._train(self._rows(X, reset=True))
        return self

    def score_samples(self, X) -> np.ndarray:
        """log p(x) in nats for each row of X (n, d) -> (n,) float64."""
        check_is_fitted(self)
        rows = self._rows(X, reset=False)
        return self.model_.log_prob(rows).double().cpu().numpy()

    def score(self, X, y=None) -> float:
        """Mean log-likelihood of the rows of X, in nats per row (higher is better)."""
        return float(np.mean(self.score_samples(X)))

    def sample(self, n_samples: int = 1, random_state=None) -> np.ndarray:
        """n_samples draws (n_samples, d) float64; random_state: int, RandomState or None."""
        check_is_fitted(self)
        seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
        return self.model_.sample(n_samples, seed=seed).double().cpu().numpy()


class ScoreDensity(_Density):
    """A score-based density estimator: ``sdescore.fit`` with these options, ``log_prob``
    by the probability-flow ODE. sde: "subvp", "vp" or "ve"; max_time (s) and steps bound
    training (5000 steps when neither is given); loss, batch_size, lr, lr_schedule,
    validation, seed and device as in ``sdescore.fit``."""

    def __init__(self, sde="subvp", max_time=None, steps=None, loss="dsm", batch_size=None,
                 lr=None, lr_schedule="cosine", validation="auto", seed=None, device=None):
        self.sde, self.max_time, self.steps, self.loss = sde, max_time, steps, loss
        self.batch_size, self.lr, self.lr_schedule = batch_size, lr, lr_schedule
        self.validation, self.seed, self.device = validation, seed, device

    def _train(self, rows):
        return fit(rows, self.sde, loss=self.loss, max_time=self.max_time, steps=self.steps,
                   batch_size=self.batch_size, lr=self.lr, lr_schedule=self.lr_schedule,
                   validation=self.validation, seed=self.seed, device=self.device,
                   progress=False)


class FlowDensity(_Density):
    """A normalizing-flow density estimator: ``sdescore.baselines.fit_flow`` with these
    options. kind: "nsf", "realnvp" or "maf"; other options as in ``fit_flow``."""

    def __init__(self, kind="nsf", max_time=None, steps=None, hidden=128, layers=6,
                 batch_size=256, lr=1e-3, lr_schedule="cosine", validation="auto", seed=None):
        self.kind, self.max_time, self.steps = kind, max_time, steps
        self.hidden, self.layers, self.batch_size, self.lr = hidden, layers, batch_size, lr
        self.lr_schedule, self.validation, self.seed = lr_schedule, validation, seed

    def _train(self, rows):
        return fit_flow(rows, self.kind, max_time=self.max_time, steps=self.steps,
                        hidden=self.hidden, layers=self.layers, batch_size=self.batch_size,
                        lr=self.lr, lr_schedule=self.lr_schedule, validation=self.validation,
                        seed=self.seed, progress=False)
