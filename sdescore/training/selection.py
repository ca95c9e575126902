"""Held-out measures that choose a fit's weights (``TrainConfig.select_by``), per model kind.

Each builds ``validate(module) -> (n,)``: per-row scores of the same held-out rows at every
call, lower is better, with fixed randomness, so that scores at different steps compare the
weights alone. ``held`` is the tuple (rows[, labels]) in model coordinates; ``log_det`` the
data map's log-determinant, so that densities are per row in the data's coordinates.
"""
from __future__ import annotations

import functools

import torch

from ..bounds import nll_bound_terms
from .engine import validation_loss

__all__ = ["bound_draws", "MEASURES", "held_out_loss", "held_out_nll", "held_out_nll_bound"]


def held_out_nll_bound(sde, held: tuple, log_det: float, chunk: int, draws: int | None = None):
    """validate(score_fn) -> (n,) the per-row bound on -log p(x) in nats (``nll_bound``
    with ``draws`` draws; None: ``bound_draws`` of the rows), labels bound to a conditional
    score_fn(x, t, y)."""
    eps = sde.likelihood_eps
    draws = draws or bound_draws(held[0].shape[0])

    @torch.no_grad()
    def validate(score_fn):
        bounds = []
        for chunk_rows in zip(*(tensor.split(chunk) for tensor in held)):
            part, labels = chunk_rows[0], chunk_rows[1] if len(chunk_rows) > 1 else None
            bounds.append(nll_bound_terms(sde, score_fn, part, draws=draws, eps=eps,
                                          seed=0, labels=labels,
                                          rows_per_call=chunk)[0])
        return torch.cat(bounds) - log_det
    return validate


def bound_draws(rows: int) -> int:
    """Draws per held-out row of the selection bound: 8, more for fewer than 64 rows (at
    least 512 in all, at most 64 per row), so that a tiny hold-out is not a coarse one."""
    return min(64, max(8, -(-512 // rows)))


def held_out_loss(loss, held: tuple, chunk: int):
    """validate(module) -> (n,) the training loss ``loss(module, *rows, generator=)`` of
    each held-out row."""
    return functools.partial(validation_loss, loss, held=held, batch_size=chunk)


def held_out_nll(held: tuple, log_det: float, chunk: int):
    """validate(flow) -> (n,) -log p(x) in nats of a normflows flow."""
    @torch.no_grad()
    def validate(flow):
        return -torch.cat([flow.log_prob(part) for part in held[0].split(chunk)]) - log_det
    return validate


#: Model kind -> ``select_by`` name -> what the held-out rows are scored by.
MEASURES = {
    "score": {"nll-bound": "the per-row bound on -log p(x), nats (nll_bound, bound_draws)",
              "loss": "the training loss"},
    "flow": {"nll": "-log p(x), nats"},
    "classifier": {"loss": "the cross-entropy of the noisy labels"},
}
