"""The KServe v2 / Triton gRPC endpoint (``inference.GRPCInferenceService``) of ``gwinfer serve``.

The real ``tritonclient.grpc`` client works against it unchanged: the messages and the service stub are
the ones that ship inside tritonclient (``tritonclient.grpc.service_pb2``, ``service_pb2_grpc``). The
server is a ``grpc.aio`` server started in the HTTP server's event loop (:func:`start_grpc`), so both
protocols share one :class:`~gwinfer.serving.server.app.App`: the loaded models, the dynamic batcher, the
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
                        (:mod:`gwinfer.serving.protocol.shm`, shared with HTTP); inputs and outputs with
                        ``shared_memory_region``/``_byte_size``/``_offset`` parameters
======================  ==========================================================================

Other RPCs (statistics, CUDA shared memory, unload, trace/log settings) answer UNIMPLEMENTED.

Status codes: the HTTP statuses of the same errors, mapped in :mod:`gwinfer.serving.protocol.errors`
(unknown model/version NOT_FOUND; bad tensors, sequences or shared-memory placements INVALID_ARGUMENT;
missing/wrong token UNAUTHENTICATED; a model that failed to load UNAVAILABLE; an unexpected exception
INTERNAL); a message larger than the App's ``max_body_bytes`` is RESOURCE_EXHAUSTED (by grpc itself).
None stops the server.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import json_format
from tritonclient.grpc import service_pb2, service_pb2_grpc

from gwinfer.errors import GwinferError
from gwinfer.serving.protocol.errors import ServingError, error_message, grpc_code_name, http_status
from gwinfer.serving.protocol.grpc_codec import (
    encode_grpc_response,
    model_config_message,
    parameters_dict,
    parse_grpc_inputs,
    requested_grpc_outputs,
)
from gwinfer.serving.server.app import After, App, check_ready

log = logging.getLogger(__name__)

DEFAULT_GRPC_PORT = 8001
STOP_GRACE_S = 2.0  # seconds in-flight calls may finish when the server stops


def error_status(err: BaseException) -> tuple[grpc.StatusCode, str]:
    """(status code, one-line message) of an exception raised while answering a call."""
    status = http_status(err)
    if status == 500:
        log.exception("internal error in a gRPC call")
    return grpc.StatusCode[grpc_code_name(status)], error_message(err)


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
            raise ServingError(
                401, "missing or wrong bearer token; send the metadata 'authorization: Bearer <token>'"
            ) from None

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
    async def ModelMetadata(
        self, request: service_pb2.ModelMetadataRequest, context: Any
    ) -> service_pb2.ModelMetadataResponse:
        mv = self.state.model(request.name, request.version or None)
        return json_format.ParseDict(
            self.state.model_metadata(mv, request.version or None),
            service_pb2.ModelMetadataResponse(),
            ignore_unknown_fields=True,
        )  # labels

    @rpc()
    async def ModelConfig(
        self, request: service_pb2.ModelConfigRequest, context: Any
    ) -> service_pb2.ModelConfigResponse:
        mv = self.state.model(request.name, request.version or None)
        return service_pb2.ModelConfigResponse(config=model_config_message(mv))

    @rpc()
    async def RepositoryIndex(
        self, request: service_pb2.RepositoryIndexRequest, context: Any
    ) -> service_pb2.RepositoryIndexResponse:
        entries = self.state.repository_index(ready_only=request.ready)
        fields = ("name", "version", "state", "reason")  # the HTTP index's "label" has no protobuf field
        return service_pb2.RepositoryIndexResponse(
            models=[
                service_pb2.RepositoryIndexResponse.ModelIndex(**{k: e[k] for k in fields if k in e}) for e in entries
            ]
        )

    @rpc()
    async def RepositoryModelLoad(
        self, request: service_pb2.RepositoryModelLoadRequest, context: Any
    ) -> service_pb2.RepositoryModelLoadResponse:
        await self.state.load_model(request.model_name, dict(request.parameters) or None)
        return service_pb2.RepositoryModelLoadResponse()

    @rpc()
    async def ModelInfer(self, request: service_pb2.ModelInferRequest, context: Any) -> service_pb2.ModelInferResponse:
        after: After = []  # shadow offers, made once the call is done
        response = await self.infer(request, after)
        for fn in after:
            context.add_done_callback(lambda _context, fn=fn: fn())
        return response

    @rpc()
    async def SystemSharedMemoryRegister(
        self, request: service_pb2.SystemSharedMemoryRegisterRequest, context: Any
    ) -> service_pb2.SystemSharedMemoryRegisterResponse:
        self.state.shm.register(request.name, request.key, request.offset, request.byte_size)
        return service_pb2.SystemSharedMemoryRegisterResponse()

    @rpc()
    async def SystemSharedMemoryUnregister(
        self, request: service_pb2.SystemSharedMemoryUnregisterRequest, context: Any
    ) -> service_pb2.SystemSharedMemoryUnregisterResponse:
        self.state.shm.unregister(request.name)
        return service_pb2.SystemSharedMemoryUnregisterResponse()

    @rpc()
    async def SystemSharedMemoryStatus(
        self, request: service_pb2.SystemSharedMemoryStatusRequest, context: Any
    ) -> service_pb2.SystemSharedMemoryStatusResponse:
        resp = service_pb2.SystemSharedMemoryStatusResponse()
        for entry in self.state.shm.status(request.name):
            resp.regions[entry["name"]].CopyFrom(service_pb2.SystemSharedMemoryStatusResponse.RegionStatus(**entry))
        return resp

    async def ModelStreamInfer(
        self, request_iterator: AsyncIterator[service_pb2.ModelInferRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[service_pb2.ModelStreamInferResponse]:
        """Answer each request of the stream in order; a failure is an ``error_message`` response."""
        try:
            self.check_token(context)
        except ServingError as err:
            code, message = error_status(err)
            self.state.metrics.grpc_request("ModelStreamInfer", code.name)
            await context.abort(code, message)
        async for request in request_iterator:
            after: After = []
            try:
                response = service_pb2.ModelStreamInferResponse(infer_response=await self.infer(request, after))
                code = grpc.StatusCode.OK
            except Exception as err:  # noqa: BLE001 (reported in the stream, which goes on)
                code, message = error_status(err)
                response = service_pb2.ModelStreamInferResponse(
                    error_message=message,
                    infer_response=(service_pb2.ModelInferResponse(model_name=request.model_name, id=request.id)),
                )
            self.state.metrics.grpc_request("ModelStreamInfer", code.name)
            yield response
            for fn in after:  # resumed once the response was handed on
                fn()

    async def infer(
        self, request: service_pb2.ModelInferRequest, after: After | None = None
    ) -> service_pb2.ModelInferResponse:
        """The response to one inference request, counted in the shared metrics (``after``: see
        :meth:`App.execute <gwinfer.serving.server.app.App.execute>`)."""
        t0 = time.perf_counter()
        mv = self.state.model(request.model_name, request.model_version or None)

        async def run() -> tuple[service_pb2.ModelInferResponse, int]:
            check_ready(mv)
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
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", state.max_body_bytes),
            ("grpc.so_reuseport", 0),
        ]
    )
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
        raise GwinferError(
            f"cannot listen for gRPC on {address} ({reason}); choose another --grpc-port or 0 to serve HTTP only"
        )
    await server.start()
    log.info("serving KServe v2 gRPC on %s", grpc_address(host, bound))
    return server, bound
