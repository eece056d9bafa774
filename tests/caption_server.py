"""A stand-in OpenAI-compatible chat-completions server on 127.0.0.1 for caption tests.

It answers deterministically from the request's content, and misbehaves on request, chosen by
the ``model`` name so the client under test needs no special headers:

* ``echo`` (any unknown name): a caption naming a hash of the images, e.g. "The video shows
  clip 3fa9c2d1 in 3 frames."; a text-only prompt asking for JSON gets a fenced JSON rewrite;
* ``rate-limit``: 429 with ``Retry-After: 1`` on the first request for each content, then ok;
* ``flaky``: 500 on the first request for each content, then ok;
* ``error-500``: always 500;  ``unauthorized``: always 401;
* ``slow``: answers after ``slow_s`` seconds;  ``malformed``: 200 with a broken JSON body;
* ``fail-odd``: 500 for contents whose hash is odd, ok for the others (a stable subset);
* ``german``: a German caption;  ``leak-key``: 403 whose body echoes the Authorization header
  (as careless proxies do).

Broken transports and wrong bodies (the faults a proxy or a dying server produces):

* ``truncated``: 200 whose ``Content-Length`` promises the whole completion, but only half of it
  is sent before the connection is closed;
* ``html``: 200 with a ``text/html`` error page;  ``html-502``: 502 with a ``text/html`` page;
* ``not-json``: 200 declared ``application/json`` whose body is plain text;
* ``gzip-lie``: 200 declaring ``Content-Encoding: gzip`` over a body that is not gzip.

Any of them with ``-odd`` (e.g. ``truncated-odd``) misbehaves only for contents whose hash is odd
(a stable subset), with ``-first`` only on the first request for each content.

:meth:`StandInServer.crash_after` makes the server crash once: the request after the next ``n``
is dropped without an answer, the listening socket and every open connection are closed, and
after ``down_s`` seconds a new server listens on the same port.

``requests`` records ``(model, key, status)`` of every request (status 0: dropped without an
answer), so tests can check what was retried. Used by tests and by ``benchmarks/caption.py``
(loaded by file path).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TRANSPORT_FAULTS = ("truncated", "html", "html-502", "not-json", "gzip-lie")
HTML_PAGE = b"<!DOCTYPE html><html><head><title>Bad Gateway</title></head><body>nginx</body></html>"


@dataclass
class Reply:
    """What the handler sends: ``declared`` overrides Content-Length, ``drop`` sends nothing."""

    status: int
    payload: bytes
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    declared: int | None = None
    drop: bool = False


def _content_key(body: dict[str, Any]) -> tuple[str, int, str]:
    """(hash of images or prompt, number of images, prompt text)."""
    parts = body["messages"][-1]["content"]
    if isinstance(parts, str):
        parts = [{"type": "text", "text": parts}]
    images = [p["image_url"]["url"] for p in parts if p.get("type") == "image_url"]
    prompt = "".join(p.get("text", "") for p in parts if p.get("type") == "text")
    digest = hashlib.sha1(("".join(images) or prompt).encode()).hexdigest()[:8]
    return digest, len(images), prompt


class _Handler(BaseHTTPRequestHandler):
    server: StandInServer._Server  # type: ignore[name-defined]
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet in tests
        return

    def _send(self, reply: Reply) -> None:
        if reply.drop:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        declared = len(reply.payload) if reply.declared is None else reply.declared
        self.send_header("Content-Length", str(declared))
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(reply.payload)
        if declared != len(reply.payload):  # a body cut short: the peer sees the close
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._send(Reply(200, json.dumps({"object": "list", "data": [{"id": "echo"}]}).encode()))

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length))
        owner: StandInServer = self.server.owner
        auth = self.headers.get("Authorization")
        with owner._lock:
            owner.authorizations.append(auth)
        if str(body.get("model")) == "leak-key":  # an error page echoing the credentials
            echoed = json.dumps({"error": f"bad credentials: {auth}"}).encode()
            self._send(Reply(403, echoed))
            return
        self._send(owner.answer(body))


class StandInServer:
    """Start with :meth:`start` (or as a context manager); ``url`` is the ``/v1`` base URL."""

    class _Server(ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True
        owner: StandInServer

        def get_request(self) -> tuple[socket.socket, Any]:
            conn, address = super().get_request()
            # Headers and body go out in two writes; without TCP_NODELAY (which real servers
            # such as uvicorn set) Nagle holds the body for the client's delayed ACK: 40 ms.
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.owner._lock:
                self.owner._connections.add(conn)
            return conn, address

        def shutdown_request(self, request: Any) -> None:
            with self.owner._lock:
                self.owner._connections.discard(request)
            super().shutdown_request(request)

        def handle_error(self, request: Any, client_address: Any) -> None:
            return  # a connection cut by a simulated crash is expected; keep test output quiet

    def __init__(self, slow_s: float = 2.0) -> None:
        self.slow_s = slow_s
        self.requests: list[tuple[str, str, int]] = []
        self.authorizations: list[str | None] = []  # the Authorization header of each request
        self.response_formats: list[dict | None] = []  # what classify requests asked for
        self.crashes: int = 0
        self._seen: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._server: StandInServer._Server | None = None
        self._thread: threading.Thread | None = None
        self._port = 0
        self._connections: set[socket.socket] = set()
        self._crash_at: int | None = None
        self._down_s = 0.0
        self._down = False  # between a crash and the restart: nothing is answered
        self._restarter: threading.Thread | None = None
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}/v1"

    def start(self) -> StandInServer:
        self._stopped.clear()
        self._listen(self._port)
        return self

    def _listen(self, port: int) -> None:
        server = self._Server(("127.0.0.1", port), _Handler)
        server.owner = self
        self._port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()

    def _close(self) -> None:
        """Stop listening and cut every open connection, as a dying process would."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        with self._lock:
            connections = list(self._connections)
            self._connections.clear()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self._stopped.set()
        if self._restarter is not None:
            self._restarter.join()
            self._restarter = None
        self._close()

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._seen.clear()
            self.response_formats.clear()

    def crash_after(self, requests: int, down_s: float = 1.0) -> None:
        """Crash once after ``requests`` more chat requests; listen again ``down_s`` s later."""
        with self._lock:
            self._crash_at = len(self.requests) + requests
            self._down_s = down_s

    def _crash_and_restart(self) -> None:
        self._close()
        if not self._stopped.wait(self._down_s):
            self._listen(self._port)
        with self._lock:
            self._down = False

    def __enter__(self) -> StandInServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------ behaviour

    def answer(self, body: dict[str, Any]) -> Reply:
        model = str(body.get("model", "echo"))
        key, n_images, prompt = _content_key(body)
        with self._lock:
            first = (model, key) not in self._seen
            self._seen.add((model, key))
            crash = self._crash_at is not None and len(self.requests) >= self._crash_at
            if self._down and not crash:
                # a request on a connection the crash has not cut yet: a dead process answers
                # nothing on any connection
                self.requests.append((model, key, 0))
                return Reply(0, b"", drop=True)
            if crash:
                self._down = True
                self._crash_at = None
                self.crashes += 1
                self.requests.append((model, key, 0))
                self._restarter = threading.Thread(target=self._crash_and_restart, daemon=True)
                self._restarter.start()
        if crash:
            return Reply(0, b"", drop=True)
        if model.startswith("classify"):
            reply = self._classify(model, key, body)
        else:
            reply = self._behave(model, key, n_images, prompt, first)
        with self._lock:
            self.requests.append((model, key, reply.status))
        return reply

    def _behave(self, model: str, key: str, n_images: int, prompt: str, first: bool) -> Reply:
        error = json.dumps({"error": {"message": f"stand-in {model}"}}).encode()
        if model == "rate-limit" and first:
            return Reply(429, error, {"Retry-After": "1"})
        if (model == "flaky" and first) or model == "error-500":
            return Reply(500, error)
        if model == "fail-odd" and int(key, 16) % 2:
            return Reply(500, error)
        if model == "unauthorized":
            return Reply(401, error)
        if model == "malformed":
            return Reply(200, b'{"choices": [{"message": {"content": "trunc')
        if model == "slow":
            time.sleep(self.slow_s)
        fault, _, when = model.rpartition("-")
        if when not in ("odd", "first"):
            fault, when = model, "always"
        if fault in TRANSPORT_FAULTS and (
            when == "always" or (when == "first" and first) or (when == "odd" and int(key, 16) % 2)
        ):
            good = self._completion(model, key, n_images, prompt)
            return _transport_fault(fault, good.payload)
        return self._completion(model, key, n_images, prompt)

    def _classify(self, model: str, key: str, body: dict[str, Any]) -> Reply:
        """Scripted classify answers. ``classify``: JSON per the ``response_format`` schema,
        the type chosen by the clip's content hash; ``classify-400``: rejects
        ``response_format`` (a server without structured output) and answers in prose;
        ``classify-prose``: ignores the schema and answers in prose."""
        response_format = body.get("response_format")
        with self._lock:
            self.response_formats.append(response_format)
        if model == "classify-400" and response_format is not None:
            error = {"error": {"message": "response_format is not supported"}}
            return Reply(400, json.dumps(error).encode())
        prompt = _content_key(body)[2]
        types = re.findall(r"^- (\w+): ", prompt.split("Types")[1].split("Flags")[0], re.M)
        chosen = types[int(key, 16) % len(types)]
        flags = (
            re.findall(r"^- (\w+): ", prompt.split("Flags")[1], re.M) if "Flags" in prompt else []
        )
        flagged = flags[:1] if int(key, 16) % 2 and flags else []
        if model == "classify" and response_format is not None:
            text = json.dumps({"content_type": chosen, "flags": flagged, "confidence": 0.75})
        else:
            mention = f" There is a {flagged[0].replace('_', ' ')}." if flagged else ""
            text = f"This clip is most likely {chosen.replace('_', ' ')}.{mention}"
        return self._completion(model, key, 1, prompt, text)

    def _completion(
        self, model: str, key: str, n_images: int, prompt: str, text: str | None = None
    ) -> Reply:
        if text is not None:
            pass
        elif n_images:
            text = f"The video shows clip {key} in {n_images} frames."
            if model == "german":
                text = f"Ein Mann geht mit einem Hund durch den Park, Szene {key}."
        else:
            quoted = re.search(r'Caption: "(.*?)"', prompt, re.DOTALL)
            source = quoted.group(1) if quoted else prompt[:40]
            rewritten = json.dumps({"caption": f"rewritten: {source.lower()}"})
            text = f"Here you go:\n```json\n{rewritten}\n```"
        completion = {
            "id": f"chatcmpl-{key}",
            "object": "chat.completion",
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": len(prompt.split()) + 85 * n_images,
                "completion_tokens": len(text.split()),
                "total_tokens": len(prompt.split()) + 85 * n_images + len(text.split()),
            },
        }
        return Reply(200, json.dumps(completion).encode())


