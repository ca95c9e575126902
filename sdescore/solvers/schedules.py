"""Time schedules: where a fixed-step solver evaluates the score, shared by the samplers and
the likelihood methods. ``step_times(sde, eps, steps, spacing)`` gives steps + 1 times from T
down to eps, evenly spaced in one of ``SPACINGS``.
"""
from __future__ import annotations

import math

import torch

__all__ = ["SPACINGS", "step_times"]

#: How a fixed time grid is spaced, even in log-SNR, in t, or in sqrt t.
SPACINGS = ("log-snr", "time", "quadratic")


def step_times(sde, eps: float, steps: int, spacing: str, like: torch.Tensor) -> torch.Tensor:
    """``steps`` + 1 times from T down to eps (float64): evenly spaced in lambda ("log-snr"),
    in t ("time"), or in sqrt(t) ("quadratic", denser near the data)."""
    ends = torch.tensor([sde.T, eps], dtype=torch.float64)
    if spacing == "log-snr":
        lam = sde.log_snr(ends)
        times = sde.time_at_log_snr(torch.linspace(lam[0], lam[1], steps + 1,
                                                   dtype=torch.float64))
        times[0], times[-1] = sde.T, eps  # the ends exactly, not through the round trip
    elif spacing == "time":
        times = torch.linspace(sde.T, eps, steps + 1, dtype=torch.float64)
    elif spacing == "quadratic":
        times = torch.linspace(math.sqrt(sde.T), math.sqrt(eps), steps + 1,
                               dtype=torch.float64) ** 2
    else:
        raise ValueError(f"spacing must be one of {', '.join(SPACINGS)}; got {spacing!r}")
    return times.to(like.device)
