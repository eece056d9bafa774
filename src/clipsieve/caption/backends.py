"""The caption backend interface, the backend registry, and retry with backoff.

Every backend answers one :class:`CaptionRequest` (a prompt plus the clip's frames) with a
:class:`CaptionReply`, or raises :class:`CaptionFailed` after its retries ran out. The stage only
knows this interface, so a vLLM server, Gemini and a local model are interchangeable and the
retry policy is the same for all of them.

Failures come in three kinds, because they call for different reactions from the stage:

* ``transient``: this clip failed (429/5xx/timeouts until the retries ran out, a malformed
  answer); the row records the error and a re-run retries it;
* ``unreachable``: the connection itself failed; if it keeps happening the server is down and
  the run stops with one line instead of failing every row slowly;
* ``fatal``: the server rejects every request alike (wrong key, unknown model); the run stops at
  once with one line naming the fix.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np

from clipsieve.caption.errors import CaptionFailed, FailureKind, RetryableError
from clipsieve.media.frames import FrameSpec


@dataclass(frozen=True)
class CaptionRequest:
    """One question to a VLM: ``prompt`` and the clip's frames.

    ``frames`` are upright RGB arrays (n, h, w, 3); ``jpegs`` are the same frames encoded once
    (``frames.py``) for backends that send images over the wire. A text-only request (the
    rewrite pass) has neither. ``schema``: a JSON schema the answer must follow (the classify
    pass); backends that can constrain generation to it send it (OpenAI-compatible
    ``response_format``, Gemini's ``response_schema``), the others rely on the prompt.
    """

    prompt: str
    frames: np.ndarray | None = None
    jpegs: tuple[bytes, ...] = ()
    schema: dict[str, Any] | None = None


@dataclass(frozen=True)
class CaptionReply:
    """A backend's answer; token counts are None when the backend does not report them."""

    text: str
    model: str
    tokens_in: int | None = None
    tokens_out: int | None = None
    latency_s: float = 0.0
    attempts: int = 1
    truncated: bool = False  # the answer stopped at max_tokens


class CaptionBackend(Protocol):
    """What the caption stage needs from a backend."""

    name: ClassVar[str]
    model: str
    wants_jpeg: ClassVar[bool]  # True: the stage encodes frames to JPEG once per clip
    max_concurrency: ClassVar[int | None]  # None: as many requests in flight as the user asks

    def default_frames(self, count: int | None, size: int | None) -> FrameSpec:
        """Which frames to send (count/size None: the backend's own default)."""

    def check(self) -> None:
        """Raise :class:`BackendUnavailable` (one line) if no request can succeed."""

    def caption(self, request: CaptionRequest) -> CaptionReply:
        """Answer one request or raise :class:`CaptionFailed`. Must be thread-safe."""

    def describe(self) -> dict[str, Any]:
        """Parameters for provenance (never the API key)."""

    def close(self) -> None:
        """Release connections or GPU memory."""


@dataclass
class RetryPolicy:
    """Exponential backoff with jitter: try ``max_tries`` times in all.

    The wait before try k+1 is ``min(max_backoff_s, backoff_s * 2**(k-1))`` scaled by a random
    factor in [0.5, 1] ("equal jitter", so many clients that failed together do not retry
    together), unless the server said how long to wait (``Retry-After``), which is honoured up to
    ``max_retry_after_s``.
    """

    max_tries: int = 5
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    max_retry_after_s: float = 300.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based)."""
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, self.max_retry_after_s)
        base = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
        return base * (0.5 + 0.5 * self.rng.random())


@dataclass
class RemoteOptions:
    """What every backend that asks a server takes: the answer's length and temperature, the
    request timeout and the retries. A backend dataclass derives from it; :meth:`described`
    is the common part of its provenance."""

    max_tokens: int = 256
    temperature: float = 0.2
    timeout_s: float = 120.0
    max_tries: int = 5
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    policy: RetryPolicy = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.policy = RetryPolicy(self.max_tries, self.backoff_s, self.max_backoff_s)

    def described(self) -> dict[str, Any]:
        return {
            k: getattr(self, k) for k in ("max_tokens", "temperature", "timeout_s", "max_tries")
        }


T = TypeVar("T")


def call_with_retries(attempt: Callable[[], T], policy: RetryPolicy) -> tuple[T, int]:
    """Run ``attempt`` until it returns; returns (value, tries used).

    ``attempt`` raises :class:`RetryableError` for failures worth another try and
    :class:`CaptionFailed` for ones that are not; after the last try the last retryable error
    becomes a :class:`CaptionFailed` naming the number of tries.
    """
    tries = max(1, int(policy.max_tries))
    for number in range(1, tries + 1):
        try:
            return attempt(), number
        except RetryableError as exc:
            if number == tries:
                kind: FailureKind = "unreachable" if exc.unreachable else "transient"
                raise CaptionFailed(f"{exc} (gave up after {tries} tries)", kind) from None
            policy.sleep(policy.delay(number, exc.retry_after))
    raise AssertionError("unreachable")  # pragma: no cover - the loop always returns or raises


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), None if absent."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
