"""The scorer interface: declare the frames you need, turn them into columns.

A scorer never opens a video. It declares a :class:`FrameSpec`; the score stage decodes each clip
once for the union of all scorers' specs (see ``media/frames.py``) and hands every scorer its own
view as numpy arrays. Models load in :meth:`Scorer.setup`, once per worker.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from clipsieve.media.frames import Frames, FrameSpec

__all__ = [
    "BatchScorer",
    "FrameSpec",
    "Frames",
    "Scorer",
    "UniformFrames",
]  # everything a scorer is written against


class Scorer(ABC):
    """One family of scores. Subclasses set the class attributes and implement :meth:`score`."""

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    columns: ClassVar[tuple[str, ...]]  # the columns :meth:`score` returns, always all of them
    # a large model that runs much faster on a GPU when one exists (see :meth:`uses_gpu`)
    gpu: ClassVar[bool] = False

    @abstractmethod
    def frame_spec(self) -> FrameSpec:
        """The frames this scorer needs (may depend on its parameters)."""

    def setup(self) -> None:  # noqa: B027 - optional hook, empty by design
        """Load models once per worker. Default: nothing to load."""

    def teardown(self) -> None:  # noqa: B027 - optional hook, empty by design
        """Release what :meth:`setup` loaded. Default: nothing to release."""

    def uses_gpu(self) -> bool:
        """Whether this scorer, with its parameters, is worth a GPU (the score stage asks for
        one when any of its scorers is). Default: the class's :attr:`gpu`."""
        return self.gpu

    @abstractmethod
    def score(self, frames: Frames) -> dict[str, Any]:
        """Columns for one clip. Values that cannot be computed are None, never 0 or -1."""

    def score_rows(
        self, clips: Sequence[Frames], rows: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """Columns for several clips of a batch at once, with their table rows (a scorer may
        read e.g. the caption). Default: :meth:`score` per clip; the learned scorers override
        it to run one model pass over every clip's frames. When it raises, the stage retries
        each clip alone, so one bad clip fails only its own row."""
        return [self.score(frames) for frames in clips]

    def params(self) -> dict[str, Any]:
        """Parameters for provenance; dataclass scorers get their fields automatically."""
        if not dataclasses.is_dataclass(self):
            return {}
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}


class BatchScorer(Scorer):
    """A scorer whose model runs best over many clips at once (CLIP, SigLIP heads): it
    implements :meth:`score_rows`; one clip alone goes through it with an empty row (no
    caption, so columns that need one are null)."""

    def score(self, frames: Frames) -> dict[str, Any]:
        return self.score_rows([frames], [{}])[0]

    @abstractmethod
    def score_rows(
        self, clips: Sequence[Frames], rows: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """Columns for every clip of ``clips`` (with its table row), one model pass."""


@dataclass
class UniformFrames:
    """Mixin for scorers that look at ``count`` frames spread evenly over the clip, decoded
    with the short side at ``short_side`` px (each scorer sets its own defaults)."""

    count: int = 4
    short_side: int = 360

    def frame_spec(self) -> FrameSpec:
        return FrameSpec(count=self.count, positions="uniform", short_side=self.short_side)
