"""The ``sdescore`` command: fit, log-prob, sample, compare and info from a shell.

.. code-block:: text

    sdescore fit DATA -o MODEL [--sde subvp] [--loss dsm] [--max-time S] [--steps N]
                 [--columns C ...] [--labels COLUMN] [every TrainConfig field: --lr, --seed, ...]
    sdescore log-prob MODEL DATA -o OUT.csv [--method ode] [--bits-per-dim] [--errors]
                      [--trace auto] [--probes K] [--rtol R] [--atol A] [--float64]
                      [--method dpm --steps S] [--seed K] [--y K]
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
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from . import distributed
from ._checks import check_seed
from ._ranks import launched_processes
from ._tables import CommandError, check_outputs, read_table, write_csv, write_samples
from ._version import __version__
from .comparison import MODELS, compare, write_report
from .datasets import paper_split
from .distributed import is_main
from .io import load
from .losses import LOSSES
from .models.score import ScoreModel
from .sde import SDES
from .solvers.likelihood import LIKELIHOODS, TRACES
from .solvers.samplers import SAMPLERS
from .training import DEFAULTS, TrainConfig, fit
from .training.config import FIELDS as TRAIN_FIELDS
from .training.reference import MAX_FULL_DIM

__all__ = ["CommandError", "Interrupted", "main", "read_table", "run_compare", "run_fit",
           "run_info", "run_log_prob", "run_sample"]

MIN_COMPARE_ROWS = 20


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise CommandError(message)


def _load_model(path, device=None):
    if not Path(path).is_file():
        raise CommandError(f"{path}: no such model file")
    return load(path, map_location=device or "cpu")


def _matching_rows(model, path, header=None):
    """DATA's rows in the model's columns: by name when both have names, else all."""
    names = getattr(model, "feature_names", None)
    x, file_names, _ = read_table(path, header=header)
    if names and file_names:
        x, _, _ = read_table(path, columns=names, header=header)
        file_names = names
    if x.shape[1] != model.dim or len(model.shape) != 1:
        raise CommandError(f"{path}: rows have {x.shape[1]} columns; the model expects "
                           f"{model.dim}")
    return x, file_names


def run_fit(args) -> str:
    x, names, labels = read_table(args.data, args.columns, args.labels, header=args.header)
    training = _training_options(args)
    if "max_time" not in training and "steps" not in training:
        raise CommandError("give a budget: --max-time SECONDS or --steps N")
    model = fit(x, args.sde, loss=args.loss, labels=labels, **training)
    model.feature_names = names
    summary = _summary(model, f"{args.data}: {x.shape[0]} rows x {x.shape[1]} columns"
                              f"{_header_note(names)}")
    if model.history[-1].get("interrupted"):
        if Path(args.output).exists() and not args.force:
            raise Interrupted(f"{summary}\ninterrupted: {args.output} exists and was not "
                              "replaced by the interrupted model (--force replaces it)")
        model.save(args.output)
        raise Interrupted(f"{summary}\ninterrupted: the model trained so far is in "
                          f"{args.output}")
    model.save(args.output)
    return summary


def _header_note(names) -> str:
    """What the command took the table's first row for."""
    return " (a header row was read)" if names else " (no header row)"


