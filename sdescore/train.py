"""fit(): from data to a trained ScoreModel.

Standardises the data (kept inside the model), builds a network and its parameterisation,
minimises a score-matching loss with Adam, keeps an exponential moving average of the
weights for evaluation, and stops at a step count or a wall-clock budget.
"""
from __future__ import annotations

import copy
import functools
import math
import time

import torch
from tqdm.auto import tqdm

from .losses import get_loss
from .model import ScoreModel
from .nets import PARAMETERIZATIONS, default_net
from .sde import SDE, VESDE, get_sde
from .validation import as_dataset, as_labels, check_positive, choose

DEFAULT_STEPS = 5000


def standardisation(x: torch.Tensor):
    """(loc, scale) mapping x (n, *shape) to zero mean and unit variance: per feature for
    vectors, one scalar for images. A constant feature raises ValueError."""
    if x.ndim == 2:
        loc, scale = x.mean(0), x.std(0)
        constant = torch.nonzero(scale == 0).flatten().tolist()
        if constant:
            raise ValueError(f"data column(s) {constant} are constant: a density on them is "
                             "degenerate; drop them or pass standardize=False")
        return loc, scale
    return x.mean().expand(x.shape[1:]), x.std().expand(x.shape[1:])


def largest_distance(x: torch.Tensor, max_points: int = 2000) -> float:
    """The largest distance between two rows of x (on a random subset of ``max_points``)."""
    if x.shape[0] > max_points:
        x = x[torch.randperm(x.shape[0])[:max_points]]
    flat = x.reshape(x.shape[0], -1)
    return torch.cdist(flat, flat).max().item()


def build_sde(sde, train: torch.Tensor) -> SDE:
    """An SDE object; for "ve", sigma_max defaults to the data's largest pairwise distance."""
    if isinstance(sde, SDE):
        return sde
    if isinstance(sde, str) and sde.lower() == "ve":
        return VESDE(sigma_max=max(largest_distance(train), 2 * VESDE().sigma_min))
    return get_sde(sde)


class WeightAverage:
    """Exponential moving average of a module's weights, kept in ``self.module`` (a copy).

    update(current) copies the current weights at the first update k = 0, then moves each
    averaged weight toward the current one at rate 1 - min(decay, (1 + k) / (10 + k)), so
    that early weights fade quickly in short runs. One foreach lerp over tensors gathered
    once, where torch's AveragedModel walks the module tree at every step.
    """

    def __init__(self, module: torch.nn.Module, decay: float):
        self.module, self.decay, self.updates = copy.deepcopy(module), decay, 0
        self._averaged = list(self.module.parameters())

    @torch.no_grad()
    def update(self, current: list[torch.Tensor]):
        """current: the live module's parameters, in ``parameters()`` order."""
        k = self.updates
        rate = 1.0 if k == 0 else 1 - min(self.decay, (1 + k) / (10 + k))
        torch._foreach_lerp_(self._averaged, current, rate)
        self.updates += 1


def adam(parameters, lr: float) -> torch.optim.Adam:
    """Adam with its fused kernel where this torch has one for the parameters' device (one
    kernel per step instead of a loop over tensors), else the plain loop; both compute the
    same update. With the foreach weight average it saves ~1 ms of a 4-7 ms step of the
    default MLP on a CPU thread (BENCHMARKS.md, "What one training step costs")."""
    parameters = list(parameters)
    try:
        return torch.optim.Adam(parameters, lr=lr, fused=True)
    except RuntimeError:
        return torch.optim.Adam(parameters, lr=lr)


def check_budget(max_time, steps, batch_size, lr, grad_clip=None):
    """Validate the training budget and optimiser settings; returns the step limit
    (DEFAULT_STEPS when neither ``max_time`` nor ``steps`` is given)."""
    if max_time is not None:
        check_positive(max_time, name="max_time")
    if steps is not None:
        check_positive(steps, name="steps", integer=True)
    check_positive(batch_size, name="batch_size", integer=True)
    check_positive(lr, name="lr")
    if grad_clip is not None:
        check_positive(grad_clip, name="grad_clip")
    return DEFAULT_STEPS if max_time is None and steps is None else steps


