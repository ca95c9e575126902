"""Training: one options object (``TrainConfig``), one data preparation, one engine, and the
three fits on top (``fit``, ``fit_flow``, ``fit_classifier``)."""
from .config import DEFAULTS, TrainConfig
from .engine import train_loop
from .fits import fit, fit_classifier, fit_flow

__all__ = ["DEFAULTS", "TrainConfig", "fit", "fit_classifier", "fit_flow", "train_loop"]
