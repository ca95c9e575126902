"""Conditional generation and imputation on top of a score model.

- Classifier guidance (Song et al. 2021, Sec. 5): sample with score(x, t) + w grad_x log
  q(y | x_t, t), q a classifier of *perturbed* inputs. ``fit_classifier`` trains one; any
  callable ``log_q(y, x, t) -> (n,)`` stands in (x in the data's coordinates).
- Classifier-free guidance (Ho and Salimans 2022): a network trained with and without its
  label gives uncond + w (cond - uncond).
- Imputation: annealed Langevin dynamics on the missing entries of each row, the observed
  ones held at their values, so that at the last noise level the chain targets the model's
  conditional p(x_missing | x_observed).
Guidance scale w = 1 follows the conditional p(x | y) itself; w > 1 sharpens it, w = 0 ignores y.
"""
from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm

from .losses import UniformTimes
from .nets import DEFAULT_MAX_FREQUENCY, SinusoidalTimeEmbedding, default_width
from .sampling import langevin_correct, tweedie_denoise
from .validation import as_batch, as_dataset, as_labels


class NoisyClassifierNet(nn.Module):
    """MLP with a sinusoidal time embedding: x (n, *shape) (flattened), t (n,) -> logits
    (n, classes); with labels y (n,) it returns log q(y | x, t) (n,) instead."""

    def __init__(self, dim: int, classes: int, hidden: int | None = None, depth: int = 3,
                 embed_dim: int = 64):
        super().__init__()
        hidden = hidden or default_width(dim)
        self.config = {"dim": dim, "classes": classes, "hidden": hidden, "depth": depth,
                       "embed_dim": embed_dim}
        self.embed = nn.Sequential(SinusoidalTimeEmbedding(embed_dim, DEFAULT_MAX_FREQUENCY),
                                   nn.Linear(embed_dim, hidden))
        self.inp = nn.Linear(dim, hidden)
        self.blocks = nn.ModuleList(nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden))
                                    for _ in range(depth))
        self.out = nn.Sequential(nn.SiLU(), nn.Linear(hidden, classes))

    def forward(self, x, t, y=None):
        emb = self.embed(t)
        h = self.inp(x.reshape(x.shape[0], -1))
        for block in self.blocks:
            h = h + block(h + emb)
        logits = self.out(h)
        if y is None:
            return logits
        return logits.log_softmax(-1).gather(1, y[:, None]).squeeze(1)


class NoisyClassifier(nn.Module):
    """q_phi(y | x_t, t) for x_t in the data's coordinates, trained on perturbed data.

    The perturbation is the SDE's, applied in the standardised coordinates (x - loc) / scale
    that ``sdescore.fit`` uses on the same data, so the classifier matches a score model
    fitted to that data. log_prob(y (n,), x (n, *shape), t (n,)) -> (n,) nats.
    """

    def __init__(self, net: NoisyClassifierNet, sde, loc, scale):
        super().__init__()
        self.net, self.sde = net, sde
        self.register_buffer("loc", torch.as_tensor(loc, dtype=torch.float32).clone())
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32).clone())
        self.history: list[dict] = []

    @property
    def classes(self) -> int:
        return self.net.config["classes"]

    def log_prob(self, y, x, t):
        return self.net((x - self.loc) / self.scale, t, y)

    def forward(self, y, x, t):
        return self.log_prob(y, x, t)

    @torch.no_grad()
    def predict_proba(self, x, t=0.0) -> torch.Tensor:
        """q(y | x_t = x, t) for every class: x (n, *shape), t scalar -> (n, classes)."""
        x = as_batch(x, tuple(self.loc.shape), dtype=self.loc.dtype, device=self.loc.device)
        times = torch.full((x.shape[0],), float(t), dtype=x.dtype, device=x.device)
        return self.net((x - self.loc) / self.scale, times).softmax(-1)


