"""The ``shots`` pipeline stage: cut frames for every row of the videos table.

The stage only records where shots change (``cuts``); turning cuts into clips (minimum/maximum
length, splitting, stitching) is the length policy's job, so changing that policy never
re-decodes a video. The decoded frame count is recorded because containers often lie about it,
and cut frames index the decoded sequence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from clipsieve.shots.detectors import DEFAULT_DETECTOR, ShotDetector, get_detector
from clipsieve.stage import Resources, RowStage, StageError, merge_row


@dataclass
class ShotDetectStage(RowStage):
    """Detect shot boundaries in each video with one named detector (built once per worker)."""

    name: ClassVar[str] = "shots"
    version: ClassVar[str] = "1"
    table: ClassVar[str] = "videos"
    inputs: ClassVar[tuple[str, ...]] = ("path",)
    outputs: ClassVar[tuple[str, ...]] = (
        "cuts",
        "shot_detector",
        "num_frames",
        "num_frames_decoded",
    )
    resources: ClassVar[Resources] = Resources(cpus=2.0)

    detector: str = DEFAULT_DETECTOR
    detector_params: dict[str, Any] = field(default_factory=dict)
    _detector: ShotDetector | None = field(default=None, init=False, repr=False, compare=False)

    def setup(self) -> None:
        """Build the detector and load its model once per worker, not on the first video."""
        if self._detector is None:
            self._detector = get_detector(self.detector, **self.detector_params)
            load = getattr(self._detector, "load", None)
            if callable(load):
                load()

    def process_row(self, row: dict[str, Any]) -> dict[str, Any]:
        self.setup()
        assert self._detector is not None
        path = row.get("path")
        if not path:
            raise StageError("row has no path")
        result = self._detector.detect(path)
        if result.num_frames == 0:
            raise StageError(f"no frames decoded from {path}")
        updates: dict[str, Any] = {
            "cuts": [int(c) for c in result.cuts],
            "shot_detector": self.detector,
            "num_frames_decoded": result.num_frames,
        }
        if row.get("num_frames") != result.num_frames:
            updates["num_frames"] = result.num_frames
        if not row.get("fps") and result.fps:
            updates["fps"] = result.fps
        return merge_row(row, **updates)
