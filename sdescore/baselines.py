"""Normalizing-flow baselines from normflows behind the ScoreModel interface.

``fit_flow(data, kind=...)`` standardises the data like ``fit`` (the map stays inside the
model), trains by maximum likelihood with the same loop and budget rules, and returns a
``FlowModel`` with ``log_prob`` and ``sample`` in the data's coordinates.
"""
from __future__ import annotations

import torch
from torch import nn

from .train import check_budget, split, standardisation, train_loop
from .utils import make_generator
from .validation import as_batch, as_dataset, check_count, choose


def _nsf(dim, hidden, layers):
    import normflows as nf

    flows = []
    for _ in range(layers):
        flows.append(nf.flows.AutoregressiveRationalQuadraticSpline(dim, 2, hidden))
        flows.append(nf.flows.LULinearPermute(dim))
    return flows


def _realnvp(dim, hidden, layers):
    import normflows as nf

    mask = torch.arange(dim) % 2
    flows = []
    for i in range(layers):
        scale_net = nf.nets.MLP([dim, hidden, hidden, dim], init_zeros=True)
        shift_net = nf.nets.MLP([dim, hidden, hidden, dim], init_zeros=True)
        flows.append(nf.flows.MaskedAffineFlow(mask if i % 2 else 1 - mask, shift_net, scale_net))
        flows.append(nf.flows.ActNorm(dim))
    return flows


def _maf(dim, hidden, layers):
    import normflows as nf

    flows = []
    for _ in range(layers):
        flows.append(nf.flows.MaskedAffineAutoregressive(dim, hidden, num_blocks=2))
        flows.append(nf.flows.Permute(dim, mode="swap"))
    return flows


FLOWS = {"nsf": _nsf, "realnvp": _realnvp, "maf": _maf}


class FlowModel(nn.Module):
    """A normflows NormalizingFlow with the data map y = (x - loc) / scale kept inside.

    log_prob(x (n, d)) -> (n,) nats, including the map's log-determinant; sample(n) -> (n, d).
    """

    def __init__(self, flow: nn.Module, dim: int, loc, scale, kind: str):
        super().__init__()
        self.flow, self.dim, self.kind = flow, dim, kind
        self.register_buffer("loc", torch.as_tensor(loc, dtype=torch.float32).expand(dim).clone())
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32).expand(dim).clone())
        self.history: list[dict] = []

    @torch.no_grad()
    def log_prob(self, x) -> torch.Tensor:
        x = as_batch(x, (self.dim,), dtype=self.loc.dtype, device=self.loc.device)
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


def fit_flow(data, kind: str = "nsf", *, max_time: float | None = None, steps: int | None = None,
             batch_size: int = 256, lr: float = 1e-3, hidden: int = 128, layers: int = 6,
             validation=None, seed: int | None = None, progress: bool = True, callback=None,
             log_every: int = 100) -> FlowModel:
    """Train a normflows flow on (n, d) ``data`` by maximum likelihood.

    kind: "nsf" (autoregressive rational-quadratic splines with LU-linear permutations),
    "realnvp" (masked affine couplings with ActNorm) or "maf" (masked affine autoregressive).
    hidden, layers: width and number of flow layers. Budget, validation, seed, progress and
    callback as in ``sdescore.fit`` (default 5000 steps when neither budget is given).
    """
    import normflows as nf

    build = choose(kind, FLOWS, name="kind")
    steps = check_budget(max_time, steps, batch_size, lr)
    x = as_dataset(data, dtype=torch.float32)
    if x.ndim != 2:
        raise ValueError(f"fit_flow takes (n, d) vectors; got data of shape {tuple(x.shape)}")
    dim = x.shape[1]
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        train, held = split(x, validation)
        loc, scale = standardisation(train)
        flow = nf.NormalizingFlow(nf.distributions.DiagGaussian(dim, trainable=False),
                                  build(dim, hidden, layers))
        model = FlowModel(flow, dim, loc, scale, kind)
        train, held = (train - loc) / scale, None if held is None else (held - loc) / scale
        optimizer = torch.optim.Adam(flow.parameters(), lr=lr)
        model.history = train_loop(
            flow, None, optimizer, lambda f, batch, generator=None: -f.log_prob(batch),
            train, held, steps=steps, max_time=max_time, batch_size=batch_size,
            progress=progress, callback=callback, log_every=log_every)
    return model.eval()
