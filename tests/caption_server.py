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
* ``german``: a German caption.

``requests`` records ``(model, key, status)`` of every request, so tests can check what was
retried. Used by tests and by ``benchmarks/caption.py`` (loaded by file path).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


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

    def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._send(200, json.dumps({"object": "list", "data": [{"id": "echo"}]}).encode())

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length))
        owner: StandInServer = self.server.owner
        status, payload, headers = owner.answer(body)
        self._send(status, payload, headers)


class StandInServer:
    """Start with :meth:`start` (or as a context manager); ``url`` is the ``/v1`` base URL."""

    class _Server(ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True
        owner: StandInServer

    def __init__(self, slow_s: float = 2.0) -> None:
        self.slow_s = slow_s
        self.requests: list[tuple[str, str, int]] = []
        self._seen: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._server: StandInServer._Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> StandInServer:
        self._server = self._Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._seen.clear()

    def __enter__(self) -> StandInServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------ behaviour

    def answer(self, body: dict[str, Any]) -> tuple[int, bytes, dict[str, str]]:
        model = str(body.get("model", "echo"))
        key, n_images, prompt = _content_key(body)
        with self._lock:
            first = (model, key) not in self._seen
            self._seen.add((model, key))
        status, payload, headers = self._behave(model, key, n_images, prompt, first)
        with self._lock:
            self.requests.append((model, key, status))
        return status, payload, headers

    def _behave(
        self, model: str, key: str, n_images: int, prompt: str, first: bool
    ) -> tuple[int, bytes, dict[str, str]]:
        error = json.dumps({"error": {"message": f"stand-in {model}"}}).encode()
        if model == "rate-limit" and first:
            return 429, error, {"Retry-After": "1"}
        if (model == "flaky" and first) or model == "error-500":
            return 500, error, {}
        if model == "fail-odd" and int(key, 16) % 2:
            return 500, error, {}
        if model == "unauthorized":
            return 401, error, {}
        if model == "malformed":
            return 200, b'{"choices": [{"message": {"content": "trunc', {}
        if model == "slow":
            time.sleep(self.slow_s)
        if n_images:
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
        return 200, json.dumps(completion).encode(), {}


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
