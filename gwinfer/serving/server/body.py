"""Receiving HTTP request bodies: size limits, Content-Encoding, and one aligned buffer for binary tensors."""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from gwinfer.serving.protocol.errors import ServingError

ALIGNMENT = 64  # bytes: start of the binary tensors and of the buffer


async def receive_chunks(request: Any, timeout: float | None = None) -> AsyncIterator[bytes]:
    """The body chunks of an ASGI request (ServingError(400) if the client disconnects first, 408 if the
    whole body has not arrived within ``timeout`` s)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        if deadline is None:
            message = await request.receive()
        else:
            try:
                message = await asyncio.wait_for(request.receive(), max(deadline - time.monotonic(), 0.0))
            except asyncio.TimeoutError:
                raise ServingError(408, f"the request body did not arrive within {timeout:g} s") from None
        if message["type"] == "http.disconnect":
            raise ServingError(400, "the client disconnected before sending the whole body")
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


async def receive_into(request: Any, length: int, align_at: int = 0, timeout: float | None = None) -> memoryview:
    """A body of Content-Length ``length`` bytes received into one buffer (byte ``align_at`` 64-byte
    aligned); ServingError(400) if the client sends more or fewer bytes."""
    pad = (-align_at) % ALIGNMENT if 0 <= align_at <= length else 0
    raw = np.empty(length + pad + ALIGNMENT, dtype=np.uint8)
    start = pad + (-raw.ctypes.data) % ALIGNMENT  # the buffer itself aligned
    view = memoryview(raw)[start : start + length]
    n = 0
    async for chunk in receive_chunks(request, timeout):
        if n + len(chunk) > length:
            raise ServingError(400, f"the request body is longer than its Content-Length {length}")
        view[n : n + len(chunk)] = chunk
        n += len(chunk)
    if n != length:
        raise ServingError(400, f"the request body has {n} bytes; Content-Length says {length}")
    return view


async def read_body(
    request: Any, max_body_bytes: int, align_at: int = 0, timeout: float | None = None
) -> bytes | memoryview:
    """The request body (decompressed), checked against ``max_body_bytes`` (413 beyond it).

    With a Content-Length and no Content-Encoding the body is received straight into one writable
    buffer (no joins) placed so that byte ``align_at`` of the body (the start of the binary tensors
    after a JSON header of that length) is 64-byte aligned; arrays viewing it need no copy.
    gzip and deflate bodies are decompressed (the limit applies to the decompressed size too).
    ``timeout``: seconds the whole body may take to arrive (408 after it).
    """
    length = request.headers.get("content-length")
    if length is not None:
        if not length.strip().isdigit():
            raise ServingError(400, f"bad Content-Length {length!r}")
        if int(length) > max_body_bytes:
            raise ServingError(413, f"request body of {int(length)} bytes exceeds the limit of {max_body_bytes}")
    encoding = request.headers.get("content-encoding")
    if length is not None and encoding in (None, "", "identity"):
        return await receive_into(request, int(length), align_at, timeout)
    chunks, n = [], 0
    async for chunk in receive_chunks(request, timeout):
        n += len(chunk)
        if n > max_body_bytes:
            raise ServingError(413, f"request body exceeds the limit of {max_body_bytes} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    if encoding in ("gzip", "deflate"):
        d = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
        try:
            body = d.decompress(body, max_body_bytes + 1)
        except zlib.error as err:
            raise ServingError(400, f"cannot decompress the {encoding} body: {err}") from None
        if len(body) > max_body_bytes or d.unconsumed_tail:
            raise ServingError(413, f"decompressed body exceeds the limit of {max_body_bytes} bytes")
    elif encoding not in (None, "", "identity"):
        raise ServingError(400, f"unsupported Content-Encoding {encoding!r}")
    return body
