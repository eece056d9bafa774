"""Static-clip detection by frame differencing, as the original filtering project did.

Frames 0.25 s apart are compared by mean squared difference over all pixels and RGB channels
on the 0-255 scale. A slideshow, a frozen frame or a talking head behind a still logo scores
near zero; a cut or fast action scores in the hundreds or thousands.

The difference is computed at a fixed analysis size (short side :data:`DIFF_SHORT_SIDE` = 180 px,
320x180 for 16:9) so that the score does not depend on the source resolution: resizing averages
away sensor noise, and a 4K and a 360p copy of the same clip then score alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import cv2
import numpy as np

from clipsieve.media.image import resize_short_side
from clipsieve.score.base import Frames, FrameSpec, Scorer

DIFF_SHORT_SIDE = 180
"""Short side (px) of the frames the RGB difference is computed on."""


def rgb_diffs(images: np.ndarray, short_side: int = DIFF_SHORT_SIDE) -> np.ndarray:
    """Mean squared difference (0-255 scale) between each frame and the next, ``n - 1`` floats.

    Grey frames are accepted too (treated as three equal channels, which gives the same mean).
    """
    if len(images) < 2:
        return np.zeros(0, dtype=np.float64)
    frames = [resize_short_side(np.ascontiguousarray(img), short_side) for img in images]
    out = np.empty(len(frames) - 1, dtype=np.float64)
    for i, (a, b) in enumerate(zip(frames[:-1], frames[1:], strict=True)):
        d = cv2.absdiff(a, b).astype(np.float32)
        out[i] = float(np.mean(d * d))
    return out


@dataclass
class RgbDiffScorer(Scorer):
    """Consecutive-frame RGB mean squared difference, summarised over the clip.

    Columns: ``rgb_diff_mean`` / ``rgb_diff_max`` = mean / max over sampled pairs of the pair's
    mean squared difference (0-255 scale, so 0..65025). None when fewer than two frames.
    """

    name: ClassVar[str] = "static"
    columns: ClassVar[tuple[str, ...]] = ("rgb_diff_max", "rgb_diff_mean")

    every_s: float = 0.25

    def __post_init__(self) -> None:
        if self.every_s <= 0:
            raise ValueError(f"static: every_s must be > 0, got {self.every_s}")

    def frame_spec(self) -> FrameSpec:
        return FrameSpec(every_s=self.every_s, short_side=DIFF_SHORT_SIDE, color="rgb")

    def score(self, frames: Frames) -> dict[str, Any]:
        diffs = rgb_diffs(frames.images)
        if diffs.size == 0:
            return {"rgb_diff_max": None, "rgb_diff_mean": None}
        return {"rgb_diff_max": float(diffs.max()), "rgb_diff_mean": float(diffs.mean())}
