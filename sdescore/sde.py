"""The forward SDEs dx = f(x, t) dt + g(t) dw on t in [0, T], T = 1 (Song et al. 2021, Table 1).

Each SDE knows its drift f, diffusion g, the Gaussian perturbation kernel
x_t | x_0 ~ N(m(t) x_0, s(t)^2 I) and its prior. Times are (n,) tensors, one per sample;
states are ``(n, *shape)`` tensors of any shape.
"""
from __future__ import annotations

import math

import torch

from ._tensors import append_dims, sum_except_batch

__all__ = ["get_sde", "largest_distance", "SDE", "sde_for_data", "SDES", "SubVPSDE",
           "tweedie_denoise", "VESDE", "VPSDE"]


class SDE:
    """Shared behaviour of the linear SDEs with Gaussian kernels.

    Subclasses define ``drift_coef(t)`` (f = drift_coef(t) x), ``diffusion(t)`` = g(t),
    ``mean_scale(t)`` = m(t), ``marginal_std(t)`` = s(t), ``prior_std``, the default
    smallest times ``likelihood_eps`` and ``sampling_eps``, and ``likelihood_spacing``, the
    grid of ``log_prob(method="dpm")`` (a ``schedules.step_times`` spacing).
    """

    T = 1.0
    name = "sde"
    likelihood_eps = 1e-5
    likelihood_spacing = "quadratic"
    sampling_eps = 1e-3
    prior_std = 1.0

    def drift_coef(self, t: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def diffusion(self, t: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def mean_scale(self, t: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def marginal_std(self, t: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def time_at_std(self, std: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """The inverse of marginal_std: the t with s(t) = std."""
        raise NotImplementedError

    def std_at_log_snr(self, log_snr: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        """The s(t) at which log(m(t) / s(t)) = log_snr."""
        raise NotImplementedError

    def log_snr(self, t: torch.Tensor) -> torch.Tensor:
        """lambda(t) = log(m(t) / s(t)), half the log signal-to-noise ratio of the kernel,
        decreasing in t (+inf at t = 0 where s(0) = 0); t (n,) -> (n,)."""
        return torch.log(self.mean_scale(t)) - torch.log(self.marginal_std(t))

    def time_at_log_snr(self, log_snr: torch.Tensor) -> torch.Tensor:
        """The inverse of log_snr: the t with lambda(t) = log_snr."""
        return self.time_at_std(self.std_at_log_snr(log_snr))

    def drift(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """f(x, t): x ``(n, *shape)``, t (n,) -> ``(n, *shape)``."""
        return append_dims(self.drift_coef(t), x.ndim) * x

    def marginal_mean(self, x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Mean m(t) x0 of the perturbation kernel.

        x0 ``(n, *shape)``, t (n,) -> ``(n, *shape)``."""
        return append_dims(self.mean_scale(t), x0.ndim) * x0

    def perturb(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """A draw from the kernel: m(t) x0 + s(t) noise, all ``(n, *shape)``."""
        return self.marginal_mean(x0, t) + append_dims(self.marginal_std(t), x0.ndim) * noise

    def total_variance(self, t: torch.Tensor) -> torch.Tensor:
        """m(t)^2 + s(t)^2: the variance of x_t when x_0 ~ N(0, I); t (n,) -> (n,)."""
        return self.mean_scale(t) ** 2 + self.marginal_std(t) ** 2

    def standard_normal_score(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """grad_x log p_t(x) when p_0 = N(0, I), so that p_t = N(0, (m^2 + s^2) I):
        -x / (m^2 + s^2); x ``(n, *shape)``, t (n,). The reference that the default
        parameterisation departs from on images (vectors: N(0, Sigma)) and the NLL bound's
        control variate subtracts."""
        return -x / append_dims(self.total_variance(t), x.ndim)

    def prior_sample(self, shape, *, generator=None, device=None, dtype=None) -> torch.Tensor:
        """Draw ``(n, *shape)`` from the prior N(0, prior_std^2 I); ``shape`` includes n."""
        z = torch.randn(shape, generator=generator, device=device, dtype=dtype)
        return self.prior_std * z

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """Log-density of the prior in nats: z ``(n, *shape)`` -> (n,)."""
        d = z[0].numel()
        quad = sum_except_batch(z**2) / self.prior_std**2
        return -0.5 * quad - 0.5 * d * math.log(2 * math.pi * self.prior_std**2)

    def params(self) -> dict:
        """The constructor's keyword arguments (for saving and printing)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


class VESDE(SDE):
    """Variance exploding: f = 0, sigma(t) = sigma_min (sigma_max / sigma_min)^t.

    g(t)^2 = 2 sigma(t)^2 ln(sigma_max / sigma_min); the kernel std is
    s(t) = sqrt(sigma(t)^2 - sigma_min^2) (exact, so s(0) = 0); prior N(0, sigma_max^2 I).
    """

    name = "ve"
    sampling_eps = 1e-5
    likelihood_spacing = "time"  # even in t, so in log sigma (Benchmarks: likelihood)

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0):
        sigma_min, sigma_max = float(sigma_min), float(sigma_max)
        if not (0 < sigma_min < sigma_max) or not math.isfinite(sigma_max):
            raise ValueError(
                f"VESDE needs 0 < sigma_min < sigma_max < inf; got sigma_min={sigma_min}, "
                f"sigma_max={sigma_max}"
            )
        self.sigma_min, self.sigma_max = sigma_min, sigma_max
        self.log_ratio = math.log(sigma_max / sigma_min)
        self.prior_std = sigma_max

    def sigma(self, t):
        return self.sigma_min * torch.exp(t * self.log_ratio)

    def drift_coef(self, t):
        return torch.zeros_like(t)

    def diffusion(self, t):
        return self.sigma(t) * math.sqrt(2 * self.log_ratio)

    def mean_scale(self, t):
        return torch.ones_like(t)

    def marginal_std(self, t):
        # sigma_min^2 (exp(2 t ln r) - 1), written with expm1 so small t keeps its digits.
        return self.sigma_min * torch.sqrt(torch.expm1(2 * t * self.log_ratio))

    def time_at_std(self, std):
        return torch.log1p((std / self.sigma_min) ** 2) / (2 * self.log_ratio)

    def std_at_log_snr(self, log_snr):
        return torch.exp(-log_snr)  # m = 1

    def params(self):
        return {"sigma_min": self.sigma_min, "sigma_max": self.sigma_max}


class VPSDE(SDE):
    """Variance preserving: f = -beta(t) x / 2, g^2 = beta(t), beta linear in t.

    m(t) = exp(-B(t)/2), s(t) = sqrt(1 - exp(-B(t))) with B the integral of beta; prior N(0, I).
    """

    name = "vp"

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0):
        beta_min, beta_max = float(beta_min), float(beta_max)
        if not (0 < beta_min <= beta_max) or not math.isfinite(beta_max):
            raise ValueError(
                f"{type(self).__name__} needs 0 < beta_min <= beta_max < inf; got "
                f"beta_min={beta_min}, beta_max={beta_max}"
            )
        self.beta_min, self.beta_max = beta_min, beta_max

    def beta(self, t):
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def integrated_beta(self, t):
        """B(t) = beta_min t + (beta_max - beta_min) t^2 / 2."""
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2

    def drift_coef(self, t):
        return -0.5 * self.beta(t)

    def diffusion(self, t):
        return torch.sqrt(self.beta(t))

    def mean_scale(self, t):
        return torch.exp(-0.5 * self.integrated_beta(t))

    def marginal_std(self, t):
        return torch.sqrt(-torch.expm1(-self.integrated_beta(t)))

    def time_at_integrated_beta(self, b):
        """The inverse of B(t): solves beta_min t + (beta_max - beta_min) t^2 / 2 = b."""
        slope = self.beta_max - self.beta_min
        if slope == 0:
            return b / self.beta_min
        return 2 * b / (self.beta_min + torch.sqrt(self.beta_min**2 + 2 * slope * b))

    def time_at_std(self, std):
        return self.time_at_integrated_beta(-torch.log1p(-std**2))

    def std_at_log_snr(self, log_snr):
        return torch.sqrt(torch.sigmoid(-2 * log_snr))  # m^2 + s^2 = 1

    def params(self):
        return {"beta_min": self.beta_min, "beta_max": self.beta_max}


class SubVPSDE(VPSDE):
    """Sub-VP: the VP drift with g^2 = beta(t) (1 - exp(-2 B(t))).

    m(t) = exp(-B(t)/2) and s(t) = 1 - exp(-B(t)): the std itself, not its square root.
    """

    name = "subvp"

    def diffusion(self, t):
        return torch.sqrt(self.beta(t) * -torch.expm1(-2 * self.integrated_beta(t)))

    def marginal_std(self, t):
        return -torch.expm1(-self.integrated_beta(t))

    def time_at_std(self, std):
        return self.time_at_integrated_beta(-torch.log1p(-std))

    def std_at_log_snr(self, log_snr):
        # s = 1 - m^2 with m = e^lambda s: the positive root of e^(2 lambda) s^2 + s - 1 = 0
        return 2 / (1 + torch.sqrt(1 + 4 * torch.exp(2 * log_snr)))


#: SDE name -> class (``get_sde``).
SDES = {cls.name: cls for cls in (VESDE, VPSDE, SubVPSDE)}


def get_sde(name: str, **params) -> SDE:
    """Build an SDE by name: ``get_sde("subvp", beta_max=20)``; names: the keys of SDES (ve,
    vp, subvp). An SDE class of your own saves and loads with its models once it has a
    ``name`` of its own, registered as ``SDES[name] = cls``."""
    if not isinstance(name, str):
        raise TypeError(f"sde must be a name (str) or an SDE object; got {type(name).__name__}")
    key = name.lower()
    if key not in SDES:
        raise ValueError(f"Unknown sde {name!r}; choose one of: {', '.join(SDES)}")
    return SDES[key](**params)


def largest_distance(x: torch.Tensor, max_points: int = 2000) -> float:
    """The largest distance between two rows of x (on a random subset of ``max_points``)."""
    if x.shape[0] > max_points:
        x = x[torch.randperm(x.shape[0])[:max_points]]
    flat = x.reshape(x.shape[0], -1)
    return torch.cdist(flat, flat).max().item()


def sde_for_data(sde, data: torch.Tensor) -> SDE:
    """An SDE object from a name or an object; for "ve", sigma_max defaults to the largest
    distance between two rows of ``data`` ``(n, *shape)``, the model's training rows."""
    if isinstance(sde, SDE):
        return sde
    if isinstance(sde, str) and sde.lower() == "ve":
        return VESDE(sigma_max=max(largest_distance(data), 2 * VESDE().sigma_min))
    return get_sde(sde)


def tweedie_denoise(sde, score, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The data prediction D(x, t) = E[x_0 | x_t] = (x + s(t)^2 score(x, t)) / m(t) (Tweedie):
    x ``(n, *shape)``, t (n,); also the samplers' usual last denoising step."""
    m = append_dims(sde.mean_scale(t), x.ndim)
    s2 = append_dims(sde.marginal_std(t) ** 2, x.ndim)
    return (x + s2 * score(x, t)) / m
