"""Rank bookkeeping for torch.distributed, shared by training and the sharded evaluation:
who this process is, and the few collectives that make the ranks agree (a seed, a stop,
a mean, rank 0's weights and history). Alone (no initialised process group) each is a
no-op that returns its input.
"""
from __future__ import annotations

import hashlib
import os

import torch
import torch.distributed as dist

from ._tensors import fresh_seed


def world() -> tuple[int, int]:
    """(rank, number of processes): (0, 1) without an initialised process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def launched_processes() -> int:
    """The number of processes a launcher (``torchrun``) started, from WORLD_SIZE in the
    environment; 1 when it is unset or not a whole number."""
    value = os.environ.get("WORLD_SIZE", "1").strip()
    return int(value) if value.isdigit() and int(value) > 0 else 1


def is_main() -> bool:
    """True on rank 0 (and without a process group): the rank that reports and writes."""
    return world()[0] == 0


def collective_device(device=None) -> torch.device:
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
                         device=collective_device())
    if rank == 0 and seed is None:
        value.fill_(fresh_seed())
    dist.broadcast(value, 0)
    return int(value.item())


def max_over_ranks(*values: float) -> tuple[float, ...]:
    """Each value's maximum over the ranks (one all-reduce for all of them; the values
    themselves alone)."""
    if world()[1] == 1:
        return tuple(float(v) for v in values)
    value = torch.tensor([float(v) for v in values], dtype=torch.float64,
                         device=collective_device())
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
    total = torch.tensor([value], dtype=torch.float64, device=collective_device())
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
    device = collective_device()
    for tensor in list(module.parameters()) + list(module.buffers()):
        staged = tensor.detach().to(device)
        dist.broadcast(staged, 0)
        tensor.data.copy_(staged)


def per_rank_generator_seed() -> None:
    """Move torch's global generator to a stream of this rank's own (the ranks' streams
    differ, and follow from the agreed seed), so that each rank draws its own batches."""
    rank, size = world()
    if size > 1:
        torch.manual_seed(fresh_seed() + rank)


def fingerprint(tensor: torch.Tensor) -> str:
    """A short digest of a tensor's shape, dtype and bytes, for ``agree``."""
    data = tensor.detach().cpu().contiguous()
    digest = hashlib.sha1(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return f"{tuple(data.shape)} {str(data.dtype).removeprefix('torch.')} {digest.hexdigest()[:12]}"


def agree(what: str, **values) -> None:
    """ValueError on every rank unless every rank passed equal ``values`` (compared by their
    repr), before any collective that mismatched inputs would hang or garble; free alone."""
    size = world()[1]
    if size == 1:
        return
    mine = {name: repr(value) for name, value in values.items()}
    everyone = [None] * size
    dist.all_gather_object(everyone, mine)
    differ = [name for name in mine if len({ranks[name] for ranks in everyone}) > 1]
    if differ:
        name = differ[0]
        seen = "; ".join(f"rank {r}: {ranks[name]}" for r, ranks in enumerate(everyone))
        raise ValueError(f"the ranks disagree on {what}'s {', '.join(differ)} (every rank must "
                         f"pass the same): {seen}")


def on_every_rank(compute):
    """compute() on this rank; when it raises on any rank, every rank raises (the failing
    rank its own error, the others a RuntimeError naming it) instead of waiting for it in
    the next collective; else compute()'s result."""
    size = world()[1]
    if size == 1:
        return compute()
    try:
        result, failure, error = compute(), None, None
    except Exception as err:  # told to every rank, then raised here
        result, failure, error = None, f"{type(err).__name__}: {err}", err
    failures = [None] * size
    dist.all_gather_object(failures, failure)
    if error is not None:
        raise error
    failed = [(rank, told) for rank, told in enumerate(failures) if told]
    if failed:
        rank, told = failed[0]
        raise RuntimeError(f"rank {rank} failed, so every rank stops: {told}")
    return result
