"""The training engine shared by ``fit``, ``fit_flow`` and ``fit_classifier``: the loop
(budget, learning-rate schedule, weight average, clipping), held-out selection and patience.

The engine knows no labels and no model kind. The training data are a tuple of tensors with
one row per example (rows, or rows and their labels); each step draws the same random rows
of every tensor and calls ``loss_fn(module, *batch) -> (n,)``, one value per example: the
loop is the only place that reduces. Whatever a step does to its batch (fresh
dequantisation noise, label dropout) belongs to the loss.
"""
from __future__ import annotations

import copy
import math
from time import perf_counter

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from .._checks import warn
from .._ranks import (any_rank, broadcast_module, from_rank0, is_main, launched_processes,
                      max_over_ranks, mean_over_ranks, per_rank_generator_seed, world)
from .optim import budget_spent, lr_factor

__all__ = ["clearly_worse", "records_every", "train_loop", "validation_loss"]


@torch.no_grad()
def validation_loss(loss_fn, module, held: tuple, batch_size: int = 1024) -> torch.Tensor:
    """Per-row loss (n,) of the held-out tensors ``held`` (rows[, labels]) with fixed times
    and noise (seed 0), comparable over steps: a ``validate`` for ``train_loop``."""
    generator = torch.Generator(device=held[0].device).manual_seed(0)
    chunks = zip(*(tensor.split(batch_size) for tensor in held))
    return torch.cat([loss_fn(module, *chunk, generator=generator) for chunk in chunks])


def clearly_worse(values: torch.Tensor, best: torch.Tensor, z: float = 2.0) -> bool:
    """Whether per-row held-out scores ``values`` (n,) are worse than ``best`` (n,) on the same
    rows by more than ``z`` standard errors of the mean per-row difference; a non-finite
    score (a diverged model) is."""
    if not torch.isfinite(values).all():
        return True
    difference = (values - best).double()
    se = difference.std() / math.sqrt(len(difference)) if len(difference) > 1 else 0.0
    return difference.mean().item() > z * float(se)


def records_every(rows: int, batch_size: int) -> int:
    """Steps between history records when ``log_every`` is None: ten passes over ``rows``
    training rows in batches of ``batch_size``, between 10 and 100 steps, so that held-out
    selection on a small table sees the few hundred steps before it over-fits."""
    return min(100, max(10, 10 * math.ceil(rows / batch_size)))


