"""The KServe v2 / Triton gRPC endpoint (``inference.GRPCInferenceService``) of ``gwinfer serve``.

The real ``tritonclient.grpc`` client works against it unchanged: the messages and the service stub are
the ones that ship inside tritonclient (``tritonclient.grpc.service_pb2``, ``service_pb2_grpc``). The
server is a ``grpc.aio`` server started in the HTTP server's event loop (:func:`start_grpc`), so both
protocols share one :class:`~gwinfer.serving.server.App`: the loaded models, the dynamic batcher, the
streaming sequences (a sequence started over HTTP can go on over gRPC) and the metrics.

======================  ==========================================================================
RPC                     answer
======================  ==========================================================================
ServerLive/ServerReady  health (no token needed, as ``/v2/health/*``)
ModelReady              ``ready`` (false for an unknown model or version, as Triton answers)
ServerMetadata          name, version, extensions
ModelMetadata           input/output names, datatypes, shapes (``-1``: batch), ready versions
ModelConfig             the parsed ``config.pbtxt`` as Triton's ``ModelConfig`` message
RepositoryIndex         name, version, state, reason of every version (``ready`` filters)
ModelInfer              inputs as ``raw_input_contents`` (tritonclient's way) or typed ``contents``;
                        outputs always as ``raw_output_contents``; requested outputs; versions;
                        ``sequence_id``/``sequence_start``/``sequence_end`` request parameters
ModelStreamInfer        ModelInfer for each message of a bidirectional stream, answered in order;
                        a failed message is answered with ``error_message`` and the stream goes on
RepositoryModelLoad     as HTTP ``POST /v2/repository/models/{m}/load``: new versions, labels.json
SystemSharedMemory*     Register / Unregister / Status of system shared-memory regions
                        (:mod:`gwinfer.serving.shm`, shared with HTTP); inputs and outputs with
                        ``shared_memory_region``/``_byte_size``/``_offset`` parameters
======================  ==========================================================================

Other RPCs (statistics, CUDA shared memory, unload, trace/log settings) answer UNIMPLEMENTED.

Status codes (the HTTP statuses of the same errors, mapped): unknown model/version NOT_FOUND; wrong or
missing tensor name, shape, batch, datatype, malformed contents, unknown/expired sequence, a
shared-memory registration or placement that cannot be honoured INVALID_ARGUMENT; missing/wrong token
UNAUTHENTICATED; message larger than the App's ``max_body_bytes`` RESOURCE_EXHAUSTED (by grpc itself); a model that failed to load UNAVAILABLE; an
unexpected exception INTERNAL. None stops the server.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import numpy as np
from google.protobuf import json_format
from tritonclient.grpc import model_config_pb2, service_pb2, service_pb2_grpc

from gwinfer.errors import GwinferError
from gwinfer.serving.repository import TensorSpec
from gwinfer.serving.server import (
    App,
    ModelVersion,
    ServingError,
    check_complete,
    check_input,
    check_input_parameters,
    check_output,
    output_placement,
    shm_input,
    write_shm_output,
)
from gwinfer.serving.shm import Placement, Regions

log = logging.getLogger(__name__)

DEFAULT_GRPC_PORT = 8001
STOP_GRACE_S = 2.0  # seconds in-flight calls may finish when the server stops

STATUS_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}

# KServe v2 datatype -> the InferTensorContents field carrying it (FP16 has none: raw contents only)
CONTENTS_FIELDS = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents",
}  # fmt: skip


def grpc_code(status: int) -> grpc.StatusCode:
    """The gRPC status code of an HTTP status (other 4xx: INVALID_ARGUMENT, else INTERNAL)."""
    if status in STATUS_CODES:
        return STATUS_CODES[status]
    return grpc.StatusCode.INVALID_ARGUMENT if 400 <= status < 500 else grpc.StatusCode.INTERNAL


def error_status(err: Exception) -> tuple[grpc.StatusCode, str]:
    """(status code, one-line message) of an exception raised while answering a call."""
    if isinstance(err, ServingError):
        return grpc_code(err.status), err.message
    if isinstance(err, GwinferError):
        return grpc.StatusCode.INVALID_ARGUMENT, " ".join(str(err).split())
    log.exception("internal error in a gRPC call")
    return grpc.StatusCode.INTERNAL, f"internal error: {type(err).__name__}: {' '.join(str(err).split())[:300]}"


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
def _raw_array(name: str, data: bytes, spec: TensorSpec, count: int) -> np.ndarray:
    """A flat array of ``count`` little-endian values from one ``raw_input_contents`` entry."""
    dtype = spec.numpy_dtype
    size = count * dtype.itemsize
    if len(data) != size:
        raise ServingError(400, f"input {name!r}: raw_input_contents has {len(data)} bytes; expected "
                                f"{count} x {dtype.itemsize} = {size} bytes for {spec.datatype}")
    arr = np.frombuffer(data, dtype=dtype.newbyteorder("<"))  # a read-only view of the message's bytes
    return arr if arr.dtype.isnative else arr.astype(dtype)


def _typed_array(tensor: Any, spec: TensorSpec, count: int) -> np.ndarray:
    """A flat array of ``count`` values from the typed ``contents`` of an input tensor."""
    field = CONTENTS_FIELDS.get(spec.datatype)
    if field is None:
        raise ServingError(400, f"input {tensor.name!r}: {spec.datatype} tensors have no typed contents; "
                                f"send raw_input_contents")
    values = getattr(tensor.contents, field)
    if len(values) != count:
        raise ServingError(400, f"input {tensor.name!r}: {len(values)} values in contents.{field} for shape "
                                f"{list(tensor.shape)} ({count} values); send them there or as raw_input_contents")
    try:
        return np.array(values, dtype=spec.numpy_dtype)
    except (OverflowError, ValueError) as err:
        raise ServingError(400, f"input {tensor.name!r}: contents.{field} do not fit {spec.datatype} ({err})") from None


def parse_grpc_inputs(request: service_pb2.ModelInferRequest, mv: ModelVersion,
                      regions: Regions | None = None) -> tuple[dict[str, np.ndarray], int]:
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
        raise ServingError(400, f"raw_input_contents has {len(raw)} entries for {len(request.inputs) - in_shm} "
                                f"inputs not in shared memory; send one per input, or none and use contents")
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
            flat = _raw_array(t.name, raw[i], spec, count)
            i += 1
        else:
            flat = _typed_array(t, spec, count)
        arrays[t.name] = flat.reshape(shape)
    check_complete(mv, arrays)
    return arrays, batch or 1


def requested_grpc_outputs(request: service_pb2.ModelInferRequest, mv: ModelVersion, regions: Regions | None = None,
                           batch: int = 1) -> list[tuple[str, Placement | None]]:
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


def encode_grpc_response(mv: ModelVersion, request_id: str, outputs: dict[str, np.ndarray],
                         wanted: list[tuple[str, Placement | None]], extra: dict[str, Any] | None = None,
                         regions: Regions | None = None) -> service_pb2.ModelInferResponse:
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
    """Triton's ModelConfig message of a parsed ``config.pbtxt`` (fields it does not know are skipped)."""
    try:
        return json_format.ParseDict(mv.config, model_config_pb2.ModelConfig(), ignore_unknown_fields=True)
    except json_format.ParseError as err:
        raise ServingError(500, f"config.pbtxt of model {mv.name!r} does not fit Triton's ModelConfig: "
                                f"{' '.join(str(err).split())}") from None


