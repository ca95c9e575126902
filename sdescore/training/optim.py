"""Optimiser settings shared by ``fit``, ``fit_flow`` and ``fit_classifier``: Adam with its
fused kernel, the default step size, the learning-rate schedule over a training budget and
the exponential weight average.
"""
from __future__ import annotations

import copy
import math

import torch

__all__ = ["adam", "budget_spent", "default_lr", "lr_factor", "LR_SCHEDULES", "WeightAverage"]


def default_lr(batch_size: int, lr_schedule: str = "cosine") -> float:
    """Adam's step size for score networks: 2e-3 below batches of 1024; from 1024, 1e-2 under
    the cosine schedule and 6e-3 at a constant rate (the best of those screened at 60 s on the
    benchmark tables)."""
    if batch_size < 1024:
        return 2e-3
    return 1e-2 if lr_schedule == "cosine" else 6e-3


#: Schedule name -> the learning rate it gives.
LR_SCHEDULES = {
    "cosine": "lr (1 + cos(pi f)) / 2 at the fraction f of the budget spent",
    "constant": "lr throughout",
}


def lr_factor(schedule: str, spent: float) -> float:
    """The multiple of Adam's lr that ``schedule`` (an LR_SCHEDULES name) gives when the
    fraction ``spent`` of the training budget (steps or seconds, whichever is further) is
    used: cosine falls from 1 at the start to 0 at the budget's end."""
    if schedule == "constant":
        return 1.0
    return 0.5 * (1 + math.cos(math.pi * min(spent, 1.0)))


def budget_spent(step: int, steps: int | None, seconds: float, max_time: float | None) -> float:
    """The fraction of the budget used after ``step`` steps and ``seconds``: the larger of
    step / steps and seconds / max_time (either limit None: not counted)."""
    return max(0.0 if steps is None else step / steps,
               0.0 if max_time is None else seconds / max_time)


class WeightAverage:
    """Exponential moving average of a module's weights, kept in ``self.module`` (a copy).

    update(current) copies the current weights at the first update k = 0, then moves each
    averaged weight toward the current one at rate 1 - min(decay, (1 + k) / (10 + k)), so
    that early weights fade quickly in short runs. One foreach lerp over tensors gathered
    once, where torch's AveragedModel walks the module tree at every step.
    """

    def __init__(self, module: torch.nn.Module, decay: float):
        self.module, self.decay, self.updates = copy.deepcopy(module), decay, 0
        self._averaged = list(self.module.parameters())

    @torch.no_grad()
    def update(self, current: list[torch.Tensor]):
        """current: the live module's parameters, in ``parameters()`` order."""
        k = self.updates
        rate = 1.0 if k == 0 else 1 - min(self.decay, (1 + k) / (10 + k))
        torch._foreach_lerp_(self._averaged, current, rate)
        self.updates += 1


def adam(parameters, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """Adam (AdamW, decoupled, with ``weight_decay`` > 0) with its fused kernel where this
    torch has one for the parameters' device (one kernel per step instead of a loop over
    tensors), else the plain loop; both compute the same update."""
    parameters = list(parameters)
    kind, options = ((torch.optim.AdamW, {"weight_decay": weight_decay}) if weight_decay
                     else (torch.optim.Adam, {}))
    try:
        return kind(parameters, lr=lr, fused=True, **options)
    except RuntimeError:
        return kind(parameters, lr=lr, **options)
