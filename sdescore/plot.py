"""Figures: image grids, samples against data, a 2-D density, training histories and the
side-by-side comparison. Each function returns a ``matplotlib.figure.Figure`` (save it with
``fig.savefig(path)``; in a notebook it shows itself). matplotlib is an optional extra:
``pip install "sdescore[plot]"``.
"""
from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["comparison", "density_2d", "image_grid", "samples_against_data", "training_history"]


def _figure(width: float, height: float):
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError('sdescore.plot needs matplotlib: pip install "sdescore[plot]"') from err
    return Figure(figsize=(width, height))


def _array(x, name: str) -> np.ndarray:
    """x as a float64 NumPy array; empty or non-numeric input is refused naming ``name``."""
    try:
        out = (x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor)
               else np.asarray(x, dtype=np.float64))
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be numeric array-like: {err}") from err
    if out.size == 0:
        raise ValueError(f"{name} is empty")
    return out


def image_grid(images, *, columns: int | None = None, levels: int | None = None,
               title: str | None = None):
    """Images (n, c, h, w) with c = 1 or 3 in a grid of ``columns`` (default about sqrt n).
    Values: integers in [0, levels - 1] when ``levels`` is given (e.g. 256 for uint8, the
    default for uint8 input), else floats shown clipped to [0, 1]."""
    if levels is None and getattr(images, "dtype", None) in (np.uint8, torch.uint8):
        levels = 256
    x = _array(images, "images")
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (n, 1 or 3, h, w); got {x.shape}")
    if levels is not None:
        x = x / (levels - 1)
    n, c, h, w = x.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    canvas = np.ones((rows * (h + 1) + 1, columns * (w + 1) + 1, c))
    for i, image in enumerate(np.clip(x, 0, 1).transpose(0, 2, 3, 1)):
        r, k = divmod(i, columns)
        canvas[1 + r * (h + 1):1 + r * (h + 1) + h, 1 + k * (w + 1):1 + k * (w + 1) + w] = image
    fig = _figure(max(2.0, 0.6 * columns), max(2.0, 0.6 * rows))
    ax = fig.add_subplot()
    ax.imshow(canvas[..., 0] if c == 1 else canvas, cmap="gray" if c == 1 else None,
              vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def samples_against_data(samples, data=None, *, columns: list[int] | None = None,
                         max_points: int = 2000, names: list[str] | None = None):
    """Scatter of samples (n, d) over data (m, d) (or alone when data is None): one panel
    for d = 2, else a pairwise grid of ``columns`` (default the first four), each pair once;
    ``max_points`` rows of each; names: the columns' labels."""
    s = _array(samples, "samples")[:max_points]
    x = s[:0] if data is None else _array(data, "data")[:max_points]
    if s.ndim != 2 or x.ndim != 2 or s.shape[1] != x.shape[1]:
        raise ValueError(f"samples and data must be (n, d) with the same d; got {s.shape} "
                         f"and {x.shape}")
    columns = list(range(min(4, s.shape[1]))) if columns is None else list(columns)
    if len(columns) < 2 or not all(0 <= c < s.shape[1] for c in columns):
        raise ValueError(f"columns must name two or more of the {s.shape[1]} columns; got "
                         f"{columns}")
    names = names or [f"x{c}" for c in range(s.shape[1])]
    pairs = [(a, b) for i, a in enumerate(columns) for b in columns[i + 1:]]
    side = math.ceil(math.sqrt(len(pairs)))
    fig = _figure(3.2 * side, 3.0 * math.ceil(len(pairs) / side))
    for k, (a, b) in enumerate(pairs):
        ax = fig.add_subplot(math.ceil(len(pairs) / side), side, k + 1)
        if data is not None:
            ax.scatter(x[:, a], x[:, b], s=3, alpha=0.4, label="data")
        ax.scatter(s[:, a], s[:, b], s=3, alpha=0.4, label="samples")
        ax.set_xlabel(names[a])
        ax.set_ylabel(names[b])
        if k == 0 and data is not None:
            ax.legend(markerscale=4, fontsize=8)
    fig.tight_layout()
    return fig


def density_2d(model, *, extent: tuple | None = None, grid: int = 80, data=None,
               **log_prob_options):
    """Contours of a 2-D model's log-density (nats) on a grid x grid lattice over ``extent``
    (xmin, xmax, ymin, ymax; default the data's range padded by 10%, else [-3, 3]^2), with
    ``data`` (n, 2) as points when given. ``log_prob_options`` go to ``model.log_prob``."""
    if tuple(model.shape) != (2,):
        raise ValueError(f"density_2d needs a model of 2-D points; this one has shape "
                         f"{tuple(model.shape)}")
    points = None if data is None else _array(data, "data")
    if extent is None:
        if points is None:
            extent = (-3.0, 3.0, -3.0, 3.0)
        else:
            low, high = points.min(0), points.max(0)
            pad = 0.1 * (high - low)
            extent = (low[0] - pad[0], high[0] + pad[0], low[1] - pad[1], high[1] + pad[1])
    xs, ys = np.linspace(extent[0], extent[1], grid), np.linspace(extent[2], extent[3], grid)
    lattice = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
    log_p = model.log_prob(torch.as_tensor(lattice, dtype=model.dtype),
                           **log_prob_options).double().cpu().numpy().reshape(grid, grid)
    fig = _figure(4.5, 4.0)
    ax = fig.add_subplot()
    filled = ax.contourf(xs, ys, log_p, levels=20, cmap="viridis")
    fig.colorbar(filled, ax=ax, label="log p (nats)")
    if points is not None:
        ax.scatter(points[:, 0], points[:, 1], s=2, c="white", alpha=0.5)
    fig.tight_layout()
    return fig


def training_history(history: list[dict]):
    """Training loss and, when held out, the held-out score against the step (from step 0,
    the untrained model, when it was a candidate), the chosen step marked: ``history`` as
    in ``model.history``."""
    if not history:
        raise ValueError("history is empty: the model has no training record")
    fig = _figure(5.0, 3.5)
    ax = fig.add_subplot()
    trained = [(r["step"], r["loss"]) for r in history if "loss" in r]  # step 0 has none
    ax.plot(*zip(*trained), label="training loss")
    held = [(r["step"], r["val_loss"]) for r in history if "val_loss" in r]
    if held:
        ax.plot(*zip(*held), label="held-out score")
        for r in history:
            if r.get("selected"):
                ax.axvline(r["step"], color="grey", linestyle=":",
                           label=f"chosen (step {r['step']})")
    ax.set_xlabel("step")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def comparison(rows: list[dict]):
    """One panel per set: each model's mean test NLL above the best model's there, in nats
    (D ln 2 nats per bit/dim on discrete data), with standard errors; 0 marks the winner and
    a model that failed or gave an infinite NLL is marked so. rows as ``compare`` returns."""
    rows = [{**r, "model": r["model"].split(" (failed")[0]} for r in rows]
    sets = list(dict.fromkeys(r["data"] for r in rows))
    names = list(dict.fromkeys(r["model"] for r in rows))
    columns = min(3, len(sets))
    lines = math.ceil(len(sets) / columns)
    fig = _figure(4.2 * columns, 3.2 * lines)
    for k, data in enumerate(sets):
        ax = fig.add_subplot(lines, columns, k + 1)
        here = {r["model"]: r for r in rows if r["data"] == data}
        shown = [n for n in names if n in here]  # e.g. image-only models skip tabular sets
        values = [here[n]["test_nll"] for n in shown]
        finite = [v for v in values if math.isfinite(v)]
        best = min(finite) if finite else 0.0
        ax.bar(range(len(shown)), [v - best if math.isfinite(v) else 0.0 for v in values],
               yerr=[here[n]["test_nll_se"] if math.isfinite(v) else 0.0
                     for n, v in zip(shown, values)],
               color=[f"C{names.index(n)}" for n in shown])  # one colour per model throughout
        for i, value in enumerate(values):
            if not math.isfinite(value):
                ax.text(i, 0, "failed / inf", rotation=90, ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(shown)), shown, rotation=30, ha="right", fontsize=8)
        ax.set_title(data, fontsize=10)
        ax.set_ylabel("test NLL above the best (nats)", fontsize=8)
    fig.tight_layout()
    return fig
