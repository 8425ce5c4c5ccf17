"""Limits that keep slow or stalled clients from holding the server: a deadline for a request's headers
and one for its body, and a cap on the connections and requests in flight.

uvicorn closes idle keep-alive connections but has no deadline for a request whose headers trickle in
(a slowloris client holds its connection for ever); :func:`protocol_with_header_timeout` subclasses the
chosen uvicorn HTTP protocol so that a connection must deliver complete headers within ``seconds`` of
connecting, or of its previous response. The body deadline is enforced where the body is read
(:mod:`gwinfer.serving.server.body`), the cap by uvicorn's ``limit_concurrency`` (503 beyond it).
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

#: Defaults (s, s, connections + requests): generous for real clients on a LAN, fatal to slowloris.
HEADER_TIMEOUT_S = 10.0
BODY_TIMEOUT_S = 60.0
MAX_CONCURRENCY = 512


def protocol_with_header_timeout(http: str, seconds: float) -> type:
    """uvicorn's HTTP protocol class for ``http`` ("auto", "httptools", "h11") with a header deadline."""
    from uvicorn.config import HTTP_PROTOCOLS
    from uvicorn.importer import import_from_string

    if http == "auto":
        try:
            import httptools  # noqa: F401

            http = "httptools"
        except ImportError:
            http = "h11"
    base: Any = import_from_string(HTTP_PROTOCOLS.get(http, http))

    class HeaderDeadline(base):  # type: ignore[misc, valid-type]
        """``base`` closing connections whose request headers are not complete within ``seconds``."""

        _gw_timer: Any = None

        def _gw_waiting(self) -> bool:
            return self.cycle is None or self.cycle.response_complete

        def _gw_arm(self) -> None:
            self._gw_disarm()
            self._gw_timer = self.loop.call_later(seconds, self._gw_expire)

        def _gw_disarm(self) -> None:
            if self._gw_timer is not None:
                self._gw_timer.cancel()
                self._gw_timer = None

        def _gw_expire(self) -> None:
            self._gw_timer = None
            if self._gw_waiting() and not self.transport.is_closing():
                log.info("closing a connection whose request headers did not arrive within %g s", seconds)
                self.transport.close()

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._gw_arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if not self._gw_waiting():
                self._gw_disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._gw_arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._gw_disarm()
            super().connection_lost(exc)

    HeaderDeadline.__name__ = f"HeaderDeadline{base.__name__}"
    return HeaderDeadline
