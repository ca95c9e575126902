"""Saving and loading models: atomic writes, safe reads, one ``load`` for every model kind.

A model file is a dict {"format": ..., "config": ..., "state_dict": ..., "history": ...,
"feature_names": ...}
written by ``torch.save`` to a temporary file and renamed into place, and read back with
``torch.load(weights_only=True)``, which refuses to run code from the file. This layer knows
no model class: each kind registers its formats (``register_format``) where it is defined.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Callable

import torch

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
    """Write ``model.config()``, its weights and history to ``path`` atomically: to a
    temporary file beside it, then renamed, so a crash never leaves a half-written model.

    A symbolic link is followed (its target is rewritten, the link stays); an existing file
    keeps its permissions, and a read-only one is refused (PermissionError); a folder that
    cannot be written raises ValueError."""
    path = Path(path)
    if path.is_symlink():
        path = path.resolve()
    mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else None
    if mode is not None and not mode & stat.S_IWUSR:
        raise PermissionError(f"{path} is read-only: not overwritten")
    payload = {"format": fmt, "config": model.config(), "history": model.history,
               "feature_names": model.feature_names,
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(payload, tmp)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:  # torch reports a missing folder as RuntimeError
        raise ValueError(f"cannot save to {path}: {err}") from err
    finally:
        tmp.unlink(missing_ok=True)


def _floating_dtype(state: dict) -> torch.dtype:
    """The dtype the weights were saved in (float32 when there are none)."""
    return next((v.dtype for v in state.values() if v.is_floating_point()), torch.float32)


def load(path, map_location="cpu"):
    """Rebuild a model saved by ``ScoreModel.save`` or ``FlowModel.save``, in the dtype it
    was saved in, on ``map_location``.

    The file is read with ``torch.load(weights_only=True)``, so it cannot run code; a file
    that is not a sdescore model, or is damaged, raises ValueError.
    """
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # unpickling errors come in many types
        raise ValueError(f"{path} is not a readable sdescore model file: {err}") from err
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
    model.history = list(payload.get("history", []))
    model.feature_names = payload.get("feature_names")
    return model.eval().to(map_location)
