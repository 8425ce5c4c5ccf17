"""Tensor specs: one input or output of a model, in Triton config terms and KServe v2 terms."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gwinfer.errors import GwinferError

# Triton config data types <-> KServe v2 datatypes <-> numpy
CONFIG_TO_V2 = {
    "TYPE_FP32": "FP32", "TYPE_FP64": "FP64", "TYPE_FP16": "FP16", "TYPE_INT64": "INT64",
    "TYPE_INT32": "INT32", "TYPE_INT16": "INT16", "TYPE_INT8": "INT8", "TYPE_UINT8": "UINT8",
    "TYPE_BOOL": "BOOL",
}  # fmt: skip
V2_TO_NUMPY = {
    "FP32": np.float32, "FP64": np.float64, "FP16": np.float16, "INT64": np.int64, "INT32": np.int32,
    "INT16": np.int16, "INT8": np.int8, "UINT8": np.uint8, "BOOL": np.bool_,
}  # fmt: skip


@dataclass(frozen=True)
class TensorSpec:
    """One input/output: name, KServe v2 datatype ("FP32") and dims *without* the batch dimension
    (-1: any length)."""

    name: str
    datatype: str
    dims: tuple[int, ...]

    @property
    def numpy_dtype(self) -> np.dtype:
        return np.dtype(V2_TO_NUMPY[self.datatype])

    def to_config(self) -> dict[str, Any]:
        """The ``input``/``output`` entry of a config dict."""
        config_type = next(k for k, v in CONFIG_TO_V2.items() if v == self.datatype)
        return {"name": self.name, "data_type": config_type, "dims": list(self.dims)}

    @classmethod
    def from_config(cls, entry: dict[str, Any], where: str) -> TensorSpec:
        """The spec of one ``input``/``output`` entry of a config dict; one-line GwinferError if unusable."""
        try:
            name, data_type, dims = entry["name"], entry["data_type"], entry["dims"]
        except (KeyError, TypeError):
            raise GwinferError(f"{where}: each input/output needs name, data_type and dims") from None
        if data_type not in CONFIG_TO_V2:
            raise GwinferError(f"{where}: data_type {data_type!r} is not supported; use one of {sorted(CONFIG_TO_V2)}")
        if not all(isinstance(d, int) for d in dims):
            raise GwinferError(f"{where}: dims of {name!r} must be integers, got {dims!r}")
        return cls(str(name), CONFIG_TO_V2[data_type], tuple(int(d) for d in dims))


def config_specs(cfg: dict[str, Any], where: str = "config.pbtxt") -> tuple[list[TensorSpec], list[TensorSpec]]:
    """(inputs, outputs) TensorSpecs of a config dict."""
    return (
        [TensorSpec.from_config(e, where) for e in cfg.get("input", [])],
        [TensorSpec.from_config(e, where) for e in cfg.get("output", [])],
    )
