"""Saving and loading models: atomic writes, safe reads, one ``load`` for every model kind.

A model file is a dict {"format": ..., "config": ..., "state_dict": ..., "history": ...}
written by ``torch.save`` to a temporary file and renamed into place, and read back with
``torch.load(weights_only=True)``, which refuses to run code from the file.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

SCORE_FORMAT = "sdescore-model-1"
FLOW_FORMAT = "sdescore-flow-1"


def save_payload(model, path, fmt: str) -> None:
    """Write ``model.config()``, its weights and history to ``path`` atomically: to a
    temporary file beside it, then renamed, so a crash never leaves a half-written model."""
    path = Path(path)
    payload = {"format": fmt, "config": model.config(), "history": model.history,
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load(path, map_location="cpu"):
    """Rebuild a model saved by ``ScoreModel.save`` or ``FlowModel.save``.

    The file is read with ``torch.load(weights_only=True)``, so it cannot run code; a file
    that is not a sdescore model, or is damaged, raises ValueError.
    """
    from .baselines import FlowModel
    from .model import ScoreModel

    builders = {SCORE_FORMAT: ScoreModel.from_config, FLOW_FORMAT: FlowModel.from_config}
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # unpickling errors come in many types
        raise ValueError(f"{path} is not a readable sdescore model file: {err}") from err
    if not isinstance(payload, dict) or payload.get("format") not in builders:
        raise ValueError(f"{path} is not a sdescore model file (expected format "
                         f"{' or '.join(map(repr, builders))})")
    try:
        config, state = payload["config"], payload["state_dict"]
        model = builders[payload["format"]](config)
        model.to(state["loc"].dtype)
        model.load_state_dict(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{path} holds a damaged or incompatible sdescore model: {err}") from err
    model.history = list(payload.get("history", []))
    return model.eval().to(map_location)
