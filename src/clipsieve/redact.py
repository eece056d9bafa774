"""Keep what users type as secrets out of every file clipsieve writes.

A key can reach a file three ways: inside a URL (``http://user:KEY@host/v1``,
``https://host/v.mp4?sig=...``), echoed back in a server's error body, or as the value of an
option. Provenance (``run.json``, Parquet metadata, manifests) and error text pass through
:func:`redact_value` / :func:`redact_text` before they are written, so the record says *that*
credentials were there (``***``) but never what they were.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

MASK = "***"
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/?#@\s\"']+)@")
_SECRET_QUERY = re.compile(
    r"(?P<name>[?&](?:api[_-]?key|key|token|access[_-]?token|auth|password|passwd|secret|sig|"
    r"signature|x-amz-signature|x-amz-credential|x-amz-security-token|x-goog-signature|"
    r"x-goog-credential)=)(?P<value>[^&#\s\"']+)",
    re.IGNORECASE,
)
_BEARER = re.compile(
    r"(?P<name>\b(?:Bearer|Basic)\s+)(?P<value>[A-Za-z0-9._~+/=-]{8,})", re.IGNORECASE
)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with URL credentials, secret query values, bearer tokens and every one of
    ``secrets`` (known keys, 4 characters or more) replaced by ``***``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, MASK)
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    text = _SECRET_QUERY.sub(lambda m: f"{m['name']}{MASK}", text)
    return _BEARER.sub(lambda m: f"{m['name']}{MASK}", text)


def redact_value(value: Any, secrets: Iterable[str] = ()) -> Any:
    """:func:`redact_text` applied to every string inside ``value`` (dicts, lists, tuples)."""
    secrets = tuple(secrets)
    if isinstance(value, str):
        return redact_text(value, secrets)
    if isinstance(value, Mapping):
        return {k: redact_value(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(v, secrets) for v in value]
    return value


def url_secrets(url: str) -> list[str]:
    """The password (and user name) inside ``url``, raw and percent-decoded: what a server
    may echo back in an error body."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found = [p for p in (parts.password, parts.username) if p]
    return [*found, *(unquote(p) for p in found if unquote(p) != p)]
