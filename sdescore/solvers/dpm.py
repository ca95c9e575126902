"""DPM-Solver++ (Lu et al. 2022): the probability-flow ODE as an exponential integrator in
log-SNR, with the model read as a data prediction.

With lambda(t) = log(m(t) / s(t)) and Tweedie's data prediction D(x, t) = (x + s^2 score) / m,
the probability-flow ODE reads dx/dlambda = (dlog s / dlambda) x + m D. Its linear part
integrates exactly, so a step from lambda_u to lambda_v = lambda_u + h is::

    x_v = (s_v / s_u) x_u + s_v * integral_{lambda_u}^{lambda_v} e^lambda D dlambda,

and the multistep solver of order k replaces D by the polynomial through its last k values
(one score evaluation per step), whose integral against e^lambda is exact::

    s_v * integral e^lambda (lambda - lambda_u)^j / j! dlambda = m_v psi_j(h),
    psi_0 = 1 - e^-h,  psi_j = h^j / j! - psi_(j-1).
"""
from __future__ import annotations

import math

import torch
from tqdm.auto import tqdm

from ..sde import tweedie_denoise
from .schedules import step_times

__all__ = ["dpm_solver_weights", "exponential_multistep", "exponential_weights", "FORMULAS",
           "polynomial_weights", "sample_dpm"]

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


def dpm_solver_weights(h: float, offsets: list[float]) -> list[float]:
    """The weights of the official DPM-Solver++ multistep updates (Lu et al. 2022, the
    ``dpm_solver_pytorch`` code) on the predictions at ``offsets`` (0, -h_0, -h_0 - h_1):
    order 1 DDIM, order 2 its "dpmsolver" (midpoint) form, psi_0 (D_0 + (D_0 - D_1) / (2 r_0)),
    order 3 its 3M form, psi_0 D_0 + phi_2 D1 - phi_3 D2 with D1 and D2 the first and second
    divided differences scaled by h; r_i = h_i / h, phi_1 = expm1(-h), phi_2 = phi_1 / h + 1,
    phi_3 = phi_2 / h - 1/2, psi_0 = -phi_1."""
    phi_1 = math.expm1(-h)
    if len(offsets) == 1:
        return [-phi_1]
    r0 = -offsets[1] / h
    if len(offsets) == 2:
        return [-phi_1 * (1 + 0.5 / r0), phi_1 * 0.5 / r0]
    r1 = (offsets[1] - offsets[2]) / h
    phi_2 = phi_1 / h + 1
    phi_3 = phi_2 / h - 0.5
    # D1_0 = (D0 - D_1) / r0, D1_1 = (D_1 - D_2) / r1: coefficients on (D0, D_1, D_2)
    d1_0 = [1 / r0, -1 / r0, 0.0]
    d1_1 = [0.0, 1 / r1, -1 / r1]
    d1 = [a + r0 / (r0 + r1) * (a - b) for a, b in zip(d1_0, d1_1)]
    d2 = [(a - b) / (r0 + r1) for a, b in zip(d1_0, d1_1)]
    return [(-phi_1 if i == 0 else 0.0) + phi_2 * d1[i] - phi_3 * d2[i] for i in range(3)]


#: Formula name -> the function giving a multistep update's weights. "exact" integrates the
#: polynomial exactly, "dpmsolver" is the official DPM-Solver++ form.
FORMULAS = {"exact": exponential_weights, "dpmsolver": dpm_solver_weights}


def exponential_multistep(sde, predict, x: torch.Tensor, times: torch.Tensor, *, order: int,
                          formula: str = "exact", progress: bool = False,
                          desc: str = "dpm") -> torch.Tensor:
    """Carry x ``(n, *shape)`` along the probability-flow ODE through ``times`` (float64, in
    either direction) by the multistep exponential integrator of ``order`` (1, 2 or 3, lower
    in the first steps until enough predictions are known). predict(x, t) -> D ``(n, *shape)``,
    t (n,), is called once per step, at each time but the last. formula: "exact" (the
    integral of the polynomial through the predictions, ``exponential_weights``) or
    "dpmsolver" (the official DPM-Solver++ updates, ``dpm_solver_weights``)."""
    weights_of = FORMULAS[formula]
    lam = sde.log_snr(times).tolist()
    std = sde.marginal_std(times).tolist()
    scale = sde.mean_scale(times).tolist()
    n = x.shape[0]
    known = []  # (lambda_i, D_i), newest first
    for i in tqdm(range(len(times) - 1), disable=not progress, desc=desc):
        t = times[i].to(x.dtype).expand(n)
        known = [(lam[i], predict(x, t))] + known[:order - 1]
        weights = weights_of(lam[i + 1] - lam[i], [li - lam[i] for li, _ in known])
        x = std[i + 1] / std[i] * x + scale[i + 1] * sum(w * d for w, (_, d) in
                                                         zip(weights, known))
    return x


def sample_dpm(sde, score, x, *, eps, generator=None, progress=False, steps=20, order=3,
               spacing="log-snr", formula=None):
    """DPM-Solver++ multistep from T to eps in ``steps`` steps, one score evaluation each,
    order 1 (DDIM), 2 or 3, by ``formula`` (``FORMULAS``; None: "dpmsolver" at order 2,
    "exact" otherwise: the closer to the exact ODE on the benchmark mixtures); times by
    ``step_times(spacing)``. Deterministic:
    ``generator`` is unused."""
    formula = formula or ("dpmsolver" if order == 2 else "exact")
    if order not in (1, 2, 3):
        raise ValueError(f"order must be 1, 2 or 3; got {order!r}")
    return exponential_multistep(sde, lambda y, t: tweedie_denoise(sde, score, y, t), x,
                                 step_times(sde, eps, steps, spacing, x), order=order,
                                 formula=formula, progress=progress, desc="dpm sampling")