def fit_classifier(data, labels, sde="subvp", *, max_time: float | None = None,
                   steps: int | None = None, batch_size: int = 256, lr: float = 1e-3,
                   hidden: int | None = None, validation=None, seed: int | None = None,
                   progress: bool = True, callback=None, log_every: int = 100) -> NoisyClassifier:
    """Train q_phi(y | x_t, t) by cross-entropy on x_t drawn from the SDE's kernel at
    t ~ U(sampling_eps, T).

    data: (n, d) or (n, c, h, w); labels: (n,) integers 0..K-1; sde: as in ``fit`` (give
    the model's SDE object for VE, whose sigma_max ``fit`` sets from the data). Budget,
    batch, lr, validation, seed, progress and callback as in ``fit`` (no weight average).
    """
    from .train import build_sde, check_budget, split, standardisation, train_loop

    steps = check_budget(max_time, steps, batch_size, lr)
    x = as_dataset(data, dtype=torch.float32)
    labels = as_labels(labels, x.shape[0])
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        train, held, train_labels, held_labels = split(x, validation, labels)
        loc, scale = standardisation(train)
        train = (train - loc) / scale
        held = None if held is None else (held - loc) / scale
        sde_obj = build_sde(sde, train)
        net = NoisyClassifierNet(train[0].numel(), int(labels.max()) + 1, hidden)
        times = UniformTimes(sde_obj, sde_obj.sampling_eps)

        def cross_entropy(log_q, x0, generator=None):
            t, _ = times(x0.shape[0], dtype=x0.dtype, device=x0.device, generator=generator)
            noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
            return -log_q(sde_obj.perturb(x0, t, noise), t)

        optimizer = torch.optim.Adam(net.parameters(), lr=lr)
        history = train_loop(net, None, optimizer, cross_entropy, train, held, steps=steps,
                             max_time=max_time, batch_size=batch_size, progress=progress,
                             callback=callback, log_every=log_every, labels=train_labels,
                             held_labels=held_labels)
    classifier = NoisyClassifier(net, sde_obj, loc, scale)
    classifier.history = history
    return classifier.eval()


def classifier_guided(score, log_q, labels, scale: float, to_data):
    """score(x, t) + scale * grad_x log q(labels | to_data(x), t), for x in the score's
    coordinates (the gradient goes through ``to_data``)."""
    def guided(x, t):
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(log_q(labels, to_data(x_in), t).sum(), x_in)
        return score(x, t) + scale * grad
    return guided


def classifier_free_guided(score, labels, null: int, scale: float):
    """uncond + scale * (cond - uncond) from one batched call of score(x, t, y); ``null``
    is the label that means "no label"."""
    if scale == 1:
        return lambda x, t: score(x, t, labels)

    def guided(x, t):
        both = score(torch.cat([x, x]), torch.cat([t, t]),
                     torch.cat([labels, torch.full_like(labels, null)]))
        cond, uncond = both.chunk(2)
        return uncond + scale * (cond - uncond)
    return guided


def impute_langevin(sde, score, x, missing, *, eps, generator=None, progress=False,
                    levels=100, steps_per_level=20, snr=0.4):
    """Fill x's ``missing`` entries (bool, like x) by annealed Langevin dynamics whose
    updates touch only them, at ``levels`` times from T to eps, then Tweedie's denoising of
    those entries. Missing entries start from the prior; observed ones never change."""
    start = sde.prior_sample(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    y = torch.where(missing, start, x)
    n = x.shape[0]
    for level in tqdm(torch.linspace(sde.T, eps, levels, dtype=x.dtype, device=x.device),
                      disable=not progress, desc="imputing"):
        t = level.expand(n)
        for _ in range(steps_per_level):
            y = torch.where(missing, langevin_correct(sde, score, y, t, snr=snr,
                                                      generator=generator), x)
    t = torch.full((n,), eps, dtype=x.dtype, device=x.device)
    return torch.where(missing, tweedie_denoise(sde, score, y, t), x)
