"""The real NVIDIA Triton Inference Server: the launcher, and the Python-backend models gwinfer exports.

* :mod:`.launcher` – find, check, start and stop a ``tritonserver`` (:class:`TritonServer`); its command
  line is :mod:`gwinfer.cli.triton` (``python -m gwinfer.cli.triton --check``)
* :mod:`.python_model` – the ``model.py`` of ``gwinfer export --backend python`` (runs ``model.onnx``)
* :mod:`.stream_model` – the ``model.py`` of python-backend streaming entries (sequence batching)

The two model files are copied verbatim into version folders and run inside Triton's Python-backend
stub: they must not import gwinfer (nor anything outside numpy, onnxruntime and Triton's own
``triton_python_backend_utils``). :data:`PYTHON_MODEL` and :data:`STREAM_MODEL` are their paths.
"""

from pathlib import Path

from gwinfer.serving.triton.launcher import (
    ENV_VAR,
    TritonInstall,
    TritonServer,
    TritonUnavailable,
    check_install,
    find_triton,
    free_port,
)

PYTHON_MODEL = Path(__file__).with_name("python_model.py")  # becomes <version>/model.py
STREAM_MODEL = Path(__file__).with_name("stream_model.py")  # <version>/model.py of python streaming entries

__all__ = [
    "ENV_VAR",
    "PYTHON_MODEL",
    "STREAM_MODEL",
    "TritonInstall",
    "TritonServer",
    "TritonUnavailable",
    "check_install",
    "find_triton",
    "free_port",
]
