"""The command's files: DATA tables read (.csv with an optional header, .npy, .npz) and CSV
written, with every problem raised as a ``CommandError`` told in one line."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

__all__ = ["CommandError", "TABLE_SUFFIXES", "read_table", "write_csv"]

TABLE_SUFFIXES = (".csv", ".npy", ".npz")


class CommandError(Exception):
    """A problem with the command's input, told in one line."""


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _pick(names: list[str] | None, width: int, wanted: list[str]) -> list[int]:
    """Column indices for names or 0-based indices in ``wanted``."""
    picked = []
    for item in wanted:
        if names is not None and item in names:
            picked.append(names.index(item))
        elif item.isdigit() and int(item) < width:
            picked.append(int(item))
        else:
            known = f"; columns are {', '.join(names)}" if names else f" of {width}"
            raise CommandError(f"no column {item!r}{known}")
    return picked


def read_table(path, columns: list[str] | None = None, labels: str | None = None):
    """(rows float64 (n, d), column names or None, labels int64 (n,) or None) from DATA."""
    path = Path(path)
    if path.suffix not in TABLE_SUFFIXES:
        raise CommandError(f"{path}: DATA must be a {', '.join(TABLE_SUFFIXES)} file")
    if not path.is_file():
        raise CommandError(f"{path}: no such file")
    if path.suffix == ".csv":
        with open(path, newline="") as handle:
            cells = [row for row in csv.reader(handle) if row]
        if not cells:
            raise CommandError(f"{path}: the file is empty")
        names = None
        if not all(_is_number(c) for c in cells[0]):
            names, cells = [c.strip() for c in cells[0]], cells[1:]
        width = len(names) if names else len(cells[0])
        for i, row in enumerate(cells):
            if len(row) != width:
                raise CommandError(f"{path}: row {i + 1} has {len(row)} columns, not {width}")
        table = np.empty((len(cells), width), dtype=object)
        table[:] = cells if cells else np.empty((0, width))
    else:
        try:
            loaded = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as err:
            raise CommandError(f"{path}: not a readable NumPy file: {err}") from err
        if path.suffix == ".npz":
            keys = list(loaded.keys())
            key = keys[0] if len(keys) == 1 else next((k for k in ("x", "data") if k in keys), None)
            if key is None:
                raise CommandError(f"{path}: holds arrays {', '.join(keys)}; name one x or data")
            loaded = loaded[key]
        table, names = np.asarray(loaded), None
        if table.ndim != 2:
            raise CommandError(f"{path}: the array must have shape (n, d); got {table.shape}")
        width = table.shape[1]
    label_column = None if labels is None else _pick(names, width, [labels])[0]
    keep = (_pick(names, width, columns) if columns
            else [i for i in range(width) if i != label_column])
    x = _numbers(table[:, keep], [names[i] if names else str(i) for i in keep], path)
    y = None
    if label_column is not None:
        y = _numbers(table[:, [label_column]], [labels], path)[:, 0]
        if (y != np.round(y)).any():
            raise CommandError(f"{path}: labels column {labels!r} must hold integers")
        y = y.astype(np.int64)
    return x, ([names[i] for i in keep] if names else None), y


def _numbers(block: np.ndarray, names: list[str], path) -> np.ndarray:
    try:
        return block.astype(np.float64)
    except (TypeError, ValueError):
        for j, name in enumerate(names):
            for i, value in enumerate(block[:, j]):
                if not _is_number(str(value)):
                    raise CommandError(f"{path}: column {name!r}, row {i + 1}: {value!r} is "
                                       "not a number") from None
        raise


def write_csv(path, header, rows) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        if header:
            writer.writerow(header)
        writer.writerows(rows)
    tmp.replace(path)
