"""The gRPC form of KServe v2 inference: ``ModelInferRequest`` / ``ModelInferResponse`` messages.

The messages are the ones that ship inside tritonclient (``tritonclient.grpc.service_pb2``), so the real
``tritonclient.grpc`` client works unchanged. Inputs come as ``raw_input_contents`` (tritonclient's way,
little-endian bytes) or typed ``contents``, or name a shared-memory region; outputs always go back as
``raw_output_contents`` (or into their shared-memory region). Request/tensor parameters are protobuf
``InferParameter`` maps, converted here to and from Python values.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from tritonclient.grpc import model_config_pb2, service_pb2

from gwinfer.errors import GwinferError
from gwinfer.serving.protocol.errors import ServingError
from gwinfer.serving.protocol.shm import Placement, Regions
from gwinfer.serving.protocol.tensors import (
    check_complete,
    check_input,
    check_input_parameters,
    check_output,
    output_placement,
    shm_input,
    write_shm_output,
)
from gwinfer.serving.repository.config import config_message
from gwinfer.serving.repository.specs import TensorSpec
from gwinfer.serving.runtime.versions import ModelVersion

# KServe v2 datatype -> the InferTensorContents field carrying it (FP16 has none: raw contents only)
CONTENTS_FIELDS = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents",
}  # fmt: skip


# --- parameters ---------------------------------------------------------------------------------
def parameter_value(p: service_pb2.InferParameter) -> Any:
    """The Python value of an InferParameter (bool, int, float or str; None if unset)."""
    which = p.WhichOneof("parameter_choice")
    return None if which is None else getattr(p, which)


def parameters_dict(params: Any) -> dict[str, Any]:
    """{key: Python value} of a protobuf ``map<string, InferParameter>``."""
    return {k: parameter_value(v) for k, v in params.items()}


def set_parameter(p: service_pb2.InferParameter, value: Any) -> None:
    """Store a Python bool/int/float/str in an InferParameter."""
    if isinstance(value, bool):
        p.bool_param = value
    elif isinstance(value, int):
        p.int64_param = value
    elif isinstance(value, float):
        p.double_param = value
    else:
        p.string_param = str(value)


# --- request parsing ------------------------------------------------------------------------------
def raw_array(name: str, data: bytes, spec: TensorSpec, count: int) -> np.ndarray:
    """A flat array of ``count`` little-endian values from one ``raw_input_contents`` entry."""
    dtype = spec.numpy_dtype
    size = count * dtype.itemsize
    if len(data) != size:
        raise ServingError(
            400,
            f"input {name!r}: raw_input_contents has {len(data)} bytes; expected "
            f"{count} x {dtype.itemsize} = {size} bytes for {spec.datatype}",
        )
    arr = np.frombuffer(data, dtype=dtype.newbyteorder("<"))  # a read-only view of the message's bytes
    return arr if arr.dtype.isnative else arr.astype(dtype)


def typed_array(tensor: Any, spec: TensorSpec, count: int) -> np.ndarray:
    """A flat array of ``count`` values from the typed ``contents`` of an input tensor."""
    field = CONTENTS_FIELDS.get(spec.datatype)
    if field is None:
        raise ServingError(
            400, f"input {tensor.name!r}: {spec.datatype} tensors have no typed contents; send raw_input_contents"
        )
    values = getattr(tensor.contents, field)
    if len(values) != count:
        raise ServingError(
            400,
            f"input {tensor.name!r}: {len(values)} values in contents.{field} for shape "
            f"{list(tensor.shape)} ({count} values); send them there or as raw_input_contents",
        )
    try:
        return np.array(values, dtype=spec.numpy_dtype)
    except (OverflowError, ValueError) as err:
        raise ServingError(400, f"input {tensor.name!r}: contents.{field} do not fit {spec.datatype} ({err})") from None


def parse_grpc_inputs(
    request: service_pb2.ModelInferRequest, mv: ModelVersion, regions: Regions | None = None
) -> tuple[dict[str, np.ndarray], int]:
    """Validated input arrays of a ModelInferRequest and its batch size (the HTTP path's checks).

    Inputs in a shared-memory region (``shared_memory_region`` parameters) carry no contents; the
    ``raw_input_contents`` entries belong, in order, to the other inputs.
    """
    if not request.inputs:
        raise ServingError(400, f"the request has no inputs; model {mv.name!r} takes {[t.name for t in mv.inputs]}")
    raw = request.raw_input_contents
    params = [parameters_dict(t.parameters) for t in request.inputs]
    in_shm = sum("shared_memory_region" in p for p in params)
    if raw and len(raw) != len(request.inputs) - in_shm:
        raise ServingError(
            400,
            f"raw_input_contents has {len(raw)} entries for {len(request.inputs) - in_shm} "
            f"inputs not in shared memory; send one per input, or none and use contents",
        )
    arrays: dict[str, np.ndarray] = {}
    batch = None
    i = 0  # the next raw_input_contents entry
    for t, p in zip(request.inputs, params):
        shape = list(t.shape)
        spec, batch = check_input(mv, t.name, t.datatype, shape, arrays, batch)
        check_input_parameters(t.name, p)
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        shared = shm_input(regions, p, t.name, spec, shape)
        if shared is not None:
            if t.HasField("contents"):
                raise ServingError(400, f"input {t.name!r} has both a shared-memory region and contents; send one")
            arrays[t.name] = shared
            continue
        if raw and t.HasField("contents"):
            raise ServingError(400, f"input {t.name!r} has both contents and raw_input_contents; send one")
        if raw:
            flat = raw_array(t.name, raw[i], spec, count)
            i += 1
        else:
            flat = typed_array(t, spec, count)
        arrays[t.name] = flat.reshape(shape)
    check_complete(mv, arrays)
    return arrays, batch or 1


def requested_grpc_outputs(
    request: service_pb2.ModelInferRequest, mv: ModelVersion, regions: Regions | None = None, batch: int = 1
) -> list[tuple[str, Placement | None]]:
    """[(output name, shared-memory placement or None)] to return (all outputs when the request names
    none); placements are checked to hold a batch of ``batch``."""
    if not request.outputs:
        return [(t.name, None) for t in mv.outputs]
    wanted = []
    for o in request.outputs:
        p = parameters_dict(o.parameters)
        check_output(mv, o.name, p)
        wanted.append((o.name, output_placement(regions, mv, o.name, p, batch)))
    return wanted


def encode_grpc_response(
    mv: ModelVersion,
    request_id: str,
    outputs: dict[str, np.ndarray],
    wanted: list[tuple[str, Placement | None]],
    extra: dict[str, Any] | None = None,
    regions: Regions | None = None,
) -> service_pb2.ModelInferResponse:
    """A ModelInferResponse with ``wanted`` outputs as little-endian ``raw_output_contents``; an output
    placed in shared memory is written there and gets an empty entry (indices stay aligned) and the
    ``shared_memory_region``/``shared_memory_byte_size`` parameters."""
    specs = {t.name: t for t in mv.outputs}
    resp = service_pb2.ModelInferResponse(model_name=mv.name, model_version=str(mv.version), id=request_id)
    for name, where in wanted:
        spec = specs[name]
        arr = np.ascontiguousarray(outputs[name], dtype=spec.numpy_dtype)
        out = resp.outputs.add(name=name, datatype=spec.datatype, shape=list(arr.shape))
        if where is not None and regions is not None:
            for key, value in write_shm_output(regions, where, name, arr).items():
                set_parameter(out.parameters[key], value)
            resp.raw_output_contents.append(b"")
            continue
        resp.raw_output_contents.append(arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes())
    for key, value in (extra or {}).items():
        set_parameter(resp.parameters[key], value)
    return resp


def model_config_message(mv: ModelVersion) -> model_config_pb2.ModelConfig:
    """Triton's ModelConfig message of a version's config dict (ServingError(500) if it does not fit)."""
    try:
        return config_message(mv.config, f"config.pbtxt of model {mv.name!r}")
    except GwinferError as err:
        raise ServingError(500, str(err)) from None
