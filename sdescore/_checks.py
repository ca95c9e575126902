"""Checks at the door: every public function validates its inputs with these helpers,
so the same mistake gets the same message everywhere."""
from __future__ import annotations

import numbers
import os
import sys
import warnings

import numpy as np
import torch


def as_batch(x, shape: tuple, *, name: str = "x", dtype=None, device=None) -> torch.Tensor:
    """Convert ``x`` to a finite ``(n, *shape)`` tensor with n >= 1.

    Accepts torch tensors, NumPy arrays and anything ``numpy.asarray`` takes. Raises
    TypeError for non-numeric data and ValueError for a wrong shape, no rows, NaN or inf.
    """
    if isinstance(x, torch.Tensor):
        if x.layout != torch.strided:
            raise TypeError(f"{name} must be a dense tensor; got layout {x.layout} (use "
                            f"{name}.to_dense())")
        if x.device.type == "meta":
            raise ValueError(f"{name} is a meta tensor: it has no values")
        tensor = x.detach()
    else:
        try:
            array = np.asarray(x)
        except (TypeError, ValueError) as err:
            raise TypeError(f"{name} must be numeric array-like; could not convert: {err}") from err
        if array.dtype.kind not in "iuf":
            raise TypeError(f"{name} must hold real numbers; got dtype {array.dtype}")
        if array.dtype.kind == "f" and array.dtype.itemsize > 8:
            raise TypeError(f"{name} has dtype {array.dtype}, which torch cannot hold; "
                            "convert it to float64 first")
        if not array.flags.writeable:  # e.g. a pandas frame's values: torch wants to own it
            array = array.copy()
        tensor = torch.from_numpy(np.ascontiguousarray(array))
    if tensor.dtype == torch.bool or tensor.is_complex():
        raise TypeError(f"{name} must hold real numbers; got dtype {tensor.dtype}")
    expected = (None,) + tuple(shape)
    if tensor.ndim != len(expected) or tuple(tensor.shape[1:]) != tuple(shape):
        want = "(n, " + ", ".join(str(s) for s in shape) + ")"
        raise ValueError(f"{name} must have shape {want}; got {tuple(tensor.shape)}")
    if tensor.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has no rows")
    tensor = tensor.to(dtype=dtype or torch.get_default_dtype(), device=device)
    bad = (~torch.isfinite(tensor)).sum().item()
    if bad:
        raise ValueError(f"{name} contains NaN or inf ({bad} entries)")
    return tensor


def as_times(t, n: int, T: float, *, name: str = "t", dtype=None, device=None) -> torch.Tensor:
    """Convert a scalar or (n,) ``t`` to an (n,) tensor of times in [0, T]."""
    if isinstance(t, (str, bytes)):
        raise TypeError(f"{name} must be a number or a tensor of times; got {type(t).__name__}")
    tensor = torch.as_tensor(t, dtype=dtype, device=device)
    if tensor.is_complex() or tensor.dtype == torch.bool:
        raise TypeError(f"{name} must be real; got dtype {tensor.dtype}")
    if tensor.ndim == 0:
        tensor = tensor.expand(n)
    if tensor.shape != (n,):
        raise ValueError(f"{name} must be a scalar or have shape ({n},); got {tuple(tensor.shape)}")
    if not torch.isfinite(tensor).all() or (tensor < 0).any() or (tensor > T).any():
        raise ValueError(f"{name} must lie in [0, {T}]; got values from {tensor.min().item()} "
                         f"to {tensor.max().item()}")
    return tensor


def check_flag(value, *, name: str, none: bool = False) -> bool | None:
    """True or False (a NumPy bool too), returned as a Python bool; with ``none``, None as
    well. Anything else is refused with TypeError, so that a string such as "no" is not
    read as true."""
    if none and value is None:
        return None
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False{' or None' if none else ''}; got "
                        f"{type(value).__name__} {value!r}")
    return bool(value)


