"""The training engine shared by ``fit``, ``fit_flow`` and ``fit_classifier``: budget checks,
the train/validation split, seeding, held-out scoring and the train loop (Adam, its
schedule and the weight average are in ``optim``).

A loss here is any callable ``loss_fn(module, x0, generator=None[, y=labels]) -> (n,)``, one
value per example; the loop is the only place that reduces. Labels, when given, reach the
loss as ``y``.
"""
from __future__ import annotations

import contextlib
import copy
import math
import numbers
import warnings
from time import perf_counter

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from .distributed import (any_rank, broadcast_module, from_rank0, is_main, max_over_ranks,
                          mean_over_ranks, per_rank_generator_seed, world)
from .optim import budget_spent, lr_factor
from .validation import as_dataset, check_positive, check_seed

DEFAULT_STEPS = 5000


def check_budget(max_time, steps, batch_size, lr, grad_clip=None):
    """Validate the training budget and optimiser settings (lr None: the caller's default);
    returns the step limit (DEFAULT_STEPS when neither ``max_time`` nor ``steps`` is given)."""
    if max_time is not None:
        check_positive(max_time, name="max_time")
    if steps is not None:
        check_positive(steps, name="steps", integer=True)
    check_positive(batch_size, name="batch_size", integer=True)
    if lr is not None:
        check_positive(lr, name="lr")
    if grad_clip is not None:
        check_positive(grad_clip, name="grad_clip")
    return DEFAULT_STEPS if max_time is None and steps is None else steps


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


def _loss(loss_fn, module, x0, labels, generator=None):
    """loss_fn's per-example values, with the labels passed as ``y`` when there are any."""
    if labels is None:
        return loss_fn(module, x0, generator=generator)
    return loss_fn(module, x0, generator=generator, y=labels)


@torch.no_grad()
def validation_loss(loss_fn, module, held, held_labels=None, batch_size=1024):
    """Per-row loss (n,) on held-out data with fixed times and noise (seed 0), comparable over
    steps: a ``validate`` for ``train_loop``."""
    generator = torch.Generator(device=held.device).manual_seed(0)
    label_chunks = (held_labels.split(batch_size) if held_labels is not None
                    else [None] * len(held.split(batch_size)))
    return torch.cat([_loss(loss_fn, module, chunk, y, generator)
                      for chunk, y in zip(held.split(batch_size), label_chunks)])


def clearly_worse(values: torch.Tensor, best: torch.Tensor, z: float = 2.0) -> bool:
    """Whether per-row held-out scores ``values`` (n,) are worse than ``best`` (n,) on the same
    rows by more than ``z`` standard errors of the mean per-row difference; a non-finite
    score (a diverged model) is."""
    if not torch.isfinite(values).all():
        return True
    difference = (values - best).double()
    se = difference.std() / math.sqrt(len(difference)) if len(difference) > 1 else 0.0
    return difference.mean().item() > z * float(se)


