"""One error type for requests the server refuses, and the one place that maps errors to statuses.

:class:`ServingError` is a :class:`gwinfer.errors.GwinferError` (one-line message) carrying the HTTP
status it is answered with. Any other GwinferError raised while answering a request is bad input (400);
anything else is an internal error (500). :func:`http_status` and :func:`grpc_code_name` give the HTTP
status and the gRPC status code of any exception; :func:`error_message` its one-line message.

======  ==================  ===============================================================
HTTP    gRPC                when
======  ==================  ===============================================================
400     INVALID_ARGUMENT    wrong tensor name/shape/datatype, malformed body, bad sequence,
                            shared-memory registration or placement that cannot be honoured
401     UNAUTHENTICATED     missing or wrong bearer token
404     NOT_FOUND           unknown model or version
413     RESOURCE_EXHAUSTED  request body larger than the server's limit
422     INVALID_ARGUMENT    a posterior whose draws are too rarely inside its training prior
                            (the data are unlike the training set; :mod:`gwinfer.serving.runtime.prior`)
503     UNAVAILABLE         a model version that failed to load, no usable production label
500     INTERNAL            an unexpected exception (the server keeps serving)
======  ==================  ===============================================================
"""

from __future__ import annotations

from gwinfer.errors import GwinferError

GRPC_CODES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    404: "NOT_FOUND",
    413: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


class ServingError(GwinferError):
    """A request the server refuses: answered with HTTP ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status

    @property
    def message(self) -> str:
        """The one-line message."""
        return str(self)


def http_status(err: BaseException) -> int:
    """The HTTP status of an exception raised while answering a request."""
    if isinstance(err, ServingError):
        return err.status
    return 400 if isinstance(err, GwinferError) else 500


def grpc_code_name(status: int) -> str:
    """The gRPC status code name ("NOT_FOUND") of an HTTP status (other 4xx: INVALID_ARGUMENT, else INTERNAL)."""
    if status in GRPC_CODES:
        return GRPC_CODES[status]
    return "INVALID_ARGUMENT" if 400 <= status < 500 else "INTERNAL"


def error_message(err: BaseException) -> str:
    """The one-line answer to an exception: its message, or ``internal error: <type>: <message>`` (500)."""
    text = " ".join(str(err).split())
    if http_status(err) == 500:
        return f"internal error: {type(err).__name__}: {text[:300]}"
    return text
