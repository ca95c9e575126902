"""What every density model shares: ``ScoreModel`` and ``FlowModel`` are ``DensityModel`` objects.

The contract: samples of ``shape``; a ``DataMap`` between the data's coordinates and the
model's, so that ``log_prob(x, seed=...)`` (``(n, *shape)`` -> (n,) nats, the map's
log-determinant included) and ``sample(n, seed=...)`` (``(n, *shape)``) speak the data's
coordinates; a training ``history``; ``config()``/``from_config`` and ``save(path)`` in the
model kind's file format, read back by ``sdescore.load``. ``tests/test_contract.py`` checks it for every kind.
"""
from __future__ import annotations

import math
import numbers
import os

import numpy as np
import torch
from torch import nn

from .._batching import SAMPLE_BATCH_NUMBERS, batch_rows
from ..datamap import DataMap, wide_dtype
from ..distributed import is_main
from ..io import save_payload
from ..metrics import bits_per_dim
from .._row_streams import RowStreams
from .._tensors import seed_or_fresh
from .._checks import as_batch, check_device, check_positive

__all__ = ["DensityModel", "holds_integers"]


def physical_memory() -> int | None:
    """This machine's memory in bytes, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def holds_integers(x) -> bool:
    """Whether array-like ``x`` has an integer dtype (uint8 pixels, int64 counts)."""
    if isinstance(x, torch.Tensor):
        return not x.is_floating_point() and not x.is_complex() and x.dtype != torch.bool
    return np.asarray(x).dtype.kind in "iu"


class DensityModel(nn.Module):
    """Shape, data map, history, dtype/device and saving; subclasses set ``file_format`` and
    define ``log_prob``, ``sample``, ``config`` and ``from_config``.

    shape: the shape of one sample, e.g. (d,) or (c, h, w); datamap: a DataMap for that
    shape (default the identity). Computation runs in the model's dtype and device, which
    follow ``.to()`` and ``.double()``; inputs in data coordinates are read in float64 and
    mapped there, so only the standardised values are rounded to the model's dtype.
    levels: for a model of integer data k in {0, ..., levels - 1} dequantised to
    x = (k + u) / levels (fitted on uint8 data, or with ``levels=``), the number of levels,
    which ``bits_per_dim`` needs; None for continuous data.
    """

    file_format: str

    def __init__(self, shape, datamap: DataMap | None = None, levels: int | None = None):
        super().__init__()
        if levels is not None:
            check_positive(levels, name="levels", integer=True)
        shape = (shape,) if isinstance(shape, numbers.Integral) else tuple(shape)
        if not shape or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool)
                                and s > 0 for s in shape):
            raise ValueError(f"shape must be positive integers, e.g. (2,); got {shape}")
        shape = tuple(int(s) for s in shape)
        datamap = DataMap.identity(shape) if datamap is None else datamap
        if tuple(datamap.shape) != shape:
            raise ValueError(f"datamap is for samples of shape {datamap.shape}; the model's "
                             f"are {shape}")
        self.shape, self.datamap = shape, datamap
        self.levels = None if levels is None else int(levels)
        self.history: list[dict] = []
        self.feature_names: list[str] | None = None  # the data's column names, when known
        # an empty buffer whose dtype and device follow .to(): the model's, also for a
        # score function without weights
        self.register_buffer("_placement", torch.empty(0), persistent=False)

    @property
    def dim(self) -> int:
        """D, the number of numbers in one sample."""
        return math.prod(self.shape)

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the model computes in (float32 unless ``.double()``)."""
        return self._placement.dtype

    @property
    def device(self) -> torch.device:
        return self._placement.device

    def checked_rows(self, x, name: str = "x") -> torch.Tensor:
        """x checked at the door: a finite ``(n, *shape)`` tensor in data coordinates, in float64
        (float32 on MPS) on the model's device."""
        return as_batch(x, self.shape, name=name, dtype=wide_dtype(self.device),
                        device=self.device)

    def model_rows(self, x, name: str = "x") -> torch.Tensor:
        """x checked at the door and mapped to model coordinates: ``(n, *shape)`` in the model's
        dtype. A model of integer data (``levels``) reads x as dequantised values
        (k + u) / levels in [0, 1); integer-typed x are refused (TypeError) with a pointer to
        ``bits_per_dim``, never read as such values."""
        self._check_weights()
        if self.levels and holds_integers(x):
            raise TypeError(f"{name} holds integers, but this model of integer data reads "
                            f"{name} as dequantised values (k + u) / {self.levels} in [0, 1): "
                            f"use bits_per_dim({name}) for the integers k, or pass "
                            f"(k + u) / {self.levels}")
        return self.within_reach(self.checked_rows(x, name), name).to(self.dtype)

    def within_reach(self, rows: torch.Tensor, name: str = "x") -> torch.Tensor:
        """``rows`` ``(n, *shape)`` in data coordinates, mapped to model coordinates in float64,
        after refusing (ValueError, naming ``name``) rows so far out that the model's dtype
        overflows on their squares: more than sqrt(largest float) / 10 training standard
        deviations (1.8e18 in float32)."""
        mapped = self.datamap.to_model(rows, torch.float64)
        reach = math.sqrt(torch.finfo(self.dtype).max) / 10
        far = (mapped.abs().flatten(1).amax(1) > reach).nonzero().flatten()
        if len(far):
            advice = ("use model.double()" if self.dtype != torch.float64
                      else "such rows have no representable density")
            raise ValueError(f"{name} has {len(far)} row(s) (first: row {far[0].item()}) more "
                             f"than {reach:.1e} training standard deviations out, where the "
                             f"model's {str(self.dtype).removeprefix('torch.')} computation "
                             f"overflows: {advice}")
        return mapped

    def _batch_rows(self, n: int, batch_size: int | None) -> int:
        """Rows evaluated together for n inputs (``sdescore.batching.batch_rows``)."""
        if batch_size is not None:
            check_positive(batch_size, name="batch_size", integer=True)
        return batch_rows(n, batch_size, self.device)

    def _sample_rows(self, n: int, batch_size: int | None) -> int:
        """Samples drawn together: ``batch_size``, else as many as hold ``2**22`` numbers.
        ValueError first when the n samples alone would not fit in this machine's memory."""
        needed = n * self.dim * torch.finfo(self.dtype).bits // 8
        memory = physical_memory()
        if memory is not None and needed > memory:
            raise ValueError(f"n={n} samples would need {needed / 2**30:.3g} GiB for the "
                             f"samples alone; this machine has {memory / 2**30:.3g} GiB: draw "
                             "them in parts")
        if batch_size is not None:
            return check_positive(batch_size, name="batch_size", integer=True)
        return max(1, SAMPLE_BATCH_NUMBERS // self.dim)

    @torch.no_grad()
    def bits_per_dim(self, x, *, draws: int = 1, seed: int | None = None,
                     **log_prob_options) -> torch.Tensor:
        """Bits per dimension of discrete data under this model: x ``(n, *shape)`` -> (n,).

        x: integers k in {0, ..., levels - 1}, each dequantised ``draws`` times to
        (k + u) / levels with u ~ U[0, 1) and the bits averaged (an upper bound on the bits
        of the bin's probability, by Jensen), or floats already dequantised in [0, 1). seed:
        a row's u (and any randomness of ``log_prob``) come from the seed and the row's
        values, so that with a seed a row's bits are the same in any batch (None: a fresh
        seed at every call).
        bits/dim = -log p(x) / (D ln 2) + log2(levels). Needs ``levels`` (a model fitted on
        uint8 data, or ``fit(..., levels=...)``); ``log_prob_options`` go to ``log_prob``.
        """
        if self.levels is None:
            raise ValueError("bits_per_dim needs a model of integer data: fit it on uint8 data "
                             "or with levels=...")
        check_positive(draws, name="draws", integer=True)
        integer = holds_integers(x)
        rows = self.checked_rows(x)
        low, high = (0, self.levels - 1) if integer else (0, 1)
        if (rows < low).any() or (rows > high).any() or (not integer and (rows == 1).any()):
            raise ValueError(f"x must hold integers in [0, {self.levels - 1}] or dequantised "
                             f"values in [0, 1); got values from {rows.min().item():g} to "
                             f"{rows.max().item():g}")
        if not integer:
            draws = 1
        seed = seed_or_fresh(seed)
        repeated = rows.repeat(draws, *[1] * len(self.shape))  # (draws * n, *shape)
        if integer:  # draw j of a row: numbers j * D to (j + 1) * D - 1 of its stream
            noise = RowStreams(rows, seed, b"dequantise").uniform(0, draws * self.dim)
            noise = noise.reshape(rows.shape[0], draws, self.dim).transpose(0, 1)
            repeated = (repeated + noise.reshape(repeated.shape).to(rows.dtype)) / self.levels
            repeated = repeated.clamp(max=1 - torch.finfo(rows.dtype).eps / 2)  # below 1
        nll = -self.log_prob(repeated, seed=seed, **log_prob_options).double()
        bits = bits_per_dim(nll.reshape(draws, rows.shape[0]).mean(0), self.dim,
                            levels=self.levels)
        return bits

    def _check_weights(self) -> None:
        """RuntimeError when a weight is NaN or inf: every answer would be garbage."""
        weights = {name: value for name, value in self.state_dict().items()
                   if value.is_floating_point()}
        if not weights:
            return
        finite = torch.stack([torch.isfinite(v).all() for v in weights.values()]).tolist()
        bad = [name for name, ok in zip(weights, finite) if not ok]  # one device sync
        if bad:
            raise RuntimeError(f"the model's weights hold NaN or inf ({bad[0]}"
                               f"{f' and {len(bad) - 1} more' if len(bad) > 1 else ''}): "
                               "it diverged or was damaged; refit it")

    def to(self, *args, **kwargs):
        """``nn.Module.to``, after refusing by name a device this machine does not have
        (``_checks.check_device``: "cuda" without CUDA, "meta", an index beyond the GPUs)."""
        try:
            device = torch._C._nn._parse_to(*args, **kwargs)[0]
        except RuntimeError as err:  # an index with no accelerator behind it
            raise ValueError(f"device {args[0] if args else kwargs.get('device')!r} is not "
                             f"available on this machine: {err}") from None
        check_device(device)
        return super().to(*args, **kwargs)

    def save(self, path) -> None:
        """Write config, weights and training history to ``path`` atomically (a temporary
        file, then a rename); ``sdescore.load`` reads it back without running code. Under
        torch.distributed only rank 0 writes (every rank holds the same model after ``fit``)."""
        if is_main():
            save_payload(self, path, self.file_format)
