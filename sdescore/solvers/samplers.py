"""Samplers: each carries prior draws x_T ``(n, *shape)`` to x_eps ``(n, *shape)``.

Every sampler is a plain function ``run(sde, score, x, *, eps, generator, progress, ...)``
registered in SAMPLERS as a ``registry.Method`` that declares its options and says what it
needs and does; adding a sampler is adding one entry. The solvers' own conventions (flat
states, reversed time) stay in ``adapters``; the time grids come from ``schedules``.

- "ode": the probability-flow ODE from T down to eps with torchdiffeq.
- "sde": the reverse SDE with torchsde (Euler-Maruyama by default).
- "pc": predictor-corrector: Langevin corrector steps whose size follows a signal-to-noise
  ratio, then a reverse-SDE step (Song et al. 2021, Alg. 1-2).
- "langevin": annealed Langevin dynamics over the SDE's noise levels, corrector steps only
  (NCSN, Song and Ermon 2019); with a ``mask`` it moves only the masked entries (imputation).
- "dpm": DPM-Solver++ multistep in log-SNR (``dpm``): 20 score evaluations by default.
- "ddpm": DDPM's ancestral sampling (Ho et al. 2020), VP only; its last step is already the
  denoising step.
"""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from .._tensors import append_dims
from ..ddpm import ddpm_betas
from ..sde import VPSDE
from .adapters import (DEFAULT_MAX_STEPS, FIXED_GRID_STEPS, ReverseSDE,
                       integrate_probability_flow, integrate_reverse_sde)
from .dpm import FORMULAS, sample_dpm
from .registry import (ODE_OPTIONS, Method, check_ode_options, count, one_of, order, positive,
                       positive_integer, spacing)
from .schedules import step_times

__all__ = ["langevin_correct", "sample_ddpm", "sample_langevin", "sample_ode", "sample_pc",
           "sample_sde", "SAMPLERS", "TORCHSDE_SOLVERS"]


def sample_ode(sde, score, x, *, eps, generator=None, progress=False, solver="dopri5",
               rtol=1e-5, atol=1e-5, steps=FIXED_GRID_STEPS, max_steps=DEFAULT_MAX_STEPS):
    """Probability-flow ODE from T to eps; solver/rtol/atol/steps/max_steps as for log_prob."""
    return integrate_probability_flow(sde, score, x, sde.T, eps, solver=solver, rtol=rtol,
                                      atol=atol, steps=steps, max_steps=max_steps)


def sample_sde(sde, score, x, *, eps, generator=None, progress=False, solver="euler",
               steps=1000):
    """Reverse SDE by ``torchsde.sdeint``, ``steps`` steps of size (T - eps)/steps.

    solver: "euler" or "milstein" (torchsde's methods for Ito SDEs with diagonal noise that
    need no Levy area).
    The Brownian path is seeded from ``generator`` so a seed gives the same samples.
    """
    entropy = None
    if generator is not None:
        entropy = int(torch.randint(0, 2**62, (1,), generator=generator,
                                    device=generator.device).item())
    return integrate_reverse_sde(sde, score, x, eps, solver=solver, steps=steps, entropy=entropy)


def langevin_correct(sde, score, x, t, *, snr, generator=None):
    """One Langevin step targeting p_t: x + a score + sqrt(2 a) z, x ``(n, *shape)``, t (n,).

    The step follows the signal-to-noise rule a = 2 (snr ||z|| / ||score||)^2 at the norms
    that hold where the noise dominates, ||z|| ~ sqrt(D) and ||score|| ~ sqrt(D) / s(t), so
    a = 2 (snr s(t))^2. It depends on t alone: a step that varied with each sample's own
    norms would change the chain's stationary law (in low dimensions it pushes samples off
    the modes, where the score vanishes), and one from batch averages would couple samples.
    """
    step = append_dims(2 * (snr * sde.marginal_std(t)) ** 2, x.ndim)
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return x + step * score(x, t) + torch.sqrt(2 * step) * noise


