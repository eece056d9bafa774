"""Caption backends by name: the built-ins, plugins and ``module:Class`` (one registry).

Apart from ``backends.py`` (the interface every backend implements) because building a backend
may build a server pool, which is itself made of OpenAI-compatible backends.
"""

from __future__ import annotations

from typing import Any

from clipsieve.caption.backends import CaptionBackend
from clipsieve.errors import UserError
from clipsieve.registry import Registry

# name -> "module:Class"; imported on use so an unused backend's heavy imports never load.
BACKENDS: dict[str, str] = {
    "openai": "clipsieve.caption.openai_compat:OpenAIBackend",
    "gemini": "clipsieve.caption.gemini:GeminiBackend",
    "local": "clipsieve.caption.local_vlm:LocalVLMBackend",
}


BACKEND_REGISTRY = Registry("caption backend", BACKENDS, "clipsieve.caption_backends")


def make_backend(name: str, **params: Any) -> CaptionBackend:
    """Build a backend by name (built-in, plugin, or ``module:Class``); unknown names and
    parameters are one-line UserErrors. Several ``base_url`` values make one server pool."""
    cls = BACKEND_REGISTRY.load(name)
    params = {k: v for k, v in params.items() if v is not None}
    urls = params.get("base_url")
    if isinstance(urls, (list, tuple)):  # several servers: one pool, or the one server
        if name != "openai":
            raise UserError(f"caption backend '{name}' takes one --base-url, not {len(urls)}")
        if len(urls) > 1:
            from clipsieve.caption.server_pool import OpenAIServerPool

            rest = {k: v for k, v in params.items() if k != "base_url"}
            try:
                return OpenAIServerPool(list(urls), **rest)  # type: ignore[return-value]
            except (TypeError, ValueError) as exc:
                raise UserError(f"caption backend '{name}': {exc}") from None
        params["base_url"] = urls[0] if urls else None
        params = {k: v for k, v in params.items() if v is not None}
    try:
        return cls(**params)
    except TypeError as exc:
        raise UserError(f"caption backend '{name}': {exc}") from None
