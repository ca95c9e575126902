"""The training options of every fit, in one validated object.

``TrainConfig`` holds what the engine needs to train any model kind: the budget, the
optimiser, the weight average, held-out selection, seeding, the device and dtype, and what is
reported along the way. ``DEFAULTS`` gives each model kind ("score", "flow", "classifier") its
defaults; ``fit``, ``fit_flow`` and ``fit_classifier`` take a config and keyword overrides of
its fields (``fit(x, lr=1e-3)``), and the scikit-learn estimators and the command line list
their options from ``TrainConfig``'s fields, so that one option means one thing everywhere.
"""
from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from .._checks import (check_compute_dtype, check_device, check_flag, check_positive, check_seed,
                       choose)
from .._ranks import on_every_rank
from .optim import LR_SCHEDULES, default_lr

__all__ = ["default_batch_size", "DEFAULT_STEPS", "DEFAULTS", "FIELDS", "score_batch_and_lr",
           "train_config", "TrainConfig"]

#: Training steps when neither ``steps`` nor ``max_time`` is given.
DEFAULT_STEPS = 5000


def _none_or(parse):
    """Read "none" as None, anything else with ``parse``."""
    def read(text: str):
        return None if text.lower() == "none" else parse(text)
    read.__name__ = f"{parse.__name__} or none"
    return read


def _validation(text: str):
    """'auto', 'none', or a fraction."""
    return text if text == "auto" else _none_or(float)(text)


def _option(default, help: str, text=str, **metadata):
    """A field with its help line and ``text``, the parser of its value from a string (the
    command line's); text None: not settable from text."""
    return field(default=default, metadata={"help": help, "text": text, **metadata})


@dataclass(frozen=True)
class TrainConfig:
    """How to train: every field is checked on construction (ValueError or TypeError naming
    it). ``dataclasses.replace(config, lr=1e-3)`` gives a changed copy, checked again.

    A budget is ``max_time`` seconds of wall clock from the first step (data preparation
    and the step-0 scoring of the fitted Gaussian are not counted), ``steps`` optimiser
    steps, or both (whichever ends first); neither means DEFAULT_STEPS steps.
    ``batch_size`` and ``lr`` None let the model kind choose (``default_batch_size``,
    ``optim.default_lr``).
    """

    max_time: float | None = _option(None, "wall-clock training budget, seconds", float)
    steps: int | None = _option(None, "optimiser steps (default 5000 when max_time is not "
                                "given either; with both, whichever ends first)", int)
    batch_size: int | None = _option(None, "rows per optimiser step (None: the model kind's "
                                     "default)", _none_or(int))
    lr: float | None = _option(None, "Adam's step size (None: the model kind's default)",
                               _none_or(float))
    lr_schedule: str = _option("cosine", "learning-rate schedule over the budget",
                               choices=tuple(LR_SCHEDULES))
    weight_decay: float = _option(0.0, "AdamW's decoupled weight decay (0: plain Adam)", float)
    grad_clip: float | None = _option(1.0, "largest gradient norm of a step (None: no "
                                      "clipping)", _none_or(float))
    ema: float = _option(0.999, "decay of the weight average used for evaluation (0: off)",
                         float)
    validation: Any = _option("auto", "held-out rows for selection: 'auto', a fraction, "
                              "held-out data, or 0 / None (off)", _validation)
    patience: int | None = _option(10, "stop after this many held-out scorings clearly worse "
                                   "than the best (None: never stop early)", _none_or(int))
    select_by: str = _option("auto", "held-out measure that chooses the weights ('auto': "
                             "the model kind's)")
    seed: int | None = _option(None, "seed for the split, the weights and the batches "
                               "(None: fresh randomness)", int)
    device: Any = _option(None, "where to train (None: CUDA when available, else the CPU)")
    dtype: Any = _option(torch.float32, "the network's dtype", choices=("float32", "float64"))
    progress: bool = _option(True, "show a progress bar", text=None)
    callback: Callable | None = _option(None, "callback(record) after each history record; "
                                        "returning True stops training", text=None)
    log_every: int | None = _option(None, "optimiser steps between history records (and "
                                    "held-out scorings); None: ten passes over the training "
                                    "rows, between 10 and 100 steps", _none_or(int))

    def __post_init__(self):
        if self.max_time is not None:
            check_positive(self.max_time, name="max_time")
        for name in ("steps", "batch_size", "patience", "log_every"):
            if getattr(self, name) is not None:  # NumPy integers become ints
                object.__setattr__(self, name, check_positive(getattr(self, name), name=name,
                                                              integer=True))
        for name in ("lr", "grad_clip"):
            if getattr(self, name) is not None:
                check_positive(getattr(self, name), name=name)
        if self.weight_decay != 0:
            check_positive(self.weight_decay, name="weight_decay")
        choose(self.lr_schedule, LR_SCHEDULES, name="lr_schedule")
        if isinstance(self.ema, bool) or not isinstance(self.ema, numbers.Real):
            raise TypeError(f"ema must be a number in [0, 1) (0 turns the average off); got "
                            f"{type(self.ema).__name__}")
        if not 0 <= self.ema < 1:
            raise ValueError(f"ema must be in [0, 1); got {self.ema}")
        if not isinstance(self.select_by, str):
            raise TypeError(f"select_by must be a name (str); got {type(self.select_by).__name__}")
        check_seed(self.seed)
        check_device(self.device)
        object.__setattr__(self, "dtype", check_compute_dtype(self.dtype))
        object.__setattr__(self, "progress", check_flag(self.progress, name="progress"))
        if self.callback is not None and not callable(self.callback):
            raise TypeError(f"callback must be callable(record) or None; got "
                            f"{type(self.callback).__name__}")

    @property
    def step_limit(self) -> int | None:
        """The steps to train for: ``steps``, or DEFAULT_STEPS when no budget is given."""
        return DEFAULT_STEPS if self.max_time is None and self.steps is None else self.steps

    def resolved_device(self) -> torch.device:
        """``device``, or CUDA when available, else the CPU."""
        return torch.device(self.device or ("cuda" if torch.cuda.is_available() else "cpu"))


