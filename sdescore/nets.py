"""Networks: score networks for vectors and images, and the noisy classifier's network.

- ``MLPScoreNet`` for vectors (n, d) and ``UNet`` for images (n, c, h, w); both take
  (x, t[, y]) with t (n,) in [0, T] and return a tensor like x. A parameterisation
  (``sdescore.parameterization``) turns that output into a score.
- ``NoisyClassifierNet`` (vectors) and ``ConvClassifierNet`` (images): (x, t) -> class
  logits, for classifier guidance.

Networks know their constructor arguments (``config``) so that a model can be saved and rebuilt.
"""
from __future__ import annotations

import functools
import math

import torch
from torch import nn

__all__ = ["ConvClassifierNet", "default_classifier_net", "DEFAULT_MAX_FREQUENCY", "default_net",
           "default_width", "LabelEmbedding", "LOG_TIME_FLOOR", "MLPScoreNet", "net_name", "NETS",
           "NoisyClassifierNet", "SinusoidalTimeEmbedding", "TIME_INPUTS", "UNet",
           "zero_output_layer"]


#: How a network sees t, as t itself or as log t.
TIME_INPUTS = ("linear", "log")
#: The "log" time input maps t in [LOG_TIME_FLOOR, 1] to [0, 1].
LOG_TIME_FLOOR = 1e-5
#: Highest time-embedding frequency of the networks built here (higher makes an ODE solve of
#: a trained network take several times the steps).
DEFAULT_MAX_FREQUENCY = 30.0


class SinusoidalTimeEmbedding(nn.Module):
    """t (n,) in [0, 1] -> (n, dim) sines and cosines at frequencies geometric in
    [1, max_frequency] (default DEFAULT_MAX_FREQUENCY) of u = t ("linear") or
    u = log(t / 1e-5) / log(1e5) ("log", which resolves small t finely and varies slowly
    elsewhere; t below 1e-5 is clamped to it)."""

    def __init__(self, dim: int, max_frequency: float = DEFAULT_MAX_FREQUENCY,
                 time_input: str = "linear"):
        super().__init__()
        if time_input not in TIME_INPUTS:
            raise ValueError(f"Unknown time_input {time_input!r}; choose one of: "
                             f"{', '.join(TIME_INPUTS)}")
        half = dim // 2
        freqs = torch.exp(torch.linspace(0.0, math.log(max_frequency), half))
        self.register_buffer("freqs", freqs, persistent=False)
        self.log_time = time_input == "log"

    def forward(self, t):
        if self.log_time:
            floor = math.log(LOG_TIME_FLOOR)
            t = (torch.log(t.clamp_min(LOG_TIME_FLOOR)) - floor) / -floor
        angles = t[:, None] * self.freqs[None, :]
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


class LabelEmbedding(nn.Module):
    """Class labels y (n,) in {0..classes-1}, or None for "no label", -> (n, dim). Index
    ``classes`` is the learned null label that classifier-free guidance trains with."""

    def __init__(self, classes: int, dim: int):
        super().__init__()
        self.classes = classes
        self.table = nn.Embedding(classes + 1, dim)

    def forward(self, y, n: int, device):
        if y is None:
            y = torch.full((n,), self.classes, dtype=torch.long, device=device)
        return self.table(y)


def _label_embedding(classes, dim):
    return LabelEmbedding(classes, dim) if classes else None


def _add_label(emb, label_embed, y):
    """emb + the label's embedding for conditional networks; y must be None otherwise."""
    if label_embed is None:
        if y is not None:
            raise ValueError("this network has no classes: it was not trained with labels")
        return emb
    return emb + label_embed(y, emb.shape[0], emb.device)


def default_width(dim: int) -> int:
    """Hidden width for d-dimensional vectors: 64 up to d = 10, then 16 d, capped at 512
    (a narrow network buys more steps of a short CPU budget; above 10 columns a narrower one
    let a few test rows' density collapse)."""
    return int(min(512, 64 if dim <= 10 else 16 * dim))


