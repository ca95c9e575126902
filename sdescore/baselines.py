"""Normalizing-flow baselines from normflows behind the ScoreModel interface.

``fit_flow(data, kind=...)`` standardises the data like ``fit`` (the map stays inside the
model), trains by maximum likelihood with the same loop and budget rules, and returns a
``FlowModel`` with ``log_prob`` and ``sample`` in the data's coordinates.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .io import FLOW_FORMAT, save_payload
from .train import adam, check_budget, split, standardisation, train_loop
from .utils import make_generator
from .validation import as_batch, as_dataset, check_count, choose


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


FLOWS = {"nsf": _nsf, "realnvp": _realnvp, "maf": _maf, "glow": _glow}


def build_flow(kind: str, shape: tuple, hidden: int, layers: int) -> nn.Module:
    """An untrained normflows NormalizingFlow of ``kind`` for samples of ``shape``, with a
    standard normal base distribution."""
    import normflows as nf

    flows, latent_shape = choose(kind, FLOWS, name="kind")(tuple(shape), hidden, layers)
    base = nf.distributions.DiagGaussian(latent_shape if len(latent_shape) > 1
                                         else latent_shape[0], trainable=False)
    return nf.NormalizingFlow(base, flows)


class FlowModel(nn.Module):
    """A normflows NormalizingFlow with the data map y = (x - loc) / scale kept inside.

    log_prob(x (n, *shape)) -> (n,) nats, including the map's log-determinant;
    sample(n) -> (n, *shape); save(path) and ``sdescore.load(path)`` as for ScoreModel.
    """

    def __init__(self, kind: str, shape, hidden: int = 128, layers: int = 6, loc=0.0,
                 scale=1.0):
        super().__init__()
        self.kind, self.shape, self.hidden, self.layers = kind, tuple(shape), hidden, layers
        self.flow = build_flow(kind, self.shape, hidden, layers)
        self.register_buffer("loc", torch.as_tensor(loc, dtype=torch.float32)
                             .expand(self.shape).clone())
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32)
                             .expand(self.shape).clone())
        self.history: list[dict] = []

    @property
    def dim(self) -> int:
        """D, the number of numbers in one sample."""
        return math.prod(self.shape)

    @torch.no_grad()
    def log_prob(self, x) -> torch.Tensor:
        x = as_batch(x, self.shape, dtype=self.loc.dtype, device=self.loc.device)
        return self.flow.log_prob((x - self.loc) / self.scale) - self.scale.log().sum()

    @torch.no_grad()
    def sample(self, n: int, seed: int | None = None) -> torch.Tensor:
        n = check_count(n)
        generator = make_generator(seed, self.loc.device)
        with torch.random.fork_rng(devices=[]):
            if generator is not None:
                torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
            y, _ = self.flow.sample(n)
        return self.loc + self.scale * y

    def config(self) -> dict:
        """What ``load`` needs to rebuild this flow."""
        return {"kind": self.kind, "shape": list(self.shape), "hidden": self.hidden,
                "layers": self.layers}

    @classmethod
    def from_config(cls, config: dict) -> "FlowModel":
        """An untrained flow of the kind, shape and size that ``config()`` describes."""
        return cls(config["kind"], tuple(config["shape"]), config["hidden"], config["layers"])

    def save(self, path) -> None:
        """Write config, weights and training history to ``path`` atomically; read it back
        with ``sdescore.load``."""
        save_payload(self, path, FLOW_FORMAT)


def fit_flow(data, kind: str = "nsf", *, max_time: float | None = None, steps: int | None = None,
             batch_size: int = 256, lr: float = 1e-3, grad_clip: float | None = 1.0,
             hidden: int = 128, layers: int = 6,
             validation=None, seed: int | None = None, progress: bool = True, callback=None,
             log_every: int = 100) -> FlowModel:
    """Train a normflows flow on ``data`` by maximum likelihood.

    kind, for (n, d) vectors: "nsf" (autoregressive rational-quadratic splines with LU-linear
    permutations), "realnvp" (masked affine couplings with ActNorm) or "maf" (masked affine
    autoregressive); for (n, c, h, w) images: "glow" (a squeeze, then Glow steps).
    hidden, layers: width and number of flow layers. Budget, grad_clip, validation, seed,
    progress and callback as in ``sdescore.fit`` (default 5000 steps when neither budget is given).
    """
    choose(kind, FLOWS, name="kind")
    steps = check_budget(max_time, steps, batch_size, lr, grad_clip)
    x = as_dataset(data, dtype=torch.float32)
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        train, held, _, _ = split(x, validation)
        loc, scale = standardisation(train)
        model = FlowModel(kind, tuple(x.shape[1:]), hidden, layers, loc, scale)
        flow = model.flow
        train, held = (train - loc) / scale, None if held is None else (held - loc) / scale
        optimizer = adam(flow.parameters(), lr)
        model.history = train_loop(
            flow, None, optimizer, lambda f, batch, generator=None: -f.log_prob(batch),
            train, held, steps=steps, max_time=max_time, batch_size=batch_size,
            progress=progress, callback=callback, log_every=log_every, grad_clip=grad_clip)
    return model.eval()
