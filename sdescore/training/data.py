"""Data preparation shared by every fit: integer levels, the train/held-out split,
dequantisation, the data map and the move to the model's device and dtype.

``prepared(data, config, ...)`` runs all of it on rank 0's seed (under torch.distributed the
ranks agree on it) and keeps the block that builds and trains the model on the same seeded
generator, so that one seed gives one split, one data map and one set of initial weights.
"""
from __future__ import annotations

import contextlib
import dataclasses
import numbers
from dataclasses import dataclass

import numpy as np
import torch

from .._checks import as_dataset, as_labels, check_flag, check_positive, count_classes
from .._ranks import agree, agreed_seed, fingerprint, on_every_rank
from .._tensors import seeded
from ..datamap import DataMap

__all__ = ["auto_validation_rows", "check_levels", "dequantized_split", "dequantizer",
           "discrete_levels", "Prepared", "prepared", "split"]


@dataclass
class Prepared:
    """What a fit trains on. x: all rows as given ``(n, *shape)``; levels: the integer levels
    being dequantised (None: continuous); classes: K for labelled rows, else None; train /
    held: tuples (rows[, labels]) in model coordinates on the device (held None without
    held-out rows); datamap: data -> model coordinates; augment: adds fresh dequantisation
    noise to a batch of model-coordinate rows (None for continuous data); device, dtype."""

    x: torch.Tensor
    levels: int | None
    classes: int | None
    train: tuple
    held: tuple | None
    datamap: DataMap
    augment: object
    device: torch.device
    dtype: torch.dtype

    @property
    def shape(self) -> tuple:
        return tuple(self.x.shape[1:])


@contextlib.contextmanager
def prepared(data, config, *, labels=None, levels: int | None = None, standardize: bool = True,
             datamap: DataMap | None = None):
    """Prepare ``data`` ((n, d) or (n, c, h, w), array-like) for training under ``config``
    (a TrainConfig: its validation, seed, device and dtype) and yield a ``Prepared``, the
    block running on the seeded global generator. labels: (n,) integer classes 0..K-1 or
    None; levels: as ``discrete_levels``; datamap: a map to reuse (else fitted on the
    training rows when ``standardize``, the identity otherwise)."""
    standardize = on_every_rank(lambda: check_flag(standardize, name="standardize"))
    levels, x, labels, classes = on_every_rank(lambda: _checked(data, levels, labels))
    device, dtype = config.resolved_device(), config.dtype
    agree("fit", data=fingerprint(x), labels=None if labels is None else fingerprint(labels),
          levels=levels, standardize=standardize, options=_agreed_fields(config))
    with seeded(agreed_seed(config.seed), device):
        train, held, train_labels, held_labels = split(x, config.validation, labels)
        train, held, fitted_on = dequantized_split(train, held, levels)
        if datamap is None:
            datamap = (DataMap.standardizing(fitted_on) if standardize
                       else DataMap.identity(x.shape[1:]))
        augment = dequantizer(levels, datamap, device, dtype)
        train = _on((datamap.to_model(train, dtype), train_labels), device)
        held = (None if held is None
                else _on((datamap.to_model(held, dtype), held_labels), device))
        yield Prepared(x, levels, classes, train, held, datamap, augment, device, dtype)


def _checked(data, levels, labels) -> tuple:
    """(levels, data as a tensor, labels as a tensor or None, classes or None), checked."""
    levels = discrete_levels(data, levels)
    x = as_dataset(data)
    check_levels(x, levels)
    if labels is None:
        return levels, x, None, None
    labels = as_labels(labels, x.shape[0])
    return levels, x, labels, count_classes(labels)


def _agreed_fields(config) -> dict:
    """The config's fields every rank must share: all but the seed (rank 0's is agreed),
    the device (one per rank), progress and the callback."""
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
            if f.name not in ("seed", "device", "progress", "callback")}


def _on(tensors, device) -> tuple:
    """The tensors that are not None, moved to ``device``."""
    return tuple(t.to(device) for t in tensors if t is not None)


