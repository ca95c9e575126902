"""sdescore: score-based generative modelling through SDEs, with exact likelihoods."""
from . import datasets, losses, nets
from .bounds import KLBound, kl_bound
from .compare import compare
from .likelihood import bits_per_dim
from .io import load
from .model import ScoreModel
from .sde import SDE, SubVPSDE, VESDE, VPSDE, get_sde
from .train import fit

__all__ = ["KLBound", "SDE", "ScoreModel", "SubVPSDE", "VESDE", "VPSDE", "bits_per_dim",
           "compare", "datasets", "fit", "get_sde", "kl_bound", "load", "losses", "nets"]
__version__ = "0.1.0"
