"""The density models: ``DensityModel`` (the shared contract), ``ScoreModel``, ``FlowModel``
and the ``NoisyClassifier`` that guides a score model."""
from .base import DensityModel
from .classifier import NoisyClassifier
from .flow import FlowModel
from .score import ScoreModel

__all__ = ["DensityModel", "FlowModel", "NoisyClassifier", "ScoreModel"]