class MLPScoreNet(nn.Module):
    """Residual MLP with a sinusoidal time embedding added to every block.

    dim: d; hidden: width (default ``default_width(d)``); depth: residual blocks;
    embed_dim: size of the time embedding; max_frequency, time_input: its highest frequency
    and time variable (see SinusoidalTimeEmbedding). Up to 30 by default
    (``DEFAULT_MAX_FREQUENCY``); classes: number of class labels for a conditional network
    (None: unconditional); dropout: on each residual block's output while training.
    forward(x (n, d), t (n,), y=None) -> (n, d), y (n,) integer labels or None for the null
    label.
    """

    def __init__(self, dim: int, hidden: int | None = None, depth: int = 3, embed_dim: int = 64,
                 classes: int | None = None, max_frequency: float = DEFAULT_MAX_FREQUENCY,
                 time_input: str = "linear", dropout: float = 0.0):
        super().__init__()
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1); got {dropout}")
        hidden = hidden or default_width(dim)
        self.config = {"dim": dim, "hidden": hidden, "depth": depth, "embed_dim": embed_dim,
                       "classes": classes, "max_frequency": max_frequency,
                       "time_input": time_input, "dropout": dropout}
        self.dropout = nn.Dropout(dropout)
        self.label_embed = _label_embedding(classes, hidden)
        self.embed = nn.Sequential(SinusoidalTimeEmbedding(embed_dim, max_frequency, time_input),
                                   nn.Linear(embed_dim, hidden),
                                   nn.SiLU(), nn.Linear(hidden, hidden))
        self.inp = nn.Linear(dim, hidden)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                          nn.Linear(hidden, hidden))
            for _ in range(depth))
        self.time_proj = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth))
        self.out = nn.Sequential(nn.SiLU(), nn.Linear(hidden, dim))

    def forward(self, x, t, y=None):
        emb = _add_label(self.embed(t), self.label_embed, y)
        h = self.inp(x)
        for block, proj in zip(self.blocks, self.time_proj):
            h = h + self.dropout(block(h + proj(emb)))
        return self.out(h)


