"""Checks of inference requests shared by the HTTP and gRPC forms (:mod:`.http_codec`, :mod:`.grpc_codec`).

Every refusal is a :class:`~.errors.ServingError` (400) naming the tensor and what is wrong with it;
shared-memory placements that cannot be honoured are :class:`~.shm.SharedMemoryError` (also 400).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gwinfer.serving.protocol.errors import ServingError
from gwinfer.serving.protocol.shm import Placement, Regions, SharedMemoryError, placement
from gwinfer.serving.repository.specs import TensorSpec
from gwinfer.serving.runtime.versions import ModelVersion


def check_input(
    mv: ModelVersion, name: Any, datatype: Any, shape: Any, seen: dict[str, np.ndarray], batch: int | None
) -> tuple[TensorSpec, int | None]:
    """(spec, batch size so far) of one request input; ServingError(400) naming what is wrong.

    ``seen`` holds the inputs already parsed (duplicates are refused); ``batch`` is the batch size of
    the previous inputs (None before the first).
    """
    specs = {t.name: t for t in mv.inputs}
    if name not in specs:
        raise ServingError(400, f"unexpected input {name!r} for model {mv.name!r}; expected {sorted(specs)}")
    if name in seen:
        raise ServingError(400, f"input {name!r} given twice")
    spec = specs[name]
    if datatype != spec.datatype:
        raise ServingError(400, f"input {name!r} has datatype {datatype!r}; expected {spec.datatype!r}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise ServingError(400, f"input {name!r} needs a shape of non-negative integers, got {shape!r}")
    full = mv.full_shape(spec)
    ok = len(shape) == len(full) and all(f == -1 or f == s for f, s in zip(full, shape))
    if ok and mv.max_batch_size > 0:
        ok = 1 <= shape[0] <= mv.max_batch_size
    if not ok:
        batch_txt = f" with batch in [1, {mv.max_batch_size}]" if mv.max_batch_size > 0 else ""
        raise ServingError(400, f"input {name!r} has shape {shape}; expected {full}{batch_txt}")
    if mv.max_batch_size > 0:
        if batch is not None and shape[0] != batch:
            raise ServingError(400, "all inputs must have the same batch size")
        batch = shape[0]
    return spec, batch


def check_input_parameters(name: str, params: Any) -> None:
    """ServingError(400) unless an input's parameters are an object."""
    if not isinstance(params, dict):
        raise ServingError(400, f"input {name!r}: parameters must be an object")


#: Inputs that carry the signal (h22, whitened strain, features): an all-zero row of one has nothing to infer from.
SIGNAL_INPUTS = ("waveform", "strain", "features")
#: Largest |value| accepted in a float input: h22 in geometric units and whitened strain are O(1)-O(100).
MAX_ABS_INPUT = 1e6


def check_values(name: str, arr: np.ndarray) -> None:
    """ServingError(400) for a float input holding NaN/inf, values beyond +-:data:`MAX_ABS_INPUT`, or an
    all-zero row of a signal input."""
    if arr.dtype.kind != "f" or arr.size == 0:
        return
    if not np.all(np.isfinite(arr)):
        raise ServingError(400, f"input {name!r} holds NaN or inf; only finite values are accepted")
    peak = float(np.max(np.abs(arr)))
    if peak > MAX_ABS_INPUT:
        raise ServingError(
            400,
            f"input {name!r} has values up to {peak:.3g}; accepted |x| <= {MAX_ABS_INPUT:g} (h22 and whitened strain are O(1))",
        )
    if name in SIGNAL_INPUTS and arr.ndim >= 2:
        rows = np.flatnonzero(~np.any(arr.reshape(arr.shape[0], -1), axis=1))
        if rows.size:
            raise ServingError(
                400, f"input {name!r} is all zeros in batch row(s) {rows[:5].tolist()}: no signal to infer from"
            )


def check_complete(mv: ModelVersion, arrays: dict[str, np.ndarray]) -> None:
    """ServingError(400) unless every input of ``mv`` was given, with finite, sensible values."""
    missing = sorted({t.name for t in mv.inputs} - set(arrays))
    if missing:
        raise ServingError(400, f"missing input(s) {missing} for model {mv.name!r}")
    for name, arr in arrays.items():
        check_values(name, np.asarray(arr))


def check_output(mv: ModelVersion, name: Any, params: Any) -> None:
    """ServingError(400) unless ``name`` is an output of ``mv`` requested without unsupported parameters."""
    names = [t.name for t in mv.outputs]
    if name not in names:
        raise ServingError(400, f"unknown output {name!r} for model {mv.name!r}; expected {names}")
    if not isinstance(params, dict):
        raise ServingError(400, "output parameters must be an object")
    if "classification" in params:
        raise ServingError(400, "classification outputs are not supported")


def shm_input(
    regions: Regions | None, params: dict[str, Any], name: str, spec: TensorSpec, shape: list[int]
) -> np.ndarray | None:
    """The input ``name`` read from the shared-memory region its parameters name (a view, no copy),
    or None if they name none; SharedMemoryError for a bad placement."""
    where = placement(params, f"input {name!r}")
    if where is None:
        return None
    if regions is None:
        raise SharedMemoryError("shared-memory inputs are not supported here")
    return regions.read(where, spec.numpy_dtype, shape, f"input {name!r}")


def output_placement(
    regions: Regions | None, mv: ModelVersion, name: str, params: dict[str, Any], batch: int
) -> Placement | None:
    """The shared-memory placement of requested output ``name`` (None: in the response), checked to
    hold the output of a batch of ``batch`` before the model runs; SharedMemoryError otherwise."""
    what = f"output {name!r}"
    where = placement(params, what)
    if where is None:
        return None
    if regions is None:
        raise SharedMemoryError("shared-memory outputs are not supported here")
    spec = next(t for t in mv.outputs if t.name == name)
    dims = ([batch] if mv.max_batch_size > 0 else []) + list(spec.dims)
    nbytes = int(np.prod(dims, dtype=np.int64)) * spec.numpy_dtype.itemsize if min(dims, default=0) >= 0 else None
    regions.check_room(where, nbytes, what)
    return where


def write_shm_output(regions: Regions, where: Placement, name: str, arr: np.ndarray) -> dict[str, Any]:
    """Write output ``name`` into its region (SharedMemoryError if it does not fit); the response
    parameters naming it."""
    regions.write(where, arr, f"output {name!r}")
    params: dict[str, Any] = {"shared_memory_region": where.region, "shared_memory_byte_size": where.byte_size}
    if where.offset:
        params["shared_memory_offset"] = where.offset
    return params


def sequence_id(params: dict[str, Any], model: str) -> int | str:
    """The request's non-zero ``sequence_id`` parameter (an int or a string); ServingError(400) otherwise."""
    seq = params.get("sequence_id")
    if isinstance(seq, bool) or not isinstance(seq, (int, str)) or seq in (0, ""):
        raise ServingError(400, f"streaming model {model!r} needs a non-zero sequence_id parameter")
    return seq
