"""Parameterisations: how a network's output becomes a score, and what it is trained toward.

Each class wraps a network ``net(x, t[, y])`` and an SDE and owns both sides of one relation,
as EDM's preconditioning classes and k-diffusion's ``Denoiser`` do:

- ``forward(x, t, y=None)``: the score grad_x log p_t(x), ``(n, *shape)``; the ``score_fn`` of a
  ScoreModel;
- ``denoising_residual(x_t, t, noise, y=None)``: s(t) score(x_t, t) + noise for
  x_t = m(t) x_0 + s(t) noise, written as the distance of the network's output from its
  training target (zero exactly when the score is the kernel's). Denoising score matching
  (``losses.DenoisingScoreMatching``) squares it.

``GaussianResidual`` (``fit``'s default) reads the output as the departure of the noise from
its value for Gaussian data, N(0, I) or N(0, Sigma), from a whitened, soft-clipped input, so
that the score falls back to that Gaussian's far from the data; ``NoisePrediction`` reads it
as the noise itself (DDPM's parameterisation); ``DirectScore`` as the score.
"""
from __future__ import annotations

import torch
from torch import nn

from ._tensors import append_dims
from ._checks import check_positive, choose, symmetric_eigh

__all__ = ["DirectScore", "ENVELOPES", "GaussianResidual", "noise_to_score", "NoisePrediction",
           "Parameterization", "parameterization_name", "PARAMETERIZATIONS",
           "score_to_noise"]


def noise_to_score(noise: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """score = -noise / std: noise ``(n, *shape)``, std (n,) the kernel's std (DDPM:
    sqrt(1 - abar_i))."""
    return -noise / append_dims(std, noise.ndim)


def score_to_noise(score: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """noise = -std * score, the inverse of ``noise_to_score``."""
    return -append_dims(std, score.ndim) * score


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


def _signal_share(m: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """m^2 / (m^2 + s^2), the signal's share of x_t's variance for unit-variance data."""
    return m**2 / (m**2 + s**2)


#: The ``envelope`` options of ``GaussianResidual``, each the factor (m, s) -> (n, 1, ...)
#: that multiplies the network's departure, or None for the departure itself.
ENVELOPES = {"none": None, "snr": _signal_share}


class GaussianResidual(Parameterization):
    """score(x, t[, y]) = -(s C_t^-1 x + net(clip(C_t^-1/2 x), t[, y])) / s(t),
    C_t = m^2 Sigma + s^2 I.

    The first term is the noise z of x_t = m x_0 + s z when the (standardised) data are
    N(0, Sigma) (``covariance``; None: the identity, ``SDE.standard_normal_score``), so the
    network learns how the noise departs from that Gaussian's: its target is
    z - s C_t^-1 x_t. Its input is x whitened by C_t, unit scale in every direction at every
    t, soft-clipped to (-input_clip, input_clip) by a tanh: far from the data the network's
    term stays bounded and the score falls back to the Gaussian's instead of extrapolating.
    input_clip is in standard deviations of x_t (3 keeps a few far test rows of a real table
    from collapsing at little cost elsewhere); files saved before the option existed used 5.

    covariance: (d, d) symmetric positive definite, for (n, d) vectors only; ``fit`` passes
    the training rows' best Gaussian (``training.reference``). It is kept in ``config``
    (saved with the model) and applied through its eigendecomposition, two (n, d) x (d, d)
    products. A network whose output is zero makes the score that Gaussian's exactly.

    envelope: "none" (the default, and what files saved before the option load with): the
    departure is net(...) itself; "snr": it is m^2 / (m^2 + s^2) net(...), the signal's
    share of x_t's variance for unit-variance data, which falls from 1 at t = 0 towards 0
    where x_t is noise and every standardised table is close to its Gaussian, so the network
    need not learn to switch itself off there (``fit`` uses it for vectors). Kept in
    ``config``. ValueError for another value.
    """

    def __init__(self, net: nn.Module, sde, input_clip: float = 3.0, covariance=None,
                 envelope: str = "none"):
        super().__init__(net, sde)
        check_positive(input_clip, name="input_clip")
        self._envelope = choose(envelope, ENVELOPES, name="envelope")
        self.input_clip, self.envelope = float(input_clip), envelope
        self.config = {"input_clip": self.input_clip, "envelope": envelope}
        # Sigma's eigendecomposition, held in float64 like a DataMap, with copies in each
        # input's dtype and device; the config, not the state dict, saves Sigma
        self._eigen, self._eigen_copies = None, {}
        if covariance is not None:
            self._eigen = tuple(v.cpu() for v in symmetric_eigh(covariance, name="covariance"))
            self.config["covariance"] = torch.as_tensor(covariance, dtype=torch.float64).cpu()

    def _eigenbasis(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(eigenvalues (d,), eigenvectors (d, d)) of Sigma in like's dtype and device."""
        key = (like.device, like.dtype)
        if key in self._eigen_copies:
            return self._eigen_copies[key]
        copies = tuple(v.to(device=like.device, dtype=like.dtype) for v in self._eigen)
        # copies made under a torch.func transform carry its wrapper: used, never kept
        if not any(torch._C._functorch.is_functorch_wrapped_tensor(v) for v in copies):
            self._eigen_copies[key] = copies
        return copies

    def _gaussian_noise_and_output(self, x, t, y):
        """(std s(t) (n,), the noise for the Gaussian's data, the network's departure from it).

        On the hot path of every solve: m(t) and s(t) are evaluated once here."""
        std = self.sde.marginal_std(t)
        s, m = append_dims(std, x.ndim), append_dims(self.sde.mean_scale(t), x.ndim)
        if self._eigen is None:
            variance = m**2 + s**2
            gaussian_noise, whitened = s * x / variance, x / variance.sqrt()
        else:  # in the covariance's eigenbasis C_t is diagonal: m^2 lambda + s^2
            eigenvalues, eigenvectors = self._eigenbasis(x)
            if x.ndim != 2 or x.shape[1] != eigenvalues.shape[0]:  # not along another axis
                raise ValueError(f"x must be (n, {eigenvalues.shape[0]}) vectors for a "
                                 f"{eigenvalues.shape[0]} x {eigenvalues.shape[0]} covariance; "
                                 f"got shape {tuple(x.shape)}")
            rotated = x @ eigenvectors
            variance = m**2 * eigenvalues + s**2
            gaussian_noise = (s * rotated / variance) @ eigenvectors.T
            whitened = (rotated / variance.sqrt()) @ eigenvectors.T
        clipped = self.input_clip * torch.tanh(whitened / self.input_clip)
        departure = self.output(clipped, t, y)
        if self._envelope is not None:
            departure = self._envelope(m, s) * departure
        return std, gaussian_noise, departure

    def forward(self, x, t, y=None):
        std, gaussian_noise, departure = self._gaussian_noise_and_output(x, t, y)
        return noise_to_score(gaussian_noise + departure, std)

    def denoising_residual(self, x_t, t, noise, y=None):
        _, gaussian_noise, departure = self._gaussian_noise_and_output(x_t, t, y)
        return (noise - gaussian_noise) - departure


#: Name -> the class ``fit(parameterization=name)`` wraps the network in.
PARAMETERIZATIONS = {"noise": NoisePrediction, "score": DirectScore,
                     "residual": GaussianResidual}


def parameterization_name(score_fn) -> str | None:
    """The PARAMETERIZATIONS key of ``score_fn``'s class, or None for any other callable."""
    return next((k for k, cls in PARAMETERIZATIONS.items() if type(score_fn) is cls), None)

