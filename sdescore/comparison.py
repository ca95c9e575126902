"""Side-by-side comparison of sdescore and normalizing flows on one data split.

``compare(split, models=...)`` trains each model for the same wall-clock budget on the same
training rows and scores it on the same test rows: test NLL in nats (bits/dim for discrete
data; the median beside the mean, which a few far-out rows can rule), the score model's NLL
bound beside its exact NLL, the true entropy and KL gap where the data's law is known, fit
time, log_prob throughput and sample quality.
"""
from __future__ import annotations

import datetime
import json
import math
import time
import warnings
from pathlib import Path

import torch

from .baselines import FLOWS, fit_flow
from ._files import atomic_write
from ._checks import check_flag, check_positive, choose, warn
from .metrics import bits_per_dim, energy_distance, energy_distance_se, mean_and_se
from .plot import comparison
from .solvers.likelihood import LIKELIHOODS
from .training import fit

__all__ = ["COLUMNS", "compare", "IMAGE_MODELS", "MODELS", "write_report"]

#: Model name -> how ``compare`` trains it, ("score", the loss of ``fit``) or ("flow", the
#: kind of ``fit_flow``).
MODELS = {"score": ("score", "dsm"), "score-lw": ("score", "dsm-likelihood"),
          **{kind: ("flow", kind) for kind in FLOWS}}
#: The models of ``MODELS`` that need image rows (n, c, h, w).
IMAGE_MODELS = {"glow"}
#: The columns of each row ``compare`` returns, in report order (see ``compare`` for units).
COLUMNS = ["data", "model", "fit_s", "steps", "test_rows", "test_nll", "test_nll_se",
           "test_nll_median", "bpd", "nll_bound", "nll_bound_se", "entropy", "kl_gap",
           "kl_gap_se", "log_prob_per_s", "energy_distance", "energy_distance_se"]


