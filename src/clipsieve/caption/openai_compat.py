"""OpenAI-compatible chat completions with images: vLLM, SGLang, Ollama, LM Studio, OpenAI.

Frames go in the user message as ``image_url`` parts holding base64 JPEG data URLs, the form
all of these servers accept. The payload is built once per clip and re-sent as is on a retry.
Requests run in the caption stage's worker threads through one shared ``httpx.Client`` (its
connection pool is thread-safe and keeps connections alive between clips).

Retried: 408, 409, 429, 5xx, timeouts, connection errors, answers cut short or not decodable,
and answers that are not the JSON a chat completion should be (an HTML error page from a proxy).
``Retry-After`` is honoured. Only a failed *connect* counts as "server unreachable"; a connection
that breaks mid-answer is an ordinary transient failure. 401/403 (key) and 404 (model or URL)
fail the whole run at once with one line.
"""

from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx

from clipsieve.caption.backends import (
    CaptionReply,
    CaptionRequest,
    RemoteOptions,
    call_with_retries,
    parse_retry_after,
)
from clipsieve.caption.errors import BackendUnavailable, CaptionFailed, RetryableError
from clipsieve.media.frames import FrameSpec
from clipsieve.redact import redact_text, url_secrets

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
FATAL_STATUS = frozenset({401, 403, 404})
DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"  # vLLM's `vllm serve` default
OPENAI_HOST = "api.openai.com"  # where $OPENAI_API_KEY goes without --api-key-env


def _short(text: str, limit: int = 200) -> str:
    return " ".join(text.split())[:limit]


