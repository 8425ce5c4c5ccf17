"""Options that several commands share, defined once so that they mean the same everywhere.

* ``--workers N``: processes of the command's parallel part (waveforms, likelihoods); default: every usable
  core (``generate``: the same, resolved by the library, one per rank with ``--mpi``); :func:`resolve_shared`
  refuses N < 1 with one line.
* ``--model``: a model folder or its ``model.pt`` (``distill --teacher`` too), resolved to the file before
  any work by :func:`resolve_shared` (so results and provenance name the file and its sha256).
* ``--n-samples``: posterior samples (``sample``, ``analyze``, ``pp``, ``stream``).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from gwinfer.errors import GwinferError

#: The model file each command reads (argument dest): a model folder or its model.pt.
MODEL_INPUTS: dict[str, str] = {
    "predict": "model", "evaluate": "model", "robustness": "model", "export": "model", "sample": "model",
    "pp": "model", "analyze": "model", "prepare": "model", "distill": "teacher",
}  # fmt: skip


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, unless the help already names it, there is none (None,
    an empty list) or the option is a flag (its default is its absence)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            action.option_strings
            and action.nargs != 0
            and "default" not in text
            and default not in (None, False, [], argparse.SUPPRESS)
            and not action.required
        ):
            text += f" (default: {default})"
        return text


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def add_workers(p: Any, what: str = "processes computing waveforms") -> None:
    """``--workers`` on parser (or argument group) ``p``, with the one default of every command."""
    p.add_argument("--workers", type=int, default=usable_cores(), help=f"{what} (default: all usable cores)")


def add_model(p: Any, what: str) -> None:
    """A required ``--model``: ``what`` model, as its folder or its model.pt."""
    p.add_argument("--model", required=True, help=f"{what}: its folder or model.pt")


def resolve_shared(args: argparse.Namespace) -> None:
    """Check and resolve the shared options of ``args`` before any work: ``--workers`` >= 1, and the model
    folder of ``--model`` / ``--teacher`` turned into its model.pt; one-line errors."""
    workers = getattr(args, "workers", None)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise GwinferError(f"--workers {workers!r} must be an integer >= 1")
    dest = MODEL_INPUTS.get(getattr(args, "command", None) or "")
    if dest and getattr(args, dest, None):
        from gwinfer.models import resolve_model_path

        try:
            setattr(args, dest, str(resolve_model_path(getattr(args, dest))))
        except GwinferError:
            if dest != "teacher":
                raise
            raise GwinferError(
                f"teacher model {getattr(args, dest)} does not exist (train one with gwinfer train-posterior)"
            ) from None
