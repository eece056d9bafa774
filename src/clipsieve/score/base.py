"""The scorer interface: declare the frames you need, turn them into columns.

A scorer never opens a video. It declares a :class:`FrameSpec`; the score stage decodes each clip
once for the union of all scorers' specs (see ``score/frames.py``) and hands every scorer its own
view as numpy arrays. Models load in :meth:`Scorer.setup`, once per worker.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np


@dataclass(frozen=True)
class FrameSpec:
    """Which frames a scorer needs, at what size and in which colour space.

    Sampling is either ``every_s`` (one frame every N seconds of the clip, starting at its first
    frame: the original filtering project used 0.25 s) or ``count`` frames placed by
    ``positions``: ``uniform`` (centres of ``count`` equal parts), ``ends`` (first, middle, last
    for count 3; first and last for 2), or explicit ``fractions`` of the clip's length (Open-Sora's
    aesthetic scorer uses 0.1/0.5/0.9). Size is ``size`` = (width, height) exactly, or
    ``short_side`` keeping the aspect ratio (never upscaling), or the native size when both are
    None.
    """

    every_s: float | None = None
    count: int | None = None
    positions: Literal["uniform", "ends", "fractions"] = "uniform"
    fractions: tuple[float, ...] = ()
    size: tuple[int, int] | None = None
    short_side: int | None = None
    color: Literal["rgb", "gray"] = "rgb"

    def __post_init__(self) -> None:
        if (self.every_s is None) == (self.count is None and not self.fractions):
            raise ValueError("FrameSpec needs exactly one of every_s, count or fractions")


@dataclass
class Frames:
    """What a scorer receives for one clip.

    ``images``: uint8 array (n, h, w, 3) RGB or (n, h, w) grey; ``indices``: frame numbers within
    the clip (0-based); ``times_s``: seconds from the clip's first frame; ``fps``: the clip's
    average frame rate; ``source_size``: (width, height) of the decoded video before resizing.
    """

    images: np.ndarray
    indices: np.ndarray
    times_s: np.ndarray
    fps: float
    source_size: tuple[int, int]
    # Per-clip results that several scorers derive from the same frames (e.g. optical flow for
    # motion and camera), computed by the first scorer that needs them.
    cache: dict[str, Any] = field(default_factory=dict, repr=False)


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
