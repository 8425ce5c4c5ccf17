"""The HTTP/REST form of KServe v2 inference: a JSON header, optionally followed by binary tensor data.

``POST /v2/models/{m}/infer`` bodies are a JSON object ``{"id"?, "parameters"?, "inputs": [...],
"outputs"?: [...]}``; with the binary tensor extension the header is followed by the raw little-endian
bytes of the inputs that carry ``binary_data_size`` parameters, and ``Inference-Header-Content-Length``
gives the header's length in bytes. Inputs may instead name a shared-memory region (:mod:`.shm`).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

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
from gwinfer.serving.runtime.versions import ModelVersion

Wanted = list[tuple[str, bool, Placement | None]]  # (output name, binary?, shared-memory placement)


def header_length_of(header_length: str | None) -> int:
    """The integer value of an Inference-Header-Content-Length header (0 if absent or not an integer)."""
    try:
        return int(header_length) if header_length is not None else 0
    except ValueError:
        return 0


def json_header(
    body: bytes | memoryview, header_length: str | None, max_json_bytes: int | None = None
) -> tuple[dict[str, Any], bytes | memoryview]:
    """(the JSON inference header, the binary tensor data after it) of an HTTP inference body; a JSON part
    longer than ``max_json_bytes`` is refused (413) before it is parsed."""
    if header_length is None:
        head, blob = body, b""
    else:
        try:
            n = int(header_length)
        except ValueError:
            raise ServingError(400, f"Inference-Header-Content-Length {header_length!r} is not an integer") from None
        if not 0 < n <= len(body):
            raise ServingError(400, f"Inference-Header-Content-Length {n} is outside the body length {len(body)}")
        head, blob = body[:n], body[n:]
    if max_json_bytes is not None and len(head) > max_json_bytes:
        raise ServingError(
            413,
            f"JSON inference header of {len(head)} bytes exceeds the limit of {max_json_bytes}: send large tensors "
            "as binary data (Inference-Header-Content-Length, binary_data_size)",
        )
    try:
        req = json.loads(bytes(head) if isinstance(head, memoryview) else head)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ServingError(400, f"malformed JSON inference header: {err}") from None
    except RecursionError:  # e.g. 100k nested '[': the decoder's recursion limit, not a server fault
        raise ServingError(400, "malformed JSON inference header: nested too deeply") from None
    if not isinstance(req, dict):
        raise ServingError(400, "the inference request must be a JSON object")
    return req, blob


def binary_input(
    name: str, params: dict[str, Any], blob: bytes | memoryview, offset: int, dtype: np.dtype, count: int
) -> np.ndarray:
    """The ``count`` values of input ``name`` at byte ``offset`` of the binary data (a view, no copy)."""
    size = params["binary_data_size"]
    if not isinstance(size, int) or size != count * dtype.itemsize:
        raise ServingError(400, f"input {name!r}: binary_data_size {size!r} != {count} x {dtype.itemsize} bytes")
    if offset + size > len(blob):
        raise ServingError(400, f"input {name!r}: binary data truncated ({len(blob) - offset} of {size} bytes)")
    arr = np.frombuffer(blob, dtype=dtype.newbyteorder("<"), count=count, offset=offset)
    return arr if arr.dtype.isnative else arr.astype(dtype)  # big-endian hosts only copy


def json_input(
    name: str, entry: dict[str, Any], dtype: np.dtype, datatype: str, count: int, shape: list[int]
) -> np.ndarray:
    """The ``data`` list of a JSON input as an array of ``count`` values."""
    if "data" not in entry:
        raise ServingError(400, f"input {name!r} has neither data nor binary_data_size")
    try:
        with np.errstate(over="ignore"):  # 1e39 as FP32 is inf, refused by the value check with one line
            arr = np.asarray(entry["data"], dtype=dtype)
    except (TypeError, ValueError) as err:
        raise ServingError(400, f"input {name!r}: data are not {datatype} numbers ({err})") from None
    if arr.size != count:
        raise ServingError(400, f"input {name!r}: {arr.size} data values for shape {shape}")
    return arr


def parse_inputs(
    req: dict[str, Any], blob: bytes | memoryview, mv: ModelVersion, regions: Regions | None = None
) -> tuple[dict[str, np.ndarray], int]:
    """Validated input arrays of an inference request and its batch size.

    Binary inputs are views of ``blob`` and shared-memory inputs views of their ``regions`` (no copies).
    """
    entries = req.get("inputs")
    if not isinstance(entries, list) or not entries:
        raise ServingError(400, 'the request needs a non-empty "inputs" list')
    arrays: dict[str, np.ndarray] = {}
    offset = 0
    batch = None
    for e in entries:
        if not isinstance(e, dict) or not isinstance(e.get("name"), str):
            raise ServingError(400, 'each input needs a "name"')
        name, shape = e["name"], e.get("shape")
        spec, batch = check_input(mv, name, e.get("datatype"), shape, arrays, batch)
        count = int(np.prod(shape)) if shape else 1
        params = e.get("parameters") or {}
        check_input_parameters(name, params)
        arr = shm_input(regions, params, name, spec, shape)
        if arr is not None:
            if "binary_data_size" in params or "data" in e:
                raise ServingError(400, f"input {name!r} has both a shared-memory region and data; send one")
        elif "binary_data_size" in params:
            arr = binary_input(name, params, blob, offset, spec.numpy_dtype, count)
            offset += params["binary_data_size"]
        else:
            arr = json_input(name, e, spec.numpy_dtype, spec.datatype, count, shape)
        arrays[name] = arr.reshape(shape)
    if offset != len(blob):
        raise ServingError(400, f"{len(blob) - offset} unexpected bytes after the binary input data")
    check_complete(mv, arrays)
    return arrays, batch or 1


def requested_outputs(req: dict[str, Any], mv: ModelVersion, regions: Regions | None = None, batch: int = 1) -> Wanted:
    """[(output name, binary?, shared-memory placement or None)] of a request (all outputs when none
    are named); placements are checked to hold a batch of ``batch``."""
    params = req.get("parameters") or {}
    default_binary = bool(params.get("binary_data_output", False)) if isinstance(params, dict) else False
    names = [t.name for t in mv.outputs]
    outs = req.get("outputs")
    if outs is None:
        return [(n, default_binary, None) for n in names]
    if not isinstance(outs, list):
        raise ServingError(400, '"outputs" must be a list')
    result = []
    for o in outs:
        if not isinstance(o, dict):
            raise ServingError(400, f"unknown output {o!r} for model {mv.name!r}; expected {names}")
        p = o.get("parameters") or {}
        check_output(mv, o.get("name"), p)
        result.append(
            (o["name"], bool(p.get("binary_data", default_binary)), output_placement(regions, mv, o["name"], p, batch))
        )
    return result


def encode_response(
    mv: ModelVersion,
    req: dict[str, Any],
    outputs: dict[str, np.ndarray],
    wanted: Wanted,
    extra: dict[str, Any] | None = None,
    regions: Regions | None = None,
) -> tuple[bytes, int | None]:
    """(body, JSON header length or None) of an inference response; shared-memory outputs are written
    into their regions and answered without data."""
    specs = {t.name: t for t in mv.outputs}
    resp: dict[str, Any] = {"model_name": mv.name, "model_version": str(mv.version)}
    if "id" in req:
        resp["id"] = req["id"]
    if extra:
        resp["parameters"] = extra
    tensors, blobs = [], []
    for name, binary, where in wanted:
        arr = np.ascontiguousarray(outputs[name], dtype=specs[name].numpy_dtype)
        t: dict[str, Any] = {"name": name, "datatype": specs[name].datatype, "shape": list(arr.shape)}
        if where is not None and regions is not None:
            t["parameters"] = write_shm_output(regions, where, name, arr)
        elif binary:
            data = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
            t["parameters"] = {"binary_data_size": len(data)}
            blobs.append(data)
        else:
            flat = arr.reshape(-1)
            if flat.dtype.kind == "f" and not np.all(np.isfinite(flat)):
                # JSON has no NaN or inf: such entries (e.g. a streaming entry's outputs before its window is
                # full) are null; binary outputs carry them as IEEE values
                t["data"] = [v if np.isfinite(v) else None for v in flat.tolist()]
            else:
                t["data"] = flat.tolist()
        tensors.append(t)
    resp["outputs"] = tensors
    head = json.dumps(resp, separators=(",", ":"), allow_nan=False).encode()
    if not blobs:
        return head, None
    return b"".join([head, *blobs]), len(head)
