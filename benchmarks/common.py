"""Helpers shared by the benchmark scripts: timing, machine description, result files.

The scripts run as modules from the project root (``python -m benchmarks.NAME``); real
data sets are read from --data-dir or the folder $SDESCORE_DATA names.
"""
from __future__ import annotations

import ast
import datetime
import json
import math
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"


def machine() -> str:
    """A one-line description of where the benchmark ran."""
    return (f"{platform.machine()}, {torch.get_num_threads()} torch "
            f"threads, torch {torch.__version__}, Python {platform.python_version()}")


def timed(fn, repeats: int):
    """Run fn() ``repeats`` times; return (last result, median seconds)."""
    seconds, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - start)
    return result, statistics.median(seconds)


def rerun_command(module: str, argv: list[str] | None = None) -> str:
    """The shell command that reruns ``python -m benchmarks.MODULE`` with ``argv`` (default:
    this process's arguments), each argument quoted as the shell needs."""
    arguments = sys.argv[1:] if argv is None else argv
    return f"python -m benchmarks.{module} {shlex.join(arguments)}".strip()


def write(name: str, rows: list[dict], columns: list[str], command: str) -> str:
    """Save rows as results/NAME.json (with the command, today's date and the machine) and
    return them as a markdown table."""
    RESULTS.mkdir(exist_ok=True)
    payload = {"command": command, "date": datetime.date.today().isoformat(),
               "machine": machine(), "rows": rows}
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2))
    return table(columns, [[row[c] for c in columns] for row in rows])


def number(value, digits: int = 4) -> str:
    """A table cell: floats to ``digits`` significant figures, None and NaN as "-"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def table(header: list[str], rows: list[list]) -> str:
    """A markdown table; cells that are not strings go through ``number``."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c if isinstance(c, str) else number(c) for c in row) + " |"
              for row in rows]
    return "\n".join(lines)


def fit_options(items: list[str]) -> dict:
    """``--fit-option NAME=VALUE`` strings as fit() keywords (VALUE read as a Python literal
    where it is one, else kept as a string)."""
    options = {}
    for item in items:
        name, value = item.split("=", 1)
        try:
            options[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            options[name] = value
    return options
