"""The ``shots`` pipeline stage: cut frames for every row of the videos table.

The stage only records where shots change (``cuts``); turning cuts into clips (minimum/maximum
length, splitting, stitching) is the length policy's job, so changing that policy never
re-decodes a video. The decoded frame count is recorded because containers often lie about it,
and cut frames index the decoded sequence.

A video longer than two segments (``segment_s``, 10 minutes by default) is detected segment by
segment: each segment is read with :data:`SEGMENT_OVERLAP_FRAMES` of context on both sides (far
more than any fade, dissolve or model window needs) and keeps the cuts inside it. The engines
run the segments on different workers, so a two-hour film is not one worker's job while
the others idle; run whole or in segments, the same video gives the same cuts. Only detectors
that look at a bounded window of frames are split (hybrid, transnet; PySceneDetect's keep state
from the first frame), and variable frame rate videos never are (a segment is found by
timestamp, a cut is a frame count).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from clipsieve.media.sources import SourceCache, SourceUnavailable
from clipsieve.shots.detectors import DEFAULT_DETECTOR, ShotDetector, get_detector
from clipsieve.stage import Resources, RowStage, Segment, SegmentedStage, StageError, merge_row

SEGMENT_OVERLAP_FRAMES = 300
"""Context read before and after each segment (12 s at 25 fps)."""


@dataclass
class ShotDetectStage(RowStage, SegmentedStage):
    """Detect shot boundaries in each video with one named detector (built once per worker)."""

    name: ClassVar[str] = "shots"
    version: ClassVar[str] = "1"
    table: ClassVar[str] = "videos"
    inputs: ClassVar[tuple[str, ...]] = ("path",)
    output_columns: ClassVar[tuple[str, ...]] = (
        "cuts",
        "shot_detector",
        "num_frames",
        "num_frames_decoded",
    )
    worker_resources: ClassVar[Resources] = Resources(cpus=2.0)

    detector: str = DEFAULT_DETECTOR
    detector_params: dict[str, Any] = field(default_factory=dict)
    segment_s: float | None = 600.0  # None: never split a video
    _detector: ShotDetector | None = field(default=None, init=False, repr=False, compare=False)
    _source_cache: SourceCache = field(
        default_factory=SourceCache, init=False, repr=False, compare=False
    )

    def setup(self) -> None:
        """Build the detector and load its model once per worker, not on the first video."""
        if self._detector is None:
            self._detector = get_detector(self.detector, **self.detector_params)
            load = getattr(self._detector, "load", None)
            if callable(load):
                load()

    def _path(self, row: dict[str, Any]) -> str:
        self.setup()
        path = row.get("path")
        if not path:
            raise StageError("row has no path")
        return str(path)

    @contextlib.contextmanager
    def _local(self, row: dict[str, Any]) -> Iterator[str]:
        """The row's video as a local path (a URL source: this node's cached copy)."""
        try:
            with self._source_cache.local(self._path(row)) as path:
                yield path
        except SourceUnavailable as exc:
            raise StageError(str(exc)) from None

    def process_row(self, row: dict[str, Any]) -> dict[str, Any]:
        segments = self.segments(row)
        if segments:
            parts = [self.process_segment(row, segment) for segment in segments]
            return self.combine_segments(row, parts)
        self.setup()
        assert self._detector is not None
        with self._local(row) as path:
            result = self._detector.detect(path)
        return self._finish(row, self._path(row), result.cuts, result.num_frames, result.fps)

    # ------------------------------------------------------------------------ segments

    def segments(self, row: dict[str, Any]) -> list[Segment]:
        """Segments of ``segment_s`` (the last one to the end of the file) for long CFR videos,
        when the detector finds the same cuts in a segment as in a whole read."""
        fps, frames = float(row.get("fps") or 0), int(row.get("num_frames") or 0)
        if not self.segment_s or fps <= 0 or frames <= 0 or row.get("vfr"):
            return []
        self.setup()
        if not getattr(self._detector, "segmentable", False):
            return []
        size = max(1, round(self.segment_s * fps))
        if frames < 2 * size:
            return []
        starts = list(range(0, frames - size // 2, size))  # no tail shorter than half a segment
        return [*zip(starts, starts[1:], strict=False), (starts[-1], None)]

    def process_segment(self, row: dict[str, Any], segment: Segment) -> dict[str, Any]:
        start, end = segment
        self.setup()
        assert self._detector is not None
        low = max(0, start - SEGMENT_OVERLAP_FRAMES)
        high = None if end is None else end + SEGMENT_OVERLAP_FRAMES
        with self._local(row) as path:
            result = self._detector.detect(path, low, high)
        if result.num_frames and result.first_frame > start:
            raise StageError(
                f"segment starting at frame {start} decoded from frame {result.first_frame}: "
                "the file's index is off; run with shots.segment_s: null"
            )
        last = result.first_frame + result.num_frames  # one past the last decoded frame
        stop = last if end is None else min(last, end)
        return {
            "cuts": [c for c in result.cuts if start <= c < stop],
            "frames": max(0, stop - max(start, result.first_frame)),
            "fps": result.fps,
        }

    def combine_segments(self, row: dict[str, Any], parts: list[dict[str, Any]]) -> dict[str, Any]:
        cuts = sorted({int(c) for part in parts for c in part["cuts"]})
        frames = sum(int(part["frames"]) for part in parts)
        fps = next((p["fps"] for p in parts if p.get("fps")), 0.0)
        return self._finish(row, self._path(row), cuts, frames, fps)

    def _finish(
        self, row: dict[str, Any], path: str, cuts: list[int], frames: int, fps: float
    ) -> dict[str, Any]:
        if frames == 0:
            raise StageError(f"no frames decoded from {path}")
        updates: dict[str, Any] = {
            "cuts": [int(c) for c in cuts],
            "shot_detector": self.detector,
            "num_frames_decoded": frames,
        }
        if row.get("num_frames") != frames:
            updates["num_frames"] = frames
        if not row.get("fps") and fps:
            updates["fps"] = fps
        return merge_row(row, **updates)