def _transport_fault(fault: str, good: bytes) -> Reply:
    """The reply a broken proxy or server gives instead of ``good`` (see the module docstring)."""
    if fault == "truncated":
        return Reply(200, good[: len(good) // 2], declared=len(good))
    if fault == "html":
        return Reply(200, HTML_PAGE, content_type="text/html; charset=utf-8")
    if fault == "html-502":
        return Reply(502, HTML_PAGE, content_type="text/html")
    if fault == "not-json":
        return Reply(200, b"OK, your request was queued.\n")
    return Reply(200, b"this is not gzip" * 4, {"Content-Encoding": "gzip"})


def main() -> None:
    """Serve until killed, printing the base URL first (used by ``benchmarks/caption.py``)."""
    import sys

    server = StandInServer().start()
    print(server.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        sys.exit(0)


if __name__ == "__main__":
    main()


class ScriptedBackend:
    """A caption backend for tests whose ``answer`` decides each request (no network at all).

    Subclasses set ``name`` and implement ``answer(call_number)``; every call is counted in
    ``calls`` (a class list, cleared by the test).
    """

    name = "scripted"
    wants_jpeg = False
    max_concurrency = None
    calls: list[int] = []

    @property
    def model(self) -> str:
        return self.name

    def default_frames(self, count, size):
        from clipsieve.media.frames import FrameSpec

        return FrameSpec(count=1, short_side=32)

    def check(self) -> None:
        return None

    def answer(self, call: int):
        raise NotImplementedError

    def caption(self, request):
        type(self).calls.append(1)
        return self.answer(len(type(self).calls))

    def describe(self) -> dict:
        return {"backend": self.name}

    def close(self) -> None:
        return None


def wanted(rows: list[dict]) -> list[dict]:
    """The rows `caption` asks about by default: kept and not in error."""
    return [r for r in rows if r["keep"] and r["status"] != "error"]


def closed_port_url() -> str:
    """An OpenAI-style base URL on 127.0.0.1 where nothing listens (the port was just free)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"
