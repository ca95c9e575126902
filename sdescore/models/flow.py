"""FlowModel: a normflows normalizing flow behind the DensityModel interface, the baseline
that score models are compared with (``sdescore.baselines.fit_flow`` trains one).

``FLOWS`` maps each kind to the builder of its layers: "nsf", "realnvp" and "maf" for
(n, d) vectors, "glow" for (n, c, h, w) images.
"""
from __future__ import annotations

import torch
from torch import nn

from .._batching import in_batches
from .._checks import check_count, check_seed, choose
from .._tensors import make_generator, seeded
from ..datamap import DataMap
from ..io import register_format
from .base import DensityModel

__all__ = ["build_flow", "FLOW_FORMAT", "FlowModel", "FLOWS"]

#: The format tag a saved FlowModel's file carries.
FLOW_FORMAT = "sdescore-flow-2"


def _vector_dim(shape, kind):
    if len(shape) != 1:
        raise ValueError(f"kind {kind!r} takes (n, d) vectors; got rows of shape {shape} "
                         "(use kind='glow' for (n, c, h, w) images)")
    return shape[0]


def _nsf(shape, hidden, layers):
    import normflows as nf

    dim = _vector_dim(shape, "nsf")
    flows = []
    for _ in range(layers):
        flows.append(nf.flows.AutoregressiveRationalQuadraticSpline(dim, 2, hidden))
        flows.append(nf.flows.LULinearPermute(dim))
    return flows, shape


def _realnvp(shape, hidden, layers):
    import normflows as nf

    dim = _vector_dim(shape, "realnvp")
    mask = torch.arange(dim) % 2
    flows = []
    for i in range(layers):
        scale_net = nf.nets.MLP([dim, hidden, hidden, dim], init_zeros=True)
        shift_net = nf.nets.MLP([dim, hidden, hidden, dim], init_zeros=True)
        flows.append(nf.flows.MaskedAffineFlow(mask if i % 2 else 1 - mask, shift_net, scale_net))
        flows.append(nf.flows.ActNorm(dim))
    return flows, shape


def _maf(shape, hidden, layers):
    import normflows as nf

    dim = _vector_dim(shape, "maf")
    flows = []
    for _ in range(layers):
        flows.append(nf.flows.MaskedAffineAutoregressive(dim, hidden, num_blocks=2))
        flows.append(nf.flows.Permute(dim, mode="swap"))
    return flows, shape


def _glow(shape, hidden, layers):
    """Single-scale Glow: a squeeze to (4c, h/2, w/2), then ``layers`` Glow steps (ActNorm,
    invertible 1x1 convolution, affine coupling with a convolutional net)."""
    import normflows as nf

    if len(shape) != 3 or shape[1] % 2 or shape[2] % 2:
        raise ValueError(f"kind 'glow' takes (n, c, h, w) images with even h and w; got rows "
                         f"of shape {shape}")
    c, h, w = shape
    flows = [nf.flows.GlowBlock(4 * c, hidden, split_mode="channel") for _ in range(layers)]
    return flows + [nf.flows.Squeeze()], (4 * c, h // 2, w // 2)


#: Flow kind -> the function that builds its normflows model.
FLOWS = {"nsf": _nsf, "realnvp": _realnvp, "maf": _maf, "glow": _glow}


def build_flow(kind: str, shape: tuple, hidden: int, layers: int) -> nn.Module:
    """An untrained normflows NormalizingFlow of ``kind`` for samples of ``shape``, with a
    standard normal base distribution."""
    import normflows as nf

    flows, latent_shape = choose(kind, FLOWS, name="kind")(tuple(shape), hidden, layers)
    base = nf.distributions.DiagGaussian(latent_shape if len(latent_shape) > 1
                                         else latent_shape[0], trainable=False)
    return nf.NormalizingFlow(base, flows)


class FlowModel(DensityModel):
    """A normflows NormalizingFlow with the data map y = (x - loc) / scale kept inside.

    datamap: a ``DataMap`` (default the identity). log_prob(x ``(n, *shape)``) -> (n,) nats,
    including the map's log-determinant; sample(n) -> ``(n, *shape)``; save(path) and
    ``sdescore.load(path)`` as for ScoreModel.
    """

    file_format = FLOW_FORMAT

    def __init__(self, kind: str, shape, hidden: int = 128, layers: int = 6,
                 datamap: DataMap | None = None, levels: int | None = None):
        super().__init__(shape, datamap, levels)
        self.kind, self.hidden, self.layers = kind, hidden, layers
        self.flow = build_flow(kind, self.shape, hidden, layers)

    @torch.no_grad()
    def log_prob(self, x, *, batch_size: int | None = None,
                 seed: int | None = None) -> torch.Tensor:
        """Exact log-density in nats: x ``(n, *shape)`` -> (n,). batch_size: rows evaluated
        together (default: all on a GPU, halved while they do not fit; 2048 on a CPU).
        seed: checked and unused (a flow's log-density draws nothing; every model's
        ``log_prob`` takes one). RuntimeError when the flow returns NaN or inf for a row (a
        flow that diverged in training), never those values."""
        check_seed(seed)
        x = self.model_rows(x)
        rows = self._batch_rows(x.shape[0], batch_size)
        log_p = in_batches(lambda part: self.flow.log_prob(x[part]), x.shape[0], rows,
                           progress=False)
        bad = (~torch.isfinite(log_p)).nonzero().flatten()
        if len(bad):
            raise RuntimeError(f"the {self.kind} flow's log-density is NaN or inf for "
                               f"{len(bad)} of {len(log_p)} rows (first: row {bad[0].item()}): "
                               "it diverged in training; refit it with a smaller lr or more "
                               "held-out rows")
        return self.datamap.log_prob_to_data(log_p)

    @torch.no_grad()
    def sample(self, n: int, *, seed: int | None = None,
               batch_size: int | None = None) -> torch.Tensor:
        """n draws ``(n, *shape)``; ``seed`` makes them repeatable. batch_size: draws made
        together (default: as many as hold ``2**22`` numbers)."""
        n = check_count(n)
        self._check_weights()
        rows = self._sample_rows(n, batch_size)
        generator = make_generator(seed, self.device)
        # normflows draws from torch's global generator: seed it from ours, or draw fresh
        with seeded(None if generator is None
                    else int(torch.randint(0, 2**62, (1,), generator=generator))):
            y = in_batches(lambda part: self.flow.sample(part.stop - part.start)[0], n, rows,
                           progress=False)
        return self.datamap.to_data(y)

    def config(self) -> dict:
        """What ``load`` needs to rebuild this flow: kind, shape, size and data map."""
        return {"kind": self.kind, "shape": list(self.shape), "hidden": self.hidden,
                "layers": self.layers, "datamap": self.datamap.config(), "levels": self.levels}

    @classmethod
    def from_config(cls, config: dict) -> "FlowModel":
        """An untrained flow of the kind, shape, size and data map that ``config()``
        describes."""
        shape = tuple(config["shape"])
        return cls(config["kind"], shape, config["hidden"], config["layers"],
                   DataMap.from_config(config["datamap"], shape), config.get("levels"))


register_format(FLOW_FORMAT, FlowModel.from_config)
register_format("sdescore-flow-1", FlowModel.from_config, map_in_weights=True)
