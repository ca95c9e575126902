"""What every density model shares: ``ScoreModel`` and ``FlowModel`` are ``DensityModel``s.

The contract: samples of ``shape``; a ``DataMap`` between the data's coordinates and the
model's, so that ``log_prob(x)`` ((n, *shape) -> (n,) nats, the map's log-determinant
included) and ``sample(n, seed=...)`` ((n, *shape)) speak the data's coordinates; a training
``history``; ``config()``/``from_config`` and ``save(path)`` in the model kind's file format,
read back by ``sdescore.load``. ``tests/test_contract.py`` checks it for every kind.
"""
from __future__ import annotations

import math
import numbers

import torch
from torch import nn

from .datamap import DataMap, wide_dtype
from .io import save_payload
from .validation import as_batch


class DensityModel(nn.Module):
    """Shape, data map, history, dtype/device and saving; subclasses set ``file_format`` and
    define ``log_prob``, ``sample``, ``config`` and ``from_config``.

    shape: the shape of one sample, e.g. (d,) or (c, h, w); datamap: a DataMap for that
    shape (default the identity). Computation runs in the model's dtype and device, which
    follow ``.to()`` and ``.double()``; inputs in data coordinates are read in float64 and
    mapped there, so only the standardised values are rounded to the model's dtype.
    """

    file_format: str

    def __init__(self, shape, datamap: DataMap | None = None):
        super().__init__()
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
        self.history: list[dict] = []
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

    def _read(self, x, name: str = "x") -> torch.Tensor:
        """x checked at the door: a finite (n, *shape) tensor in data coordinates, in float64
        (float32 on MPS) on the model's device."""
        return as_batch(x, self.shape, name=name, dtype=wide_dtype(self.device),
                        device=self.device)

    def _batch(self, x, name: str = "x") -> torch.Tensor:
        """x checked at the door and mapped to model coordinates: (n, *shape) in the model's
        dtype."""
        return self.datamap.to_model(self._read(x, name), self.dtype)

    def save(self, path) -> None:
        """Write config, weights and training history to ``path`` atomically (a temporary
        file, then a rename); ``sdescore.load`` reads it back without running code."""
        save_payload(self, path, self.file_format)
