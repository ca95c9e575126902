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
collectives unmatched), and every rank gets the whole result in input order.
Without a process group (or with one process) all of this is the one-process behaviour.
"""
from __future__ import annotations

import torch
import torch.distributed as dist

from .validation import check_count


def world() -> tuple[int, int]:
    """(rank, number of processes): (0, 1) without an initialised process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """True on rank 0 (and without a process group): the rank that reports and writes."""
    return world()[0] == 0


def _collective_device(device=None) -> torch.device:
    """Where collectives run: the CUDA device for NCCL, the CPU otherwise."""
    if dist.get_backend() == "nccl":
        return torch.device(device) if device is not None and torch.device(device).type == "cuda" \
            else torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def agreed_seed(seed: int | None) -> int | None:
    """Rank 0's seed on every rank (a fresh one drawn on rank 0 when it is None); the seed
    itself without a process group."""
    rank, size = world()
    if size == 1:
        return seed
    value = torch.tensor([-1 if seed is None else seed], dtype=torch.int64,
                         device=_collective_device())
    if rank == 0 and seed is None:
        value.fill_(int(torch.randint(0, 2**62, ())))
    dist.broadcast(value, 0)
    return int(value.item())


def max_over_ranks(*values: float) -> tuple[float, ...]:
    """Each value's maximum over the ranks (one all-reduce for all of them; the values
    themselves alone)."""
    if world()[1] == 1:
        return tuple(float(v) for v in values)
    value = torch.tensor([float(v) for v in values], dtype=torch.float64,
                         device=_collective_device())
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return tuple(value.tolist())


def any_rank(*flags: bool):
    """Each flag, true on every rank when it is true on any (one all-reduce for all of them;
    free alone); one flag gives a bool, several a tuple."""
    flags = tuple(v > 0 for v in max_over_ranks(*(bool(f) for f in flags)))
    return flags[0] if len(flags) == 1 else flags


def mean_over_ranks(value: float) -> float:
    """The mean of ``value`` over the ranks (the value itself alone)."""
    size = world()[1]
    if size == 1:
        return value
    total = torch.tensor([value], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(total)
    return total.item() / size


def from_rank0(value):
    """Rank 0's ``value`` (any picklable object of this library's own making) on every rank."""
    if world()[1] == 1:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, 0)
    return holder[0]


def broadcast_module(module: torch.nn.Module) -> None:
    """Copy rank 0's parameters and buffers into ``module`` on every rank."""
    if world()[1] == 1:
        return
    device = _collective_device()
    for tensor in list(module.parameters()) + list(module.buffers()):
        staged = tensor.detach().to(device)
        dist.broadcast(staged, 0)
        tensor.data.copy_(staged)


def per_rank_generator_seed() -> None:
    """Move torch's global generator to a stream of this rank's own (the ranks' streams
    differ, and follow from the agreed seed), so that each rank draws its own batches."""
    rank, size = world()
    if size > 1:
        torch.manual_seed(int(torch.randint(0, 2**62, ())) + rank)


def _share(n: int) -> slice:
    rank, size = world()
    return slice(rank * n // size, (rank + 1) * n // size)


def _gather(local: torch.Tensor, n: int, device) -> torch.Tensor:
    """Every rank's share (rows), padded to one length, gathered and cut back, in rank order."""
    size = world()[1]
    longest = -(-n // size)
    where = _collective_device(device)
    padded = torch.zeros((longest,) + tuple(local.shape[1:]), dtype=local.dtype, device=where)
    padded[:local.shape[0]] = local.to(where)
    parts = [torch.empty_like(padded) for _ in range(size)]
    dist.all_gather(parts, padded)
    lengths = [(r + 1) * n // size - r * n // size for r in range(size)]
    return torch.cat([part[:length] for part, length in zip(parts, lengths)]).to(local.device)


def _sharded(model, n: int, compute, empty):
    """compute(rows slice) on this rank's share, gathered; empty() stands in for no rows."""
    size = world()[1]
    if size == 1:
        return compute(slice(0, n))
    share = _share(n)
    local = compute(share) if share.stop > share.start else empty()
    return _gather(local, n, model.device)


def _no_rows(model):
    return lambda: torch.empty(0, dtype=model.dtype, device=model.device)


def log_prob(model, x, **options) -> torch.Tensor:
    """``model.log_prob(x, **options)`` (n,) with each rank solving its share of the rows.
    Every rank checks all of x first, so bad input raises on every rank, not on the one
    whose share holds it while the others wait for it."""
    rows = model._read(x)
    return _sharded(model, rows.shape[0], lambda part: model.log_prob(rows[part], **options),
                    _no_rows(model))


def nll_bound(model, x, *, seed: int | None = None, **options) -> torch.Tensor:
    """``model.nll_bound(x, **options)`` (n,) with each rank estimating its share (rank r
    draws with seed + r when a seed is given); x checked whole on every rank, as for
    ``log_prob``."""
    rows = model._read(x)
    rank_seed = None if seed is None else seed + world()[0]
    return _sharded(model, rows.shape[0],
                    lambda part: model.nll_bound(rows[part], seed=rank_seed, **options),
                    _no_rows(model))


def sample(model, n: int, *, seed: int | None = None, **options) -> torch.Tensor:
    """n samples (n, *shape), each rank drawing its share (rank r with seed + r when a seed
    is given); every rank returns all n in rank order."""
    n = check_count(n)
    rank_seed = None if seed is None else seed + world()[0]
    return _sharded(model, n, lambda part: model.sample(part.stop - part.start,
                                                        seed=rank_seed, **options),
                    lambda: model.sample(0, **options))
