"""Model runners: a loaded model file called on ``{input name: array}``, returning ``{output name: array}``.

ONNX models run with onnxruntime (CPU execution provider), TorchScript models with ``torch.jit.load``;
both are what Triton's onnxruntime and libtorch backends run. :data:`RUNNERS` maps a Triton platform to
its runner.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Protocol

import numpy as np

from gwinfer.errors import GwinferError


class Runner(Protocol):
    """What the server calls: ``runner({input name: array}) -> {output name: array}``."""

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


class OnnxRunner:
    """An onnxruntime session over ``path`` (``threads`` intra-op threads, one inter-op thread)."""

    def __init__(self, path: Path, input_names: list[str], output_names: list[str], threads: int) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        graph_in = [i.name for i in self.session.get_inputs()]
        graph_out = [o.name for o in self.session.get_outputs()]
        if sorted(graph_in) != sorted(input_names) or not set(output_names) <= set(graph_out):
            raise GwinferError(
                f"{path}: graph tensors {graph_in} -> {graph_out} do not match the config "
                f"{input_names} -> {output_names}"
            )
        self.output_names = output_names

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.output_names, self.session.run(self.output_names, inputs)))


class TorchScriptRunner:
    """A TorchScript module over ``path``; inputs are passed positionally in ``input_names`` order.

    Intra-op threads are the process's (``serve()`` sets them); ``threads`` is unused here.
    """

    def __init__(self, path: Path, input_names: list[str], output_names: list[str], threads: int) -> None:
        import torch

        self.torch = torch
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated but is Triton's format
            self.module = torch.jit.load(str(path), map_location="cpu").eval()
        self.input_names, self.output_names = input_names, output_names

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self.torch
        with torch.inference_mode():
            out = self.module(*[torch.from_numpy(writable(inputs[n])) for n in self.input_names])
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        if len(outs) != len(self.output_names):
            raise GwinferError(f"TorchScript model returned {len(outs)} outputs; config has {len(self.output_names)}")
        return {n: o.numpy() for n, o in zip(self.output_names, outs)}


def writable(a: np.ndarray) -> np.ndarray:
    """``a`` as a C-contiguous writable array (torch.from_numpy refuses read-only views); copies only if needed."""
    a = np.ascontiguousarray(a)
    return a if a.flags.writeable else a.copy()


RUNNERS: dict[str, type[OnnxRunner] | type[TorchScriptRunner]] = {
    "onnxruntime_onnx": OnnxRunner,
    "pytorch_libtorch": TorchScriptRunner,
}