#: The names of TrainConfig's fields, in order.
FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))

#: Model kind -> its default TrainConfig ("score" for ``fit``, "flow" for ``fit_flow``,
#: "classifier" for ``fit_classifier``).
DEFAULTS = {
    "score": TrainConfig(select_by="nll-bound"),
    "flow": TrainConfig(batch_size=256, lr=1e-3, ema=0.0, select_by="nll"),
    "classifier": TrainConfig(batch_size=256, lr=1e-3, lr_schedule="constant", grad_clip=None,
                              ema=0.0, validation=None, patience=None, select_by="loss"),
}


def train_config(kind: str, config: TrainConfig | None, options: dict,
                 caller: str) -> TrainConfig:
    """``config`` (default: ``DEFAULTS[kind]``) with the keyword ``options`` of ``caller``
    replacing its fields; an option that is no field is a TypeError naming it. Under
    torch.distributed a rank whose options fail makes every rank raise."""
    return on_every_rank(lambda: _train_config(kind, config, dict(options), caller))


def _train_config(kind: str, config: TrainConfig | None, options: dict,
                  caller: str) -> TrainConfig:
    unknown = sorted(set(options) - set(FIELDS))
    if unknown:
        raise TypeError(f"{caller}() got an unexpected keyword argument {unknown[0]!r}; its "
                        f"training options are: {', '.join(FIELDS)}")
    if config is not None and not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig; got {type(config).__name__}")
    config = DEFAULTS[kind] if config is None else config
    if config.select_by == "auto":
        options.setdefault("select_by", DEFAULTS[kind].select_by)
    return dataclasses.replace(config, **options) if options else config


def default_batch_size(shape: tuple, device="cpu") -> int:
    """Training batch of a score model for samples of ``shape`` on ``device``: 1024 for
    vectors with d <= 10, 32 for images on a CPU (a U-Net step there costs about linearly in
    its rows, so small batches buy steps), 256 otherwise."""
    if len(shape) == 1 and shape[0] <= 10:
        return 1024
    if len(shape) == 3 and torch.device(device).type == "cpu":
        return 32
    return 256


def score_batch_and_lr(config: TrainConfig, shape: tuple, device, rows: int) -> tuple[int, float]:
    """(batch size, lr) of a score model: the config's batch, or ``default_batch_size``, cut
    to the training ``rows``, and the config's lr or the ``default_lr`` of that batch."""
    batch_size = min(config.batch_size or default_batch_size(shape, device), rows)
    lr = config.lr if config.lr is not None else default_lr(batch_size, config.lr_schedule)
    return batch_size, lr
