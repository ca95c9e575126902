"""Small tensor helpers shared across the package."""
from __future__ import annotations

import contextlib

import torch

from ._checks import check_seed


def fresh_seed() -> int:
    """A seed in [0, 2**62) drawn from torch's global generator (so torch.manual_seed fixes
    it), for randomness that must be drawn once and shared."""
    return int(torch.randint(0, 2**62, ()))


def seed_or_fresh(seed: int | None) -> int:
    """``seed`` checked (``check_seed``), or a ``fresh_seed`` for None: the one seed of a
    call whose batches must all draw from the same seed."""
    seed = check_seed(seed)
    return fresh_seed() if seed is None else seed


def append_dims(v: torch.Tensor, ndim: int) -> torch.Tensor:
    """Append trailing singleton axes to a per-sample vector.

    v: (n,) tensor; returns (n, 1, ..., 1) with ``ndim`` axes in all, so that it
    broadcasts against a batch of shape ``(n, *shape)``.
    """
    return v.reshape(v.shape + (1,) * (ndim - v.ndim))


def sum_except_batch(x: torch.Tensor) -> torch.Tensor:
    """Sum over every axis but the first: (n, ...) -> (n,)."""
    return x.reshape(x.shape[0], -1).sum(dim=1)


def make_generator(seed: int | None, device: torch.device) -> torch.Generator | None:
    """A torch.Generator seeded with ``seed``, or None (torch's global generator, fresh
    randomness at every call) when seed is None."""
    seed = check_seed(seed)
    if seed is None:
        return None
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator


@contextlib.contextmanager
def seeded(seed: int | None, device: torch.device | None = None):
    """Run the block on torch's global generator seeded with ``seed``, restoring its state
    afterwards (and the CUDA device's, for a CUDA ``device``), so that the same seed gives
    the same draws. seed None: the block draws fresh randomness from the global generator,
    which moves on, so that two calls differ."""
    seed = check_seed(seed)
    if seed is None:
        yield
        return
    cuda = [device] if device is not None and device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        yield
