"""What every shot detector shares: the result, the interface, and torch's thread count.

Kept apart from the detectors so the hybrid detector (``hybrid.py``) and the PySceneDetect and
TransNetV2 wrappers (``detectors.py``) import it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

DEFAULT_DETECTOR = "hybrid"


@dataclass
class ShotResult:
    """What a detector found in one video."""

    fps: float
    num_frames: int  # frames decoded (from ``first_frame`` on)
    cuts: list[int]
    scores: np.ndarray | None = None  # per-frame metric the decision was made on, if any
    first_frame: int = 0  # frame number of the first decoded frame (a segment's start)

    def to_json(self, video: str) -> dict[str, Any]:
        """The ``detect-shots --json`` line for this video."""
        return {
            "video": video,
            "fps": round(self.fps, 6),
            "num_frames": self.num_frames,
            "cuts": [int(c) for c in self.cuts],
        }


class ShotDetector(Protocol):
    """The interface: a name, its parameters, and ``detect(path)``.

    ``start_frame``/``end_frame`` detect in frames ``[start_frame, end_frame)`` only (a segment
    of a long video; cut numbers stay the whole video's); a cut at ``start_frame`` itself cannot
    be seen there (no frame before it), so segments are read with an overlap.
    """

    name: ClassVar[str]
    # Whether a segment read with enough context on both sides finds the same cuts as a whole
    # read: true for detectors that look at a bounded window of frames. PySceneDetect's keep
    # state from the first frame on (its flash filter), so a segment starting elsewhere can
    # miss a cut a whole read finds (seen: a cut 60 frames into a segment).
    segmentable: ClassVar[bool]

    def params(self) -> dict[str, Any]: ...

    def detect(
        self, path: str | Path, start_frame: int = 0, end_frame: int | None = None
    ) -> ShotResult: ...


class torch_threads:
    """Temporarily set torch's intra-op thread count (0 = leave it alone)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.old = 0

    def __enter__(self) -> None:
        if self.n > 0:
            import torch

            self.old = torch.get_num_threads()
            torch.set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        if self.n > 0:
            import torch

            torch.set_num_threads(self.old)