def train_loop(module, averaged, optimizer, loss_fn, train, validate=None, *, steps, max_time,
               batch_size, progress, callback, log_every, patience: int | None = None,
               labels=None, classes=None, label_dropout=0.0, grad_clip=None, augment=None,
               lr_schedule: str = "constant"):
    """Minimise mean(loss_fn(module, batch)) over random batches of ``train`` until
    ``steps`` or ``max_time`` seconds (the clock is read before each step); returns the
    history records {step, seconds, loss[, val_loss]}, one every ``log_every`` steps and
    one at the last step. ``grad_clip``: largest gradient norm of a step (None: no
    clipping). ``lr_schedule`` (an ``optim.LR_SCHEDULES`` name) scales the optimizer's lr at each step
    by ``lr_factor`` of the budget spent so far (``budget_spent``; under torch.distributed
    the furthest rank's, so that every rank takes the same step). ``averaged`` (a
    WeightAverage or None) is updated after every step and is the module evaluated and
    returned (else ``module`` itself).

    validate(evaluated) -> (n,) per-row held-out scores (lower is better) on the same rows
    at every call, or None: their mean is each record's ``val_loss``. The weights of the best
    record are kept and restored at the end (that record says ``"selected": True``); with
    ``patience``, training stops once the last ``patience`` records each scored clearly worse
    than the best (``clearly_worse``: by more than 2 standard errors of the per-row
    difference) and the best is at least as many records old as there were up to it: a
    plateau, its scores noisy, or slow steady progress is not cut short, held-out scores that
    rise are. The last record then says ``"stopped": "patience"``.
    A selection at the first record, or a held-out loss that rose after its best, is told
    in one warning line.

    augment(batch) -> batch, when given, transforms each training batch before the loss
    (fresh dequantisation noise, for one). With ``labels`` (n,), each batch's labels reach
    the loss, each replaced by the null label ``classes`` with probability
    ``label_dropout``. callback(record) returning True stops training. Under
    torch.distributed the ranks agree on every stop (``sdescore.distributed``). Ctrl-C (KeyboardInterrupt) stops it too, with a warning: the last record
    says ``"interrupted": True`` and the caller gets the model trained so far. A budget that
    ends before the first step raises ValueError. A ``batch_size`` above the number of
    training rows is cut to that number."""
    batch_size = min(batch_size, train.shape[0])
    history, window, start, step = [], [], perf_counter(), 0
    parameters = list(module.parameters())
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    rank, processes = world()
    objective = _Objective(loss_fn, module)
    if processes > 1:  # data-parallel: gradients averaged over the ranks' own batches
        device = parameters[0].device
        objective = DistributedDataParallel(
            objective, device_ids=[device.index] if device.type == "cuda" else None)
        per_rank_generator_seed()
    evaluated = averaged.module if averaged is not None else module
    best = {"val_loss": math.inf, "index": None, "state": None, "values": None,
            "worse_streak": 0}

    def record():
        entry = {"step": step, "seconds": perf_counter() - start,
                 "loss": mean_over_ranks(sum(window) / len(window))}
        if validate is not None:
            evaluated.eval()  # dropout off while scoring
            values = validate(evaluated)
            module.train()
            entry["val_loss"] = values.double().mean().item()
            if entry["val_loss"] < best["val_loss"]:
                best.update(val_loss=entry["val_loss"], index=len(history), values=values,
                            state=copy.deepcopy(evaluated.state_dict()), worse_streak=0)
            elif best["values"] is not None and clearly_worse(values, best["values"]):
                best["worse_streak"] += 1
            else:
                best["worse_streak"] = 0
        history.append(entry)
        return entry

    def out_of_patience():
        if patience is None or best["index"] is None:
            return False
        since_best = len(history) - 1 - best["index"]
        return best["worse_streak"] >= patience and since_best >= best["index"] + 1

    bar = tqdm(total=steps, disable=not progress or rank != 0, desc="fit", unit="step",
               mininterval=0.5)
    module.train()
    interrupted = False
    try:
        while steps is None or step < steps:
            seconds = perf_counter() - start
            time_up = max_time is not None and seconds >= max_time
            if time_up and processes == 1:
                break  # alone: no batch drawn; ranks agree on it with the loss, below
            spent = budget_spent(step, steps, seconds, max_time)
            index = torch.randint(0, train.shape[0], (batch_size,), device=train.device)
            batch_labels = None
            if labels is not None:
                batch_labels = labels[index]
                if label_dropout:
                    dropped = torch.rand(batch_size, device=train.device) < label_dropout
                    batch_labels = batch_labels.masked_fill(dropped, classes)
            batch = train[index] if augment is None else augment(train[index])
            loss = objective(batch, batch_labels).mean()
            # one agreement per step: every rank stops, fails or scales its lr alike
            time_up, failed, spent = max_over_ranks(time_up, not math.isfinite(loss.item()),
                                                    spent)
            if time_up:
                break
            if failed:
                raise RuntimeError(f"training loss became {loss.item()} at step {step}; try a "
                                   "smaller lr or a larger eps")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(parameters, grad_clip)
            for group, base_lr in zip(optimizer.param_groups, base_lrs):
                group["lr"] = base_lr * lr_factor(lr_schedule, spent)
            optimizer.step()
            if averaged is not None:
                averaged.update(parameters)
            step += 1
            window.append(loss.item())
            bar.update(1)
            if step % log_every == 0:
                entry = record()
                window = []
                bar.set_postfix({k: f"{v:.4g}" for k, v in entry.items() if "loss" in k},
                                refresh=False)
                stop = callback is not None and callback(entry)
                if out_of_patience():
                    entry["stopped"] = "patience"
                if any_rank(stop or "stopped" in entry):
                    break
    except KeyboardInterrupt:
        if step == 0:
            raise
        interrupted = True
        warnings.warn(f"training interrupted at step {step}: returning the model trained so "
                      "far (its history's last record says interrupted)", stacklevel=3)
    finally:
        bar.close()
    if step == 0:
        raise ValueError(f"training stopped before its first step (max_time={max_time} s): "
                         "give it a larger budget")
    if window:  # the steps since the last record, so that history ends at the last step
        record()
    if interrupted:
        history[-1]["interrupted"] = True
    if best["index"] is not None:
        _select(evaluated, best, history)
    broadcast_module(evaluated)  # every rank returns rank 0's weights and history
    return from_rank0(history)


class _Objective(torch.nn.Module):
    """The per-example loss of ``module`` as one module, so that DistributedDataParallel
    sees every network call of a step (a loss may call the network more than once)."""

    def __init__(self, loss_fn, module):
        super().__init__()
        self.loss_fn, self.module = loss_fn, module

    def forward(self, x0, labels=None):
        return _loss(self.loss_fn, self.module, x0, labels)


def _select(evaluated, best, history) -> None:
    """Restore the best record's weights into ``evaluated``, mark the record, and warn when
    the choice says the run went wrong: best at its first record, or held-out loss rising."""
    chosen = history[best["index"]]
    chosen["selected"] = True
    evaluated.load_state_dict(best["state"])
    if len(history) == 1 or not is_main():  # one warning per run, from rank 0
        return
    if chosen is history[0]:
        warnings.warn(f"held-out loss was best at the first evaluation (step {chosen['step']}) "
                      "and never improved: the model may be too large for these data, or lr "
                      "too high; the weights of that step are returned", stacklevel=4)
    elif history[-1]["val_loss"] > chosen["val_loss"] + 0.01 * abs(chosen["val_loss"]) + 1e-3:
        warnings.warn(f"held-out loss rose from {chosen['val_loss']:.4g} at step "
                      f"{chosen['step']} to {history[-1]['val_loss']:.4g} at step "
                      f"{history[-1]['step']}: the weights of step {chosen['step']} are "
                      "returned", stacklevel=4)