class _ResBlock(nn.Module):
    """Two 3x3 convolutions with group norm, the time embedding added in between and dropout
    before the second."""

    def __init__(self, cin: int, cout: int, emb: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.GroupNorm(min(8, cin), cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time = nn.Linear(emb, cout)
        self.norm2 = nn.GroupNorm(min(8, cout), cout)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, emb):
        h = self.conv1(torch.nn.functional.silu(self.norm1(x)))
        h = h + self.time(emb)[:, :, None, None]
        h = self.conv2(self.dropout(torch.nn.functional.silu(self.norm2(h))))
        return h + self.skip(x)


class _SelfAttention(nn.Module):
    """Multi-head self-attention over the h * w positions of (n, c, h, w), residual."""

    def __init__(self, channels: int, heads: int = 4):
        super().__init__()
        self.norm = nn.GroupNorm(min(8, channels), channels)
        self.attention = nn.MultiheadAttention(channels, heads if channels % heads == 0 else 1,
                                               batch_first=True)

    def forward(self, x):
        n, c, h, w = x.shape
        tokens = self.norm(x).reshape(n, c, h * w).transpose(1, 2)
        out, _ = self.attention(tokens, tokens, tokens, need_weights=False)
        return x + out.transpose(1, 2).reshape(n, c, h, w)


class _Level(nn.Module):
    """A residual block, then self-attention when asked."""

    def __init__(self, cin: int, cout: int, emb: int, dropout: float, attention: bool):
        super().__init__()
        self.block = _ResBlock(cin, cout, emb, dropout)
        self.attention = _SelfAttention(cout) if attention else nn.Identity()

    def forward(self, x, emb):
        return self.attention(self.block(x, emb))


# Parameter names of the U-Net before its levels were options (files saved then still load).
_LEGACY_UNET_KEYS = {"down1.": "down.0.block.", "down2.": "down.1.block.", "mid.": "mid.block.",
                     "up2.": "up.0.block.", "up1.": "up.1.block."}


class UNet(nn.Module):
    """A U-Net for (n, c, h, w) images with h and w divisible by 2 ** (len(channel_mults) - 1).

    channels: c; width: base feature count; channel_mults: features of each resolution level
    as multiples of width (level i works at h / 2^i; the last is the bottleneck), default
    (1, 2, 2); attention_levels: levels whose blocks are followed by self-attention (e.g.
    (2,) for the 7 x 7 level of 28 x 28 images); dropout: inside every residual block
    (training only); embed_dim, max_frequency, time_input: the time embedding's size, highest
    frequency and time variable, as for MLPScoreNet; classes: as for MLPScoreNet.
    forward(x, t (n,), y=None) -> (n, c, h, w).
    """

    def __init__(self, channels: int, width: int = 32, embed_dim: int = 128,
                 classes: int | None = None, channel_mults: tuple = (1, 2, 2),
                 attention_levels: tuple = (), dropout: float = 0.0,
                 max_frequency: float = DEFAULT_MAX_FREQUENCY, time_input: str = "linear"):
        super().__init__()
        channel_mults, attention_levels = tuple(channel_mults), tuple(attention_levels)
        if len(channel_mults) < 2 or any(int(m) != m or m < 1 for m in channel_mults):
            raise ValueError(f"channel_mults must be two or more positive integers; got "
                             f"{channel_mults}")
        if any(level not in range(len(channel_mults)) for level in attention_levels):
            raise ValueError(f"attention_levels must be level indices in "
                             f"0..{len(channel_mults) - 1}; got {attention_levels}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1); got {dropout}")
        self.config = {"channels": channels, "width": width, "embed_dim": embed_dim,
                       "classes": classes, "channel_mults": list(channel_mults),
                       "attention_levels": list(attention_levels), "dropout": dropout,
                       "max_frequency": max_frequency, "time_input": time_input}
        self.label_embed = _label_embedding(classes, embed_dim)
        features = [width * m for m in channel_mults]
        self.embed = nn.Sequential(SinusoidalTimeEmbedding(embed_dim, max_frequency, time_input),
                                   nn.Linear(embed_dim, embed_dim), nn.SiLU())
        self.inp = nn.Conv2d(channels, width, 3, padding=1)
        level = functools.partial(_Level, emb=embed_dim, dropout=dropout)
        inputs = [width] + features[:-2]
        self.down = nn.ModuleList(level(cin, cout, attention=i in attention_levels)
                                  for i, (cin, cout) in enumerate(zip(inputs, features[:-1])))
        self.mid = level(features[-2], features[-1],
                         attention=len(features) - 1 in attention_levels)
        self.up = nn.ModuleList(
            level(below + features[i], features[i], attention=i in attention_levels)
            for i, below in zip(range(len(features) - 2, -1, -1), features[:0:-1]))
        self.out = nn.Sequential(nn.GroupNorm(min(8, width), width), nn.SiLU(),
                                 nn.Conv2d(width, channels, 3, padding=1))
        self.pool = nn.AvgPool2d(2)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x, t, y=None):
        emb = _add_label(self.embed(t), self.label_embed, y)
        h = self.inp(x)
        skips = []
        for i, block in enumerate(self.down):
            h = block(h if i == 0 else self.pool(h), emb)
            skips.append(h)
        h = self.mid(self.pool(h), emb)
        for block in self.up:
            h = block(torch.cat([self.upsample(h), skips.pop()], 1), emb)
        return self.out(h)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        legacy = prefix + "down1.conv1.weight" in state_dict
        for key in [k for k in state_dict if legacy and k.startswith(prefix)]:
            for old, new in _LEGACY_UNET_KEYS.items():
                if key.startswith(prefix + old):
                    state_dict[prefix + new + key[len(prefix + old):]] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def _class_log_prob(logits, y):
    """logits (n, classes) as they are, or log q(y | x) (n,) for labels y (n,)."""
    if y is None:
        return logits
    return logits.log_softmax(-1).gather(1, y[:, None]).squeeze(1)


