"""Random numbers keyed by a row's values: the same row gets the same numbers alone, in any
batch, at any position and on any rank, so that a per-row estimate drawn with them does not
depend on the rows beside it.

A row's key is the keyed BLAKE2b hash of its bytes (key: the seed, then a purpose that keeps
the streams of different uses of one row independent); its numbers are SplitMix64's stream
from that key (Steele, Lea and Flood 2014), numbers ``start`` to ``start + count - 1`` of it
read without drawing the ones before.
"""
from __future__ import annotations

import hashlib

import numpy as np
import torch

__all__ = ["RowStreams"]

# SplitMix64: the golden-ratio increment and the two mixers.
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIXERS = ((np.uint64(30), np.uint64(0xBF58476D1CE4E5B9)),
           (np.uint64(27), np.uint64(0x94D049BB133111EB)))


def _splitmix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64's output function on uint64 states (arithmetic modulo 2**64)."""
    for shift, multiplier in _MIXERS:
        z = (z ^ (z >> shift)) * multiplier
    return z ^ (z >> np.uint64(31))


class RowStreams:
    """One stream of random numbers per row of ``rows`` ``(n, ...)``, a function of ``seed``
    (an int in [0, 2**64)), ``purpose`` (bytes, at most 56) and that row's bytes alone.
    Numbers come back as (n, count) tensors on rows' device, normals and signs in rows'
    dtype."""

    def __init__(self, rows: torch.Tensor, seed: int, purpose: bytes = b""):
        raw = rows.detach().reshape(rows.shape[0], -1).contiguous().cpu().view(torch.uint8)
        salt = int(seed).to_bytes(8, "little") + purpose
        self.keys = np.array([int.from_bytes(hashlib.blake2b(row.tobytes(), digest_size=8,
                                                             key=salt).digest(), "little")
                              for row in raw.numpy()], dtype=np.uint64)
        self.dtype, self.device = rows.dtype, rows.device

    def _bits(self, start: int, count: int) -> np.ndarray:
        steps = np.arange(start + 1, start + count + 1, dtype=np.uint64)
        return _splitmix64(self.keys[:, None] + steps * _GOLDEN)

    def _out(self, values: torch.Tensor) -> torch.Tensor:
        return values.to(dtype=self.dtype, device=self.device)

    def _uniform(self, start: int, count: int) -> torch.Tensor:
        bits = self._bits(start, count) >> np.uint64(11)
        return torch.from_numpy((bits.astype(np.float64) + 0.5) / 2.0**53)

    def uniform(self, start: int, count: int) -> torch.Tensor:
        """Numbers ``start`` to ``start + count - 1`` as U(0, 1) values (53 bits, never 0 or
        1), in float64 whatever ``dtype``."""
        return self._uniform(start, count).to(device=self.device)

    def normal(self, start: int, count: int) -> torch.Tensor:
        """The same numbers as standard normals (the inverse normal CDF of ``uniform``,
        computed on the CPU in float64, so that every device gets the same values)."""
        return self._out(torch.special.ndtri(self._uniform(start, count)))

    def sign(self, start: int, count: int) -> torch.Tensor:
        """The same numbers as Rademacher signs +-1 (their top bit)."""
        bits = (self._bits(start, count) >> np.uint64(63)).astype(np.float64)
        return self._out(torch.from_numpy(bits) * 2 - 1)
