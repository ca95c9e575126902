"""The command's files: DATA tables read (.csv with an optional header, .npy, .npz), outputs
checked before any work, CSV and samples written atomically, with every problem raised as a
``CommandError`` told in one line."""
from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import numpy as np

from ._files import atomic_write, check_output

__all__ = ["check_outputs", "CommandError", "read_table", "SAMPLE_SUFFIXES", "TABLE_SUFFIXES",
           "write_csv", "write_samples"]

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


def read_table(path, columns: list[str] | None = None, labels: str | None = None,
               header: bool | None = None):
    """(rows (n, d), column names or None, labels int64 (n,) or None) from DATA.

    CSV rows are float64; a UTF-8 byte-order mark is dropped; the first row is a header when
    ``header`` is True, data when False, and when None (guess) a header unless every cell
    is a number. Header names must be distinct. NumPy arrays keep their dtype, for the
    library to check and convert (uint8 data are dequantised, complex and bool refused)."""
    path = Path(path)
    if path.suffix not in TABLE_SUFFIXES:
        raise CommandError(f"{path}: DATA must be a {', '.join(TABLE_SUFFIXES)} file")
    if not path.is_file():
        raise CommandError(f"{path}: no such file")
    if path.suffix == ".csv":
        table, names = _read_csv(path, header)
        width = table.shape[1]
    else:
        table, names = _read_array(path), None
        width = table.shape[1]
    label_column = None if labels is None else _pick(names, width, [labels])[0]
    keep = (_pick(names, width, columns) if columns
            else [i for i in range(width) if i != label_column])
    if len(set(keep)) != len(keep):
        raise CommandError(f"{path}: --columns names a column twice")
    block = table[:, keep]
    x = (_numbers(block, [names[i] if names else str(i) for i in keep], path)
         if block.dtype == object else block)
    y = None
    if label_column is not None:
        y = _numbers(table[:, [label_column]].astype(object), [labels], path)[:, 0]
        if (y != np.round(y)).any() or (np.abs(y) >= 2**53).any():
            raise CommandError(f"{path}: labels column {labels!r} must hold integers below "
                               "2**53")
        y = y.astype(np.int64)
    return x, ([names[i] for i in keep] if names else None), y


def _read_csv(path: Path, header: bool | None):
    """(cells as an object array (n, d), names or None)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            cells = [row for row in csv.reader(handle) if row]
    except UnicodeDecodeError as err:
        raise CommandError(f"{path}: not a UTF-8 text file ({err.reason})") from None
    if not cells:
        raise CommandError(f"{path}: the file is empty")
    names = None
    if header or (header is None and not all(_is_number(c) for c in cells[0])):
        names, cells = [c.strip() for c in cells[0]], cells[1:]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise CommandError(f"{path}: the header names {', '.join(map(repr, repeated))} "
                               "more than once")
    width = len(names) if names else len(cells[0])
    for i, row in enumerate(cells):
        if len(row) != width:
            raise CommandError(f"{path}: row {i + 1} has {len(row)} columns, not {width}")
    table = np.empty((len(cells), width), dtype=object)
    table[:] = cells if cells else np.empty((0, width))
    return table, names


def _read_array(path: Path) -> np.ndarray:
    """The (n, d) array of a .npy file, or of a .npz file's one array (or the one named x or
    data)."""
    if path.stat().st_size == 0:
        raise CommandError(f"{path}: the file is empty")
    try:
        loaded = np.load(path, allow_pickle=False)
        if path.suffix == ".npz":
            keys = list(loaded.keys())
            key = keys[0] if len(keys) == 1 else next((k for k in ("x", "data") if k in keys),
                                                      None)
            if key is None:
                raise CommandError(f"{path}: holds arrays {', '.join(keys)}; name one x or "
                                   "data")
            loaded = loaded[key]
        table = np.asarray(loaded)
    except CommandError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError):
        raise CommandError(f"{path}: not a NumPy {path.suffix} file of numbers, or a damaged "
                           "one") from None
    if table.ndim != 2:
        raise CommandError(f"{path}: the array must have shape (n, d); got {table.shape}")
    return table


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
    """Write a CSV file atomically (``_files.atomic_write``)."""
    def write(temporary: Path) -> None:
        with open(temporary, "w", newline="") as handle:
            writer = csv.writer(handle)
            if header:
                writer.writerow(header)
            writer.writerows(rows)
    atomic_write(path, write)


SAMPLE_SUFFIXES = (".csv", ".npy", ".png", ".pdf", ".svg")


def write_samples(model, samples: np.ndarray, output: Path) -> None:
    """.npy as they are, .csv with the training columns' names, .png, .pdf or .svg a
    figure; written atomically at exactly ``output``."""
    suffix = output.suffix.lower()
    if suffix == ".npy":
        def write(temporary):
            with open(temporary, "wb") as handle:
                np.save(handle, samples)
        atomic_write(output, write)
    elif suffix == ".csv":
        header = model.feature_names or [f"x{i}" for i in range(model.dim)]
        write_csv(output, header, samples.tolist())
    else:
        from . import plot
        figure = (plot.image_grid(samples) if len(model.shape) == 3
                  else plot.samples_against_data(samples, names=model.feature_names))
        atomic_write(output, lambda temporary: figure.savefig(
            temporary, dpi=100, format=suffix[1:]))


def check_outputs(command: str, output, *, force: bool, inputs=()) -> None:
    """Refuse (before any work) an output of ``command`` that cannot or must not be written:
    not a regular file, one of ``inputs``, an existing file without ``force``, a folder that
    is missing or cannot be written, a sample file of an unknown kind. For "compare" the
    output is a folder, created here, and its compare.json, .md and .png are checked."""
    if command == "compare":
        folder = Path(output)
        if folder.exists() and not folder.is_dir():
            raise CommandError(f"{output} exists and is not a folder")
        folder.mkdir(parents=True, exist_ok=True)
        for suffix in (".json", ".md", ".png"):
            check_output(folder / f"compare{suffix}", overwrite=force, inputs=inputs)
        return
    if command == "sample" and Path(output).suffix.lower() not in SAMPLE_SUFFIXES:
        raise CommandError(f"{output}: samples are written as {', '.join(SAMPLE_SUFFIXES)}; "
                           f"got {Path(output).suffix!r}")
    check_output(output, overwrite=force, inputs=inputs)
