"""The affine data map y = (x - loc) / scale between the data's coordinates x and a model's y.

Every model kind (``ScoreModel``, ``FlowModel``, ``NoisyClassifier``) holds one: fitted from
the training rows (``DataMap.standardizing``), applied on the way in (``to_model``) and on the
way out (``to_data``), and accounted for in densities by its log-determinant
(``log_prob_to_data``) and in scores by the chain rule (``score_to_data``). Its numbers live
in the model's config (``config``/``from_config``), not among the weights.

The map is held and applied in float64 whatever the network's dtype: data far from zero
relative to their spread (timestamps near 1.7e9 a few seconds apart) keep their digits, and
only the standardised values are rounded to the network's dtype.
"""
from __future__ import annotations

import torch

__all__ = ["DATA_DTYPES", "DataMap", "wide_dtype"]

#: The dtypes a model may compute in, by name (``fit(..., dtype=...)``).
DATA_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def wide_dtype(device: torch.device) -> torch.dtype:
    """float64, except on Apple's MPS, which has no float64."""
    return torch.float32 if device.type == "mps" else torch.float64


class DataMap:
    """y = (x - loc) / scale for samples of ``shape``: loc and scale broadcast to ``shape``
    (one number per entry, e.g. per feature; images usually use one scalar expanded).

    loc and scale are float64 tensors on the CPU (copies follow each input's device).
    data_dtype: the floating dtype of the data the map was fitted on; ``to_data`` returns at
    least that precision, so samples of float64 data come back in float64.
    """

    def __init__(self, loc, scale, shape, data_dtype: torch.dtype = torch.float32):
        self.shape = (shape,) if isinstance(shape, int) else tuple(shape)
        loc = torch.as_tensor(loc, dtype=torch.float64, device="cpu")
        scale = torch.as_tensor(scale, dtype=torch.float64, device="cpu")
        if not torch.isfinite(scale).all() or (scale <= 0).any() or not torch.isfinite(loc).all():
            raise ValueError("scale must be finite and > 0, and loc finite")
        if data_dtype not in DATA_DTYPES.values():
            raise ValueError(f"data_dtype must be torch.float32 or torch.float64; got {data_dtype}")
        self.loc = torch.broadcast_to(loc, self.shape).clone()
        self.scale = torch.broadcast_to(scale, self.shape).clone()
        self.data_dtype = data_dtype
        self._copies: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    @classmethod
    def identity(cls, shape, data_dtype: torch.dtype = torch.float32) -> "DataMap":
        """y = x."""
        return cls(0.0, 1.0, shape, data_dtype)

    @classmethod
    def standardizing(cls, x: torch.Tensor) -> "DataMap":
        """The map to zero mean and unit variance of x ``(n, *shape)``, computed in float64: per
        feature for (n, d) vectors, one scalar for images. A constant feature (or constant
        images) raises ValueError."""
        data_dtype = x.dtype if x.dtype in DATA_DTYPES.values() else torch.float32
        x = x.to(torch.float64)
        rows = x if x.ndim == 2 else x.reshape(-1, 1)  # images: one scalar for all pixels
        # mean and std of x / peak, scaled back: finite up to float64's largest numbers
        peak = rows.abs().amax(0).clamp_min(torch.finfo(torch.float64).tiny)
        loc, scale = (rows / peak).mean(0) * peak, (rows / peak).std(0) * peak
        constant = torch.nonzero(scale == 0).flatten().tolist()
        if constant and x.ndim == 2:
            raise ValueError(f"data column(s) {constant} are constant: a density on them is "
                             "degenerate (infinite); drop them")
        if constant:
            raise ValueError("data are constant (every pixel of every image has one value): "
                             "a density on them is degenerate")
        if x.ndim == 2:
            return cls(loc, scale, x.shape[1:], data_dtype)
        return cls(loc[0], scale[0], x.shape[1:], data_dtype)

    def _on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """loc and scale on ``device`` (cached)."""
        if device not in self._copies:
            dtype = wide_dtype(device)
            self._copies[device] = (self.loc.to(device, dtype), self.scale.to(device, dtype))
        return self._copies[device]

    def to_model(self, x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """y = (x - loc) / scale: ``(n, *shape)`` -> ``(n, *shape)``, computed in float64 and
        returned in ``dtype`` (default x's floating dtype, float32 for integers)."""
        loc, scale = self._on(x.device)
        out = dtype or (x.dtype if x.is_floating_point() else torch.float32)
        return ((x.to(loc.dtype) - loc) / scale).to(out)

    def output_dtype(self, dtype: torch.dtype) -> torch.dtype:
        """The dtype results in data coordinates come in, for a model computing in ``dtype``:
        the wider of that and the data's."""
        return torch.promote_types(self.data_dtype, dtype)

    def to_data(self, y: torch.Tensor) -> torch.Tensor:
        """x = loc + scale y, the inverse of ``to_model``, in ``output_dtype(y.dtype)``."""
        loc, scale = self._on(y.device)
        return (loc + scale * y.to(loc.dtype)).to(self.output_dtype(y.dtype))

    @property
    def log_det(self) -> torch.Tensor:
        """``log |det dy/dx| = -sum log scale``, a float64 scalar tensor in nats."""
        return -self.scale.log().sum()

    def log_prob_to_data(self, log_prob_y: torch.Tensor) -> torch.Tensor:
        """``log p_x(x) = log p_y(y) + log |det dy/dx|``, for (n,) log-densities of mapped rows
        (in their dtype)."""
        return log_prob_y + self.log_det.item()

    def score_to_data(self, score_y: torch.Tensor) -> torch.Tensor:
        """grad_x log p_x = grad_y log p_y / scale: ``(n, *shape)`` -> ``(n, *shape)``, in
        ``output_dtype(score_y.dtype)``."""
        _, scale = self._on(score_y.device)
        return (score_y.to(scale.dtype) / scale).to(self.output_dtype(score_y.dtype))

    def matches(self, other: "DataMap", rtol: float = 1e-3) -> bool:
        """Whether ``other`` is the same map up to ``rtol`` (loc compared on the scale's
        own scale)."""
        return (other.loc.shape == self.loc.shape
                and torch.allclose(other.loc, self.loc, rtol=rtol,
                                   atol=rtol * self.scale.mean().item())
                and torch.allclose(other.scale, self.scale, rtol=rtol))

    def config(self) -> dict:
        """loc and scale as nested lists of Python floats (exact: they are float64), and the
        data's dtype."""
        return {"loc": self.loc.tolist(), "scale": self.scale.tolist(),
                "data_dtype": str(self.data_dtype).removeprefix("torch.")}

    @classmethod
    def from_config(cls, config: dict, shape) -> "DataMap":
        """The map that ``config()`` describes, for samples of ``shape`` (files without a
        data dtype held float32 data)."""
        name = config.get("data_dtype", "float32")
        if name not in DATA_DTYPES:
            raise ValueError(f"data_dtype must be one of {', '.join(DATA_DTYPES)}; got {name!r}")
        return cls(config["loc"], config["scale"], shape, DATA_DTYPES[name])

    def __repr__(self) -> str:
        return f"DataMap(shape={self.shape}, data_dtype={self.data_dtype})"
