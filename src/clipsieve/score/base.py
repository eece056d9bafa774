"""The scorer interface: declare the frames you need, turn them into columns.

A scorer never opens a video. It declares a :class:`FrameSpec`; the score stage decodes each clip
once for the union of all scorers' specs (see ``media/frames.py``) and hands every scorer its own
view as numpy arrays. Models load in :meth:`Scorer.setup`, once per worker.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from clipsieve.media.frames import Frames, FrameSpec

__all__ = ["FrameSpec", "Frames", "Scorer"]  # everything a scorer is written against


class Scorer(ABC):
    """One family of scores. Subclasses set the class attributes and implement :meth:`score`."""

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    columns: ClassVar[tuple[str, ...]]  # the columns :meth:`score` returns, always all of them
    gpu: ClassVar[bool] = False  # a large model that runs much faster on a GPU when one exists

    @abstractmethod
    def frame_spec(self) -> FrameSpec:
        """The frames this scorer needs (may depend on its parameters)."""

    def setup(self) -> None:  # noqa: B027 - optional hook, empty by design
        """Load models once per worker. Default: nothing to load."""

    @abstractmethod
    def score(self, frames: Frames) -> dict[str, Any]:
        """Columns for one clip. Values that cannot be computed are None, never 0 or -1."""

    def params(self) -> dict[str, Any]:
        """Parameters for provenance; dataclass scorers get their fields automatically."""
        if not dataclasses.is_dataclass(self):
            return {}
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