# --- the service ------------------------------------------------------------------------------------
Handler = Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[Any]]


def rpc(exempt: bool = False) -> Callable[[Handler], Handler]:
    """Decorate a unary handler: token check (unless ``exempt``), errors -> status codes, metrics."""

    def wrap(fn: Handler) -> Handler:
        @functools.wraps(fn)
        async def handler(self: InferenceServicer, request: Any, context: grpc.aio.ServicerContext) -> Any:
            code = grpc.StatusCode.OK
            try:
                if not exempt:
                    self.check_token(context)
                return await fn(self, request, context)
            except Exception as err:  # noqa: BLE001 (answered as a status; the server keeps serving)
                code, message = error_status(err)
                await context.abort(code, message)
            finally:
                self.state.metrics.grpc_request(fn.__name__, code.name)

        return handler

    return wrap


class InferenceServicer(service_pb2_grpc.GRPCInferenceServiceServicer):
    """``inference.GRPCInferenceService`` over an :class:`App` (shared with the HTTP server)."""

    def __init__(self, state: App) -> None:
        self.state = state

    def check_token(self, context: grpc.aio.ServicerContext) -> None:
        """ServingError(401) unless the call carries ``authorization: Bearer TOKEN`` (when a token is set)."""
        try:
            self.state.check_token(dict(context.invocation_metadata() or ()))
        except ServingError:
            raise ServingError(401, "missing or wrong bearer token; send the metadata "
                                    "'authorization: Bearer <token>'") from None

    @rpc(exempt=True)
    async def ServerLive(self, request: Any, context: Any) -> service_pb2.ServerLiveResponse:
        return service_pb2.ServerLiveResponse(live=True)

    @rpc(exempt=True)
    async def ServerReady(self, request: Any, context: Any) -> service_pb2.ServerReadyResponse:
        return service_pb2.ServerReadyResponse(ready=self.state.ready)

    @rpc()
    async def ModelReady(self, request: service_pb2.ModelReadyRequest, context: Any) -> service_pb2.ModelReadyResponse:
        try:
            mv = self.state.model(request.name, request.version or None)
        except ServingError:  # unknown or without a ready version: not ready (Triton's answer)
            return service_pb2.ModelReadyResponse(ready=False)
        return service_pb2.ModelReadyResponse(ready=mv.state == "READY")

    @rpc()
    async def ServerMetadata(self, request: Any, context: Any) -> service_pb2.ServerMetadataResponse:
        return service_pb2.ServerMetadataResponse(**self.state.server_metadata())

    @rpc()
    async def ModelMetadata(self, request: service_pb2.ModelMetadataRequest,
                            context: Any) -> service_pb2.ModelMetadataResponse:
        mv = self.state.model(request.name, request.version or None)
        return json_format.ParseDict(self.state.model_metadata(mv, request.version or None),
                                     service_pb2.ModelMetadataResponse(), ignore_unknown_fields=True)  # labels

    @rpc()
    async def ModelConfig(self, request: service_pb2.ModelConfigRequest, context: Any) -> service_pb2.ModelConfigResponse:
        mv = self.state.model(request.name, request.version or None)
        return service_pb2.ModelConfigResponse(config=model_config_message(mv))

    @rpc()
    async def RepositoryIndex(self, request: service_pb2.RepositoryIndexRequest,
                              context: Any) -> service_pb2.RepositoryIndexResponse:
        entries = self.state.repository_index(ready_only=request.ready)
        fields = ("name", "version", "state", "reason")  # the HTTP index's "label" has no protobuf field
        return service_pb2.RepositoryIndexResponse(models=[service_pb2.RepositoryIndexResponse.ModelIndex(
            **{k: e[k] for k in fields if k in e}) for e in entries])

    @rpc()
    async def RepositoryModelLoad(self, request: service_pb2.RepositoryModelLoadRequest,
                                  context: Any) -> service_pb2.RepositoryModelLoadResponse:
        await self.state.load_model(request.model_name, dict(request.parameters) or None)
        return service_pb2.RepositoryModelLoadResponse()

    @rpc()
    async def ModelInfer(self, request: service_pb2.ModelInferRequest, context: Any) -> service_pb2.ModelInferResponse:
        after: list[Callable[[], Any]] = []  # shadow offers, made once the call is done
        response = await self.infer(request, after)
        for fn in after:
            context.add_done_callback(lambda _context, fn=fn: fn())
        return response

    @rpc()
    async def SystemSharedMemoryRegister(self, request: service_pb2.SystemSharedMemoryRegisterRequest,
                                         context: Any) -> service_pb2.SystemSharedMemoryRegisterResponse:
        self.state.shm.register(request.name, request.key, request.offset, request.byte_size)
        return service_pb2.SystemSharedMemoryRegisterResponse()

    @rpc()
    async def SystemSharedMemoryUnregister(self, request: service_pb2.SystemSharedMemoryUnregisterRequest,
                                           context: Any) -> service_pb2.SystemSharedMemoryUnregisterResponse:
        self.state.shm.unregister(request.name)
        return service_pb2.SystemSharedMemoryUnregisterResponse()

    @rpc()
    async def SystemSharedMemoryStatus(self, request: service_pb2.SystemSharedMemoryStatusRequest,
                                       context: Any) -> service_pb2.SystemSharedMemoryStatusResponse:
        resp = service_pb2.SystemSharedMemoryStatusResponse()
        for entry in self.state.shm.status(request.name):
            resp.regions[entry["name"]].CopyFrom(service_pb2.SystemSharedMemoryStatusResponse.RegionStatus(**entry))
        return resp

    async def ModelStreamInfer(self, request_iterator: AsyncIterator[service_pb2.ModelInferRequest],
                               context: grpc.aio.ServicerContext) -> AsyncIterator[service_pb2.ModelStreamInferResponse]:
        """Answer each request of the stream in order; a failure is an ``error_message`` response."""
        try:
            self.check_token(context)
        except ServingError as err:
            self.state.metrics.grpc_request("ModelStreamInfer", grpc_code(err.status).name)
            await context.abort(grpc_code(err.status), err.message)
        async for request in request_iterator:
            after: list[Callable[[], Any]] = []
            try:
                response = service_pb2.ModelStreamInferResponse(infer_response=await self.infer(request, after))
                code = grpc.StatusCode.OK
            except Exception as err:  # noqa: BLE001 (reported in the stream, which goes on)
                code, message = error_status(err)
                response = service_pb2.ModelStreamInferResponse(error_message=message, infer_response=(
                    service_pb2.ModelInferResponse(model_name=request.model_name, id=request.id)))
            self.state.metrics.grpc_request("ModelStreamInfer", code.name)
            yield response
            for fn in after:  # resumed once the response was handed on
                fn()

    async def infer(self, request: service_pb2.ModelInferRequest,
                    after: list[Callable[[], Any]] | None = None) -> service_pb2.ModelInferResponse:
        """The response to one inference request, counted in the shared metrics (``after``: see
        :meth:`App.execute <gwinfer.serving.server.App.execute>`)."""
        t0 = time.perf_counter()
        mv = self.state.model(request.model_name, request.model_version or None)

        async def run() -> tuple[service_pb2.ModelInferResponse, int]:
            self.state.check_ready(mv)
            arrays, batch = parse_grpc_inputs(request, mv, self.state.shm)
            wanted = requested_grpc_outputs(request, mv, self.state.shm, batch)
            params = parameters_dict(request.parameters)
            routed = self.state.route(mv, params, not request.model_version)
            outputs, extra, items = await self.state.execute(routed, arrays, batch, params, after)
            return encode_grpc_response(routed, request.id, outputs, wanted, extra, self.state.shm), items

        return await self.state.counted(mv, t0, run)


