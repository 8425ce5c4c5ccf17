"""Running a server: :class:`Server` (a background thread, for tests and notebooks) and :func:`serve`
(``gwinfer serve``, the foreground).

HTTP is served by uvicorn (:mod:`.http`) and, when asked, the KServe v2 gRPC protocol (:mod:`.grpc`) in
the same event loop on the same :class:`~.app.App` (``Server(..., grpc_port=0)``, ``serve(...,
grpc_port=8001)``): one set of loaded models, batchers, sequences, metrics and shared-memory regions.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from gwinfer.errors import GwinferError
from gwinfer.serving.server.app import App
from gwinfer.serving.server.http import create_app
from gwinfer.serving.server.limits import protocol_with_header_timeout
from gwinfer.serving.server.options import BACKGROUND_DEFAULTS, ServerOptions, server_options

log = logging.getLogger(__name__)


#: Environment variable holding the bearer token (so that it is not visible in ``ps`` as an argument).
TOKEN_ENV = "GWINFER_TOKEN"


def resolve_token(token: str | None = None, token_file: str | Path | None = None) -> str | None:
    """The bearer token: ``token`` if given, else the first line of ``token_file``, else $GWINFER_TOKEN."""
    if token is not None:
        return token
    if token_file is not None:
        p = Path(token_file)
        if not p.is_file():
            raise GwinferError(f"token file {p} does not exist")
        first = (p.read_text().strip().splitlines() or [""])[0].strip()
        if not first:
            raise GwinferError(f"token file {p} is empty")
        return first
    return os.environ.get(TOKEN_ENV) or None


def _check_host(host: str, token: str | None) -> None:
    """Warn when serving beyond loopback without a token."""
    if host not in ("127.0.0.1", "localhost", "::1") and token is None:
        log.warning("serving on %s without --token: anyone who can reach this address can use the models", host)


def _uvicorn_server(config: Any) -> Any:
    """A uvicorn server whose shutdown first stops the gRPC server in ``.grpc`` (if any).

    Stopping gRPC inside uvicorn's shutdown, rather than after ``serve()`` returns, matters in the
    foreground: uvicorn re-raises a captured SIGTERM/SIGINT as soon as ``serve()`` ends.
    """
    import uvicorn

    class _HttpServer(uvicorn.Server):
        grpc: Any = None
        grpc_port: int | None = None

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            await _stop_grpc(self)
            await super().shutdown(sockets=sockets)

    return _HttpServer(config)


async def _stop_grpc(http: Any) -> None:
    """Stop the gRPC server of uvicorn server ``http`` (if any), letting calls finish for STOP_GRACE_S."""
    from gwinfer.serving.server.grpc import STOP_GRACE_S

    grpc_server, http.grpc = http.grpc, None
    if grpc_server is not None:
        await grpc_server.stop(STOP_GRACE_S)


async def _serve_both(
    http: Any, state: App, host: str, grpc_port: int | None, sockets: list[socket.socket] | None = None
) -> None:
    """Serve HTTP (uvicorn server ``http``) and, unless ``grpc_port`` is None, gRPC in this event loop.

    gRPC starts first (so a port in use fails before HTTP listens); its bound port is ``http.grpc_port``.
    """
    if grpc_port is not None:
        from gwinfer.serving.server.grpc import start_grpc

        http.grpc, http.grpc_port = await start_grpc(state, host, grpc_port)
    try:
        await http.serve(sockets=sockets)
    finally:
        await _stop_grpc(http)


def _run_loop(coro: Coroutine[Any, Any, None], config: Any) -> None:
    """Run ``coro`` to completion in a new event loop of uvicorn's choice (``config.loop``), or asyncio's
    default loop with an older uvicorn (no ``get_loop_factory``) or Python 3.10 (no ``asyncio.Runner``)."""
    factory = config.get_loop_factory() if hasattr(config, "get_loop_factory") else None
    if factory is None or not hasattr(asyncio, "Runner"):
        asyncio.run(coro)
        return
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(coro)


class Server:
    """A server in a background thread, for tests and notebooks::

        with Server("repo", grpc_port=0) as s:         # free ports on 127.0.0.1
            client = tritonclient.http.InferenceServerClient(s.url)
            gclient = tritonclient.grpc.InferenceServerClient(s.grpc_url)

    ``options``: a :class:`~.options.ServerOptions`, with keyword ``changes`` applied; without ``options``
    the defaults are those of ``gwinfer serve`` except ``port=0`` (a free port) and ``grpc_port=None`` (HTTP
    only; 0 picks a free port). HTTP and gRPC share one event loop and one :class:`App`. ``http``: uvicorn's
    HTTP parser, ``"auto"`` (httptools when installed, else pure-Python h11), ``"httptools"`` or ``"h11"``;
    ``loop``: ``"auto"`` (uvloop when installed, else asyncio), ``"uvloop"`` or ``"asyncio"`` (``pip install
    gwinfer[serving]`` brings httptools and uvloop).
    """

    def __init__(self, repo: str | Path, options: ServerOptions | None = None, **changes: Any) -> None:
        self.options = opts = server_options(options, BACKGROUND_DEFAULTS, **changes)
        _check_host(opts.host, opts.token)
        self.http, self.loop = opts.http, opts.loop
        self.header_timeout, self.max_concurrency = float(opts.header_timeout), opts.max_concurrency
        self.state = App(repo, opts)
        self.host, self.port, self.grpc_port = opts.host, opts.port, opts.grpc_port
        self._server = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """``host:port`` (tritonclient's url form, no scheme)."""
        return f"{self.host}:{self.port}"

    @property
    def grpc_url(self) -> str:
        """``host:port`` of the gRPC endpoint (``tritonclient.grpc``'s url form)."""
        if self.grpc_port is None:
            raise GwinferError("this server has no gRPC endpoint; create it with Server(..., grpc_port=0)")
        return f"[{self.host}]:{self.grpc_port}" if ":" in self.host else f"{self.host}:{self.grpc_port}"

    def _run(self, config: Any, sock: socket.socket) -> None:
        try:
            _run_loop(_serve_both(self._server, self.state, self.host, self.grpc_port, [sock]), config)
        except BaseException as err:  # noqa: BLE001 (reported by start())
            self._error = err

    def start(self, timeout: float = 20.0) -> Server:
        """Bind, start serving in a background thread and wait until ready (``timeout`` s)."""
        import uvicorn

        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as err:
            sock.close()
            raise GwinferError(f"cannot listen on {self.host}:{self.port}: {err.strerror}") from None
        self._sock = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(self.state),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_keep_alive=30,
            http=protocol_with_header_timeout(self.http, self.header_timeout),
            loop=self.loop,
            limit_concurrency=self.max_concurrency,
        )
        self._server = _uvicorn_server(config)
        self._thread = threading.Thread(
            target=self._run, args=(config, sock), daemon=True, name=f"gwinfer-serve-{self.port}"
        )
        self._thread.start()
        t0 = time.monotonic()
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() - t0 > timeout:
                error = self._error
                self.stop()
                if isinstance(error, GwinferError):
                    raise error
                raise GwinferError(
                    f"server on {self.url} did not start within {timeout:g} s"
                    + (f": {type(error).__name__}: {error}" if error else "")
                )
            time.sleep(0.01)
        if self.grpc_port is not None:
            self.grpc_port = self._server.grpc_port
        return self

    def stop(self) -> None:
        """Stop serving, join the thread and release the models."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._sock is not None:
            self._sock.close()
        self.state.close()
        self._server = self._thread = self._sock = None

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def serve(repo: str | Path, options: ServerOptions | None = None, **changes: Any) -> None:
    """Serve ``repo`` in the foreground until interrupted (``gwinfer serve``).

    ``options``: a :class:`~.options.ServerOptions` (default: the defaults of ``gwinfer serve``: HTTP on
    127.0.0.1:8000 and gRPC on 8001), with keyword ``changes`` applied (``serve(repo, port=9000,
    grpc_port=None)``). HTTP on host:port; with ``grpc_port`` (not None) also the KServe v2 gRPC protocol
    on host:grpc_port, in the same process and event loop, sharing the models, batcher, sequences and
    metrics. Both ports must be known ones (1 .. 65535; 0, a free port, is for :class:`Server`).
    """
    import uvicorn

    opts = server_options(options, **changes).fixed_ports()
    host, port, grpc_port = opts.host, opts.port, opts.grpc_port
    _check_host(host, opts.token)
    try:
        import torch

        torch.set_num_threads(opts.threads)
    except ImportError:
        pass
    state = App(repo, opts)
    for entry in state.repository_index():
        log.info(
            "model %s version %s: %s%s%s",
            entry["name"],
            entry["version"],
            entry["state"],
            f" ({entry['label']})" if "label" in entry else "",
            f" {entry['reason']}" if "reason" in entry else "",
        )
    log.info("serving %s on http://%s:%d (KServe v2)", repo, host, port)
    config = uvicorn.Config(
        create_app(state),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        http=protocol_with_header_timeout(opts.http, opts.header_timeout),
        loop=opts.loop,
        limit_concurrency=opts.max_concurrency,
    )
    try:
        _run_loop(_serve_both(_uvicorn_server(config), state, host, grpc_port), config)
    except KeyboardInterrupt:
        pass
