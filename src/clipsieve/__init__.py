"""clipsieve: raw video in, a curated, captioned text-to-video training set out.

The Python API (docs/api.md) is here, imported on first use so that ``import clipsieve`` loads
nothing heavy: :func:`run` (the whole pipeline, as ``clipsieve run``), :func:`open_run` (a run
folder: its tables as polars LazyFrames, and every post-run step as a method) and
``clipsieve.data.ClipDataset`` (a PyTorch dataset over an export or a run folder).
"""

from __future__ import annotations

from typing import Any

from clipsieve.version import __version__

__all__ = ["Run", "__version__", "open_run", "run"]
_API = ("Run", "open_run", "run")


def __getattr__(name: str) -> Any:
    if name in _API:
        from clipsieve import api

        return getattr(api, name)
    raise AttributeError(f"module 'clipsieve' has no attribute {name!r}")