def sample_pc(sde, score, x, *, eps, generator=None, progress=False, steps=1000, snr=0.16,
              corrector_steps=1):
    """Predictor-corrector: at each of ``steps`` times from T to eps, ``corrector_steps``
    Langevin steps at signal-to-noise ratio ``snr``, then one Euler-Maruyama step of the
    reverse SDE to the next time."""
    reverse = ReverseSDE(sde, score, x.shape[1:])
    times = step_times(sde, eps, steps, "time", x).to(x.dtype)
    n = x.shape[0]
    for i in tqdm(range(steps), disable=not progress, desc="pc sampling"):
        t = times[i].expand(n)
        for _ in range(corrector_steps):
            x = langevin_correct(sde, score, x, t, snr=snr, generator=generator)
        x = reverse.euler_maruyama_step(x, times[i], times[i + 1], generator=generator)
    return x


def sample_langevin(sde, score, x, *, eps, generator=None, progress=False, noise_levels=100,
                    steps_per_level=20, snr=0.4, mask=None):
    """Annealed Langevin dynamics: ``steps_per_level`` Langevin steps at each of
    ``noise_levels`` noise levels, times evenly spaced from T down to eps (geometric sigmas for VE).

    mask: None, or a bool tensor like x: only the True entries move; the others keep their
    values in x throughout (imputation of the True entries given the rest)."""
    held = x
    n = x.shape[0]
    levels = step_times(sde, eps, noise_levels - 1, "time", x).to(x.dtype)
    for level in tqdm(levels, disable=not progress, desc="annealed Langevin"):
        t = level.expand(n)
        for _ in range(steps_per_level):
            x = langevin_correct(sde, score, x, t, snr=snr, generator=generator)
            if mask is not None:
                x = torch.where(mask, x, held)
    return x


def sample_ddpm(sde, score, x, *, eps=None, generator=None, progress=False, steps=1000):
    """DDPM ancestral sampling with the N = ``steps`` betas of ``ddpm_betas(sde, N)``:
    for i = N..1, x <- (x + beta_i score(x, t_i)) / sqrt(1 - beta_i) + sqrt(beta_i) z at
    t_i = i / N, with no noise at i = 1. That last step is Tweedie's E[x_0 | x_{t_1}]
    (beta_1 = 1 - abar_1), so the grid, not ``eps``, sets the last time; ``eps`` is unused."""
    betas = ddpm_betas(sde, steps).to(dtype=x.dtype, device=x.device)
    n = x.shape[0]
    for i in tqdm(range(steps, 0, -1), disable=not progress, desc="ddpm sampling"):
        beta = betas[i - 1]
        t = torch.full((n,), i / steps, dtype=x.dtype, device=x.device)
        x = (x + beta * score(x, t)) / torch.sqrt(1 - beta)
        if i > 1:
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            x = x + torch.sqrt(beta) * noise
    return x


#: The torchsde solvers of the ``sde`` sampler (Ito, diagonal noise).
TORCHSDE_SOLVERS = ("euler", "milstein")
#: Method name -> the sampler ``sample(method=name)`` runs, with the options it takes.
SAMPLERS = {
    "ode": Method(sample_ode, ODE_OPTIONS, together=check_ode_options),
    "sde": Method(sample_sde, {"solver": one_of(TORCHSDE_SOLVERS), "steps": positive_integer}),
    "pc": Method(sample_pc, {"steps": positive_integer, "snr": positive,
                             "corrector_steps": count}),
    "langevin": Method(sample_langevin, {"noise_levels": positive_integer,
                                         "steps_per_level": positive_integer,
                                         "snr": positive}),
    "dpm": Method(sample_dpm, {"steps": positive_integer, "order": order, "spacing": spacing,
                               "formula": one_of(tuple(FORMULAS))}),
    "ddpm": Method(sample_ddpm, {"steps": positive_integer}, sde_type=VPSDE, denoises=True,
                   requirement="the DDPM schedule belongs to the VP SDE"),
}
