"""Bounds on what one request to the local servers can cost.

A label post is a few hundred bytes of JSON. Without a limit a client could send 50 MB bodies
(eight of them held 863 MB) or trickle a body forever, holding a worker. This ASGI middleware,
outermost in the app, refuses a body over ``max_bytes`` before reading it (413; one without a
declared length is refused with 411), and ends a request whose body stops arriving for
``timeout_s`` seconds (408, or the connection closed if the app already answered).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY_BYTES = 64 * 1024
BODY_TIMEOUT_S = 10.0
BODY_METHODS = (b"POST", b"PUT", b"PATCH")


async def _reply(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestLimits:
    """Wrap an ASGI app with a body size limit and a body read timeout."""

    def __init__(
        self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES, timeout_s: float | None = None
    ) -> None:
        self.app, self.max_bytes = app, max_bytes
        self.timeout_s = BODY_TIMEOUT_S if timeout_s is None else timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        streamed = declared is None and bool(headers.get(b"transfer-encoding"))
        if streamed and scope.get("method", "").encode() in BODY_METHODS:
            await _reply(send, 411, "send a Content-Length")
            return
        if declared is not None:
            if not declared.isdigit():
                await _reply(send, 400, "bad Content-Length")
                return
            if int(declared) > self.max_bytes:
                await _reply(send, 413, f"request body over {self.max_bytes} bytes")
                return
        started = False  # the app (or this middleware) has begun a response
        answered = False  # this middleware answered: whatever the app sends is dropped
        received = 0

        async def timed_receive() -> Message:
            nonlocal received, started, answered
            try:
                message = await asyncio.wait_for(receive(), self.timeout_s)
            except asyncio.TimeoutError:
                if not started:
                    started = answered = True
                    await _reply(send, 408, f"request body not received in {self.timeout_s} s")
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:  # more than declared: stop reading
                    return {"type": "http.disconnect"}
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if answered:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, timed_receive, tracked_send)
