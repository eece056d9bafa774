"""Explicit nudity: the most confident exposed-body detection in a few frames of the clip.

Uses NudeNet 3.4's ``NudeDetector`` (a small YOLOv8 ONNX model, ``320n.onnx``, shipped in the
wheel). It detects body parts, both covered and exposed, plus faces and feet; only the explicit
"exposed" classes in :data:`EXPOSED_LABELS` count here, so a clip of people in swimwear or a bare
belly does not score.

``NudeDetector.detect_batch`` accepts numpy arrays, so frames go to it straight from memory (no
temporary image files). Its preprocessing was written for ``cv2.imread`` output and its channel
handling only reproduces the path-based results for a 3-channel **BGR** array, so frames are
converted RGB -> BGR first. The detector itself resizes each frame to 320 px on the long side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from clipsieve.media.image import fit_short_side, to_bgr
from clipsieve.score.base import Frames, Scorer, UniformFrames

EXPOSED_LABELS: frozenset[str] = frozenset(
    {
        "FEMALE_BREAST_EXPOSED",
        "FEMALE_GENITALIA_EXPOSED",
        "MALE_GENITALIA_EXPOSED",
        "BUTTOCKS_EXPOSED",
        "ANUS_EXPOSED",
    }
)


def summarize(detections: list[list[dict[str, Any]]], label_min: float) -> dict[str, Any]:
    """Columns from NudeNet's per-frame detections (``{"class", "score", "box"}`` dicts).

    ``nsfw_score`` is the highest exposed-class confidence in any frame, 0.0 when there is none
    (NudeNet reports nothing below 0.25, so "no detection" is a real low score, not unknown);
    ``nsfw_labels`` the sorted exposed classes seen with confidence >= ``label_min``.
    """
    exposed = [d for frame in detections for d in frame if d["class"] in EXPOSED_LABELS]
    return {
        "nsfw_score": max((float(d["score"]) for d in exposed), default=0.0),
        "nsfw_labels": sorted({d["class"] for d in exposed if float(d["score"]) >= label_min}),
    }


@dataclass
class NsfwScorer(UniformFrames, Scorer):
    """NudeNet exposed-body score on ``count`` uniformly placed frames.

    Columns: ``nsfw_score`` (0-1, max confidence of an exposed-body class over the frames) and
    ``nsfw_labels`` (sorted list of exposed classes seen with confidence >= ``label_min``).
    """

    name: ClassVar[str] = "nsfw"
    columns: ClassVar[tuple[str, ...]] = ("nsfw_score", "nsfw_labels")

    count: int = 4
    short_side: int = 360  # decode size; the detector works at 320 px on the long side anyway
    label_min: float = 0.5
    threads: int = 0  # onnxruntime intra-op threads; 0 = the worker's share of the cores
    _detector: Any = field(default=None, init=False, repr=False, compare=False)

    def setup(self) -> None:
        """Load the ONNX model once per worker."""
        if self._detector is not None:
            return
        import nudenet
        import onnxruntime
        from nudenet import NudeDetector

        from clipsieve.media.threads import worker_cpu_threads

        detector = NudeDetector()
        threads = self.threads or worker_cpu_threads()
        if threads > 0:
            # NudeDetector takes no session options; rebuild its session on the same model file.
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            detector.onnx_session = onnxruntime.InferenceSession(
                str(Path(nudenet.__file__).with_name("320n.onnx")),
                sess_options=options,
                providers=["CPUExecutionProvider"],
            )
        self._detector = detector

    def score(self, frames: Frames) -> dict[str, Any]:
        if self._detector is None:
            self.setup()
        images = [to_bgr(fit_short_side(img, self.short_side)) for img in frames.images]
        if not images:
            return dict.fromkeys(self.columns)
        detections = self._detector.detect_batch(images, batch_size=len(images))
        return summarize(detections, self.label_min)
