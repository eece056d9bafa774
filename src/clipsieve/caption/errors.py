"""What caption backends raise: a request that failed for good, a backend that cannot be used,
and a failed attempt worth another try."""

from __future__ import annotations

from typing import Literal

from clipsieve.errors import UserError

FailureKind = Literal["transient", "unreachable", "fatal"]


class CaptionFailed(Exception):
    """A request failed for good (after retries); the message is one line for the table."""

    def __init__(self, message: str, kind: FailureKind = "transient") -> None:
        super().__init__(message)
        self.kind: FailureKind = kind


class BackendUnavailable(UserError):
    """The backend cannot be used at all (server down, key missing, package absent)."""


class RetryableError(Exception):
    """Raised inside an attempt: worth another try, after ``retry_after`` seconds if given."""

    def __init__(self, message: str, retry_after: float | None = None, unreachable: bool = False):
        super().__init__(message)
        self.retry_after = retry_after
        self.unreachable = unreachable
