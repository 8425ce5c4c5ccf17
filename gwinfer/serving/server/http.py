"""The KServe v2 / Open Inference Protocol HTTP endpoints (FastAPI) of ``gwinfer serve``.

They are the ones ``tritonclient.http`` uses, so the standard client works unchanged:

========================================================  ==================================================
``GET  /v2/health/live``, ``/v2/health/ready``            liveness / readiness (200 or 503)
``GET  /v2``                                              server metadata
``GET  /v2/models/{m}[/versions/{v}]``                    model metadata (inputs/outputs: name, datatype, shape)
``GET  /v2/models/{m}[/versions/{v}]/ready``              model readiness
``GET  /v2/models/{m}[/versions/{v}]/config``             the config.pbtxt as JSON (protobuf field names)
``POST /v2/repository/index``                             model list with version and state
``POST /v2/models/{m}[/versions/{v}]/infer``              inference: JSON tensors and the binary tensor extension
``GET  /v2/models/{m}/monitor``                           shadow comparison of development vs production (JSON)
``POST /v2/repository/models/{m}/load``                   (re)load a model: new version folders, labels.json
``POST /v2/systemsharedmemory/region/{r}/register``       system shared memory
``POST /v2/systemsharedmemory[/region/{r}]/unregister``   (:mod:`gwinfer.serving.protocol.shm`): register
``GET  /v2/systemsharedmemory[/region/{r}]/status``       ``{"key", "offset", "byte_size"}``, unregister, status
``GET  /metrics``                                         Prometheus text format (:mod:`.metrics`)
========================================================  ==================================================

Errors are answered with ``{"error": "..."}`` and the status of :mod:`gwinfer.serving.protocol.errors`
(unknown model/version, wrong tensor name/shape/dtype, malformed JSON or binary header, oversized body,
bad token) and never stop the server.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException

from gwinfer._version import __version__
from gwinfer.errors import GwinferError
from gwinfer.serving.protocol.errors import ServingError, error_message, http_status
from gwinfer.serving.protocol.http_codec import (
    encode_response,
    header_length_of,
    json_header,
    parse_inputs,
    requested_outputs,
)
from gwinfer.serving.server.app import After, App, check_ready
from gwinfer.serving.server.body import read_body
from gwinfer.serving.server.middleware import CountingMiddleware

METRICS_MEDIA_TYPE = "text/plain; version=0.0.4"


async def run_all(fns: list[Callable[[], Any]]) -> None:
    """Call each of ``fns`` (in the event loop; starlette runs this after the response is sent)."""
    for fn in fns:
        fn()


async def json_object(state: App, request: Request, refusal: str, required: bool = False) -> dict[str, Any]:
    """The request's JSON object body ({} if empty and not ``required``); ServingError(400, ``refusal``)
    otherwise."""
    body = bytes(await read_body(request, state.max_body_bytes, timeout=state.body_timeout))
    if not body.strip() and not required:
        return {}
    if len(body) > state.max_json_bytes:
        raise ServingError(413, f"JSON body of {len(body)} bytes exceeds the limit of {state.max_json_bytes}")
    try:
        req = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: nested too deeply
        req = None
    if not isinstance(req, dict):
        raise ServingError(400, refusal)
    return req


async def infer(state: App, request: Request, name: str, version: str | None) -> Response:
    """``POST .../infer``: parse, run (batched, streamed or shadowed), encode; counted in the metrics."""
    t0 = time.perf_counter()
    mv = state.model(name, version)
    after: After = []  # shadow offers, made once the response is sent

    async def run() -> tuple[tuple[bytes, int | None], int]:
        head_length = request.headers.get("inference-header-content-length")
        body = await read_body(
            request, state.max_body_bytes, align_at=header_length_of(head_length), timeout=state.body_timeout
        )
        check_ready(mv)
        req, blob = json_header(body, head_length, state.max_json_bytes)
        arrays, batch = parse_inputs(req, blob, mv, state.shm)
        wanted = requested_outputs(req, mv, state.shm, batch)
        params = req.get("parameters") or {}
        params = params if isinstance(params, dict) else {}
        routed = state.route(mv, params, not version)
        outputs, extra, items = await state.execute(routed, arrays, batch, params, after)
        return encode_response(routed, req, outputs, wanted, extra, state.shm), items

    payload, head_len = await state.counted(mv, t0, run)
    background = BackgroundTask(run_all, after) if after else None
    if head_len is None:
        return Response(payload, media_type="application/json", background=background)
    return Response(
        payload,
        media_type="application/octet-stream",
        background=background,
        headers={"Inference-Header-Content-Length": str(head_len)},
    )


def add_model_routes(api: FastAPI, state: App, prefix: str) -> None:
    """Metadata, readiness, config and inference routes under ``prefix`` (with or without a version)."""

    async def meta(name: str, version: str | None = None) -> Response:
        return JSONResponse(state.model_metadata(state.model(name, version), version))

    async def model_ready(name: str, version: str | None = None) -> Response:
        return Response(status_code=200 if state.model(name, version).state == "READY" else 400)

    async def config(name: str, version: str | None = None) -> Response:
        return JSONResponse(state.model(name, version).config)

    async def infer_route(request: Request, name: str, version: str | None = None) -> Response:
        return await infer(state, request, name, version)

    api.add_api_route(prefix, meta, methods=["GET"])
    api.add_api_route(prefix + "/ready", model_ready, methods=["GET"])
    api.add_api_route(prefix + "/config", config, methods=["GET"])
    api.add_api_route(prefix + "/infer", infer_route, methods=["POST"])


def add_shm_routes(api: FastAPI, state: App) -> None:
    """The system shared-memory extension: register, unregister, status (one region or all)."""

    async def register(request: Request, name: str) -> Response:
        req = await json_object(
            state, request, 'the register request must be a JSON object {"key", "offset", "byte_size"}', required=True
        )
        state.shm.register(name, req.get("key"), req.get("offset", 0), req.get("byte_size"))
        return Response(status_code=200)

    async def unregister(name: str = "") -> Response:
        state.shm.unregister(name)
        return Response(status_code=200)

    async def status(name: str = "") -> Response:
        return JSONResponse(state.shm.status(name))

    api.add_api_route("/v2/systemsharedmemory/region/{name}/register", register, methods=["POST"])
    api.add_api_route("/v2/systemsharedmemory/region/{name}/unregister", unregister, methods=["POST"])
    api.add_api_route("/v2/systemsharedmemory/unregister", unregister, methods=["POST"])
    api.add_api_route("/v2/systemsharedmemory/region/{name}/status", status, methods=["GET"])
    api.add_api_route("/v2/systemsharedmemory/status", status, methods=["GET"])


def create_app(state: App) -> FastAPI:
    """The FastAPI application serving ``state``."""
    api = FastAPI(
        title="gwinfer serving (KServe v2)", version=__version__, docs_url=None, redoc_url=None, openapi_url=None
    )

    @api.exception_handler(GwinferError)
    async def gwinfer_error(request: Request, exc: GwinferError) -> Response:
        return JSONResponse({"error": error_message(exc)}, status_code=http_status(exc))

    @api.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return JSONResponse(
            {"error": f"{request.method} {request.url.path}: {exc.detail}"}, status_code=exc.status_code
        )

    api.add_middleware(CountingMiddleware, state=state)

    @api.get("/v2/health/live")
    async def live() -> Response:
        return Response(status_code=200)

    @api.get("/v2/health/ready")
    async def ready() -> Response:
        return Response(status_code=200 if state.ready else 503)

    @api.get("/v2")
    async def server_metadata() -> Response:
        return JSONResponse(state.server_metadata())

    @api.post("/v2/repository/index")
    async def repository_index(request: Request) -> Response:
        req = await json_object(state, request, "the repository index request must be a JSON object")
        return JSONResponse(state.repository_index(bool(req.get("ready", False))))

    @api.post("/v2/repository/models/{name}/load")
    async def load_model(request: Request, name: str) -> Response:
        req = await json_object(state, request, "the load request must be a JSON object")
        return JSONResponse(await state.load_model(name, req.get("parameters")))

    @api.get("/v2/models/{name}/monitor")
    async def monitor(name: str) -> Response:
        return JSONResponse(state.monitor(name))

    @api.get("/metrics")
    async def metrics() -> Response:
        return Response(
            state.metrics.render(state.live_sequences()) + state.shadow.render(), media_type=METRICS_MEDIA_TYPE
        )

    add_shm_routes(api, state)
    add_model_routes(api, state, "/v2/models/{name}/versions/{version}")
    add_model_routes(api, state, "/v2/models/{name}")
    return api