def split(x: torch.Tensor, validation, labels: torch.Tensor | None = None):
    """(train, validation or None, train labels, validation labels) from a fraction in (0, 1)
    of the rows or from held-out data; labels (n,) or None follow their rows."""
    if validation is None:
        return x, None, labels, None
    if isinstance(validation, float) and not isinstance(validation, bool):
        if not 0 < validation < 1:
            raise ValueError(f"validation must be a fraction in (0, 1) or data; got {validation}")
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
    held = as_dataset(validation, name="validation", dtype=x.dtype)
    if held.shape[1:] != x.shape[1:]:
        raise ValueError(f"validation rows have shape {tuple(held.shape[1:])}; data rows have "
                         f"{tuple(x.shape[1:])}")
    return x, held, None, None


def fit(data, sde="subvp", *, loss="dsm", net=None, parameterization="residual",
        max_time: float | None = None, steps: int | None = None, batch_size: int = 256,
        lr: float = 2e-3, grad_clip: float | None = 1.0, ema: float = 0.999, validation=None,
        standardize: bool = True, eps: float | None = None, labels=None, label_dropout: float = 0.1,
        seed: int | None = None, device=None, progress: bool = True, callback=None,
        log_every: int = 100) -> ScoreModel:
    """Train a score model on ``data`` and return it as a ScoreModel in the data's coordinates.

    data: (n, d) vectors or (n, c, h, w) images (array-like). sde: "subvp", "vp", "ve" or an
    SDE object; VE's sigma_max defaults to the largest distance between standardised points.
    loss: "dsm" (lambda = s^2), "dsm-likelihood" (lambda = g^2, importance-sampled t), "ssm",
    "ssm-vr", "ncsn", or a loss object from sdescore.losses. net: a network taking (x, t)
    (default: MLP for vectors, U-Net for images); parameterization: "residual" (the network
    predicts how the noise departs from its value for N(0, I) data, from an input
    soft-clipped to 3 standard deviations, so the score falls back to that Gaussian's far
    from the data; see nets.GaussianResidual), "noise" (the network predicts the noise,
    score = -output / s(t)), "score", or a callable (net, sde) -> score module, e.g.
    ``functools.partial(nets.GaussianResidual, input_clip=5)``.
    max_time: wall-clock budget in seconds; steps: optimiser steps (default 5000 when neither
    is given; with both, whichever ends first). batch_size, lr: Adam's; grad_clip: largest
    gradient norm of a step (None: off; without it one loss spike at step ~9200 cost a 2-D
    mixture 0.26 nats of KL, BENCHMARKS.md); ema: decay of the weight average used for
    evaluation (0 disables). validation: a fraction of the data or
    held-out data, scored every ``log_every`` steps. standardize: map the data to zero mean,
    unit variance inside the model. eps: smallest training time (default sde.likelihood_eps).
    labels: (n,) integer classes 0..K-1 for a class-conditional model (classifier-free
    guidance): the network learns score(x, t, y), and each training label is replaced by the
    null label with probability ``label_dropout`` so that it also learns score(x, t).
    seed: same seed, same machine, ``steps`` budget -> the same model. callback(record) is
    called with each history record (dict); returning True stops training.
    The model's ``history`` lists {step, seconds, loss[, val_loss]} every ``log_every`` steps
    and at the last step.
    """
    steps = check_budget(max_time, steps, batch_size, lr, grad_clip)
    check_positive(log_every, name="log_every", integer=True)
    if eps is not None:
        check_positive(eps, name="eps")
    if not 0 <= ema < 1:
        raise ValueError(f"ema must be in [0, 1); got {ema}")
    wrap = (parameterization if callable(parameterization)
            else choose(parameterization, PARAMETERIZATIONS, name="parameterization"))
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    x = as_dataset(data, dtype=torch.float32)
    classes = None
    if labels is not None:
        labels = as_labels(labels, x.shape[0])
        classes = int(labels.max()) + 1
        if not 0 <= label_dropout < 1:
            raise ValueError(f"label_dropout must be in [0, 1); got {label_dropout}")

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        if seed is not None:
            torch.manual_seed(seed)
        train, held, train_labels, held_labels = split(x, validation, labels)
        loc, scale = standardisation(train) if standardize else (torch.zeros(1), torch.ones(1))
        train = ((train - loc) / scale).to(device)
        held = None if held is None else ((held - loc) / scale).to(device)
        sde_obj = build_sde(sde, train)
        loss_fn = get_loss(loss, sde_obj, eps if eps is not None else sde_obj.likelihood_eps)
        score_net = wrap(net if net is not None else default_net(tuple(train.shape[1:]), classes),
                         sde_obj)
        score_net.to(device)
        averaged = WeightAverage(score_net, ema) if ema else None
        optimizer = adam(score_net.parameters(), lr)
        history = train_loop(score_net, averaged, optimizer, loss_fn, train, held, steps=steps,
                             max_time=max_time, batch_size=batch_size, progress=progress,
                             callback=callback, log_every=log_every,
                             labels=_on(train_labels, device), held_labels=_on(held_labels, device),
                             classes=classes, label_dropout=label_dropout,
                             grad_clip=grad_clip)

    final = averaged.module if averaged is not None else score_net
    model = ScoreModel(sde_obj, final, tuple(x.shape[1:]), loc=loc, scale=scale,
                       classes=classes).to(device)
    model.history = history
    return model.eval()


