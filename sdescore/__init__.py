"""sdescore: score-based generative modelling through SDEs, with exact likelihoods."""
from . import datasets
from .model import ScoreModel
from .sde import SDE, SubVPSDE, VESDE, VPSDE, get_sde

__all__ = ["SDE", "ScoreModel", "SubVPSDE", "VESDE", "VPSDE", "datasets", "get_sde"]
__version__ = "0.1.0"
