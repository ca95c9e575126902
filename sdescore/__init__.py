"""sdescore: score-based generative modelling through SDEs, with exact likelihoods."""
from . import _version
from . import baselines, datasets, ddpm, losses, nets, oracle, parameterization
from .bounds import KLBound, kl_bound
from .comparison import compare
from .datamap import DataMap
from .io import load
from .metrics import bits_per_dim
from .models import NoisyClassifier, ScoreModel
from .sde import SDE, SubVPSDE, VESDE, VPSDE, get_sde
from .training import TrainConfig, fit, fit_classifier

__all__ = ["DataMap", "KLBound", "NoisyClassifier", "SDE", "ScoreModel", "SubVPSDE",
           "TrainConfig", "VESDE", "VPSDE", "baselines", "bits_per_dim", "compare", "datasets",
           "ddpm", "fit", "fit_classifier", "get_sde", "kl_bound", "load", "losses", "nets",
           "oracle", "parameterization"]
__version__ = _version.__version__
