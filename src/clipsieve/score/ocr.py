"""On-screen text: how much of the picture is covered by captions, tickers, watermarks, slides.

Text burned into a clip is learned by a video model as content, so clips dominated by subtitles,
news tickers or slides are usually filtered out. The scorer runs PP-OCR text *detection*
(``rapidocr-onnxruntime``, PP-OCRv4 detector shipped inside the wheel) on a few frames and reports
the area covered by the union of the detected text boxes. Recognition of every box (reading
all the text) costs much more and is only needed for inspection, so ``ocr_text`` is off by
default; recognition is used only to confirm doubtful boxes, as below.

The detector alone fires on some textures (foliage, crumpled foil, dark noise), always as squat
or huge boxes, while lines of real text are long, thin and small. So a box whose long side is
less than ``verify_aspect`` times its short side, or that covers more than ``verify_area`` of the
frame, is *verified*: its crop goes through the PP-OCR recogniser and the box counts only if it
reads as at least one letter or digit with confidence ``min_text_score``. A frame with at most
``verify_max_boxes`` boxes has all of them verified (a lone faint box is the typical false
alarm); in text-heavy frames (slides, subtitles) the other boxes are trusted without
recognition, which keeps the cost bounded. On the shared real set this removed every texture
false positive and kept all burned-in text (numbers in benchmarks/scores.py's output).

Frames are analysed at one fixed size (``short_side``, default 360, never upscaled) and RapidOCR is
told ``det_limit_type='max'`` so it keeps that size instead of upscaling the short side to 736
(measured: ~30 ms instead of ~161 ms per 640x360 frame, see DEPENDENCIES.md). Ratios are relative
to the frame area, so they do not depend on the size analysed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import cv2
import numpy as np

from clipsieve.media.image import fit_short_side, to_bgr
from clipsieve.score.base import Frames, Scorer, UniformFrames


def box_aspect(box: np.ndarray) -> float:
    """Long side over short side of a detected quadrilateral (>= 1; inf for a degenerate box)."""
    pts = np.asarray(box, np.float64).reshape(-1, 2)
    width = max(np.linalg.norm(pts[0] - pts[1]), np.linalg.norm(pts[2] - pts[3]))
    height = max(np.linalg.norm(pts[0] - pts[3]), np.linalg.norm(pts[1] - pts[2]))
    short, long = sorted((width, height))
    return float("inf") if short <= 0 else long / short


def union_area_ratio(boxes: list[np.ndarray], height: int, width: int) -> float:
    """Area of the union of polygons (each (k, 2) x/y points) divided by the frame area.

    Rasterised on a mask so overlapping boxes (a word detected twice, stacked caption lines whose
    loose boxes touch) are counted once. Each polygon is filled on its own: one ``fillPoly`` call
    with several polygons uses an even-odd rule and would leave overlaps empty.
    """
    if not boxes:
        return 0.0
    mask = np.zeros((height, width), np.uint8)
    for box in boxes:
        poly = np.round(np.asarray(box, np.float64)).astype(np.int32).reshape(-1, 2)
        cv2.fillPoly(mask, [poly], 1)
    return float(cv2.countNonZero(mask)) / float(height * width)


@dataclass
class TextScorer(UniformFrames, Scorer):
    """Text coverage from PP-OCR detection on ``count`` uniformly placed frames.

    Columns: ``text_area_ratio`` (largest fraction of a frame covered by the union of text boxes
    over the sampled frames; detector boxes are a little looser than the glyphs), ``text_boxes``
    (largest number of text boxes in one frame) and ``ocr_text`` (recognised lines, unique, in
    order of first appearance, joined by newlines; None unless ``recognize``). When
    ``recognize`` is on, the geometry is the same as without it so the two numeric columns do
    not change with it. Squat boxes are verified by recognition (see the module docstring).
    """

    name: ClassVar[str] = "ocr"
    version: ClassVar[str] = "2"
    columns: ClassVar[tuple[str, ...]] = ("text_area_ratio", "text_boxes", "ocr_text")

    count: int = 3
    short_side: int = 360
    box_thresh: float = 0.5  # DB detector box score threshold (RapidOCR default)
    recognize: bool = False
    verify_aspect: float = 2.0  # boxes squatter than this must read as text to count; 0 = off
    verify_area: float = 0.02  # ... and so must boxes larger than this fraction of the frame
    verify_max_boxes: int = 4  # ... and every box of a frame with this many boxes or fewer
    min_text_score: float = 0.5  # recogniser confidence for a verified box (RapidOCR default)
    threads: int = 0  # onnxruntime intra-op threads; 0 = the worker's share of the cores
    _engine: Any = field(default=None, init=False, repr=False, compare=False)

    def setup(self) -> None:
        """Load the detector (and recogniser) ONNX sessions once per worker."""
        if self._engine is not None:
            return
        from rapidocr_onnxruntime import RapidOCR

        from clipsieve.media.threads import worker_cpu_threads

        threads = self.threads or worker_cpu_threads()
        self._engine = RapidOCR(
            det_limit_type="max",
            det_box_thresh=self.box_thresh,
            intra_op_num_threads=threads if threads > 0 else -1,
        )

    def detect(self, bgr: np.ndarray) -> list[np.ndarray]:
        """Detected text boxes, the suspicious ones kept only if the recogniser reads them."""
        result, _ = self._engine(
            bgr, use_det=True, use_cls=False, use_rec=False, box_thresh=self.box_thresh
        )
        boxes = [np.asarray(box, np.float64) for box in result or []]
        frame_area = float(bgr.shape[0] * bgr.shape[1])
        suspects = [
            i
            for i, box in enumerate(boxes)
            if len(boxes) <= self.verify_max_boxes
            or box_aspect(box) < self.verify_aspect
            or cv2.contourArea(box.astype(np.float32)) > self.verify_area * frame_area
        ]
        if not suspects:
            return boxes
        crops = self._engine.get_crop_img_list(bgr, [boxes[i].astype(np.float32) for i in suspects])
        readings, _ = self._engine.text_rec(crops)
        rejected = {
            i
            for i, (text, confidence) in zip(suspects, readings, strict=True)
            if float(confidence) < self.min_text_score or not any(c.isalnum() for c in str(text))
        }
        return [box for i, box in enumerate(boxes) if i not in rejected]

    def _read(self, bgr: np.ndarray) -> list[str]:
        result, _ = self._engine(
            bgr, use_det=True, use_cls=False, use_rec=True, box_thresh=self.box_thresh
        )
        return [str(line[1]).strip() for line in result or [] if str(line[1]).strip()]

    def score(self, frames: Frames) -> dict[str, Any]:
        if self._engine is None:
            self.setup()
        images = [fit_short_side(img, self.short_side) for img in frames.images]
        if not images:
            return dict.fromkeys(self.columns)
        ratios: list[float] = []
        counts: list[int] = []
        lines: dict[str, None] = {}  # ordered set
        for image in images:
            bgr = to_bgr(image)
            boxes = self.detect(bgr)
            ratios.append(union_area_ratio(boxes, *bgr.shape[:2]))
            counts.append(len(boxes))
            if self.recognize:
                lines.update(dict.fromkeys(self._read(bgr)))
        return {
            "text_area_ratio": max(ratios),
            "text_boxes": max(counts),
            "ocr_text": "\n".join(lines) if self.recognize else None,
        }
