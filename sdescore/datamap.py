"""The affine data map y = (x - loc) / scale between the data's coordinates x and a model's y.

Every model kind (``ScoreModel``, ``FlowModel``, ``NoisyClassifier``) holds one: fitted from
the training rows (``DataMap.standardizing``), applied on the way in (``to_model``) and on the
way out (``to_data``), and accounted for in densities by its log-determinant
(``log_prob_to_data``) and in scores by the chain rule (``score_to_data``). Its numbers live
in the model's config (``config``/``from_config``), not among the weights.
"""
from __future__ import annotations

import torch
from torch import nn


class DataMap(nn.Module):
    """y = (x - loc) / scale for samples of ``shape``: loc and scale broadcast to ``shape``
    (one number per entry, e.g. per feature; images usually use one scalar expanded).

    The two tensors are buffers that follow ``.to()`` and ``.double()`` but are not part of
    the state dict: ``config()`` carries them.
    """

    def __init__(self, loc, scale, shape):
        super().__init__()
        self.shape = (shape,) if isinstance(shape, int) else tuple(shape)
        loc = torch.as_tensor(loc, dtype=torch.float32)
        scale = torch.as_tensor(scale, dtype=torch.float32)
        if not torch.isfinite(scale).all() or (scale <= 0).any() or not torch.isfinite(loc).all():
            raise ValueError("scale must be finite and > 0, and loc finite")
        self.register_buffer("loc", torch.broadcast_to(loc, self.shape).clone(), persistent=False)
        self.register_buffer("scale", torch.broadcast_to(scale, self.shape).clone(),
                             persistent=False)

    @classmethod
    def identity(cls, shape) -> "DataMap":
        """y = x."""
        return cls(0.0, 1.0, shape)

    @classmethod
    def standardizing(cls, x: torch.Tensor) -> "DataMap":
        """The map to zero mean and unit variance of x (n, *shape): per feature for (n, d)
        vectors, one scalar for images. A constant feature raises ValueError."""
        if x.ndim == 2:
            loc, scale = x.mean(0), x.std(0)
            constant = torch.nonzero(scale == 0).flatten().tolist()
            if constant:
                raise ValueError(f"data column(s) {constant} are constant: a density on them is "
                                 "degenerate; drop them or pass standardize=False")
            return cls(loc, scale, x.shape[1:])
        return cls(x.mean(), x.std(), x.shape[1:])

    def to_model(self, x: torch.Tensor) -> torch.Tensor:
        """y = (x - loc) / scale: (n, *shape) -> (n, *shape)."""
        return (x - self.loc) / self.scale

    def to_data(self, y: torch.Tensor) -> torch.Tensor:
        """x = loc + scale y, the inverse of ``to_model``."""
        return self.loc + self.scale * y

    @property
    def log_det(self) -> torch.Tensor:
        """log |det dy/dx| = -sum log scale, a scalar tensor in nats."""
        return -self.scale.log().sum()

    def log_prob_to_data(self, log_prob_y: torch.Tensor) -> torch.Tensor:
        """log p_x(x) = log p_y(y) + log |det dy/dx|, for (n,) log-densities of mapped rows."""
        return log_prob_y + self.log_det

    def score_to_data(self, score_y: torch.Tensor) -> torch.Tensor:
        """grad_x log p_x = grad_y log p_y / scale: (n, *shape) -> (n, *shape)."""
        return score_y / self.scale

    def matches(self, other: "DataMap", rtol: float = 1e-3) -> bool:
        """Whether ``other`` is the same map up to ``rtol`` (loc compared on the scale's
        own scale)."""
        loc, scale = other.loc.to(self.loc), other.scale.to(self.scale)
        return (loc.shape == self.loc.shape
                and torch.allclose(loc, self.loc, rtol=rtol, atol=rtol * self.scale.mean().item())
                and torch.allclose(scale, self.scale, rtol=rtol))

    def config(self) -> dict:
        """loc and scale as nested lists of Python floats (exact for float32 and float64)."""
        return {"loc": self.loc.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_config(cls, config: dict, shape) -> "DataMap":
        """The map that ``config()`` describes, for samples of ``shape``."""
        return cls(config["loc"], config["scale"], shape)

    def extra_repr(self) -> str:
        return f"shape={self.shape}"
