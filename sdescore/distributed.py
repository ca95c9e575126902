"""Data-parallel training and sharded evaluation on torch.distributed.

Under an initialised process group (``torchrun``, or ``torch.distributed.init_process_group``
by hand; gloo on CPUs, NCCL on GPUs), ``fit``, ``fit_flow`` and ``fit_classifier`` train
data-parallel with nothing else to change: every rank agrees on rank 0's seed (so the same
split, data map and initial weights), draws its own batches, and DistributedDataParallel
averages the gradients; the ranks stop together (``max_time`` and patience are agreed at
every step) and every rank returns rank 0's final weights. Only rank 0 shows progress and
writes model files.

``log_prob``, ``nll_bound`` and ``sample`` here split the work instead: every rank passes
the same inputs, solves its own contiguous share with no collective inside the solver (an
adaptive solve takes a different number of steps on each rank, which would leave DDP's
collectives unmatched), and every rank gets the whole result in input order. The ranks
first agree that their inputs, options and weights are the same (ValueError on every rank
otherwise), and a rank whose share fails makes every rank raise, instead of leaving them
waiting for it until the process group's timeout.
Without a process group (or with one process) all of this is the one-process behaviour.
"""
from __future__ import annotations

import math

import torch
import torch.distributed as dist

from ._checks import check_count, check_flag, check_seed
from ._ranks import (agree, agreed_seed, collective_device, fingerprint, is_main, on_every_rank,
                     world)
from .solvers.likelihood import LogDensity

__all__ = ["is_main", "log_prob", "nll_bound", "sample", "world"]


def _share(n: int) -> slice:
    rank, size = world()
    return slice(rank * n // size, (rank + 1) * n // size)


def _gather(local: torch.Tensor, n: int, device) -> torch.Tensor:
    """Every rank's share (rows), padded to one length, gathered and cut back, in rank order."""
    size = world()[1]
    longest = -(-n // size)
    where = collective_device(device)
    padded = torch.zeros((longest,) + tuple(local.shape[1:]), dtype=local.dtype, device=where)
    padded[:local.shape[0]] = local.to(where)
    parts = [torch.empty_like(padded) for _ in range(size)]
    dist.all_gather(parts, padded)
    lengths = [(r + 1) * n // size - r * n // size for r in range(size)]
    return torch.cat([part[:length] for part, length in zip(parts, lengths)]).to(local.device)


def _sharded(model, n: int, compute, empty):
    """compute(rows slice) on this rank's share, gathered; empty() stands in for no rows. A
    rank whose share fails makes every rank raise (``_ranks.on_every_rank``)."""
    size = world()[1]
    if size == 1:
        return compute(slice(0, n))
    share = _share(n)
    local = on_every_rank(lambda: compute(share) if share.stop > share.start else empty())
    return _gather(local, n, model.device)


def _checked(model, x) -> torch.Tensor:
    """x in data coordinates after every check of the model's door (on the whole of x)."""
    model.model_rows(x)
    return model.checked_rows(x)


def _weights(model) -> list[str]:
    """Fingerprints of the model's weights (only computed under a process group)."""
    if world()[1] == 1:
        return []
    return [fingerprint(value) for value in model.state_dict().values()]


def _no_rows(model):
    return lambda: torch.empty(0, dtype=model.dtype, device=model.device)


def log_prob(model, x, *, seed: int | None = None, return_error: bool = False,
             **options):
    """``model.log_prob(x, seed=seed, return_error=return_error, **options)`` with each rank
    solving its share of the rows: (n,), or with ``return_error`` a ``LogDensity`` of (n,)
    tensors; the one-process result, Hutchinson's probes included (seed None: rank 0 draws
    one for all ranks). Every rank checks all of x first, so bad input raises on every
    rank, not on the one whose share holds it while the others wait for it."""
    rows = on_every_rank(lambda: _checked(model, x))
    seed = agreed_seed(on_every_rank(lambda: check_seed(seed)))
    return_error = on_every_rank(lambda: check_flag(return_error, name="return_error"))
    agree("log_prob", rows=fingerprint(rows), seed=seed, return_error=return_error,
          options=options, weights=_weights(model))
    if not return_error:
        return _sharded(model, rows.shape[0],
                        lambda part: model.log_prob(rows[part], seed=seed, **options),
                        _no_rows(model))

    def columns(part):  # log_prob, solver_error, trace_stderr (NaN if None), whether given
        answer = model.log_prob(rows[part], seed=seed, return_error=True, **options)
        given = answer.trace_stderr is not None
        stderr = answer.trace_stderr if given else torch.full_like(answer.log_prob, math.nan)
        return torch.stack([answer.log_prob, answer.solver_error, stderr,
                            torch.full_like(stderr, float(given))], 1)
    table = _sharded(model, rows.shape[0], columns,
                     lambda: torch.empty(0, 4, dtype=model.dtype, device=model.device))
    return LogDensity(table[:, 0], table[:, 1], table[:, 2] if table[0, 3] else None)


def nll_bound(model, x, *, seed: int | None = None, **options) -> torch.Tensor:
    """``model.nll_bound(x, seed=seed, **options)`` (n,) with each rank estimating its share;
    a point's draws come from the seed and its own values, so that the result is the
    one-process result with the same seed (seed None: rank 0 draws one for all ranks); x
    checked whole on every rank, as for ``log_prob``."""
    rows = on_every_rank(lambda: _checked(model, x))
    seed = agreed_seed(on_every_rank(lambda: check_seed(seed)))
    agree("nll_bound", rows=fingerprint(rows), seed=seed, options=options,
          weights=_weights(model))
    return _sharded(model, rows.shape[0],
                    lambda part: model.nll_bound(rows[part], seed=seed, **options),
                    _no_rows(model))


def sample(model, n: int, *, seed: int | None = None, **options) -> torch.Tensor:
    """n samples ``(n, *shape)``, each rank drawing its share (rank r with seed + r when a seed
    is given); every rank returns all n in rank order."""
    n = on_every_rank(lambda: check_count(n))
    agree("sample", n=n, seed=seed, options=options, weights=_weights(model))
    rank_seed = None if seed is None else seed + world()[0]
    return _sharded(model, n, lambda part: model.sample(part.stop - part.start,
                                                        seed=rank_seed, **options),
                    lambda: model.sample(0, **options))
