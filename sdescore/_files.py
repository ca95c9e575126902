"""Files a user owns: every output is checked before any work starts and written
atomically (a temporary file in the same folder, then a rename; removed on failure), and
what goes into a model file is made of plain types.
"""
from __future__ import annotations

import datetime
import numbers
import os
import stat
import tempfile
from pathlib import Path, PurePath
from typing import Callable

import numpy as np
import torch

__all__ = ["atomic_write", "check_output", "plain", "same"]


def check_output(path, *, name: str = "output", overwrite: bool = True,
                 inputs=()) -> Path:
    """The path to write ``path`` to (a symbolic link's target), after refusing, by ``name``:
    an empty path; anything that exists and is not a regular file (a folder, a device node,
    a FIFO); an existing file when not ``overwrite``, or a read-only one; one of ``inputs``
    (paths the same command reads); a folder that does not exist or cannot be written.
    ValueError (FileExistsError, PermissionError for those two cases)."""
    if not isinstance(path, (str, PurePath)):
        raise TypeError(f"{name} must be a path (str or os.PathLike); got {type(path).__name__}")
    if str(path) == "":
        raise ValueError(f"{name} must be a file name; got an empty path")
    target = Path(path)
    if target.is_symlink():
        target = target.resolve()
    if target.exists() or target.is_symlink():
        mode = target.stat().st_mode
        if not stat.S_ISREG(mode):
            raise ValueError(f"{name} {path} exists and is not a regular file: not replaced")
        for other in inputs:
            if Path(other).exists() and os.path.samefile(target, other):
                raise ValueError(f"{name} {path} is also an input of this command: not "
                                 "overwritten")
        if not overwrite:
            raise FileExistsError(f"{name} {path} exists: not overwritten (pass --force to "
                                  "replace it)")
        if not stat.S_IMODE(mode) & stat.S_IWUSR or not os.access(target, os.W_OK):
            raise PermissionError(f"{name} {path} is read-only: not overwritten")
    folder = target.resolve().parent
    if not folder.is_dir():
        raise ValueError(f"{name} {path}: folder {folder} does not exist")
    try:  # a real probe: permissions can say yes where the file system says no (/proc)
        handle, probe = tempfile.mkstemp(prefix=".sdescore-", suffix=".tmp", dir=folder)
        os.close(handle)
        os.unlink(probe)
    except OSError as err:
        raise PermissionError(f"{name} {path}: folder {folder} cannot be written "
                              f"({err.strerror or err})") from None
    return target


def atomic_write(path, write: Callable[[Path], None], *, name: str = "output",
                 verify: Callable[[Path], None] | None = None) -> None:
    """Write ``path`` through ``write(temporary_path)``: the temporary file lies in the
    same folder (a short name of its own), ``verify(temporary_path)`` may check it, and only
    then is it renamed over ``path``, keeping an existing file's permissions. On any failure
    the temporary file is removed and ``path`` is untouched; an OSError becomes ValueError
    naming ``name`` and the path."""
    target = check_output(path, name=name)
    mode = stat.S_IMODE(target.stat().st_mode) if target.exists() else None
    handle, temporary = tempfile.mkstemp(prefix=".sdescore-", suffix=".tmp",
                                         dir=target.resolve().parent)
    os.close(handle)
    temporary = Path(temporary)
    try:
        write(temporary)
        if verify is not None:
            verify(temporary)
        os.chmod(temporary, mode if mode is not None else 0o666 & ~_umask())
        os.replace(temporary, target)
    except OSError as err:
        raise ValueError(f"cannot write {name} {path}: {err.strerror or err}") from err
    finally:
        temporary.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def plain(value, name: str):
    """``value`` as plain types that a weights-only load reads back equal: None, bool, int,
    float, str, tensors, and lists and dicts (str keys) of them. NumPy scalars, strings and
    arrays, pandas indexes (anything with ``tolist``), tuples, paths and datetimes are
    converted; anything else raises TypeError naming ``name``."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str(value)  # numpy.str_ too
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, (np.generic, np.ndarray)) or hasattr(value, "tolist"):
        return plain(value.tolist(), name)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [plain(v, f"{name}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError(f"{name} has a key that is not a str; model files keep str keys")
        return {str(k): plain(v, f"{name}[{k!r}]") for k, v in value.items()}
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    raise TypeError(f"{name} holds a {type(value).__name__}, which a model file cannot keep: "
                    "use numbers, strings, lists or dicts")


def same(a, b) -> bool:
    """Whether two ``plain`` values are equal, tensors element by element (and in dtype)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)
                and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.cpu(), b.cpu()))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True  # NaN
    return type(a) is type(b) and a == b