def compare(split, models=("score", "nsf"), *, max_time: float = 60.0, seed: int = 0,
            sde: str = "subvp", test_points: int = 1000, method: str = "ode",
            progress: bool = False) -> list[dict]:
    """Train and score each model on ``split`` (a ``datasets.Split``); one dict per model.

    models: names from MODELS: "score" (``sdescore.fit`` with DSM, lambda = s^2),
    "score-lw" (the likelihood weighting, ``loss="dsm-likelihood"``) or a flow kind; "glow"
    needs ``split.image_shape``. Where the split has an ``image_shape`` the score models and
    Glow see the rows as images (``fit`` gives them its U-Net), the other flows as vectors.
    max_time: each model's training budget in seconds. seed: every fit's, and every draw's
    of the scoring (samples, bound, Hutchinson's probes). test_points: how many test rows to
    score. method: the score models' ``log_prob`` method at its defaults, "ode" (dopri5 at
    1e-5) or "dpm" (61 network evaluations, which makes the exact trace of a U-Net
    affordable on a CPU, with a bias the benchmarks page measures).

    Each row: fit_s (training seconds, the fit's own checks included), steps, test_rows (the
    rows every figure is computed on), test_nll with its standard error and median, bpd
    (NaN for continuous data), nll_bound (score models), entropy and kl_gap (sets with an
    oracle), log_prob_per_s, and energy_distance between as many samples as test rows, in
    units of the training rows' standard deviations (a U-statistic); every mean with its
    standard error (``_se``: over rows; the energy distance's by a 10-block jackknife). A
    warning raised while fitting a model is told again with the model's name.
    """
    if isinstance(models, str):
        raise TypeError(f"models must be a list of names, e.g. [{models!r}]; got the string "
                        f"{models!r}")
    check_positive(test_points, name="test_points", integer=True)
    check_positive(max_time, name="max_time")
    choose(method, LIKELIHOODS, name="method")
    progress = check_flag(progress, name="progress")
    test = torch.as_tensor(split.test[:test_points])
    dim = test[0].numel()
    rows = []
    for name in models:
        family, kind = choose(name, MODELS, name="model")
        label = kind
        if family == "score":
            label = f"sdescore {sde}" + (" lw" if kind == "dsm-likelihood" else "")
        train, test_rows = split.train, test
        if name in IMAGE_MODELS and split.image_shape is None:
            raise ValueError(f"model {name!r} needs image data; {split.name} has no "
                             "image_shape")
        if split.image_shape is not None and (name in IMAGE_MODELS or family == "score"):
            train = train.reshape(-1, *split.image_shape)
            test_rows = test.reshape(-1, *split.image_shape)
        start = time.perf_counter()
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                if family == "score":
                    model = fit(train, sde, loss=kind, max_time=max_time, seed=seed,
                                progress=progress)
                else:
                    model = fit_flow(train, kind, max_time=max_time, seed=seed,
                                     progress=progress)
            for told in caught:  # each warning says which model it is about
                warn(f"{label}: {told.message}", told.category)
        except RuntimeError as err:  # a diverged run is a result too: report it, go on
            rows.append({**dict.fromkeys(COLUMNS, math.nan), "data": split.name,
                         "model": f"{label} (failed: {err})", "steps": 0})
            continue
        fit_seconds = time.perf_counter() - start
        start = time.perf_counter()
        options = {"method": method} if family == "score" else {}
        log_prob = model.log_prob(test_rows, seed=seed, **options)  # Hutchinson's probes
        throughput = len(test) / (time.perf_counter() - start)
        nll, nll_se = mean_and_se(-log_prob)
        nll_median = (-log_prob).double().median().item()
        samples = model.sample(len(test), seed=seed).reshape(len(test), -1)
        scale = torch.as_tensor(split.train).reshape(len(split.train), -1).double().std(0)
        scale = scale.clamp(min=1e-12)
        drawn, held = samples / scale, test.reshape(len(test), -1) / scale
        bound = (model.nll_bound(test_rows, draws=16, seed=seed).double()
                 if family == "score" else None)
        row = {"data": split.name, "model": label, "test_rows": len(test),
               "fit_s": fit_seconds, "steps": model.history[-1]["step"] if model.history else 0,
               "test_nll": nll, "test_nll_se": nll_se, "test_nll_median": nll_median,
               "bpd": bits_per_dim(nll, dim, levels=split.levels) if split.levels else math.nan,
               "nll_bound": math.nan if bound is None else bound.mean().item(),
               "nll_bound_se": math.nan if bound is None else mean_and_se(bound)[1],
               "entropy": math.nan, "kl_gap": math.nan, "kl_gap_se": math.nan,
               "log_prob_per_s": throughput, "energy_distance": energy_distance(drawn, held),
               "energy_distance_se": (energy_distance_se(drawn, held) if len(test) >= 20
                                      else math.nan)}
        if split.oracle is not None:
            truth = split.oracle.log_prob(test.double())
            row["entropy"] = -truth.mean().item()
            row["kl_gap"], row["kl_gap_se"] = mean_and_se(truth - log_prob.double())
        rows.append(row)
    return rows


def write_report(rows: list[dict], path, command: str, machine: str = "") -> str:
    """Write rows as PATH.json (strict JSON: a missing figure is null; with the command, the
    machine and today's date) and PATH.md, and a bar chart of test NLL as PATH.png, each
    atomically; return the markdown table."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    strict = [{k: None if isinstance(v, float) and not math.isfinite(v) else v
               for k, v in row.items()} for row in rows]
    text = json.dumps({"command": command, "date": datetime.date.today().isoformat(),
                       "machine": machine, "rows": strict}, indent=2, allow_nan=False)
    atomic_write(path.with_suffix(".json"), lambda temporary: temporary.write_text(text))
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        cells = [f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c]) for c in COLUMNS]
        lines.append("| " + " | ".join("-" if c == "nan" else c for c in cells) + " |")
    table = "\n".join(lines)
    atomic_write(path.with_suffix(".md"),
                 lambda temporary: temporary.write_text(f"`{command}`\n\n{table}\n"))
    figure = comparison(rows)
    atomic_write(path.with_suffix(".png"),
                 lambda temporary: figure.savefig(temporary, dpi=100, format="png"))
    return table