def train_loop(module, optimizer, loss_fn, train: tuple, config, *, batch_size: int,
               validate=None, averaged=None, initial: dict | None = None):
    """Minimise ``mean(loss_fn(module, *batch))`` over random batches of ``batch_size`` rows of
    the tensors ``train`` (the same rows of each; a batch above the rows is cut to them)
    under ``config`` (a TrainConfig: its budget, schedule, clipping, patience, progress,
    callback and log_every (None: ``records_every``); its lr and batch size are the caller's
    to resolve). Returns the history records {step, seconds, loss[, val_loss]}, one every
    ``log_every`` steps and one at the last step.

    The clock is read before each step; ``max_time`` counts from the first step (the step-0
    record of ``initial`` is not charged to it), the records' "seconds" from the call.
    ``lr_schedule`` scales the optimizer's lr at each step by ``lr_factor`` of the budget
    spent so far (under torch.distributed the furthest rank's, so that every rank takes the
    same step). ``averaged`` (a WeightAverage or None) is updated after every step and is
    the module evaluated and returned (else ``module``).

    validate(evaluated) -> (n,) per-row held-out scores (lower is better) on the same rows
    at every call, or None: their mean is each record's ``val_loss``. The weights of the best
    record are kept and restored at the end (that record says ``"selected": True``); with
    ``patience``, training stops once the last ``patience`` records each scored clearly worse
    than the best (``clearly_worse``) and the best is at least as many records old as there
    were up to it: a plateau, its scores noisy, or slow steady progress is not cut short,
    held-out scores that rise are. The last record then says ``"stopped": "patience"``.
    A selection at the first record, or a held-out loss that rose after its best, is told
    in one warning line.

    initial: with ``validate``, a candidate scored before the first step in a record at step
    0 (no training loss). A dict: "name" (what it is, for the warning line that tells its
    choice), optionally "module" (a module with the evaluated one's architecture, default
    the untrained module itself) and "record" (items added to that record). A trained record
    replaces it only when clearly better (``clearly_worse`` of step 0's scores against its
    own, z = 1): a trained module must earn its place.

    callback(record) returning True stops training. Under torch.distributed the ranks agree
    on every stop. Ctrl-C (KeyboardInterrupt) stops it too, with a warning: the last record
    says ``"interrupted": True`` and the caller gets the model trained so far. A budget that
    ends before the first step raises ValueError."""
    steps, max_time, patience = config.step_limit, config.max_time, config.patience
    grad_clip, lr_schedule, callback = config.grad_clip, config.lr_schedule, config.callback
    rows = train[0].shape[0]
    batch_size = min(batch_size, rows)
    log_every = config.log_every or records_every(rows, batch_size)
    history, window, start, step = [], [], perf_counter(), 0
    parameters = list(module.parameters())
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    rank, processes = world()
    if processes == 1 and launched_processes() > 1:
        warn(f"{launched_processes()} processes were launched (WORLD_SIZE) but no process "
             "group is initialised: this process trains alone on all the rows; call "
             "torch.distributed.init_process_group() first to train data-parallel")
    objective = _Objective(loss_fn, module)
    if processes > 1:  # data-parallel: gradients averaged over the ranks' own batches
        device = parameters[0].device
        objective = DistributedDataParallel(
            objective, device_ids=[device.index] if device.type == "cuda" else None)
        per_rank_generator_seed()
    evaluated = averaged.module if averaged is not None else module
    # best: the record to return; trained: the best trained record, which patience watches
    best = {"val_loss": math.inf, "index": None, "state": None, "values": None}
    trained = {"val_loss": math.inf, "index": None, "values": None, "worse_streak": 0}

    def record(extra=None, scored=None):
        scored = evaluated if scored is None else scored
        entry = {"step": step, "seconds": perf_counter() - start}
        if window:
            entry["loss"] = mean_over_ranks(sum(window) / len(window))
        entry.update(extra or {})
        if validate is not None:
            scored.eval()  # dropout off while scoring
            values = validate(scored)
            module.train()
            entry["val_loss"] = values.double().mean().item()
            if step > 0:
                _follow(trained, entry, values, len(history))
            if best["index"] is not None and history[best["index"]]["step"] == 0:
                better = clearly_worse(best["values"], values, z=1.0)  # beat step 0 clearly
            else:
                better = entry["val_loss"] < best["val_loss"]
            if better:
                best.update(val_loss=entry["val_loss"], index=len(history), values=values,
                            state=copy.deepcopy(scored.state_dict()))
        history.append(entry)
        return entry

    def out_of_patience():
        if patience is None or trained["index"] is None:
            return False
        first = 1 if history[0]["step"] == 0 else 0  # the step-0 record is not a trained one
        since_best = len(history) - 1 - trained["index"]
        return (trained["worse_streak"] >= patience
                and since_best >= trained["index"] - first + 1)

    bar = tqdm(total=steps, disable=not config.progress or rank != 0, desc="fit", unit="step",
               mininterval=0.5)
    if initial is not None and validate is not None:
        record(initial.get("record"), initial.get("module"))
    budget_start = perf_counter()  # max_time counts from here: step 0's scoring is not training
    module.train()
    interrupted = False
    try:
        while steps is None or step < steps:
            seconds = perf_counter() - budget_start
            time_up = max_time is not None and seconds >= max_time
            if time_up and processes == 1:
                break  # alone: no batch drawn; ranks agree on it with the loss, below
            spent = budget_spent(step, steps, seconds, max_time)
            index = torch.randint(0, rows, (batch_size,), device=train[0].device)
            loss = objective(*(tensor[index] for tensor in train)).mean()
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
        warn(f"training interrupted at step {step}: returning the model trained so "
                      "far (its history's last record says interrupted)")
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
        _select(evaluated, best, history, None if initial is None else initial["name"])
    broadcast_module(evaluated)  # every rank returns rank 0's weights and history
    return from_rank0(history)


def _follow(trained: dict, entry: dict, values: torch.Tensor, index: int) -> None:
    """Update the best trained record ``trained`` with the record ``entry`` (at ``index``,
    per-row scores ``values``) and the streak of records clearly worse than it."""
    if entry["val_loss"] < trained["val_loss"]:
        trained.update(val_loss=entry["val_loss"], index=index, values=values, worse_streak=0)
    elif clearly_worse(values, trained["values"]):
        trained["worse_streak"] += 1
    else:
        trained["worse_streak"] = 0


class _Objective(torch.nn.Module):
    """The per-example loss of ``module`` as one module, so that DistributedDataParallel
    sees every network call of a step (a loss may call the network more than once)."""

    def __init__(self, loss_fn, module):
        super().__init__()
        self.loss_fn, self.module = loss_fn, module

    def forward(self, *batch):
        return self.loss_fn(self.module, *batch)


def _select(evaluated, best, history, initial_name: str | None) -> None:
    """Restore the best record's weights into ``evaluated``, mark the record, and warn when
    the choice says the run went wrong: the untrained module (``initial_name``) or the first
    trained record best, or held-out loss rising."""
    chosen = history[best["index"]]
    chosen["selected"] = True
    evaluated.load_state_dict(best["state"])
    if len(history) == 1 or not is_main():  # one warning per run, from rank 0
        return
    trained = [r for r in history if r["step"] > 0]
    if chosen["step"] == 0 and initial_name is not None:
        best_trained = min(r["val_loss"] for r in trained)
        warn(f"{initial_name} scored best on the held-out rows ({chosen['val_loss']:.4g} "
                      f"against {best_trained:.4g} for the best of {len(trained)} trained "
                      "records): it is returned")
    elif trained and chosen is trained[0] and len(trained) > 1:
        warn(f"held-out loss was best at the first evaluation (step {chosen['step']}) "
                      "and never improved: the model may be too large for these data, or lr "
                      "too high; the weights of that step are returned")
    elif history[-1]["val_loss"] > chosen["val_loss"] + 0.01 * abs(chosen["val_loss"]) + 1e-3:
        warn(f"held-out loss rose from {chosen['val_loss']:.4g} at step "
                      f"{chosen['step']} to {history[-1]['val_loss']:.4g} at step "
                      f"{history[-1]['step']}: the weights of step {chosen['step']} are "
                      "returned")
