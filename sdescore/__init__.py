"""sdescore: score-based generative modelling through SDEs, with exact likelihoods."""
from . import baselines, datasets, ddpm, losses, nets, oracle, parameterization
from .bounds import KLBound, kl_bound
from .classifier import NoisyClassifier, fit_classifier
from .compare import compare
from .datamap import DataMap
from .io import load
from .likelihood import bits_per_dim
from .model import ScoreModel
from .sde import SDE, SubVPSDE, VESDE, VPSDE, get_sde
from .train import fit

__all__ = ["DataMap", "KLBound", "NoisyClassifier", "SDE", "ScoreModel", "SubVPSDE", "VESDE",
           "VPSDE", "baselines", "bits_per_dim", "compare", "datasets", "ddpm", "fit",
           "fit_classifier", "get_sde", "kl_bound", "load", "losses", "nets", "oracle",
           "parameterization"]
__version__ = "0.1.0"
