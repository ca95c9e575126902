"""The DDPM connection: the discrete noise schedule of the VP SDE, and noise <-> score.

DDPM (Ho et al. 2020) perturbs x_i = sqrt(abar_i) x_0 + sqrt(1 - abar_i) z with
abar_i = prod_{j <= i} (1 - beta_j), i = 1..N. The VP SDE is its limit as N -> infinity with
beta_i = beta_min / N + (i - 1)(beta_max - beta_min) / (N (N - 1)), i.e. beta_i = beta(t) / N
at t = (i - 1) / (N - 1), and step i sits at time t_i = i / N (Song et al. 2021, App. B).
A network eps_theta that predicts z gives the score -eps_theta / sqrt(1 - abar_i) (the noise
parameterisation's ``noise_to_score``, re-exported here), and
sqrt(1 - abar_i) ~ s(t_i), the VP kernel's std.
"""
from __future__ import annotations

import torch

from .parameterization import noise_to_score, score_to_noise
from .sde import VPSDE

__all__ = ["alphas_bar", "ddpm_betas", "noise_to_score", "score_to_noise", "vp_sde_from_betas"]


def ddpm_betas(sde: VPSDE, steps: int = 1000, *, dtype=torch.float64) -> torch.Tensor:
    """DDPM's beta_1..beta_N (N,) for a VP SDE: linear from beta_min / N to beta_max / N."""
    if type(sde) is not VPSDE:
        raise ValueError(f"the DDPM schedule belongs to the VP SDE; got {sde!r}")
    if steps < 2 or sde.beta_max / steps >= 1:
        raise ValueError(f"steps must be >= 2 and above beta_max = {sde.beta_max} so that "
                         f"every beta_i < 1; got {steps}")
    return torch.linspace(sde.beta_min / steps, sde.beta_max / steps, steps, dtype=dtype)


def vp_sde_from_betas(betas) -> VPSDE:
    """The VP SDE whose DDPM schedule is ``betas`` (N,), linear in i (the inverse of
    ``ddpm_betas``): beta_min = N beta_1, beta_max = N beta_N."""
    betas = torch.as_tensor(betas, dtype=torch.float64)
    if betas.ndim != 1 or betas.numel() < 2:
        raise ValueError(f"betas must be a 1-D schedule of at least 2 steps; got shape "
                         f"{tuple(betas.shape)}")
    n = betas.numel()
    linear = torch.linspace(betas[0].item(), betas[-1].item(), n, dtype=torch.float64)
    if not torch.allclose(betas, linear, rtol=1e-6, atol=1e-12):
        raise ValueError("betas must be linear in i to correspond to a VP SDE")
    return VPSDE(beta_min=n * betas[0].item(), beta_max=n * betas[-1].item())


def alphas_bar(betas: torch.Tensor) -> torch.Tensor:
    """abar_i = prod_{j <= i} (1 - beta_j), (N,)."""
    return torch.cumprod(1 - betas, dim=0)
