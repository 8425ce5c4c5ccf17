"""The ASGI middleware in front of every HTTP route: bearer token, one-line errors, request counting."""

from __future__ import annotations

import json
import logging
from typing import Any

from gwinfer.serving.protocol.errors import error_message, http_status
from gwinfer.serving.server.app import App

log = logging.getLogger(__name__)


def route_label(path: str) -> str:
    """The ``route`` label of ``gwinfer_http_requests_total`` for a request path."""
    return (
        "infer"
        if path.endswith("/infer")
        else "health"
        if path.startswith("/v2/health")
        else "metrics"
        if path == "/metrics"
        else "monitor"
        if path.endswith("/monitor")
        else "load"
        if path.startswith("/v2/repository/models/")
        else "shm"
        if path.startswith("/v2/systemsharedmemory")
        else "metadata"
        if path.startswith("/v2")
        else "other"
    )


def error_body(message: str) -> bytes:
    """The JSON body of an error answer: ``{"error": message}``."""
    return json.dumps({"error": message}).encode()


class CountingMiddleware:
    """Plain ASGI middleware: the bearer-token check (not on ``/v2/health/*``), the one-line answer of an
    error (:mod:`gwinfer.serving.protocol.errors`: a GwinferError with its status, anything else 500),
    and ``gwinfer_http_requests_total{route,code}``.

    Unlike starlette's ``BaseHTTPMiddleware`` it passes ``receive``/``send`` through untouched (no
    per-chunk tasks or response re-streaming), which matters for multi-megabyte request bodies.
    """

    def __init__(self, app: Any, state: App) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        status = [0]

        async def counted_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            if not path.startswith("/v2/health"):
                headers = {
                    k.decode("latin-1"): v.decode("latin-1")
                    for k, v in scope.get("headers", ())
                    if k == b"authorization"
                }
                self.state.check_token(headers)
            await self.app(scope, receive, counted_send)
        except Exception as exc:  # noqa: BLE001 (answered; the server keeps serving)
            code = http_status(exc)
            if code == 500:
                log.exception("internal error on %s", path)
            if not status[0]:
                body = error_body(error_message(exc))
                await counted_send(
                    {
                        "type": "http.response.start",
                        "status": code,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
        self.state.metrics.http_request(route_label(path), status[0] or 500)
