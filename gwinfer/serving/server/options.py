"""The options of a gwinfer server, defined once: :class:`ServerOptions`.

:class:`~.app.App`, :class:`~.run.Server`, :func:`~.run.serve` and the ``gwinfer serve`` command all take
this one frozen dataclass: every option with its default, unit and one-line help (``option_help``), and
its accepted range checked in ``__post_init__`` (a one-line :class:`~gwinfer.errors.GwinferError`). The
command line builds its ``serve`` options from :func:`dataclasses.fields` of it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from gwinfer.errors import GwinferError
from gwinfer.serving.server.limits import BODY_TIMEOUT_S, HEADER_TIMEOUT_S, MAX_CONCURRENCY

DEFAULT_MAX_BODY = 64 << 20  # bytes (64 MiB): largest HTTP request body / gRPC message
#: Largest JSON part of an HTTP request (bytes): parsing JSON holds the event loop (~20 ms per MB here), so
#: larger tensors must use the binary data extension (a 2.5 MB JSON body raised every request's p99 5x).
DEFAULT_MAX_JSON = 1 << 20
HTTP_PARSERS = ("auto", "httptools", "h11")
EVENT_LOOPS = ("auto", "uvloop", "asyncio")
#: The defaults :class:`~.run.Server` (a background server for tests and notebooks) uses instead:
#: a free HTTP port, no gRPC.
BACKGROUND_DEFAULTS: dict[str, Any] = {"port": 0, "grpc_port": None}


def option(default: Any, help: str, unit: str = "", choices: tuple[str, ...] = (), secret: bool = False) -> Any:
    """A :class:`ServerOptions` field: ``default``, one-line ``help``, ``unit`` ("s", "bytes", or "") and
    ``choices`` in its metadata; a ``secret`` is left out of the repr (logs)."""
    return dataclasses.field(
        default=default, repr=not secret, metadata={"help": help, "unit": unit, "choices": choices}
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_port(port: Any, what: str = "port", free: bool = False) -> int:
    """``port`` as an int in [1, 65535] (with ``free``, 0 too: a free port chosen on binding), else one line."""
    if not _is_int(port) or not (0 if free else 1) <= port <= 65535:
        raise GwinferError(f"{what} {port!r} must be an integer in [1, 65535]")
    return port


@dataclass(frozen=True)
class ServerOptions:
    """How a gwinfer server listens, authenticates, limits requests and runs models (units in brackets).

    Ports: 1 .. 65535, or 0 for a free port chosen on binding (:class:`~.run.Server` only: ``serve`` and
    ``gwinfer serve`` need known ports, see :meth:`fixed_ports`); ``grpc_port`` None serves HTTP only.
    """

    host: str = option("127.0.0.1", "listen address of HTTP and gRPC (0.0.0.0: every interface; give a token then)")
    port: int = option(8000, "HTTP port, 1 .. 65535")
    grpc_port: int | None = option(
        8001,
        "gRPC port (KServe v2 / Triton gRPC protocol, same models and metrics as HTTP), 1 .. 65535; "
        "on the command line 0 or negative (None in Python): no gRPC, HTTP only",
    )
    token: str | None = option(
        None,
        "require 'Authorization: Bearer TOKEN' (HTTP header or gRPC metadata 'authorization'; health checks "
        "exempt); visible in ps: prefer --token-file or $GWINFER_TOKEN",
        secret=True,
    )
    max_body_bytes: int = option(DEFAULT_MAX_BODY, "largest HTTP request body / gRPC message, >= 1024", "bytes")
    max_json_bytes: int = option(
        DEFAULT_MAX_JSON,
        "largest JSON part of an HTTP request, >= 1024 (larger tensors: binary data extension)",
        "bytes",
    )
    threads: int = option(1, "intra-op threads of each model, >= 1")
    max_sequences: int = option(1024, "live streaming sequences per model version, >= 1")
    dynamic_batching: bool = option(
        True, "merge concurrent requests of models whose config.pbtxt has dynamic_batching (Triton's batcher)"
    )
    shadow_fraction: float = option(
        1.0,
        "share of production requests mirrored (after answering) to a model's development version, to compare "
        "them on the live stream (GET /v2/models/NAME/monitor), [0, 1]; 0 disables",
    )
    header_timeout: float = option(
        HEADER_TIMEOUT_S, "time a connection may take to send complete request headers (then closed), (0, 3600]", "s"
    )
    body_timeout: float = option(BODY_TIMEOUT_S, "time a request body may take to arrive (408 after), (0, 3600]", "s")
    max_concurrency: int = option(
        MAX_CONCURRENCY, "connections and requests in flight, 1 .. 100000; beyond it new requests get 503"
    )
    http: str = option("auto", "uvicorn's HTTP parser (auto: httptools when installed, else h11)", choices=HTTP_PARSERS)
    loop: str = option("auto", "event loop (auto: uvloop when installed, else asyncio)", choices=EVENT_LOOPS)

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host:
            raise GwinferError(f"host {self.host!r} must be a listen address (e.g. 127.0.0.1 or 0.0.0.0)")
        check_port(self.port, free=True)
        if self.grpc_port is not None:
            check_port(self.grpc_port, "gRPC port", free=True)
            if self.grpc_port == self.port != 0:
                raise GwinferError(f"the gRPC port must differ from the HTTP port ({self.port})")
        if self.token is not None and (not isinstance(self.token, str) or not self.token.strip()):
            raise GwinferError("the token must be a non-empty string (or None: no authentication)")
        for name in ("max_body_bytes", "max_json_bytes"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1024:
                raise GwinferError(f"{name} = {value!r} must be an integer >= 1024")
        for name in ("threads", "max_sequences"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise GwinferError(f"{name} = {value!r} must be an integer >= 1")
        if not isinstance(self.dynamic_batching, bool):
            raise GwinferError(f"dynamic_batching = {self.dynamic_batching!r} must be true or false")
        if not (_is_number(self.shadow_fraction) and 0.0 <= self.shadow_fraction <= 1.0):
            raise GwinferError(f"shadow fraction = {self.shadow_fraction!r} must be in [0, 1] (0 disables shadowing)")
        for name in ("header_timeout", "body_timeout"):
            value = getattr(self, name)
            if not (_is_number(value) and 0 < value <= 3600):
                raise GwinferError(f"{name} = {value!r} s must lie in (0, 3600] s")
        if not _is_int(self.max_concurrency) or not 1 <= self.max_concurrency <= 100_000:
            raise GwinferError(f"max_concurrency = {self.max_concurrency!r} must be an integer in [1, 100000]")
        for name, accepted in (("http", HTTP_PARSERS), ("loop", EVENT_LOOPS)):
            if getattr(self, name) not in accepted:
                raise GwinferError(f"{name} = {getattr(self, name)!r} must be one of {', '.join(accepted)}")

    def fixed_ports(self) -> ServerOptions:
        """These options, if their ports are known ones (not 0): a foreground server must tell its clients
        where it listens; else a one-line error."""
        check_port(self.port)
        if self.grpc_port is not None:
            check_port(self.grpc_port, "gRPC port")
        return self

    def with_changes(self, **changes: Any) -> ServerOptions:
        """A copy with ``changes`` (option names as keyword arguments), validated; unknown names refused."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise GwinferError(f"unknown server option(s) {unknown}; accepted: {option_names()}")
        return dataclasses.replace(self, **changes)


def option_names() -> list[str]:
    """The names of every :class:`ServerOptions` field, in order."""
    return [f.name for f in dataclasses.fields(ServerOptions)]


def option_help(name: str) -> str:
    """The one-line help of option ``name``, with its unit."""
    f = {f.name: f for f in dataclasses.fields(ServerOptions)}[name]
    unit = f.metadata["unit"]
    return f"{f.metadata['help']}{f' [{unit}]' if unit else ''}"


def server_options(
    options: ServerOptions | None = None, defaults: dict[str, Any] | None = None, **changes: Any
) -> ServerOptions:
    """``options`` (default: ``ServerOptions`` with ``defaults``) with the keyword ``changes``, validated: the
    one way :class:`~.app.App`, :class:`~.run.Server` and :func:`~.run.serve` turn their arguments into
    options (``Server(repo, grpc_port=0, token="...")`` as well as ``Server(repo, options)``)."""
    if options is None:
        return ServerOptions().with_changes(**{**(defaults or {}), **changes})
    if not isinstance(options, ServerOptions):
        raise GwinferError(f"options must be a ServerOptions, got {type(options).__name__}")
    return options.with_changes(**changes) if changes else options
