"""DPM-Solver++ (Lu et al. 2022): the probability-flow ODE as an exponential integrator in
log-SNR, with the model read as a data prediction.

With lambda(t) = log(m(t) / s(t)) and Tweedie's data prediction D(x, t) = (x + s^2 score) / m,
the probability-flow ODE reads dx/dlambda = (dlog s / dlambda) x + m D. Its linear part
integrates exactly, so a step from lambda_u to lambda_v = lambda_u + h is

    x_v = (s_v / s_u) x_u + s_v * integral_{lambda_u}^{lambda_v} e^lambda D dlambda,

and the multistep solver of order k replaces D by the polynomial through its last k values
(one score evaluation per step), whose integral against e^lambda is exact:
    s_v * integral e^lambda (lambda - lambda_u)^j / j! dlambda = m_v psi_j(h),
    psi_0 = 1 - e^-h,  psi_j = h^j / j! - psi_(j-1).
"""
from __future__ import annotations

import math

import torch
from tqdm.auto import tqdm

from ..sde import tweedie_denoise
from .schedules import step_times

__all__ = ["exponential_multistep", "exponential_weights", "polynomial_weights", "sample_dpm"]

def polynomial_weights(moments: list[float], offsets: list[float]) -> list[float]:
    """Weights w with sum_i w_i P(offsets_i) = sum_j c_j moments_j for every polynomial
    P(u) = sum_j c_j u^j / j! of degree < len(offsets) (offsets distinct, float64):
    moments_j is the rule's value on u^j / j!, e.g. its integral over a step."""
    k = len(offsets)
    vandermonde = torch.tensor([[u**j / math.factorial(j) for j in range(k)] for u in offsets],
                               dtype=torch.float64)
    return torch.linalg.solve(vandermonde.T, torch.tensor(moments[:k],
                                                          dtype=torch.float64)).tolist()


def exponential_weights(h: float, offsets: list[float]) -> list[float]:
    """The weights beta_i with s_v integral_0^h e^(lambda_u + u) P(u) du = m_v sum_i beta_i
    D_i, P the polynomial through (offsets[i], D_i) (offsets: lambda_i - lambda_u, the first
    0), for a step of h in lambda, either sign."""
    psi = [-math.expm1(-h)]
    for j in range(1, len(offsets)):
        psi.append(h**j / math.factorial(j) - psi[-1])
    return polynomial_weights(psi, offsets)


def exponential_multistep(sde, predict, x: torch.Tensor, times: torch.Tensor, *, order: int,
                          progress: bool = False, desc: str = "dpm") -> torch.Tensor:
    """Carry x (n, *shape) along the probability-flow ODE through ``times`` (float64, in
    either direction) by the multistep exponential integrator of ``order`` (1, 2 or 3, lower
    in the first steps until enough predictions are known). predict(x, t) -> D (n, *shape),
    t (n,), is called once per step, at each time but the last."""
    lam = sde.log_snr(times).tolist()
    std = sde.marginal_std(times).tolist()
    scale = sde.mean_scale(times).tolist()
    n = x.shape[0]
    known = []  # (lambda_i, D_i), newest first
    for i in tqdm(range(len(times) - 1), disable=not progress, desc=desc):
        t = times[i].to(x.dtype).expand(n)
        known = [(lam[i], predict(x, t))] + known[:order - 1]
        weights = exponential_weights(lam[i + 1] - lam[i], [li - lam[i] for li, _ in known])
        x = std[i + 1] / std[i] * x + scale[i + 1] * sum(w * d for w, (_, d) in
                                                         zip(weights, known))
    return x


def sample_dpm(sde, score, x, *, eps, generator=None, progress=False, steps=20, order=3,
               spacing="log-snr"):
    """DPM-Solver++ multistep from T to eps in ``steps`` steps, one score evaluation each,
    order 1 (DDIM), 2 or 3; times by ``step_times(spacing)``. Deterministic: ``generator``
    is unused."""
    if order not in (1, 2, 3):
        raise ValueError(f"order must be 1, 2 or 3; got {order!r}")
    return exponential_multistep(sde, lambda y, t: tweedie_denoise(sde, score, y, t), x,
                                 step_times(sde, eps, steps, spacing, x), order=order,
                                 progress=progress, desc="dpm sampling")