def discrete_levels(data, levels) -> int | None:
    """The levels of integer data to dequantise: ``levels`` when given, 256 for uint8 data,
    else None (continuous data)."""
    if levels is None:
        uint8 = ((isinstance(data, torch.Tensor) and data.dtype == torch.uint8)
                 or (isinstance(data, np.ndarray) and data.dtype == np.uint8))
        return 256 if uint8 else None
    check_positive(levels, name="levels", integer=True)
    if levels < 2:
        raise ValueError(f"levels must be >= 2; got {levels}")
    return int(levels)


def check_levels(x: torch.Tensor, levels: int | None) -> None:
    """Refuse data that are not integers in [0, levels - 1] when dequantising."""
    if levels and ((x != x.round()).any() or x.min() < 0 or x.max() >= levels):
        raise ValueError(f"data must be integers in [0, {levels - 1}] to dequantise with "
                         f"levels={levels}; got values from {x.min().item():g} to "
                         f"{x.max().item():g}")


def dequantized_split(train, held, levels: int | None):
    """(training rows, held-out rows, rows to fit the data map on) for integer data:
    training rows k / levels (``dequantizer`` adds u / levels per batch), held-out rows
    dequantised once, so that their scores compare across steps; the map is fitted on one
    dequantised draw. Unchanged for continuous data (levels None)."""
    if not levels:
        return train, held, train
    held = None if held is None else (held + torch.rand_like(held)) / levels
    train = train / levels
    return train, held, train + torch.rand_like(train) / levels


def dequantizer(levels: int | None, datamap, device, dtype):
    """augment(batch) for rows k / levels in model coordinates: adds u / levels, mapped
    (u ~ U[0, 1) fresh per entry), so that each batch sees a new dequantisation; None for
    continuous data."""
    if not levels:
        return None
    step = (1.0 / (levels * datamap.scale)).to(device, dtype)
    return lambda batch: batch + torch.rand_like(batch) * step


def auto_validation_rows(n: int) -> int:
    """Rows ``validation="auto"`` holds out of n: a tenth, at least min(64, n // 5) and at
    most 2000; none below 20 rows, too few to spare."""
    if n < 20:
        return 0
    return min(max(round(0.1 * n), min(64, n // 5)), 2000)


def split(x: torch.Tensor, validation, labels: torch.Tensor | None = None):
    """(train, validation or None, train labels, validation labels) from "auto"
    (``auto_validation_rows``), a fraction in (0, 1) of the rows, or held-out data; None or
    0 holds out nothing. Labels (n,) or None follow their rows."""
    if isinstance(validation, str) and validation == "auto":
        held = auto_validation_rows(x.shape[0])
        validation = held / x.shape[0] if held else None
    if validation is None or (isinstance(validation, numbers.Real)
                              and not isinstance(validation, bool) and validation == 0):
        return x, None, labels, None
    if isinstance(validation, str):
        raise ValueError(f"validation must be 'auto', a fraction in [0, 1) or data; got "
                         f"{validation!r}")
    if isinstance(validation, numbers.Real) and not isinstance(validation, bool):
        if not 0 < validation < 1:
            raise ValueError(f"validation must be 'auto', a fraction in [0, 1) or data; got "
                             f"{validation}")
        order = torch.randperm(x.shape[0])
        held = max(1, int(round(validation * x.shape[0])))
        if held >= x.shape[0] - 1:
            raise ValueError(f"validation={validation} leaves fewer than 2 training rows")
        if labels is None:
            return x[order[held:]], x[order[:held]], None, None
        return x[order[held:]], x[order[:held]], labels[order[held:]], labels[order[:held]]
    if labels is not None:
        raise ValueError("with labels, validation must be a fraction of the data (held-out "
                         "rows would need their labels too)")
    held = as_dataset(validation, name="validation")
    if held.shape[1:] != x.shape[1:]:
        raise ValueError(f"validation rows have shape {tuple(held.shape[1:])}; data rows have "
                         f"{tuple(x.shape[1:])}")
    return x, held, None, None


