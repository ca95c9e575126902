"""sdescore: score-based generative modelling through SDEs, with exact likelihoods."""
from . import datasets, losses, nets
from .model import ScoreModel, load
from .sde import SDE, SubVPSDE, VESDE, VPSDE, get_sde
from .train import fit

__all__ = ["SDE", "ScoreModel", "SubVPSDE", "VESDE", "VPSDE", "datasets", "fit", "get_sde",
           "load", "losses", "nets"]
__version__ = "0.1.0"