def _summary(model, data_line: str | None = None) -> str:
    config = model.config()
    lines = [] if data_line is None else [f"data:       {data_line}"]
    if "sde" in config:
        net = config["net"]
        parameters = sum(p.numel() for p in model.parameters())
        envelope = config.get("parameterization_config", {}).get("envelope", "none")
        lines += [f"model:      score model, {model.sde!r}, {config['parameterization']} "
                  f"parameterisation" + ("" if envelope == "none" else f", envelope {envelope}"),
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
        initial = model.history[0] if model.history[0]["step"] == 0 else None
        if initial is not None and initial.get("reference") == "gaussian":
            lines.append("reference:  the training rows' diagonal Gaussian (too many columns "
                         f"for a full covariance, over {MAX_FULL_DIM})" if initial.get("diagonal")
                         else f"reference:  the training rows' Gaussian, covariance shrunk "
                              f"{100 * initial['shrinkage']:.3g}% of the way to its diagonal")
        weights = ("the fitted Gaussian (step 0)" if chosen is initial and chosen is not None
                   else f"step {chosen['step']}" if chosen else None)
        held = (f"; weights of {weights}, held-out score {chosen['val_loss']:.4g} nats per row"
                if chosen else "; no held-out rows")
        lines.append(f"training:   {last['step']} steps in {last['seconds']:.1f} s, last loss "
                     f"{last['loss']:.4g}{held}")
    return "\n".join(lines)


def run_log_prob(args) -> str:
    check_seed(args.seed)  # before any file is read
    if args.errors and args.bits_per_dim:
        raise CommandError("--errors goes with log_prob in nats, not with --bits-per-dim")
    if args.steps is not None and args.method != "dpm":
        raise CommandError(f"--steps goes with --method dpm (--method {args.method} is "
                           "adaptive: --rtol, --atol)")
    model = _load_model(args.model, args.device)
    options = _score_options(model, args, ("method", "steps", "trace", "probes", "y", "errors",
                                           "rtol", "atol", "float64"))
    if args.float64:
        model = model.double()
    x, names = _matching_rows(model, args.data, args.header)
    if args.bits_per_dim:
        scores = {"bits_per_dim": model.bits_per_dim(x, seed=args.seed, **options)}
    else:  # shared by the ranks
        answer = distributed.log_prob(model, x, seed=args.seed, return_error=args.errors,
                                      **options)
        scores = answer._asdict() if args.errors else {"log_prob": answer}
        scores = {name: value for name, value in scores.items() if value is not None}
    columns = [value.double().cpu().numpy() for value in scores.values()]
    header = (names or [f"x{i}" for i in range(x.shape[1])]) + list(scores)
    if is_main():
        write_csv(args.output, header, np.column_stack([x, *columns]).tolist())
    return (f"wrote {len(x)} rows to {args.output} (last column"
            f"{'s' if len(scores) > 1 else ''} {', '.join(scores)})")


def run_sample(args) -> str:
    model = _load_model(args.model, args.device)
    options = _score_options(model, args, ("method", "steps", "y"))
    samples = distributed.sample(model, args.n, seed=args.seed,
                                 **options).double().cpu().numpy()
    if is_main():
        write_samples(model, samples, Path(args.output))
    return f"wrote {len(samples)} samples to {args.output}"


# The defaults of the options that only a score model takes (a flow's log_prob and sample
# are exact draws and densities with no method, trace, steps or labels).
_SCORE_ONLY = {"method": "ode", "trace": "auto", "probes": None, "steps": None, "y": None,
              "errors": False, "rtol": None, "atol": None, "float64": False}


def _score_options(model, args, names) -> dict:
    """The keyword options of ``names`` (keys of _SCORE_ONLY) that a score model's call
    takes, those left at None omitted ("errors" and "float64" are the caller's); for a flow,
    nothing, or CommandError naming the ones the user gave."""
    if isinstance(model, ScoreModel):
        return {name: getattr(args, name) for name in names
                if name not in ("errors", "float64") and getattr(args, name) is not None}
    given = [name for name in names if getattr(args, name) != _SCORE_ONLY[name]]
    if given:
        flags = ", ".join(f"--{name}" for name in given)
        raise CommandError(f"{args.model} is a {model.kind} flow: {flags} only apply to "
                           "score models")
    return {}


def run_compare(args) -> str:
    x, _, _ = read_table(args.data, args.columns, header=args.header)
    if x.shape[0] < MIN_COMPARE_ROWS:
        raise CommandError(f"{args.data}: compare needs at least {MIN_COMPARE_ROWS} rows to "
                           f"split into training, held-out and test rows; got {x.shape[0]}")
    split = paper_split(Path(args.data).stem, x)
    rows = compare(split, args.models, max_time=args.max_time, seed=args.seed,
                   progress=not args.quiet)
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


def _add_file_options(parser, *, reads_table: bool) -> None:
    """--force (replace existing outputs) and, for commands reading DATA, --header."""
    parser.add_argument("--force", action="store_true",
                        help="replace existing output files (default: refuse them; every "
                             "output is written atomically and checked before any work)")
    if reads_table:
        parser.add_argument("--header", action=argparse.BooleanOptionalAction, default=None,
                            help="whether a CSV's first row holds column names (default: "
                                 "guessed: names unless every cell is a number; the summary "
                                 "says which)")


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
    sub.add_argument("-o", "--output", required=True,
                     help="model file to write (an existing file is kept unless --force)")
    _add_file_options(sub, reads_table=True)
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
    _add_file_options(sub, reads_table=True)
    sub.add_argument("-o", "--output", required=True, help="CSV to write: the rows, then "
                     "log_prob (or bits_per_dim)")
    sub.add_argument("--method", default=_SCORE_ONLY["method"], choices=list(LIKELIHOODS),
                     help="likelihood method at its defaults (default: ode)")
    sub.add_argument("--bits-per-dim", action="store_true",
                     help="bits/dim of integer data instead of nats")
    sub.add_argument("--errors", action="store_true",
                     help="also each row's solver_error (an estimate of a bound on the solver's "
                          "error in nats; rougher for --method dpm) and, with Hutchinson's trace "
                          "(over 64 columns), trace_stderr (NaN with one probe)")
    sub.add_argument("--trace", default=_SCORE_ONLY["trace"], choices=list(TRACES),
                     help="the divergence: exact, or Hutchinson's estimate (default: auto, "
                          "exact up to 64 columns)")
    sub.add_argument("--probes", type=int,
                     help="Hutchinson's probes per row (default: 1)")
    sub.add_argument("--steps", type=int,
                     help="--method dpm's steps, S + 1 network evaluations (default: 60)")
    sub.add_argument("--rtol", type=float,
                     help="--method ode's relative tolerance per row (default: 1e-5)")
    sub.add_argument("--atol", type=float,
                     help="--method ode's absolute tolerance per row, in nats for log_prob "
                          "(default: 1e-5; below 1.2e-6 needs --float64)")
    sub.add_argument("--float64", action="store_true",
                     help="score on a float64 copy of the model: with a tight --atol, a check "
                          "of the default's values")
    sub.add_argument("--seed", type=int,
                     help="seed of Hutchinson's probes (tables of over 64 columns) and of "
                          "--bits-per-dim's dequantisation; a row's draws depend on the seed "
                          "and its own values only (default: fresh)")
    sub.add_argument("--y", type=int, help=y_help)
    sub.add_argument("--device", help=device_help)
    sub.set_defaults(run=run_log_prob)

    sub = commands.add_parser("sample", help="draw samples",
                              description="Draw samples from a model.")
    sub.add_argument("model", help="model file (sdescore fit -o)")
    sub.add_argument("-n", type=int, required=True, help="number of samples")
    sub.add_argument("-o", "--output", required=True,
                     help=".csv, .npy, or .png / .pdf / .svg (a figure), written at exactly "
                          "this path")
    _add_file_options(sub, reads_table=False)
    sub.add_argument("--method", default=_SCORE_ONLY["method"], choices=list(SAMPLERS),
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
    sub.add_argument("--quiet", action="store_true", help="no progress bars")
    sub.add_argument("-o", "--output", required=True,
                     help="folder for the report (compare.json, .md, .png)")
    _add_file_options(sub, reads_table=True)
    sub.set_defaults(run=run_compare)

    sub = commands.add_parser("info", help="what a model file holds",
                              description="Print what a model file holds.")
    sub.add_argument("model", help="model file")
    sub.set_defaults(run=run_info)
    return parser


def _join_torchrun() -> bool:
    """Under ``torchrun`` (WORLD_SIZE > 1 in the environment), join its process group:
    NCCL with one GPU per local rank when CUDA is present, else gloo. True when it joined
    one, which the caller then destroys before the process exits."""
    if launched_processes() > 1 and not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        return True
    return False


def _check_outputs(args) -> None:
    """``_tables.check_outputs`` for the command's output, before any work."""
    inputs = [getattr(args, name) for name in ("data", "model") if getattr(args, name, None)]
    check_outputs(args.command, args.output, force=args.force, inputs=inputs)


class Interrupted(Exception):
    """Ctrl-C: the command stopped early; the message says what was kept."""


def main(argv: list[str] | None = None) -> int:
    """Run one command; 0 on success, 2 (one line on stderr) on bad input or a failed
    computation, 130 after Ctrl-C (the summary says what was kept). Under ``torchrun`` it
    trains data-parallel, and only rank 0 prints and writes."""
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning
        return _run(argv)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning as the command tells it: one line on stderr, without a source line."""
    print(f"sdescore: warning: {message}", file=sys.stderr)


def _run(argv) -> int:
    joined = False
    try:
        args = _parser().parse_args(argv)
        joined = _join_torchrun()
        if getattr(args, "output", None) and is_main():
            _check_outputs(args)
        report = args.run(args)
        if is_main():
            _print(report)
        return 0
    except Interrupted as stop:
        _print(str(stop))
        return 130
    except KeyboardInterrupt:
        print("sdescore: interrupted before the first training step; nothing was written",
              file=sys.stderr)
        return 130
    except CommandError as err:
        message = str(err)
    except (ValueError, TypeError, OSError, RuntimeError) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
    finally:
        if joined:  # a gloo group left to the interpreter's teardown can abort the process
            dist.destroy_process_group()
    print(f"sdescore: error: {message}", file=sys.stderr)
    return 2


def _print(text: str) -> None:
    """Print to stdout; a reader that closed the pipe (``| head -1``) ends it quietly, as
    the Python documentation advises (stdout then points at os.devnull)."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
