"""The ``sdescore`` command: fit, log-prob, sample, compare and info from a shell.

    sdescore fit DATA -o MODEL [--sde subvp] [--loss dsm] [--max-time S] [--steps N]
                 [--columns C ...] [--labels COLUMN] [every TrainConfig field: --lr, --seed, ...]
    sdescore log-prob MODEL DATA -o OUT.csv [--method ode] [--bits-per-dim] [--y K]
    sdescore sample MODEL -n N -o OUT.csv|OUT.npy|OUT.png [--method ode] [--steps S] [--seed K]
                    [--y K]
    sdescore compare DATA --models score nsf --max-time S -o DIR
    sdescore info MODEL
    sdescore --version

DATA is a .csv file (a header row is optional; ``--columns`` picks columns by name or
0-based index), a .npy file or a .npz file (its one array, or the array named x or data).
Bad input ends the command with status 2 and one line naming the problem.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from . import distributed
from ._tables import CommandError, read_table, write_csv
from ._version import __version__
from .comparison import MODELS, compare, write_report
from .datasets import paper_split
from .distributed import is_main
from .io import load
from .losses import LOSSES
from .sde import SDES
from .solvers.likelihood import LIKELIHOODS
from .solvers.samplers import SAMPLERS
from .training import DEFAULTS, TrainConfig, fit
from .training.config import FIELDS as TRAIN_FIELDS

__all__ = ["CommandError", "main", "read_table", "run_compare", "run_fit", "run_info",
           "run_log_prob", "run_sample"]


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise CommandError(message)


def _load_model(path, device=None):
    if not Path(path).is_file():
        raise CommandError(f"{path}: no such model file")
    return load(path, map_location=device or "cpu")


def _matching_rows(model, path):
    """DATA's rows in the model's columns: by name when both have names, else all."""
    names = getattr(model, "feature_names", None)
    x, file_names, _ = read_table(path)
    if names and file_names:
        x, _, _ = read_table(path, columns=names)
        file_names = names
    if x.shape[1] != model.dim or len(model.shape) != 1:
        raise CommandError(f"{path}: rows have {x.shape[1]} columns; the model expects "
                           f"{model.dim}")
    return x, file_names


def run_fit(args) -> str:
    x, names, labels = read_table(args.data, args.columns, args.labels)
    training = _training_options(args)
    if "max_time" not in training and "steps" not in training:
        raise CommandError("give a budget: --max-time SECONDS or --steps N")
    model = fit(x, args.sde, loss=args.loss, labels=labels, **training)
    model.feature_names = names
    model.save(args.output)
    return _summary(model, f"{args.data}: {x.shape[0]} rows x {x.shape[1]} columns")


def _summary(model, data_line: str | None = None) -> str:
    config = model.config()
    lines = [] if data_line is None else [f"data:       {data_line}"]
    if "sde" in config:
        net = config["net"]
        parameters = sum(p.numel() for p in model.parameters())
        lines += [f"model:      score model, {model.sde!r}, {config['parameterization']} "
                  f"parameterisation",
                  f"network:    {net['name']} {json.dumps(net['config'])}, {parameters} "
                  "parameters"]
    else:
        lines.append(f"model:      {config['kind']} flow, {config['layers']} layers, width "
                     f"{config['hidden']}")
    loc, scale = model.datamap.loc.flatten(), model.datamap.scale.flatten()
    shown = min(4, loc.numel())
    more = ", ..." if loc.numel() > shown else ""
    lines.append(f"data map:   x -> (x - loc) / scale, loc "
                 f"[{', '.join(f'{v:.4g}' for v in loc[:shown].tolist())}{more}], scale "
                 f"[{', '.join(f'{v:.4g}' for v in scale[:shown].tolist())}{more}], data "
                 f"{config['datamap']['data_dtype']}")
    lines.append(f"samples:    shape {tuple(model.shape)}"
                 + (f", columns {', '.join(model.feature_names)}" if model.feature_names else "")
                 + (f", {model.levels} levels" if model.levels else ""))
    if model.history:
        last = model.history[-1]
        chosen = next((r for r in model.history if r.get("selected")), None)
        held = (f"; weights of step {chosen['step']}, held-out score {chosen['val_loss']:.4g} "
                "nats per row" if chosen else "; no held-out rows")
        lines.append(f"training:   {last['step']} steps in {last['seconds']:.1f} s, last loss "
                     f"{last['loss']:.4g}{held}")
    return "\n".join(lines)


def run_log_prob(args) -> str:
    model = _load_model(args.model, args.device)
    x, names = _matching_rows(model, args.data)
    if args.bits_per_dim:
        values, column = model.bits_per_dim(x, **_conditioning(args)), "bits_per_dim"
    else:  # shared by the ranks
        values, column = distributed.log_prob(model, x, method=args.method,
                                              **_conditioning(args)), "log_prob"
    values = values.double().cpu().numpy()
    header = (names or [f"x{i}" for i in range(x.shape[1])]) + [column]
    if is_main():
        write_csv(args.output, header, np.column_stack([x, values]).tolist())
    return f"wrote {len(values)} rows to {args.output} (last column {column})"


def run_sample(args) -> str:
    model = _load_model(args.model, args.device)
    options = {} if args.steps is None else {"steps": args.steps}
    samples = distributed.sample(model, args.n, method=args.method, seed=args.seed,
                                 **_conditioning(args), **options).double().cpu().numpy()
    if is_main():
        _write_samples(model, samples, Path(args.output))
    return f"wrote {len(samples)} samples to {args.output}"


def _conditioning(args) -> dict:
    """{"y": K} for --y K (a class-conditional model's label), else nothing."""
    return {} if args.y is None else {"y": args.y}


def _write_samples(model, samples: np.ndarray, output: Path) -> None:
    """.npy as they are, .csv with the training columns' names, anything else a figure."""
    if output.suffix == ".npy":
        np.save(output, samples)
    elif output.suffix == ".csv":
        if len(model.shape) != 1:
            raise CommandError("CSV output is for vector samples; use .npy or .png for images")
        header = model.feature_names or [f"x{i}" for i in range(model.dim)]
        write_csv(output, header, samples.tolist())
    else:
        from . import plot
        figure = (plot.image_grid(samples) if len(model.shape) == 3
                  else plot.samples_against_data(samples, names=model.feature_names))
        figure.savefig(output, dpi=100)


def run_compare(args) -> str:
    x, _, _ = read_table(args.data, args.columns)
    split = paper_split(Path(args.data).stem, x)
    rows = compare(split, args.models, max_time=args.max_time, seed=args.seed)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    return write_report(rows, out / "compare", "sdescore " + " ".join(sys.argv[1:]))


def run_info(args) -> str:
    model = _load_model(args.model)
    payload = torch.load(args.model, map_location="cpu", weights_only=True)
    return f"file:       {args.model} (format {payload['format']})\n" + _summary(model)


def _shown(value) -> str:
    return str(value).removeprefix("torch.") if value is not None else "none"


def _add_training_options(parser, defaults) -> None:
    """One option per TrainConfig field that can be read from text, with its help line and
    ``defaults``' value; --quiet for ``progress``. Absent options keep the fit's default."""
    group = parser.add_argument_group("training options (sdescore.TrainConfig)")
    for option in dataclasses.fields(TrainConfig):
        read = option.metadata["text"]
        if read is None:
            continue
        group.add_argument("--" + option.name.replace("_", "-"), dest=option.name, type=read,
                           choices=option.metadata.get("choices"), default=argparse.SUPPRESS,
                           metavar=option.name.upper() if "choices" not in option.metadata
                           else None,
                           help=f"{option.metadata['help']} (default: "
                                f"{_shown(getattr(defaults, option.name))})")
    group.add_argument("--quiet", action="store_true", help="no progress bar")


def _training_options(args) -> dict:
    """The TrainConfig fields given on the command line, and progress."""
    given = {name: getattr(args, name) for name in TRAIN_FIELDS if hasattr(args, name)}
    return {**given, "progress": not args.quiet}


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sdescore", description="Score-based density models from a shell: "
                     "fit, log-prob, sample, compare, info.")
    parser.add_argument("--version", action="version", version=f"sdescore {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    data_help = ("table of rows: .csv (a header row is optional), .npy or .npz (its one array, "
                 "or the one named x or data)")
    device_help = "cpu, cuda or mps (default: cuda when present)"
    y_help = "class label K of a class-conditional model (fit with --labels): condition on y = K"

    sub = commands.add_parser("fit", help="train a score model on a table",
                              description="Train a score model (sdescore.fit) and save it.")
    sub.add_argument("data", help=data_help)
    sub.add_argument("-o", "--output", required=True, help="model file to write")
    sub.add_argument("--sde", default="subvp", choices=sorted(SDES),
                     help="forward SDE (default: subvp)")
    sub.add_argument("--loss", default="dsm", choices=sorted(LOSSES),
                     help="score-matching objective (default: dsm)")
    sub.add_argument("--columns", nargs="+", help="columns to model, by name or 0-based index "
                     "(default: all but --labels)")
    sub.add_argument("--labels", help="column of integer class labels (a conditional model)")
    _add_training_options(sub, DEFAULTS["score"])
    sub.set_defaults(run=run_fit)

    sub = commands.add_parser("log-prob", help="log-density (nats) of each row",
                              description="Write each row of DATA with its log-density.")
    sub.add_argument("model", help="model file (sdescore fit -o)")
    sub.add_argument("data", help=data_help + "; the model's columns are picked by name")
    sub.add_argument("-o", "--output", required=True, help="CSV to write: the rows, then "
                     "log_prob (or bits_per_dim)")
    sub.add_argument("--method", default="ode", choices=list(LIKELIHOODS),
                     help="likelihood method at its defaults (default: ode)")
    sub.add_argument("--bits-per-dim", action="store_true",
                     help="bits/dim of integer data instead of nats")
    sub.add_argument("--y", type=int, help=y_help)
    sub.add_argument("--device", help=device_help)
    sub.set_defaults(run=run_log_prob)

    sub = commands.add_parser("sample", help="draw samples",
                              description="Draw samples from a model.")
    sub.add_argument("model", help="model file (sdescore fit -o)")
    sub.add_argument("-n", type=int, required=True, help="number of samples")
    sub.add_argument("-o", "--output", required=True, help=".csv, .npy or .png (a figure)")
    sub.add_argument("--method", default="ode", choices=list(SAMPLERS),
                     help="sampler (default: ode; ddpm for VP models only)")
    sub.add_argument("--steps", type=int, help="the sampler's steps (default: its own)")
    sub.add_argument("--seed", type=int, help="seed for repeatable draws (default: fresh)")
    sub.add_argument("--y", type=int, help=y_help)
    sub.add_argument("--device", help=device_help)
    sub.set_defaults(run=run_sample)

    sub = commands.add_parser("compare", help="score model against flows, side by side",
                              description="Train each model for the same budget on the same "
                              "rows and report test NLL, bounds, speed and sample quality.")
    sub.add_argument("data", help=data_help)
    sub.add_argument("--models", nargs="+", default=["score", "nsf"], choices=sorted(MODELS),
                     help="models to compare (default: score nsf)")
    sub.add_argument("--max-time", type=float, default=60.0,
                     help="training seconds per model (default: 60)")
    sub.add_argument("--columns", nargs="+", help="columns to model (default: all)")
    sub.add_argument("--seed", type=int, default=0, help="seed of every fit (default: 0)")
    sub.add_argument("-o", "--output", required=True, help="folder for the report")
    sub.set_defaults(run=run_compare)

    sub = commands.add_parser("info", help="what a model file holds",
                              description="Print what a model file holds.")
    sub.add_argument("model", help="model file")
    sub.set_defaults(run=run_info)
    return parser


def _join_torchrun() -> None:
    """Under ``torchrun`` (WORLD_SIZE > 1 in the environment), join its process group:
    NCCL with one GPU per local rank when CUDA is present, else gloo."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def main(argv: list[str] | None = None) -> int:
    """Run one command; 0 on success, 2 (one line on stderr) on bad input. Under
    ``torchrun`` it trains data-parallel, and only rank 0 prints and writes."""
    try:
        args = _parser().parse_args(argv)
        _join_torchrun()
        if getattr(args, "output", None) and args.command != "compare":
            folder = Path(args.output).resolve().parent
            if not folder.is_dir():
                raise CommandError(f"{args.output}: folder {folder} does not exist")
        report = args.run(args)
        if is_main():
            print(report)
        return 0
    except CommandError as err:
        message = str(err)
    except (ValueError, TypeError, FileNotFoundError, PermissionError) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
    print(f"sdescore: error: {message}", file=sys.stderr)
    return 2