class NoisyClassifierNet(nn.Module):
    """MLP with a sinusoidal time embedding: x ``(n, *shape)`` (flattened), t (n,) -> logits
    (n, classes); with labels y (n,) it returns log q(y | x, t) (n,) instead."""

    def __init__(self, dim: int, classes: int, hidden: int | None = None, depth: int = 3,
                 embed_dim: int = 64):
        super().__init__()
        hidden = hidden or default_width(dim)
        self.config = {"dim": dim, "classes": classes, "hidden": hidden, "depth": depth,
                       "embed_dim": embed_dim}
        self.embed = nn.Sequential(SinusoidalTimeEmbedding(embed_dim),
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
        return _class_log_prob(self.out(h), y)


class ConvClassifierNet(nn.Module):
    """The U-Net's downward half as a noisy image classifier: (n, c, h, w), t (n,) ->
    logits (n, classes) from residual blocks at each level, downsampled between levels and
    averaged over positions; with labels y (n,) it returns log q(y | x, t) (n,).
    channels, width, channel_mults, embed_dim as for UNet."""

    def __init__(self, channels: int, classes: int, width: int = 32,
                 channel_mults: tuple = (1, 2, 2), embed_dim: int = 128):
        super().__init__()
        self.config = {"channels": channels, "classes": classes, "width": width,
                       "channel_mults": list(channel_mults), "embed_dim": embed_dim}
        features = [width * m for m in channel_mults]
        self.embed = nn.Sequential(SinusoidalTimeEmbedding(embed_dim),
                                   nn.Linear(embed_dim, embed_dim), nn.SiLU())
        self.inp = nn.Conv2d(channels, width, 3, padding=1)
        self.levels = nn.ModuleList(_ResBlock(cin, cout, embed_dim)
                                    for cin, cout in zip([width] + features[:-1], features))
        self.pool = nn.AvgPool2d(2)
        self.out = nn.Sequential(nn.GroupNorm(min(8, features[-1]), features[-1]), nn.SiLU(),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                 nn.Linear(features[-1], classes))

    def forward(self, x, t, y=None):
        emb = self.embed(t)
        h = self.inp(x)
        for i, block in enumerate(self.levels):
            h = block(h if i == 0 else self.pool(h), emb)
        return _class_log_prob(self.out(h), y)


#: Network name -> class, as saved model files name them.
NETS = {"mlp": MLPScoreNet, "unet": UNet}


def default_net(shape: tuple, classes: int | None = None) -> nn.Module:
    """An MLP for (d,) samples, a U-Net for (c, h, w) images; conditional on ``classes``
    labels when given."""
    if len(shape) == 1:
        return MLPScoreNet(shape[0], classes=classes)
    if len(shape) == 3 and shape[1] % 4 == 0 and shape[2] % 4 == 0:
        return UNet(shape[0], classes=classes)
    raise ValueError(f"No default network for samples of shape {shape}: vectors (d,) or images "
                     "(c, h, w) with h and w divisible by 4 are supported; pass net=...")


def zero_output_layer(net: nn.Module) -> nn.Module:
    """Zero the weights and bias of ``net.out``'s last layer (a Linear or Conv2d), so that the
    network's output is 0 until it trains; returns ``net``. TypeError for a network without
    such a layer."""
    last = list(net.out.children())[-1] if isinstance(getattr(net, "out", None), nn.Sequential) \
        else None
    if not isinstance(last, (nn.Linear, nn.Conv2d)):
        raise TypeError(f"{type(net).__name__} has no output layer to zero (net.out ending "
                        "in a Linear or Conv2d)")
    with torch.no_grad():
        last.weight.zero_()
        if last.bias is not None:
            last.bias.zero_()
    return net


def default_classifier_net(shape: tuple, classes: int, hidden: int | None = None) -> nn.Module:
    """A convolutional classifier for (c, h, w) images whose h and w are divisible by 4, else
    an MLP on the flattened rows (``hidden`` wide)."""
    if len(shape) == 3 and shape[1] % 4 == 0 and shape[2] % 4 == 0:
        return ConvClassifierNet(shape[0], classes)
    return NoisyClassifierNet(math.prod(shape), classes, hidden)


def net_name(net: nn.Module) -> str:
    """The NETS key of a network built here (for saving)."""
    for name, cls in NETS.items():
        if type(net) is cls:
            return name
    raise TypeError(f"Cannot save a {type(net).__name__}: only networks from sdescore.nets "
                    f"({', '.join(NETS)}) can be rebuilt on load")
