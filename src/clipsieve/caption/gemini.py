"""Gemini through Google's current Python SDK (``google-genai``, imported as ``google.genai``).

The original filtering project captioned with Gemini from three frames at 240x240 (first, middle,
last); that is this backend's default. Frames travel as inline JPEG parts, the prompt as the
last part. The SDK's own retries are left off so the same :class:`RetryPolicy` as the HTTP backend
applies (429/5xx/timeouts retried with backoff and jitter).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from clipsieve.caption.backends import (
    CaptionReply,
    CaptionRequest,
    RemoteOptions,
    call_with_retries,
)
from clipsieve.caption.errors import BackendUnavailable, CaptionFailed, RetryableError
from clipsieve.media.frames import FrameSpec

RETRY_CODES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass
class GeminiBackend(RemoteOptions):
    """Captions with ``client.models.generate_content`` (key from ``api_key_env``)."""

    name: ClassVar[str] = "gemini"
    wants_jpeg: ClassVar[bool] = True
    max_concurrency: ClassVar[int | None] = None

    model: str = "gemini-2.0-flash"
    api_key_env: str = "GEMINI_API_KEY"
    _client: Any = field(default=None, init=False, repr=False)

    def default_frames(self, count: int | None, size: int | None) -> FrameSpec:
        side = size or 240
        return FrameSpec(count=count or 3, positions="ends", size=(side, side))

    def describe(self) -> dict[str, Any]:
        shown = {"model": self.model, "api_key_env": self.api_key_env}
        return {"backend": self.name, **shown, **self.described()}

    @property
    def client(self) -> Any:
        if self._client is None:
            from google import genai
            from google.genai import types

            key = os.environ.get(self.api_key_env)
            if not key:
                raise BackendUnavailable(
                    f"the gemini backend needs an API key: set ${self.api_key_env} "
                    "(or pass --api-key-env NAME)"
                )
            self._client = genai.Client(
                api_key=key,
                http_options=types.HttpOptions(timeout=int(self.timeout_s * 1000)),
            )
        return self._client

    def check(self) -> None:
        _ = self.client  # a missing key is the failure we can see without a request

    def close(self) -> None:
        self._client = None

    def contents(self, request: CaptionRequest) -> list[Any]:
        """The ``contents`` list: one inline JPEG part per frame, then the prompt."""
        from google.genai import types

        parts: list[Any] = [
            types.Part.from_bytes(data=jpeg, mime_type="image/jpeg") for jpeg in request.jpegs
        ]
        parts.append(types.Part.from_text(text=request.prompt))
        return [types.Content(role="user", parts=parts)]

    def config(self, schema: dict[str, Any] | None = None) -> Any:
        from google.genai import types

        structured: dict[str, Any] = {}
        if schema is not None:  # Gemini's controlled generation
            structured = {"response_mime_type": "application/json", "response_json_schema": schema}
        return types.GenerateContentConfig(
            max_output_tokens=int(self.max_tokens),
            temperature=float(self.temperature),
            **structured,
        )

    def caption(self, request: CaptionRequest) -> CaptionReply:
        contents, config = self.contents(request), self.config(request.schema)
        client = self.client
        started = time.perf_counter()

        def attempt() -> Any:
            return self._generate(client, contents, config)

        response, tries = call_with_retries(attempt, self.policy)
        return self._reply(response, time.perf_counter() - started, tries)

    def _generate(self, client: Any, contents: list[Any], config: Any) -> Any:
        import httpx
        from google.genai import errors

        try:
            return client.models.generate_content(
                model=self.model, contents=contents, config=config
            )
        except errors.APIError as exc:
            code = int(getattr(exc, "code", 0) or 0)
            message = " ".join(str(getattr(exc, "message", "") or exc).split())[:160]
            if code in RETRY_CODES:
                raise RetryableError(f"HTTP {code}: {message}") from None
            if code in (401, 403, 404):
                raise CaptionFailed(
                    f"gemini answered HTTP {code} ({message}); check ${self.api_key_env} "
                    "and --model",
                    "fatal",
                ) from None
            raise CaptionFailed(f"HTTP {code}: {message}") from None
        except httpx.TimeoutException as exc:
            raise RetryableError(f"timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise RetryableError(
                f"cannot reach gemini ({type(exc).__name__})", unreachable=True
            ) from None

    def _reply(self, response: Any, latency: float, tries: int) -> CaptionReply:
        text = getattr(response, "text", None)
        if not text:
            raise CaptionFailed("gemini returned no text (blocked or empty answer)")
        usage = getattr(response, "usage_metadata", None)
        finish = None
        candidates = getattr(response, "candidates", None) or []
        if candidates:
            finish = str(getattr(candidates[0], "finish_reason", "") or "")
        return CaptionReply(
            text=text.strip(),
            model=self.model,
            tokens_in=getattr(usage, "prompt_token_count", None),
            tokens_out=getattr(usage, "candidates_token_count", None),
            latency_s=latency,
            attempts=tries,
            truncated=finish.endswith("MAX_TOKENS") if finish else False,
        )
