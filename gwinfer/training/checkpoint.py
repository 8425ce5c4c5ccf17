"""Training checkpoints: plain data only, written atomically, loadable with ``torch.load(weights_only=True)``.

A checkpoint is a dict of tensors and plain Python values (dict/list/tuple/str/int/float/bool/None)::

    checkpoint_format, checkpoint_format_version, gwinfer_version, provenance,
    model_class, model_spec, model_state, optimizer_state, scheduler_state,
    rng_states (one per rank), world_size, epoch (completed), step_in_epoch, global_step,
    data_position {seed, sampler_epoch, step_in_epoch, per_rank_batch}, partial_epoch,
    best_val_loss, best_epoch, epochs_without_improvement, stopped, history, config, metadata

``epoch`` counts completed epochs; ``step_in_epoch > 0`` marks a checkpoint written by an interruption
in the middle of epoch ``epoch`` (resumed exactly by skipping the batches already seen).
The marker key is ``checkpoint_format`` (not ``format``) so that ``gwinfer.models.load_model``, which
reads ``model_spec`` / ``model_state`` / ``metadata``, accepts a checkpoint as a model file.
"""

from __future__ import annotations

import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gwinfer.errors import GwinferError
from gwinfer.provenance import atomic_path

FORMAT = "gwinfer-checkpoint"
FORMAT_VERSION = 1


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (a reader never sees a half-written file)."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a gwinfer checkpoint with ``weights_only=True``; one-line GwinferError if it is not one."""
    p = Path(path)
    if not p.is_file():
        raise GwinferError(f"checkpoint {p} does not exist")
    try:
        state = torch.load(p, map_location=map_location, weights_only=True)
    except (
        pickle.UnpicklingError,
        RuntimeError,
        EOFError,
        OSError,
        zipfile.BadZipFile,
        ValueError,
        KeyError,
        AttributeError,
        TypeError,
    ) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise GwinferError(f"checkpoint {p} is corrupt or not a torch file ({first})") from None
    if not isinstance(state, dict) or state.get("checkpoint_format") != FORMAT:
        raise GwinferError(f"{p} is not a gwinfer checkpoint (no checkpoint_format = {FORMAT!r} entry)")
    version = state.get("checkpoint_format_version")
    if version != FORMAT_VERSION:
        raise GwinferError(f"checkpoint {p} has format version {version!r}; this gwinfer reads {FORMAT_VERSION}")
    return state


def capture_rng_state() -> dict[str, Any]:
    """The torch (CPU and CUDA), numpy and Python RNG states of this process, as plain data."""
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": [torch.cuda.get_rng_state(i) for i in range(torch.cuda.device_count())]
        if torch.cuda.is_available()
        else [],
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {"version": int(version), "internal": list(internal), "gauss_next": gauss_next},
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put back RNG states captured by :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"].cpu().to(torch.uint8))
    if torch.cuda.is_available():
        for i, s in enumerate(state.get("cuda", [])[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(s.cpu().to(torch.uint8), i)
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss_next"]))


def seed_everything(seed: int) -> None:
    """Seed torch (all devices), numpy's global RNG and Python's ``random`` with ``seed``."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
