"""Several OpenAI-compatible servers as one caption backend (a pool of vLLM servers).

``clipsieve caption RUN --base-url URL1 --base-url URL2 -j 16`` keeps up to 16 requests in
flight at *each* server: the stage runs ``16 × servers`` request threads and every request goes
to the server with the fewest requests in flight (ties in turn), so a slow server gets fewer
and a fast one more. A server that cannot be reached is set aside for a while and its requests
go to the others; only when every server is unreachable does captioning stop, as with one.
Each member is a plain :class:`~clipsieve.caption.openai_compat.OpenAIBackend` (its own retries,
key rule and redaction).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from clipsieve.caption.backends import CaptionReply, CaptionRequest
from clipsieve.caption.errors import BackendUnavailable, CaptionFailed
from clipsieve.caption.openai_compat import OpenAIBackend
from clipsieve.media.frames import FrameSpec

DOWN_FOR_S = 15.0  # how long an unreachable server is set aside before it is tried again


@dataclass
class _Member:
    backend: OpenAIBackend
    in_flight: int = 0
    sent: int = 0
    down_until: float = 0.0


class OpenAIServerPool:
    """Dispatch caption requests over several servers, least loaded first."""

    name: ClassVar[str] = "openai"
    wants_jpeg: ClassVar[bool] = True
    max_concurrency: ClassVar[int | None] = None

    def __init__(self, base_urls: Sequence[str], **params: Any) -> None:
        if len(base_urls) < 2:
            raise ValueError("a server pool needs at least two base URLs")
        self.members = [_Member(OpenAIBackend(base_url=url, **params)) for url in base_urls]
        self.servers = len(self.members)
        self._lock = threading.Lock()
        self._turn = 0

    # ------------------------------------------------------------------------ interface

    def default_frames(self, count: int | None, size: int | None) -> FrameSpec:
        return self.members[0].backend.default_frames(count, size)

    def describe(self) -> dict[str, Any]:
        first = self.members[0].backend.describe()
        return {**first, "base_url": [m.backend.shown_url for m in self.members]}

    def sent(self) -> dict[str, int]:
        """Requests sent to each server (by its shown URL)."""
        return {m.backend.shown_url: m.sent for m in self.members}

    def check(self) -> None:
        """Every server is checked; those that cannot be reached are set aside. Captioning
        stops (one line) only when none can be reached."""
        failures = []
        for member in self.members:
            try:
                member.backend.check()
            except BackendUnavailable as exc:
                member.down_until = time.monotonic() + DOWN_FOR_S
                failures.append(str(exc))
        if len(failures) == len(self.members):
            raise BackendUnavailable(
                f"none of the {len(self.members)} caption servers can be reached: {failures[0]}"
            )

    def close(self) -> None:
        for member in self.members:
            member.backend.close()

    def caption(self, request: CaptionRequest) -> CaptionReply:
        tried: set[int] = set()
        while True:
            index = self._acquire(tried)
            member = self.members[index]
            try:
                return member.backend.caption(request)
            except CaptionFailed as exc:
                if exc.kind != "unreachable":
                    raise
                member.down_until = time.monotonic() + DOWN_FOR_S
                tried.add(index)
                if len(tried) == len(self.members):
                    raise
            finally:
                with self._lock:
                    member.in_flight -= 1

    # ------------------------------------------------------------------------ dispatch

    def _acquire(self, tried: set[int]) -> int:
        """The least loaded server not yet tried for this request, up ones first."""
        now = time.monotonic()
        with self._lock:
            candidates = [i for i in range(len(self.members)) if i not in tried]
            up = [i for i in candidates if self.members[i].down_until <= now] or candidates
            order = sorted(
                up,
                key=lambda i: (
                    self.members[i].in_flight,
                    (i - self._turn) % len(self.members),
                ),
            )
            chosen = order[0]
            self._turn = (chosen + 1) % len(self.members)
            self.members[chosen].in_flight += 1
            self.members[chosen].sent += 1
            return chosen
