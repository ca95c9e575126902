"""sdescore: score-based generative modelling through SDEs, with exact likelihoods."""
from . import baselines, datasets, ddpm, losses, nets
from .bounds import KLBound, kl_bound
from .compare import compare
from .guidance import NoisyClassifier, fit_classifier
from .likelihood import bits_per_dim
from .io import load
from .model import ScoreModel
from .sde import SDE, SubVPSDE, VESDE, VPSDE, get_sde
from .train import fit

__all__ = ["KLBound", "NoisyClassifier", "SDE", "ScoreModel", "SubVPSDE", "VESDE", "VPSDE",
           "baselines", "bits_per_dim", "compare", "datasets", "ddpm", "fit", "fit_classifier",
           "get_sde", "kl_bound", "load", "losses", "nets"]
__version__ = "0.1.0"
