"""Noisy classifiers q_phi(y | x_t, t) for classifier guidance, and ``fit_classifier``.

A classifier guides a score model only if it saw the same noisy law: the model's SDE, in the
model's coordinates. ``fit_classifier(data, labels, model=model)`` trains one in exactly
those; without a model it standardises the data as ``fit`` does.
"""
from __future__ import annotations

import functools

import torch
from torch import nn

from .datamap import DataMap, wide_dtype
from .losses import UniformTimes
from .nets import default_classifier_net
from .sde import sde_for_data
from .distributed import agreed_seed
from .optim import adam
from .training import (check_budget, check_levels, dequantized_split, dequantizer,
                       discrete_levels, seeded, split, train_loop, validation_loss)
from .validation import (as_batch, as_dataset, as_labels, as_times, check_compute_dtype,
                         count_classes)


class NoisyClassifier(nn.Module):
    """q_phi(y | x_t, t) for x_t in the data's coordinates, trained on perturbed data.

    net: a NoisyClassifierNet or ConvClassifierNet on model coordinates y = datamap.to_model(x); sde: the SDE
    whose perturbation it was trained on; classes: K. log_prob(y (n,), x (n, *shape), t (n,)) -> (n,)
    nats; calling the classifier is log_prob, so it is the ``log_q(y, x, t)`` that
    ``ScoreModel.sample(classifier=...)`` takes.
    """

    def __init__(self, net: nn.Module, sde, datamap: DataMap, classes: int):
        super().__init__()
        self.net, self.sde, self.datamap, self.classes = net, sde, datamap, classes
        self.history: list[dict] = []

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the network computes in."""
        return next(self.net.parameters()).dtype

    def log_prob(self, y, x, t):
        return self.net(self.datamap.to_model(x, self.dtype), t.to(self.dtype), y)

    def forward(self, y, x, t):
        return self.log_prob(y, x, t)

    @torch.no_grad()
    def predict_proba(self, x, t=0.0) -> torch.Tensor:
        """q(y | x_t = x, t) for every class: x (n, *shape), t scalar or (n,) -> (n, classes)."""
        device = next(self.net.parameters()).device
        x = as_batch(x, self.datamap.shape, dtype=wide_dtype(device), device=device)
        times = as_times(t, x.shape[0], self.sde.T, dtype=self.dtype, device=device)
        return self.net(self.datamap.to_model(x, self.dtype), times).softmax(-1)

    def check_guides(self, sde, datamap: DataMap) -> None:
        """Refuse to guide a model of another SDE or other coordinates: the classifier would
        follow the wrong noisy law. The message says how to train one that fits."""
        fix = ("train the classifier with sdescore.fit_classifier(data, labels, model=model), "
               "which uses the model's SDE and coordinates")
        if repr(self.sde) != repr(sde):
            raise ValueError(f"classifier was trained with {self.sde!r}; this model uses "
                             f"{sde!r}: {fix}")
        if not self.datamap.matches(datamap):
            raise ValueError(f"classifier was standardised differently from this model: {fix}")


def fit_classifier(data, labels, sde=None, *, model=None, standardize: bool = True,
                   max_time: float | None = None, steps: int | None = None,
                   batch_size: int = 256, lr: float = 1e-3, hidden: int | None = None,
                   net: nn.Module | None = None, validation=None, seed: int | None = None,
                   levels: int | None = None, device=None, dtype=torch.float32,
                   progress: bool = True, callback=None,
                   log_every: int = 100) -> NoisyClassifier:
    """Train q_phi(y | x_t, t) by cross-entropy on x_t drawn from the SDE's kernel at
    t ~ U(sampling_eps, T).

    data: (n, d) or (n, c, h, w); labels: (n,) integers 0..K-1. model: a ScoreModel (any,
    also one built from a given score_fn) whose SDE and coordinates the classifier adopts,
    so that it can guide that model. Without a model: sde as in ``fit`` (default "subvp";
    VE's sigma_max from the data) and standardize as in ``fit``. net: a network (x, t, y)
    -> log q(y | x, t) like ``sdescore.nets.ConvClassifierNet`` (default: that for images,
    ``NoisyClassifierNet`` ``hidden`` wide for vectors). levels: as in ``fit`` (uint8 data
    are dequantised with fresh noise at every batch; default the model's levels). Budget,
    batch, lr, validation, seed, device, dtype, progress and callback as in ``fit`` (no
    weight average).
    """
    steps = check_budget(max_time, steps, batch_size, lr)
    if net is not None and not isinstance(net, nn.Module):
        raise TypeError(f"net must be a torch.nn.Module taking (x, t, y); got {type(net).__name__}")
    dtype = check_compute_dtype(dtype)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    levels = discrete_levels(data, levels if levels is not None or model is None else model.levels)
    x = as_dataset(data)
    check_levels(x, levels)
    labels = as_labels(labels, x.shape[0])
    classes = count_classes(labels)
    if model is not None:
        if tuple(x.shape[1:]) != tuple(model.shape):
            raise ValueError(f"data rows have shape {tuple(x.shape[1:])}; the model's samples "
                             f"have {tuple(model.shape)}")
        if sde is not None and repr(sde_for_data(sde, x)) != repr(model.sde):
            raise ValueError(f"sde={sde!r} differs from the model's {model.sde!r}; leave sde "
                             "out to use the model's")
    seed = agreed_seed(seed)
    with seeded(seed, device):
        train, held, train_labels, held_labels = split(x, validation, labels)
        train, held, fitted_on = dequantized_split(train, held, levels)
        if model is not None:
            datamap = model.datamap
        else:
            datamap = (DataMap.standardizing(fitted_on) if standardize
                       else DataMap.identity(x.shape[1:]))
        augment = dequantizer(levels, datamap, device, dtype)
        train = datamap.to_model(train, dtype).to(device)
        held = None if held is None else datamap.to_model(held, dtype).to(device)
        train_labels = train_labels.to(device)
        held_labels = None if held_labels is None else held_labels.to(device)
        sde_obj = model.sde if model is not None else sde_for_data(sde or "subvp", train)
        net = (net if net is not None
               else default_classifier_net(tuple(x.shape[1:]), classes, hidden)).to(device, dtype)
        times = UniformTimes(sde_obj, sde_obj.sampling_eps)

        def cross_entropy(classifier_net, x0, generator=None, y=None):
            t, _ = times(x0.shape[0], dtype=x0.dtype, device=x0.device, generator=generator)
            noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
            return -classifier_net(sde_obj.perturb(x0, t, noise), t, y)

        validate = (None if held is None else
                    functools.partial(validation_loss, cross_entropy, held=held,
                                      held_labels=held_labels, batch_size=4 * batch_size))
        history = train_loop(net, None, adam(net.parameters(), lr), cross_entropy, train,
                             validate, steps=steps, max_time=max_time, batch_size=batch_size,
                             progress=progress, callback=callback, log_every=log_every,
                             labels=train_labels, augment=augment)
    classifier = NoisyClassifier(net, sde_obj, datamap, classes)
    classifier.history = history
    return classifier.eval()