def check_count(n, *, name: str = "n") -> int:
    """An integer >= 0."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {type(n).__name__}")
    if n < 0:
        raise ValueError(f"{name} must be >= 0; got {n}")
    return int(n)


MAX_SEED = 2**63 - 1


def check_seed(seed, *, name: str = "seed") -> int | None:
    """None (fresh randomness) or an integer in [0, ``2**63`` - 1]; floats and bools are refused,
    not cut to an integer."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"{name} must be an integer or None; got {type(seed).__name__} {seed!r}")
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"{name} must be in [0, 2**63 - 1]; got {seed}")
    return int(seed)


def check_positive(value, *, name: str, integer: bool = False):
    """A finite number > 0, returned as a Python int when ``integer`` (NumPy integers and
    integers of any size accepted), else as given."""
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        raise TypeError(f"{name} must be {'an integer' if integer else 'a number'}; "
                        f"got {type(value).__name__}")
    if isinstance(value, numbers.Integral):
        if value <= 0:
            raise ValueError(f"{name} must be > 0; got {value}")
        return int(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number > 0; got {value}")
    if value <= 0:
        raise ValueError(f"{name} must be > 0; got {value}")
    return value


COMPUTE_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def check_compute_dtype(dtype, *, name: str = "dtype") -> torch.dtype:
    """torch.float32 or torch.float64, given as a torch dtype, a NumPy one or its name."""
    if isinstance(dtype, torch.dtype):
        key = str(dtype).removeprefix("torch.")
    elif isinstance(dtype, str):
        key = dtype
    else:
        try:
            key = np.dtype(dtype).name
        except TypeError:
            key = repr(dtype)
    if key not in COMPUTE_DTYPES:
        raise ValueError(f"{name} must be float32 or float64; got {dtype!r}")
    return COMPUTE_DTYPES[key]


def symmetric_eigh(matrices, *, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(eigenvalues (..., d), eigenvectors (..., d, d)) in float64 of symmetric positive
    definite ``matrices`` (..., d, d), e.g. covariances; ValueError naming ``name`` unless each
    is square, finite, symmetric and positive definite."""
    matrices = torch.as_tensor(matrices, dtype=torch.float64)
    if matrices.ndim < 2 or matrices.shape[-1] != matrices.shape[-2]:
        raise ValueError(f"{name} must be square (d, d) matrices; got shape "
                         f"{tuple(matrices.shape)}")
    if not torch.isfinite(matrices).all():
        raise ValueError(f"{name} contains NaN or inf")
    if not torch.allclose(matrices, matrices.transpose(-1, -2)):
        raise ValueError(f"{name} must be symmetric")
    eigenvalues, eigenvectors = torch.linalg.eigh(matrices)
    if (eigenvalues <= 0).any():
        raise ValueError(f"{name} must be positive definite")
    return eigenvalues, eigenvectors


def choose(value, registry: dict, *, name: str):
    """Look ``value`` up in a registry dict; the error lists the valid keys."""
    if not isinstance(value, str) or value not in registry:
        raise ValueError(f"Unknown {name} {value!r}; choose one of: {', '.join(registry)}")
    return registry[value]


def count_classes(labels: torch.Tensor, *, name: str = "labels") -> int:
    """K for training labels (n,) that use every class 0..K-1; a gap (a class with no row,
    e.g. labels 0 and ``10**7``) is refused, since each class up to the largest label gets a
    row of the network's label table."""
    classes = int(labels.max()) + 1
    present = labels.unique()  # sorted
    if present.numel() != classes:
        first = int(torch.nonzero(present != torch.arange(present.numel())).min())
        raise ValueError(f"{name} must use every class 0..K-1 (K = {classes} from the largest "
                         f"label); {classes - present.numel()} classes have no row, the first "
                         f"{first}: renumber the labels 0..K-1")
    return classes


def _lossless_dtype(data) -> torch.dtype:
    """float64 for float64 data and for integers of ``2**24`` or more, else float32."""
    if isinstance(data, torch.Tensor):
        wide = data.dtype == torch.float64
        integer = not (data.is_floating_point() or data.is_complex() or data.dtype == torch.bool)
        big = integer and data.numel() > 0 and data.abs().max().item() >= 2**24
    else:
        values = np.asarray(data)
        wide = values.dtype == np.float64
        big = values.dtype.kind in "iu" and values.size > 0 and np.abs(values).max() >= 2**24
    return torch.float64 if wide or big else torch.float32


def as_dataset(data, *, name: str = "data") -> torch.Tensor:
    """Training data as a finite (n, d) or (n, c, h, w) tensor with at least two rows, read
    without loss: float32 and float64 data keep their dtype, integers below ``2**24`` (pixels,
    counts) become float32 and larger ones float64, other floats float32."""
    if isinstance(data, torch.Tensor):
        shape = tuple(data.shape)
    else:
        try:
            shape = np.shape(data)
        except (TypeError, ValueError) as err:
            raise TypeError(f"{name} must be numeric array-like; could not convert: {err}") from err
    if len(shape) not in (2, 4):
        raise ValueError(f"{name} must have shape (n, d) or (n, c, h, w); got {shape}")
    tensor = as_batch(data, shape[1:], name=name, dtype=_lossless_dtype(data))
    if tensor.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 rows; got {tensor.shape[0]}")
    return tensor


def as_labels(labels, n: int, *, name: str = "labels", classes: int | None = None,
              device=None) -> torch.Tensor:
    """Class labels as an (n,) long tensor of integers in [0, classes); a scalar label is
    repeated n times."""
    array = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
    if array.dtype.kind not in "iu":
        raise TypeError(f"{name} must be integers; got dtype {array.dtype}")
    if array.ndim == 0:
        array = np.full(n, array)
    if array.shape != (n,):
        raise ValueError(f"{name} must be one integer or have shape ({n},); got {array.shape}")
    if n and (array < 0).any():
        raise ValueError(f"{name} must be >= 0; got {array.min()}")
    if n and array.max() > np.iinfo(np.int64).max:  # uint64 beyond int64: would wrap negative
        raise ValueError(f"{name} must be below 2**63; got {array.max()}")
    if n and classes is not None and (array >= classes).any():
        raise ValueError(f"{name} must be below the model's {classes} classes; got {array.max()}")
    return torch.as_tensor(array.astype(np.int64), device=device)


def check_device(device, *, name: str = "device"):
    """None (the caller's default) or a device torch knows and this machine has: "cpu",
    "cuda", "cuda:1", "mps" or a torch.device. Refused by name otherwise, before any work."""
    if device is None:
        return None
    if isinstance(device, bool) or not isinstance(device, (str, torch.device, int)):
        raise TypeError(f"{name} must be a device name such as 'cpu' or 'cuda', or a "
                        f"torch.device; got {type(device).__name__}")
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"{name} {device!r} is not a device: {err}") from None
    device = str(parsed) if isinstance(device, torch.device) else device
    available = {"cpu": lambda: True,
                 "cuda": lambda: torch.cuda.is_available()
                 and (parsed.index is None or parsed.index < torch.cuda.device_count()),
                 "mps": lambda: torch.backends.mps.is_available()}
    if parsed.type not in available:
        raise ValueError(f"{name} {device!r} cannot train or evaluate a model; use cpu, cuda "
                         "or mps")
    if not available[parsed.type]():
        raise ValueError(f"{name} {device!r} is not available on this machine; use "
                         f"{'cuda' if torch.cuda.is_available() else 'cpu'}")
    return parsed


_PACKAGE = os.path.dirname(os.path.abspath(__file__))


def warn(message: str, category=UserWarning) -> None:
    """``warnings.warn`` attributed to the first caller outside sdescore, so that a warning
    points at the user's line, however deep in the library it is raised."""
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level + 1)
