"""Parameterisations: how a network's output becomes a score, and what it is trained toward.

Each class wraps a network ``net(x, t[, y])`` and an SDE and owns both sides of one relation,
as EDM's preconditioning classes and k-diffusion's ``Denoiser`` do:

- ``forward(x, t, y=None)``: the score grad_x log p_t(x), (n, *shape); the ``score_fn`` of a
  ScoreModel;
- ``denoising_residual(x_t, t, noise, y=None)``: s(t) score(x_t, t) + noise for
  x_t = m(t) x_0 + s(t) noise, written as the distance of the network's output from its
  training target (zero exactly when the score is the kernel's). Denoising score matching
  (``losses.DenoisingScoreMatching``) squares it.

``GaussianResidual`` (``fit``'s default) reads the output as the departure of the noise from
its value for N(0, I) data, from a soft-clipped input, so that the score falls back to that
Gaussian's far from the data; ``NoisePrediction`` reads it as the noise itself (DDPM's
parameterisation); ``DirectScore`` as the score.
"""
from __future__ import annotations

import torch
from torch import nn

from .ddpm import noise_to_score
from .utils import append_dims
from .validation import check_positive


class Parameterization(nn.Module):
    """Shared set-up: the network, the SDE, and the options saved with a model (``config``)."""

    def __init__(self, net: nn.Module, sde):
        super().__init__()
        self.net, self.sde = net, sde
        self.config: dict = {}

    def output(self, x, t, y=None):
        """The raw network output at (x, t[, y])."""
        return self.net(x, t) if y is None else self.net(x, t, y)


class NoisePrediction(Parameterization):
    """score(x, t[, y]) = -net(x, t[, y]) / s(t): the network predicts the noise z of x_t;
    its target is z itself."""

    def forward(self, x, t, y=None):
        return noise_to_score(self.output(x, t, y), self.sde.marginal_std(t))

    def denoising_residual(self, x_t, t, noise, y=None):
        return noise - self.output(x_t, t, y)


class DirectScore(Parameterization):
    """score(x, t[, y]) = net(x, t[, y]): the network outputs the score; its target is the
    kernel's score -z / s(t), and the residual is s(t) times the output's error."""

    def forward(self, x, t, y=None):
        return self.output(x, t, y)

    def denoising_residual(self, x_t, t, noise, y=None):
        std = append_dims(self.sde.marginal_std(t), x_t.ndim)
        return std * self.output(x_t, t, y) + noise


class GaussianResidual(Parameterization):
    """score(x, t[, y]) = -(s x / (m^2 + s^2) + net(clip(x), t[, y])) / s(t).

    The first term is the noise z of x_t = m x_0 + s z when the (standardised) data are
    N(0, I) (``SDE.standard_normal_score``), so the network learns how the noise departs
    from that Gaussian's: its target is z - s x_t / (m^2 + s^2). Its input is
    x / sqrt(m^2 + s^2), unit scale at every t, soft-clipped to (-input_clip, input_clip) by
    a tanh: far from the data the network's term stays bounded and the score falls back to
    the Gaussian's instead of extrapolating. input_clip is in standard deviations of x_t:
    3 kept RedWine's worst test rows 4-5x lower than 5 and cost 0.01-0.15 nats elsewhere
    (BENCHMARKS.md, "The input clip"). Files saved before the option existed used 5.
    """

    def __init__(self, net: nn.Module, sde, input_clip: float = 3.0):
        super().__init__(net, sde)
        check_positive(input_clip, name="input_clip")
        self.input_clip = float(input_clip)
        self.config = {"input_clip": self.input_clip}

    def _gaussian_noise_and_output(self, x, t, y):
        """(std s(t) (n,), the noise for N(0, I) data, the network's departure from it).

        On the hot path of every solve: m(t) and s(t) are evaluated once here, so the
        reference noise s x / (m^2 + s^2) = score_to_noise(sde.standard_normal_score(x, t), s)
        is written out instead of calling that method (which would evaluate them again)."""
        std = self.sde.marginal_std(t)
        s = append_dims(std, x.ndim)
        variance = append_dims(self.sde.mean_scale(t), x.ndim) ** 2 + s**2
        clipped = self.input_clip * torch.tanh(x / (self.input_clip * variance.sqrt()))
        return std, s * x / variance, self.output(clipped, t, y)

    def forward(self, x, t, y=None):
        std, gaussian_noise, departure = self._gaussian_noise_and_output(x, t, y)
        return noise_to_score(gaussian_noise + departure, std)

    def denoising_residual(self, x_t, t, noise, y=None):
        _, gaussian_noise, departure = self._gaussian_noise_and_output(x_t, t, y)
        return (noise - gaussian_noise) - departure


PARAMETERIZATIONS = {"noise": NoisePrediction, "score": DirectScore,
                     "residual": GaussianResidual}


def parameterization_name(score_fn) -> str | None:
    """The PARAMETERIZATIONS key of ``score_fn``'s class, or None for any other callable."""
    return next((k for k, cls in PARAMETERIZATIONS.items() if type(score_fn) is cls), None)

