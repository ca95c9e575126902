"""Saving and loading models: atomic writes, safe reads, one ``load`` for every model kind.

A model file is a dict {"format": ..., "config": ..., "state_dict": ..., "history": ...,
"feature_names": ...}
written by ``torch.save`` to a temporary file and renamed into place, and read back with
``torch.load(weights_only=True)``, which refuses to run code from the file. This layer knows
no model class: each kind registers its formats (``register_format``) where it is defined.
"""
from __future__ import annotations

import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Callable

import torch

from ._checks import check_device
from ._files import atomic_write, plain, same

__all__ = ["load", "register_format", "save_payload"]

# format name -> (from_config(config) -> untrained model, whether the data map is in the weights)
FORMATS: dict[str, tuple[Callable[[dict], torch.nn.Module], bool]] = {}


def register_format(fmt: str, from_config: Callable[[dict], torch.nn.Module], *,
                    map_in_weights: bool = False) -> None:
    """Teach ``load`` to read files of format ``fmt``: ``from_config(config)`` builds the
    untrained model that the saved weights are loaded into. map_in_weights: the first file
    formats kept the data map's loc and scale among the weights; on load they move into
    ``config["datamap"]``, where later formats keep them."""
    FORMATS[fmt] = (from_config, map_in_weights)


def save_payload(model, path, fmt: str) -> None:
    """Write ``model.config()``, its weights, history and feature names to ``path``
    atomically (``_files.atomic_write``), after proving the round trip: the temporary file
    is loaded back and compared with what was meant (config, every weight, history, names)
    before it replaces ``path``, so a file that would not load the same never replaces a
    good one.

    History and feature names are stored as plain types (NumPy scalars and strings, pandas
    indexes, datetimes converted; feature names as str); anything else raises TypeError. A
    symbolic link is followed (its target is rewritten, the link stays); an existing file
    keeps its permissions. Refused with ValueError: anything at ``path`` that is not a
    regular file, a missing folder, a failed write; PermissionError: a read-only file."""
    names = model.feature_names
    payload = {"format": fmt, "config": plain(model.config(), "config"),
               "history": plain(list(model.history), "history"),
               "feature_names": None if names is None else [str(n) for n in
                                                             plain(list(names), "feature_names")],
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}

    def write(temporary: Path) -> None:
        try:
            torch.save(payload, temporary)
        except RuntimeError as err:  # torch reports some OS failures as RuntimeError
            raise OSError(str(err).splitlines()[0]) from err

    def verify(temporary: Path) -> None:
        try:
            loaded = load(temporary)
        except (ValueError, TypeError) as err:
            raise ValueError(f"cannot save to {path}: the file would not load back "
                             f"({str(err).replace(str(temporary), 'the written file')}); "
                             "nothing was written") from err
        written = {"format": fmt, "config": plain(loaded.config(), "config"),
                   "history": loaded.history, "feature_names": loaded.feature_names,
                   "state_dict": {k: v.detach().cpu() for k, v in loaded.state_dict().items()}}
        differ = [key for key in payload if not same(payload[key], written[key])]
        if differ:
            raise ValueError(f"cannot save to {path}: the model would not load back the same "
                             f"(its {', '.join(differ)} differ); nothing was written")

    atomic_write(path, write, name="model file", verify=verify)


def _floating_dtype(state: dict) -> torch.dtype:
    """The dtype the weights were saved in (float32 when there are none)."""
    return next((v.dtype for v in state.values() if v.is_floating_point()), torch.float32)


def load(path, map_location="cpu"):
    """Rebuild a model saved by ``ScoreModel.save`` or ``FlowModel.save``, in the dtype it
    was saved in, on ``map_location``.

    The file is read with ``torch.load(weights_only=True)``, so it cannot run code; a file
    that is not a sdescore model, or is damaged, raises ValueError.
    """
    check_device(map_location, name="map_location")
    if Path(path).is_dir():
        raise ValueError(f"{path} is a folder, not a sdescore model file")
    if Path(path).is_file() and Path(path).stat().st_size == 0:
        raise ValueError(f"{path} is empty (0 bytes): not a sdescore model file")
    if Path(path).is_file() and not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not a sdescore model file (not a torch zip archive)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on foreign pickles
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError:  # a pickle of objects a weights-only load will not build
        raise ValueError(f"{path} is not a sdescore model file: it holds Python objects, "
                         "which a safe load does not build") from None
    except Exception:  # a damaged archive: errors come in many types
        raise ValueError(f"{path} is not a sdescore model file (not a torch archive, or a "
                         "damaged one)") from None
    if not isinstance(payload, dict) or payload.get("format") not in FORMATS:
        raise ValueError(f"{path} is not a sdescore model file (expected format "
                         f"{' or '.join(map(repr, FORMATS))})")
    from_config, map_in_weights = FORMATS[payload["format"]]
    try:
        config, state = dict(payload["config"]), dict(payload["state_dict"])
        dtype = _floating_dtype(state)
        if map_in_weights:
            config["datamap"] = {"loc": state.pop("loc").tolist(),
                                 "scale": state.pop("scale").tolist()}
        model = from_config(config)
        model.to(dtype)
        model.load_state_dict(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{path} holds a damaged or incompatible sdescore model: {err}") from err
    model.history, model.feature_names = _checked_records(path, payload, model)
    return model.eval().to(map_location)


def _checked_records(path, payload: dict, model) -> tuple[list, list | None]:
    """(history, feature names) of a payload, ValueError unless the history is a list of
    dicts and the names None or one str per column."""
    history, names = payload.get("history", []), payload.get("feature_names")
    if not isinstance(history, list) or not all(isinstance(r, dict) for r in history):
        raise ValueError(f"{path} holds a damaged sdescore model: its history is not a list "
                         "of records")
    if names is not None and (not isinstance(names, list)
                              or not all(isinstance(n, str) for n in names)
                              or len(names) != model.dim):
        raise ValueError(f"{path} holds a damaged sdescore model: its feature names are not "
                         "one str per column")
    return list(history), names