# --- running ---------------------------------------------------------------------------------------
def grpc_address(host: str, port: int) -> str:
    """``host:port`` as grpc wants it (IPv6 literals in brackets)."""
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


async def start_grpc(state: App, host: str = "127.0.0.1", port: int = DEFAULT_GRPC_PORT) -> tuple[grpc.aio.Server, int]:
    """(started grpc.aio server answering for ``state``, bound port) on host:port (port 0: a free one).

    Call it inside the event loop that serves HTTP for the same ``state``. Messages larger than
    ``state.max_body_bytes`` bytes are refused (RESOURCE_EXHAUSTED); the port is not shared
    (``SO_REUSEPORT`` off), so a port in use is an error rather than a silent second listener.
    """
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", state.max_body_bytes),
        ("grpc.so_reuseport", 0),
    ])
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(state), server)
    address = grpc_address(host, port)
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as err:  # grpc >= 1.5x raises; older versions return 0
        bound, reason = 0, " ".join(str(err).split(";")[0].split())
    else:
        reason = "port in use or address not available"
    if not bound:
        await server.stop(None)
        raise GwinferError(f"cannot listen for gRPC on {address} ({reason}); choose another --grpc-port "
                           f"or 0 to serve HTTP only")
    await server.start()
    log.info("serving KServe v2 gRPC on %s", grpc_address(host, bound))
    return server, bound
