"""fit(): from data to a trained ScoreModel.

Standardises the data (a ``DataMap`` kept inside the model), builds a network and its
parameterisation, and hands them to the training engine (``training.py``): a score-matching
loss minimised with Adam, an exponential moving average of the weights for evaluation, a
step count or a wall-clock budget.
"""
from __future__ import annotations

import functools
import numbers

import torch

from .bounds import nll_bound_terms
from .datamap import DataMap
from .losses import get_loss
from .model import ScoreModel
from .nets import default_batch_size, default_net
from .parameterization import PARAMETERIZATIONS, GaussianResidual, reference_covariance
from .sde import SDE, sde_for_data
from .distributed import agreed_seed
from .optim import LR_SCHEDULES, WeightAverage, adam, default_lr
from .training import (check_budget, check_levels, dequantized_split, dequantizer,
                       discrete_levels, seeded, split, train_loop, validation_loss)
from .validation import (as_dataset, as_labels, check_compute_dtype, check_positive, choose,
                         count_classes)


def fit(data, sde="subvp", *, loss="dsm", net=None, parameterization="residual",
        max_time: float | None = None, steps: int | None = None, batch_size: int | None = None,
        lr: float | None = None, lr_schedule: str = "cosine", weight_decay: float = 0.0,
        grad_clip: float | None = 1.0, ema: float = 0.999,
        validation="auto", patience: int | None = 10, select_by: str = "nll-bound",
        standardize: bool = True, eps: float | None = None, labels=None, label_dropout: float = 0.1,
        levels: int | None = None, seed: int | None = None, device=None, dtype=torch.float32,
        progress: bool = True, callback=None, log_every: int = 100) -> ScoreModel:
    """Train a score model on ``data`` and return it as a ScoreModel in the data's coordinates.

    data: (n, d) vectors or (n, c, h, w) images (array-like). sde: "subvp", "vp", "ve" or an
    SDE object; VE's sigma_max defaults to the largest distance between standardised points.
    loss: "dsm" (lambda = s^2), "dsm-likelihood" (lambda = g^2, importance-sampled t), "ssm",
    "ssm-vr", "ncsn", or a loss object from sdescore.losses. net: a network taking (x, t)
    (default: MLP for vectors, ``nets.default_width(d)`` wide, U-Net for images; with
    held-out selection on, widths 32/64/128, weight decays 0/0.01/0.1 and MLP dropout
    0/0.1/0.3 showed no rule in n on ten tables of 100-1000 rows, so the width depends on d
    alone and there is no decay or dropout: BENCHMARKS.md, "Small tables" and "Dropout for
    the MLP"); parameterization: "residual" (the network
    predicts how the noise departs from its value for Gaussian data, from an input whitened
    by that Gaussian and soft-clipped to 3 standard deviations, so the score falls back to
    the Gaussian's far from the data; for vectors the Gaussian's covariance is the
    standardised training rows' moved halfway to the identity,
    ``parameterization.reference_covariance``: in the 60-s comparison at two seeds, 0.04-0.05
    nats lower test NLL on power and 0.5 on protein than N(0, I), with no far-out test rows,
    BENCHMARKS.md "A full-covariance reference"; for images N(0, I); see
    parameterization.GaussianResidual), "noise" (the network predicts
    the noise, score = -output / s(t)), "score", or a callable (net, sde) -> score module, e.g.
    ``functools.partial(parameterization.GaussianResidual, input_clip=5)``.
    max_time: wall-clock budget in seconds; steps: optimiser steps (default 5000 when neither
    is given; with both, whichever ends first). batch_size, lr: Adam's (None:
    ``nets.default_batch_size`` of the data's shape and the device, 1024 for vectors with
    d <= 10, 32 for images on a CPU and 256 otherwise, and ``optim.default_lr`` of the batch
    and schedule, 1e-2 from 1024 rows (6e-3 at a constant rate) and 2e-3 below, chosen by
    measurement; a batch above the training rows is cut to them, and the default lr follows
    the cut batch); lr_schedule: "cosine" (the lr falls as (1 + cos(pi f)) / 2 with the
    fraction f of the budget spent, steps or seconds: at 60 s, about 1 nat lower test NLL on
    protein and 0.13 on MAGIC, power unchanged, and flows gain alike; BENCHMARKS.md "A cosine
    learning rate") or "constant"; weight_decay: AdamW's decoupled decay (0: plain Adam);
    grad_clip: largest gradient norm of a step
    (None: off; without it one loss spike at step ~9200 cost a 2-D mixture 0.26 nats of KL,
    BENCHMARKS.md); ema: decay of the weight average used for evaluation (0 disables).
    validation: rows held out to choose the weights: "auto" (a tenth of the rows, at least
    min(64, n // 5), at most 2000; none below 20 rows), a fraction, held-out data, or 0 / None
    (off: the last weights are returned). They are scored every ``log_every`` steps by
    ``select_by``: "nll-bound" (the per-row bound on -log p in nats, ``nll_bound`` with 8
    draws and fixed randomness) or "loss" (the training loss); the best-scoring weights are
    returned, and training stops once the last ``patience`` scorings were each clearly worse
    than the best (by more than 2 standard errors of the per-row difference) and the best is
    at least as old as the run was when it came (None: never stop early): rising held-out
    scores end the run, a plateau or slow, noisy progress does not. standardize: map the data to zero mean,
    unit variance inside the model. eps: smallest training time (default sde.likelihood_eps).
    labels: (n,) integer classes 0..K-1 for a class-conditional model (classifier-free
    guidance): the network learns score(x, t, y), and each training label is replaced by the
    null label with probability ``label_dropout`` so that it also learns score(x, t).
    levels: for integer data k in {0, ..., levels - 1} (default 256 for uint8 data, images
    or vectors): the model is fitted to x = (k + u) / levels in [0, 1), with fresh uniform u
    at every batch, and keeps ``levels`` for ``bits_per_dim``; other data are continuous.
    seed: same seed, same machine, ``steps`` budget -> the same model; None: fresh
    randomness from torch's global generator (two calls differ). device: where to train
    (default CUDA when available). dtype: the network's and solvers' dtype, float32 or
    float64; the data map is fitted and applied in float64 either way, and samples come back
    in the data's dtype (float64 for float64 data). callback(record) is
    called with each history record (dict); returning True stops training.
    The model's ``history`` lists {step, seconds, loss[, val_loss]} every ``log_every`` steps
    and at the last step; the chosen record says ``"selected": True``, and a stop for lack of
    progress ``"stopped": "patience"``.
    """
    check_positive(log_every, name="log_every", integer=True)
    if eps is not None:
        check_positive(eps, name="eps")
        if eps >= SDE.T:
            raise ValueError(f"eps must be below T = {SDE.T}: it is the smallest training "
                             f"time; got {eps}")
    if patience is not None:
        check_positive(patience, name="patience", integer=True)
    if weight_decay:
        check_positive(weight_decay, name="weight_decay")
    measure = choose(select_by, HELD_OUT_MEASURES, name="select_by")
    choose(lr_schedule, LR_SCHEDULES, name="lr_schedule")
    if net is not None and not isinstance(net, torch.nn.Module):
        raise TypeError(f"net must be a torch.nn.Module taking (x, t); got {type(net).__name__}")
    if isinstance(ema, bool) or not isinstance(ema, numbers.Real):
        raise TypeError(f"ema must be a number in [0, 1) (0 turns the average off); got "
                        f"{type(ema).__name__}")
    if not 0 <= ema < 1:
        raise ValueError(f"ema must be in [0, 1); got {ema}")
    wrap = (parameterization if callable(parameterization)
            else choose(parameterization, PARAMETERIZATIONS, name="parameterization"))
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = check_compute_dtype(dtype)
    levels = discrete_levels(data, levels)
    x = as_dataset(data)
    check_levels(x, levels)
    if batch_size is None:
        batch_size = default_batch_size(tuple(x.shape[1:]), device)
    steps = check_budget(max_time, steps, batch_size, lr, grad_clip)
    classes = None
    if labels is not None:
        labels = as_labels(labels, x.shape[0])
        classes = count_classes(labels)
        if not 0 <= label_dropout < 1:
            raise ValueError(f"label_dropout must be in [0, 1); got {label_dropout}")

    seed = agreed_seed(seed)  # under torch.distributed: rank 0's, on every rank
    with seeded(seed, device):
        train, held, train_labels, held_labels = split(x, validation, labels)
        train, held, fitted_on = dequantized_split(train, held, levels)
        datamap = (DataMap.standardizing(fitted_on) if standardize
                   else DataMap.identity(x.shape[1:]))
        augment = dequantizer(levels, datamap, device, dtype)
        train = datamap.to_model(train, dtype).to(device)
        held = None if held is None else datamap.to_model(held, dtype).to(device)
        sde_obj = sde_for_data(sde, train)
        loss_fn = get_loss(loss, sde_obj, eps if eps is not None else sde_obj.likelihood_eps)
        if parameterization == "residual" and train.ndim == 2:  # vectors: their Gaussian
            wrap = functools.partial(GaussianResidual, covariance=reference_covariance(train))
        score_net = wrap(net if net is not None else default_net(tuple(train.shape[1:]), classes),
                         sde_obj)
        score_net.to(device, dtype)
        averaged = WeightAverage(score_net, ema) if ema else None
        if lr is None:  # the batch train_loop will draw: at most the training rows
            lr = default_lr(min(batch_size, train.shape[0]), lr_schedule)
        optimizer = adam(score_net.parameters(), lr, weight_decay)
        validate = None if held is None else measure(
            loss_fn, sde_obj, held, _on(held_labels, device), datamap.log_det.item(),
            4 * batch_size)
        history = train_loop(score_net, averaged, optimizer, loss_fn, train, validate,
                             steps=steps, max_time=max_time, batch_size=batch_size,
                             progress=progress, callback=callback, log_every=log_every,
                             patience=patience, labels=_on(train_labels, device),
                             classes=classes, label_dropout=label_dropout,
                             grad_clip=grad_clip, augment=augment, lr_schedule=lr_schedule)

    final = averaged.module if averaged is not None else score_net
    model = ScoreModel(sde_obj, final, tuple(x.shape[1:]), datamap=datamap,
                       classes=classes, levels=levels).to(device, dtype)
    model.history = history
    return model.eval()


