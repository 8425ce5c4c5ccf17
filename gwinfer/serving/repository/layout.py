"""Layout of a Triton-style model repository (NVIDIA Triton's, so ``tritonserver`` serves it unchanged)::

    REPO/<name>/config.pbtxt            model configuration (protobuf text format, :mod:`.config`)
    REPO/<name>/labels.json             production / development versions (:mod:`.labels`; Triton ignores it)
    REPO/<name>/<version>/model.onnx    platform onnxruntime_onnx   (or model.pt: pytorch_libtorch)
    REPO/<name>/<version>/gwinfer.json  provenance of that version (ignored by Triton)

With ``backend: "python"`` instead of a platform (``gwinfer export --backend python``) the version folder
also holds ``model.py``, a Triton Python-backend model that runs ``model.onnx`` with onnxruntime (for
Triton builds without the onnxruntime backend); gwinfer's own server runs the same ``model.onnx``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from gwinfer.errors import GwinferError

CONFIG_FILE = "config.pbtxt"
PLATFORM_FILES = {"onnxruntime_onnx": "model.onnx", "pytorch_libtorch": "model.pt"}
FORMAT_PLATFORMS = {"onnx": "onnxruntime_onnx", "torchscript": "pytorch_libtorch"}
# Triton backends (config ``backend:`` without ``platform:``) gwinfer serves, and the platform whose model
# file it runs for them: a gwinfer Python-backend export is model.py + model.onnx
BACKEND_PLATFORMS = {"python": "onnxruntime_onnx"}

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.\-]+$")


def check_name(name: str) -> str:
    """``name`` if it is a usable model name (letters, digits, ``_ . -``), else a one-line error."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name) or name.startswith("."):
        raise GwinferError(f"model name {name!r} must be letters, digits, '_', '.' or '-' (not starting with '.')")
    return name


def list_versions(model_dir: str | Path) -> list[int]:
    """Sorted integer version folders of a model folder."""
    d = Path(model_dir)
    if not d.is_dir():
        return []
    return sorted(int(p.name) for p in d.iterdir() if p.is_dir() and p.name.isdigit())


def list_models(repo: str | Path) -> list[str]:
    """Names of the model folders (holding a config.pbtxt) of a repository."""
    r = Path(repo)
    if not r.is_dir():
        raise GwinferError(f"model repository {r} does not exist")
    return sorted(p.name for p in r.iterdir() if p.is_dir() and (p / CONFIG_FILE).is_file())


def runtime_platform(cfg: dict[str, Any]) -> str:
    """The platform whose model file gwinfer runs for a config (``backend: "python"``: onnxruntime_onnx)."""
    return cfg["platform"] if "platform" in cfg else BACKEND_PLATFORMS[cfg["backend"]]


def model_filename(cfg: dict[str, Any]) -> str:
    """The model file gwinfer runs in each version folder (for the Python backend always model.onnx:
    Triton sets ``default_model_filename`` to the Python file there)."""
    platform = runtime_platform(cfg)
    if "platform" not in cfg:
        return PLATFORM_FILES[platform]
    return cfg.get("default_model_filename") or PLATFORM_FILES[platform]


def check_served(cfg: dict[str, Any], where: str) -> None:
    """One-line GwinferError unless gwinfer serves the config's platform or backend."""
    native = cfg.get("platform") in PLATFORM_FILES
    if not native and not ("platform" not in cfg and cfg.get("backend") in BACKEND_PLATFORMS):
        what = f"platform {cfg['platform']!r}" if "platform" in cfg else f"backend {cfg.get('backend')!r}"
        raise GwinferError(
            f"{where}: {what} is not served; use a platform of {sorted(PLATFORM_FILES)} or a "
            f"backend of {sorted(BACKEND_PLATFORMS)}"
        )
