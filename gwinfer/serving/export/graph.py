"""Writing a torch module as an ONNX or TorchScript graph, and running an exported file.

ONNX: the legacy (TorchScript-based) exporter first, then the dynamo exporter; dynamic axes are named
per tensor. TorchScript: ``torch.jit.trace`` (Triton's ``pytorch_libtorch`` format). The exported files
are run with onnxruntime (``.onnx``) or ``torch.jit.load`` (``.pt``) to check them against torch.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gwinfer.errors import GwinferError

DEFAULT_OPSET = 17
MAX_DYNAMIC_SIZE = 1 << 24  # upper bound of a dynamic axis for the dynamo exporter


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (at most 200 characters), or its type's name."""
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else type(err).__name__


def export_onnx(
    model: torch.nn.Module,
    example: tuple[torch.Tensor, ...],
    path: Path,
    input_names: tuple[str, ...],
    output_names: tuple[str, ...],
    dynamic_axes: dict[str, dict[int, str]],
    opset: int = DEFAULT_OPSET,
) -> str:
    """Write ``model`` traced on ``example`` as ONNX at ``path``; returns the exporter that worked.

    ``dynamic_axes`` maps tensor names to ``{axis: label}``; the dynamo exporter gets one
    ``torch.export.Dim`` per label (a label shared by tensors is one dimension).
    """
    errors = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                model,
                example,
                str(path),
                input_names=list(input_names),
                output_names=list(output_names),
                dynamic_axes=dynamic_axes,
                opset_version=opset,
                dynamo=False,
            )
            return "torchscript-onnx"
        except Exception as err:  # noqa: BLE001 (fall back to the other exporter)
            errors.append(f"legacy: {first_line(err)}")
        try:
            dims: dict[str, Any] = {}
            shapes = tuple(
                {
                    axis: dims.setdefault(label, torch.export.Dim(label, min=1, max=MAX_DYNAMIC_SIZE))
                    for axis, label in dynamic_axes.get(name, {}).items()
                }
                for name in input_names
            )
            prog = torch.onnx.export(
                model,
                example,
                input_names=list(input_names),
                output_names=list(output_names),
                dynamic_shapes=shapes,
                dynamo=True,
                opset_version=max(opset, 18),
            )
            prog.save(str(path))
            return "dynamo-onnx"
        except Exception as err:  # noqa: BLE001
            errors.append(f"dynamo: {first_line(err)}")
    raise GwinferError("ONNX export failed (" + "; ".join(errors) + ")")


def export_torchscript(model: torch.nn.Module, example: tuple[torch.Tensor, ...], path: Path) -> str:
    """Write ``model`` traced on ``example`` as TorchScript at ``path``; returns the exporter used."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, example, check_trace=False)
    traced.save(str(path))
    return "torch.jit.trace"


def check_onnx(path: Path) -> None:
    """The ONNX checker on a written file (raises on a malformed graph)."""
    import onnx

    onnx.checker.check_model(str(path))


def run_exported_all(
    path: str | Path, inputs: list[np.ndarray], threads: int = 1, output_names: list[str] | None = None
) -> list[np.ndarray]:
    """Every output of an exported model file (``.onnx`` with onnxruntime, ``.pt`` with torch.jit) on
    ``inputs``, given in the graph's input order (ONNX: ``output_names`` picks and orders the outputs)."""
    p = Path(path)
    if p.suffix == ".onnx":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"])
        feed = {spec.name: value for spec, value in zip(sess.get_inputs(), inputs)}
        return list(sess.run(output_names, feed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated but is Triton's format
        module = torch.jit.load(str(p), map_location="cpu")
    with torch.inference_mode():
        out = module(*(torch.from_numpy(v) for v in inputs))
    return [t.numpy() for t in (out if isinstance(out, (tuple, list)) else (out,))]


def run_exported(path: str | Path, x: np.ndarray, threads: int = 1) -> np.ndarray:
    """Run an exported single-input model file (``.onnx`` with onnxruntime, ``.pt`` with torch.jit) on x."""
    return run_exported_all(path, [x], threads)[0]