def _on(labels, device):
    return None if labels is None else labels.to(device)


def _given(score_net, labels):
    """score_net itself, or score_net with its labels bound when the model is conditional."""
    return score_net if labels is None else functools.partial(score_net, y=labels)


@torch.no_grad()
def _validation_loss(loss_fn, score_fn, held, held_labels, batch_size):
    """Mean loss on held-out data with fixed times and noise (seed 0), comparable over steps."""
    generator = torch.Generator(device=held.device).manual_seed(0)
    label_chunks = (held_labels.split(batch_size) if held_labels is not None
                    else [None] * len(held.split(batch_size)))
    total = sum(loss_fn(_given(score_fn, y), chunk, generator=generator).sum().item()
                for chunk, y in zip(held.split(batch_size), label_chunks))
    return total / held.shape[0]


def train_loop(score_net, averaged, optimizer, loss_fn, train, held, *, steps, max_time,
               batch_size, progress, callback, log_every, labels=None, held_labels=None,
               classes=None, label_dropout=0.0, grad_clip=None):
    """Minimise mean(loss_fn(score_net, batch)) over random batches of ``train`` until
    ``steps`` or ``max_time`` seconds; returns the history records. ``grad_clip``: largest
    gradient norm of a step (None: no clipping). ``averaged`` (a
    WeightAverage or None) is updated after every step and is what validation scores.
    With ``labels`` (n,), the net is called with each batch's labels, each replaced by the
    null label ``classes`` with probability ``label_dropout``."""
    history, window, start, step = [], [], time.perf_counter(), 0
    parameters = list(score_net.parameters())
    bar = tqdm(total=steps, disable=not progress, desc="fit", unit="step", mininterval=0.5)
    score_net.train()
    while steps is None or step < steps:
        if max_time is not None and time.perf_counter() - start >= max_time:
            break
        index = torch.randint(0, train.shape[0], (batch_size,), device=train.device)
        batch_labels = None
        if labels is not None:
            batch_labels = labels[index]
            if label_dropout:
                dropped = torch.rand(batch_size, device=train.device) < label_dropout
                batch_labels = batch_labels.masked_fill(dropped, classes)
        loss = loss_fn(_given(score_net, batch_labels), train[index]).mean()
        if not math.isfinite(loss.item()):
            raise RuntimeError(f"training loss became {loss.item()} at step {step}; try a "
                               "smaller lr or a larger eps")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(parameters, grad_clip)
        optimizer.step()
        if averaged is not None:
            averaged.update(parameters)
        step += 1
        window.append(loss.item())
        bar.update(1)
        if step % log_every == 0:
            record = {"step": step, "seconds": time.perf_counter() - start,
                      "loss": sum(window) / len(window)}
            window = []
            if held is not None:
                evaluated = averaged.module if averaged is not None else score_net
                record["val_loss"] = _validation_loss(loss_fn, evaluated, held, held_labels,
                                                      4 * batch_size)
            history.append(record)
            bar.set_postfix({k: f"{v:.4g}" for k, v in record.items() if "loss" in k},
                            refresh=False)
            if callback is not None and callback(record):
                break
    bar.close()
    if window:  # the steps since the last record, so that history ends at the last step
        history.append({"step": step, "seconds": time.perf_counter() - start,
                        "loss": sum(window) / len(window)})
    return history