def held_out_nll_bound(loss_fn, sde, held, labels, log_det, chunk, draws=8):
    """validate(score_fn) -> (n,) the per-row bound on -log p(x) in nats for the ``held`` rows
    in model coordinates (log_det: the data map's), with fixed randomness so that scores at
    different steps compare the weights alone."""
    eps = sde.likelihood_eps

    @torch.no_grad()
    def validate(score_fn):
        generator = torch.Generator(device=held.device).manual_seed(0)
        label_chunks = labels.split(chunk) if labels is not None else [None] * len(held.split(chunk))
        bounds = []
        for part, y in zip(held.split(chunk), label_chunks):
            score = score_fn if y is None else (lambda x, t, y=y: score_fn(x, t, y))
            bounds.append(nll_bound_terms(sde, score, part, draws=draws, eps=eps,
                                          generator=generator)[0])
        return torch.cat(bounds) - log_det
    return validate


def held_out_loss(loss_fn, sde, held, labels, log_det, chunk):
    """validate(score_fn) -> (n,) the training loss of each ``held`` row, fixed randomness."""
    return functools.partial(validation_loss, loss_fn, held=held, held_labels=labels,
                             batch_size=chunk)


HELD_OUT_MEASURES = {"nll-bound": held_out_nll_bound, "loss": held_out_loss}


def _on(labels, device):
    return None if labels is None else labels.to(device)
