"""NoisyClassifier: q_phi(y | x_t, t) for classifier guidance.

A classifier guides a score model only if it saw the same noisy law: the model's SDE, in the
model's coordinates. ``sdescore.fit_classifier(data, labels, model=model)`` trains one in
exactly those; ``check_guides`` refuses any other pairing.
"""
from __future__ import annotations

import torch
from torch import nn

from .._checks import as_batch, as_times
from ..datamap import DataMap, wide_dtype

__all__ = ["NoisyClassifier"]


class NoisyClassifier(nn.Module):
    """q_phi(y | x_t, t) for x_t in the data's coordinates, trained on perturbed data.

    net: a NoisyClassifierNet or ConvClassifierNet on model coordinates y =
    datamap.to_model(x); sde: the SDE whose perturbation it was trained on; classes: K.
    log_prob(y (n,), x ``(n, *shape)``, t (n,)) -> (n,) nats; calling the classifier is
    log_prob, so it is the ``log_q(y, x, t)`` that ``ScoreModel.sample(classifier=...)``
    takes.
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
        """q(y | x_t = x, t) for every class.

        x ``(n, *shape)``, t scalar or (n,) -> (n, classes)."""
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