def _message_text(content: Any) -> str:
    """The text of a chat message's ``content`` (a string, or a list of typed parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", "")) for p in content if isinstance(p, dict) and "text" in p
        )
    raise ValueError(f"unexpected message content {type(content).__name__}")


@dataclass
class OpenAIBackend(RemoteOptions):
    """Captions through ``POST {base_url}/chat/completions``.

    ``api_key_env`` names the environment variable holding the key (the key itself is never a
    parameter, so it never lands in ``run.json``); local servers need none. Without it,
    ``$OPENAI_API_KEY`` is sent only to OpenAI's own API over https, never to whatever
    ``base_url`` says. Credentials inside ``base_url`` are used for the requests but shown and
    recorded as ``***``; server error bodies are redacted of every key before they are kept.
    ``image_detail`` (``low``/``high``/``auto``) is sent only when set, since not every server
    knows it.
    """

    name: ClassVar[str] = "openai"
    wants_jpeg: ClassVar[bool] = True
    max_concurrency: ClassVar[int | None] = None

    base_url: str = DEFAULT_BASE_URL
    model: str = "Qwen/Qwen2.5-VL-7B-Instruct"
    api_key_env: str | None = None
    connect_timeout_s: float = 10.0
    image_detail: str | None = None
    max_connections: int = 64
    _structured: bool = field(default=True, init=False, repr=False)  # server takes schemas
    _client: httpx.Client | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(
                f"base_url must start with http:// or https:// (got {redact_text(self.base_url)})"
            )
        super().__post_init__()
        self.shown_url = redact_text(self.base_url)  # for messages and provenance

    @property
    def key_env(self) -> str | None:
        """Where the key comes from: ``api_key_env`` when asked, else ``$OPENAI_API_KEY`` for
        OpenAI's own API only (a local or third-party server never receives it unasked)."""
        if self.api_key_env:
            return self.api_key_env
        parts = urlsplit(self.base_url)
        return (
            "OPENAI_API_KEY" if parts.scheme == "https" and parts.hostname == OPENAI_HOST else None
        )

    def _secrets(self) -> list[str]:
        key = os.environ.get(self.key_env, "") if self.key_env else ""
        return [*([key] if key else []), *url_secrets(self.base_url)]

    def _clean(self, text: str, limit: int) -> str:
        """A server's text for a message: keys redacted, then shortened."""
        return _short(redact_text(text, self._secrets()), limit)

    # ------------------------------------------------------------------------ interface

    def default_frames(self, count: int | None, size: int | None) -> FrameSpec:
        return FrameSpec(count=count or 3, positions="uniform", short_side=size or 448)

    def describe(self) -> dict[str, Any]:
        shown = {"base_url": self.shown_url, "model": self.model, "api_key_env": self.key_env}
        return {"backend": self.name, **shown, **self.described()}

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            headers = {"Content-Type": "application/json"}
            key = os.environ.get(self.key_env, "") if self.key_env else ""
            if key:
                headers["Authorization"] = f"Bearer {key}"
            self._client = httpx.Client(
                headers=headers,
                timeout=httpx.Timeout(self.timeout_s, connect=self.connect_timeout_s),
                limits=httpx.Limits(
                    max_connections=self.max_connections,
                    max_keepalive_connections=self.max_connections,
                ),
            )
        return self._client

    def check(self) -> None:
        """One quick request to ``/models``: any HTTP answer proves the server is there."""
        try:
            self.client.get(f"{self.base_url}/models", timeout=self.connect_timeout_s)
        except httpx.TransportError as exc:
            raise BackendUnavailable(
                f"cannot reach the caption server at {self.shown_url} "
                f"({type(exc).__name__}: {self._clean(str(exc), 80)}); start it (e.g. `vllm serve "
                f"{self.model}`) or pass --base-url"
            ) from None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # ------------------------------------------------------------------------ requests

    def payload(self, request: CaptionRequest) -> dict[str, Any]:
        """The chat-completions body for ``request`` (built once per clip)."""
        parts: list[dict[str, Any]] = []
        for jpeg in request.jpegs:
            image: dict[str, Any] = {
                "url": "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
            }
            if self.image_detail:
                image["detail"] = self.image_detail
            parts.append({"type": "image_url", "image_url": image})
        parts.append({"type": "text", "text": request.prompt})
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": parts}],
            "max_tokens": int(self.max_tokens),
            "temperature": float(self.temperature),
            "stream": False,
        }
        if request.schema is not None and self._structured:
            # vLLM, SGLang, llama.cpp and OpenAI constrain decoding to the schema
            payload["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": request.schema, "strict": True},
            }
        return payload

    def caption(self, request: CaptionRequest) -> CaptionReply:
        url = f"{self.base_url}/chat/completions"
        started = time.perf_counter()
        sent_schema = request.schema is not None and self._structured
        body = json.dumps(self.payload(request)).encode("utf-8")
        try:
            data, tries = call_with_retries(lambda: self._post(url, body), self.policy)
        except CaptionFailed as exc:
            if not (sent_schema and str(exc).startswith("HTTP 400")):
                raise
            # a server without structured output: ask in words from now on (the prompt says
            # the shape; the answer is parsed leniently)
            self._structured = False
            body = json.dumps(self.payload(request)).encode("utf-8")
            data, tries = call_with_retries(lambda: self._post(url, body), self.policy)
        latency = time.perf_counter() - started
        return self._reply(data, latency, tries)

    def _post(self, url: str, body: bytes) -> dict[str, Any]:
        try:
            response = self.client.post(url, content=body)
        except httpx.ConnectError as exc:
            raise RetryableError(
                f"cannot reach {self.shown_url} ({type(exc).__name__})", unreachable=True
            ) from None
        except httpx.TimeoutException as exc:
            raise RetryableError(f"timed out ({type(exc).__name__})") from None
        except (httpx.TransportError, httpx.DecodingError) as exc:
            # The server was reached but the exchange broke: a body cut short, a connection
            # dropped mid-answer (server restarting), a body that does not decode as declared.
            # Worth a retry, but not a sign the server is gone (that is ConnectError's job).
            raise RetryableError(
                f"broken answer ({type(exc).__name__}: {self._clean(str(exc), 100)})"
            ) from None
        status = response.status_code
        if status in RETRY_STATUS:
            raise RetryableError(
                f"HTTP {status}: {self._clean(response.text, 120)}",
                retry_after=parse_retry_after(response.headers.get("retry-after")),
            )
        if status in FATAL_STATUS:
            if status not in (401, 403):
                hint = "check --base-url and --model"
            elif self.key_env:
                hint = f"set ${self.key_env} to a valid key"
            else:
                hint = "pass --api-key-env VAR naming the variable that holds this server's key"
            shown = redact_text(url)
            raise CaptionFailed(
                f"{shown} answered HTTP {status} ({self._clean(response.text, 120)}); {hint}",
                "fatal",
            )
        if status >= 400:
            raise CaptionFailed(f"HTTP {status}: {self._clean(response.text, 200)}")
        try:
            data = response.json()
        except ValueError:
            kind = response.headers.get("content-type", "no content type").split(";")[0]
            raise RetryableError(
                f"malformed JSON answer ({kind}): {self._clean(response.text, 80)!r}"
            ) from None
        if not isinstance(data, dict) or not data.get("choices"):
            raise RetryableError(f"answer has no choices: {self._clean(response.text, 80)!r}")
        return data

    def _reply(self, data: dict[str, Any], latency: float, tries: int) -> CaptionReply:
        try:
            choice = data["choices"][0]
            text = _message_text(choice["message"]["content"])
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise CaptionFailed(f"answer without a message ({type(exc).__name__})") from None
        usage = data.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        return CaptionReply(
            text=text.strip(),
            model=str(data.get("model") or self.model),
            tokens_in=_count(usage.get("prompt_tokens")),
            tokens_out=_count(usage.get("completion_tokens")),
            latency_s=latency,
            attempts=tries,
            truncated=choice.get("finish_reason") == "length",
        )


def _count(value: Any) -> int | None:
    """A token count from a server's ``usage``; None when it is missing or not a count."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if value >= 0 else None
