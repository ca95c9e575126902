"""Guided scores for conditional generation: each turns a score into the score of p(x | y).

- Classifier guidance (Song et al. 2021, Sec. 5): score(x, t) + w grad_x log q(y | x_t, t),
  q a classifier of *perturbed* inputs (``sdescore.fit_classifier`` trains one; any callable
  ``log_q(y, x, t) -> (n,)`` on data coordinates stands in).
- Classifier-free guidance (Ho and Salimans 2022): a network trained with and without its
  label gives uncond + w (cond - uncond).

Guidance scale w = 1 follows the conditional p(x | y) itself; w > 1 sharpens it, w = 0 ignores y.
"""
from __future__ import annotations

import torch

__all__ = ["classifier_free_guided", "classifier_guided"]


def classifier_guided(score, log_q, labels, scale: float, to_data):
    """score(x, t) + scale * grad_x log q(labels | to_data(x), t), for x in the score's
    coordinates (the gradient goes through ``to_data``)."""
    def guided(x, t):
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(log_q(labels, to_data(x_in), t).sum(), x_in)
        return score(x, t) + scale * grad
    return guided


def classifier_free_guided(score, labels, null: int, scale: float):
    """uncond + scale * (cond - uncond) from one batched call of score(x, t, y); ``null``
    is the label that means "no label"."""
    if scale == 1:
        return lambda x, t: score(x, t, labels)

    def guided(x, t):
        both = score(torch.cat([x, x]), torch.cat([t, t]),
                     torch.cat([labels, torch.full_like(labels, null)]))
        cond, uncond = both.chunk(2)
        return uncond + scale * (cond - uncond)
    return guided
