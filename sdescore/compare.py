"""Side-by-side comparison of sdescore and normalizing flows on one data split.

``compare(split, models=...)`` trains each model for the same wall-clock budget on the same
training rows and scores it on the same test rows: test NLL in nats (bits/dim for discrete
data; the median beside the mean, which a few far-out rows can rule), the score model's NLL
bound beside its exact NLL, the true entropy and KL gap where the data's law is known, fit
time, log_prob throughput and sample quality.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch

from .baselines import FLOWS, fit_flow
from .likelihood import bits_per_dim
from .metrics import energy_distance, mean_and_se
from .train import fit
from .validation import check_positive, choose

# name -> how to train it: ("score", fit's loss) or ("flow", fit_flow's kind)
MODELS = {"score": ("score", "dsm"), "score-lw": ("score", "dsm-likelihood"),
          **{kind: ("flow", kind) for kind in FLOWS}}
IMAGE_MODELS = {"glow"}
COLUMNS = ["data", "model", "fit_s", "steps", "test_nll", "test_nll_se", "test_nll_median",
           "bpd", "nll_bound", "entropy", "kl_gap", "log_prob_per_s", "energy_distance"]


def compare(split, models=("score", "nsf"), *, max_time: float = 60.0, seed: int = 0,
            sde: str = "subvp", test_points: int = 1000, progress: bool = False) -> list[dict]:
    """Train and score each model on ``split`` (a ``datasets.Split``); one dict per model.

    models: names from MODELS: "score" (``sdescore.fit`` with DSM, lambda = s^2),
    "score-lw" (the likelihood weighting, ``loss="dsm-likelihood"``) or a flow kind; "glow"
    needs ``split.image_shape`` and sees the rows as images. max_time: each model's training
    budget in seconds. test_points: how many test rows to score.
    """
    if isinstance(models, str):
        raise TypeError(f"models must be a list of names, e.g. [{models!r}]; got the string "
                        f"{models!r}")
    check_positive(test_points, name="test_points", integer=True)
    check_positive(max_time, name="max_time")
    test = torch.as_tensor(split.test[:test_points])
    dim = test[0].numel()
    rows = []
    for name in models:
        family, kind = choose(name, MODELS, name="model")
        label = kind
        if family == "score":
            label = f"sdescore {sde}" + (" lw" if kind == "dsm-likelihood" else "")
        train, test_rows = split.train, test
        if name in IMAGE_MODELS:
            if split.image_shape is None:
                raise ValueError(f"model {name!r} needs image data; {split.name} has no "
                                 "image_shape")
            train = train.reshape(-1, *split.image_shape)
            test_rows = test.reshape(-1, *split.image_shape)
        start = time.perf_counter()
        try:
            if family == "score":
                model = fit(train, sde, loss=kind, max_time=max_time, seed=seed,
                            progress=progress)
            else:
                model = fit_flow(train, kind, max_time=max_time, seed=seed, progress=progress)
        except RuntimeError as err:  # a diverged run is a result too: report it, go on
            rows.append({**dict.fromkeys(COLUMNS, math.nan), "data": split.name,
                         "model": f"{label} (failed: {err})", "steps": 0})
            continue
        fit_seconds = time.perf_counter() - start
        start = time.perf_counter()
        log_prob = model.log_prob(test_rows)
        throughput = len(test) / (time.perf_counter() - start)
        nll, nll_se = mean_and_se(-log_prob)
        nll_median = (-log_prob).double().median().item()
        samples = model.sample(len(test), seed=seed).reshape(len(test), -1)
        row = {"data": split.name, "model": label,
               "fit_s": fit_seconds, "steps": model.history[-1]["step"] if model.history else 0,
               "test_nll": nll, "test_nll_se": nll_se, "test_nll_median": nll_median,
               "bpd": bits_per_dim(nll, dim, levels=split.levels) if split.levels else math.nan,
               "nll_bound": (model.nll_bound(test, draws=16, seed=seed).double().mean().item()
                             if family == "score" else math.nan),
               "entropy": math.nan, "kl_gap": math.nan, "log_prob_per_s": throughput,
               "energy_distance": energy_distance(samples, test)}
        if split.oracle is not None:
            truth = split.oracle.log_prob(test.double())
            row["entropy"] = -truth.mean().item()
            row["kl_gap"] = (truth - log_prob.double()).mean().item()
        rows.append(row)
    return rows


def write_report(rows: list[dict], path, command: str, machine: str = "") -> str:
    """Write rows as PATH.json and PATH.md, and a bar chart of test NLL as PATH.png; return
    the markdown table."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".json").write_text(json.dumps(
        {"command": command, "machine": machine, "rows": rows}, indent=2))
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        cells = [f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c]) for c in COLUMNS]
        lines.append("| " + " | ".join("-" if c == "nan" else c for c in cells) + " |")
    table = "\n".join(lines)
    path.with_suffix(".md").write_text(f"`{command}`\n\n{table}\n")
    _plot(rows, path.with_suffix(".png"))
    return table


def _plot(rows, path):
    """One panel per set: each model's mean test NLL above the best model's there, in nats
    (D ln 2 nats per bit/dim on discrete data), with standard errors; 0 marks the winner and
    a model that failed or gave an infinite NLL is marked so."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [{**r, "model": r["model"].split(" (failed")[0]} for r in rows]
    sets = list(dict.fromkeys(r["data"] for r in rows))
    names = list(dict.fromkeys(r["model"] for r in rows))
    columns = min(3, len(sets))
    lines = math.ceil(len(sets) / columns)
    fig, axes = plt.subplots(lines, columns, figsize=(4.2 * columns, 3.2 * lines), squeeze=False)
    for ax, data in zip(axes.flat, sets):
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
    for ax in list(axes.flat)[len(sets):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
