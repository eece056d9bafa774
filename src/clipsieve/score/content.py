"""Offline content detectors: what thresholds on motion or text area cannot tell apart.

Four scorers over the same eight frames of a clip (decoded once; the per-clip analysis they share
is computed once and kept in ``Frames.cache``), no model download:

* ``overlay_text`` → ``overlay_text_ratio``, ``scene_text_ratio``: text boxes (the PP-OCR detector
  of the ``ocr`` scorer, on three of the frames) whose pixels stay put while the picture around
  them moves are *overlay* (subtitles, captions, watermarks burned in after filming); the others
  are *scene* text that belongs to the filmed content. Ratios are the area of the union of boxes
  over the frame. When nothing in the picture moves, text cannot be told apart and counts as
  scene text.
* ``layout`` → ``split_screen``, ``pip``: a straight edge that runs across the whole frame at the
  same place in every frame and has picture on both sides divides it (hstack/vstack, side by
  side interviews); a persistent inner rectangle whose inside changes differently from its
  outside is picture-in-picture (screen-in-screen).
* ``still`` → ``still_area_frac``, ``ken_burns``: the share of the frame that never changes (a
  still image with a moving caption or sticker scores high), and whether the frames are one
  still image slowly zoomed or panned (every pair related by one similarity transform, with
  almost nothing left after warping).
* ``logo`` → ``logo_area``: the area of a persistent, edge-rich patch in a corner of a moving
  picture (a broadcaster's logo, a watermark, opaque or see-through), as a fraction of the
  frame.

``clipsieve score RUN --scorers content`` runs all four (``content`` is a scorer group).
Thresholds were set on synthetic cases made with ffmpeg and checked on labelled real footage
(``benchmarks/content.py``, numbers in the README).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import cv2
import numpy as np

from clipsieve.media.image import resize_short_side, to_bgr, to_gray
from clipsieve.score.base import Frames, FrameSpec, Scorer

FRAMES = 8
TEXT_SIDE = 288  # decoded frame size: what the text detector sees
ANALYSIS_SIDE = 180  # temporal analysis size
FROZEN_STD = 2.5  # grey levels: a pixel whose std over the frames is below this never changes
MOVING_STD = 8.0  # above this it changes
# a still image repeats exactly (camera footage keeps sensor noise and compression flicker)
STILL_STD = 1.0
EDGE = 40.0  # Sobel magnitude of an edge at the analysis size


@dataclass
class ClipAnalysis:
    """What the content scorers share for one clip (analysis size, grey)."""

    grey: np.ndarray  # (n, h, w) float32
    std: np.ndarray  # (h, w) per-pixel standard deviation over the frames
    edges: np.ndarray  # (n, h, w) bool
    steady_edges: np.ndarray  # (h, w) bool: an edge in at least 7 of 8 frames
    persistent_edges: np.ndarray  # (h, w) bool: steady edges whose grey level is frozen
    moving_frac: float  # share of pixels that change
    # |mean of the frames' gradient vectors|: high where the same edge is in every frame
    steady_gradient: np.ndarray  # (h, w) float32
    # steady_gradient / mean gradient magnitude: 1 where an edge keeps its direction and
    # strength in every frame whatever lies behind it (a see-through logo), low for edges that
    # move or come and go
    gradient_coherence: np.ndarray  # (h, w) float32

    @property
    def frozen(self) -> np.ndarray:
        return self.std < FROZEN_STD


def analyse(frames: Frames) -> ClipAnalysis:
    """The shared analysis, computed once per clip and cached on ``frames``."""
    cached = frames.cache.get("content")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    grey = np.stack(
        [resize_short_side(to_gray(img), ANALYSIS_SIDE).astype(np.float32) for img in frames.images]
    )
    std = grey.std(axis=0)
    gradients = [_gradient(g) for g in grey]
    magnitudes = np.stack([cv2.magnitude(gx, gy) for gx, gy in gradients])
    edges = magnitudes > EDGE
    needed = max(2, int(np.ceil(0.85 * len(grey))))
    steady_edges = edges.sum(axis=0) >= needed
    persistent = steady_edges & (std < FROZEN_STD * 2)
    steady = cv2.magnitude(
        np.mean([gx for gx, _ in gradients], axis=0), np.mean([gy for _, gy in gradients], axis=0)
    )
    analysis = ClipAnalysis(
        grey, std, edges, steady_edges, persistent, float((std > MOVING_STD).mean()),
        steady, steady / np.maximum(magnitudes.mean(axis=0), 1e-3),
    )  # fmt: skip
    frames.cache["content"] = analysis
    return analysis


def _gradient(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)


class _ContentScorer(Scorer):
    """The frame spec all content scorers share (so the sampler decodes them once)."""

    def frame_spec(self) -> FrameSpec:
        # grey: the text detector reads grey frames as well, and conversion is cheaper
        return FrameSpec(count=FRAMES, positions="uniform", short_side=TEXT_SIDE, color="gray")


# ------------------------------------------------------------------------------ overlay text


@dataclass
class OverlayTextScorer(_ContentScorer):
    name: ClassVar[str] = "overlay_text"
    columns: ClassVar[tuple[str, ...]] = ("overlay_text_ratio", "scene_text_ratio")

    frozen_share: float = 0.25  # of a box's edges that never move: the box is overlay
    min_moving: float = 0.03  # share of the picture that must move to tell the two apart
    _text: Any = field(default=None, init=False, repr=False, compare=False)

    def setup(self) -> None:
        if self._text is None:
            from clipsieve.score.ocr import TextScorer

            # a lone box is not re-read by the recogniser here (the ocr scorer does, against
            # texture false alarms): a box only counts once its strokes are checked over frames
            self._text = TextScorer(verify_max_boxes=0)
            self._text.setup()

    def teardown(self) -> None:
        self._text = None

    def score(self, frames: Frames) -> dict[str, Any]:
        if len(frames.images) < 2:
            return dict.fromkeys(self.columns)
        self.setup()
        from clipsieve.score.ocr import union_area_ratio

        analysis = analyse(frames)
        h, w = analysis.std.shape
        still_picture = analysis.moving_frac < self.min_moving
        overlay: list[np.ndarray] = []
        scene: list[np.ndarray] = []
        index = len(frames.images) // 2  # one frame: text detection is the costly part
        image = frames.images[index]
        scale = w / image.shape[1]
        edges = analysis.edges[index]
        boxes = [np.asarray(b, np.float64) * scale for b in self._text.detect(to_bgr(image))]
        # how many of the picture's other edges stay put (a static background: many)
        outside = edges & ~_mask(edges.shape, boxes)
        usual = float(analysis.persistent_edges[outside].mean()) if outside.sum() > 50 else 0.0
        for small in boxes:
            # the text's own strokes (its edges in this frame) stay put in every frame
            steady = _stroke_steadiness(analysis, _mask(edges.shape, [small]), index)
            if not still_picture and steady >= self.frozen_share and steady >= 3 * usual:
                overlay.append(small)  # put while the picture around it moves
            else:
                # one still picture, text that moves with the picture, or steady text in a
                # steady part of the scene (a sign, a screen in a static shot)
                scene.append(small)
        return {
            "overlay_text_ratio": round(union_area_ratio(overlay, h, w), 5),
            "scene_text_ratio": round(union_area_ratio(scene, h, w), 5),
        }


def _stroke_steadiness(a: ClipAnalysis, inside: np.ndarray, index: int) -> float:
    """Share of a text box's edge pixels (in frame ``index``) that stay edges, with the same
    grey level, in every frame where the text is there at all (a title may appear halfway)."""
    strokes = a.edges[index] & inside
    if not strokes.any():
        return 0.0
    present = a.edges[:, strokes].mean(axis=1) >= 0.5  # frames showing most of the strokes
    if present.sum() < 3:
        return 0.0
    edges = a.edges[present][:, strokes].mean(axis=0) >= 0.85
    unchanged = a.grey[present][:, strokes].std(axis=0) < 2 * FROZEN_STD
    return float((edges & unchanged).mean())


def _mask(shape: tuple[int, ...], polygons: list[np.ndarray]) -> np.ndarray:
    """Pixels inside any of ``polygons``."""
    mask = np.zeros(shape, np.uint8)
    for polygon in polygons:
        cv2.fillPoly(mask, [np.round(polygon).astype(np.int32).reshape(-1, 2)], 1)
    return mask.astype(bool)


def _share(mask: np.ndarray, polygon: np.ndarray, within: np.ndarray | None = None) -> float:
    """Share of ``polygon``'s pixels (those set in ``within``, if given) set in ``mask``."""
    inside = _mask(mask.shape, [polygon])
    region = inside if within is None else inside & within
    area = int(region.sum())
    return float((mask & region).sum()) / area if area else 0.0


# ------------------------------------------------------------------------------ layout


@dataclass
class LayoutScorer(_ContentScorer):
    name: ClassVar[str] = "layout"
    columns: ClassVar[tuple[str, ...]] = ("split_screen", "pip")

    line_cover: float = 0.9  # share of the frame a dividing line must run across
    margin: float = 0.2  # split lines lie between 20 % and 80 % (bars and caption bands: outside)
    min_box: float = 0.03  # picture-in-picture box area, share of the frame
    max_box: float = 0.5

    def score(self, frames: Frames) -> dict[str, Any]:
        if len(frames.images) < 2:
            return dict.fromkeys(self.columns)
        analysis = analyse(frames)
        return {
            "split_screen": bool(self._dividing_lines(analysis)),
            "pip": self._inner_box(analysis),
        }

    def _dividing_lines(self, a: ClipAnalysis) -> list[tuple[str, int]]:
        """Straight lines across the whole frame, at the same place in every frame, with
        picture (texture) on both sides."""
        found = []
        _, h, w = a.edges.shape
        for axis, size in (("v", w), ("h", h)):
            # per frame: share of the line's length covered by edge pixels, at each position
            cover = a.edges.mean(axis=1) if axis == "v" else a.edges.mean(axis=2)  # (n, size)
            cover = np.maximum(cover, np.roll(cover, 1, axis=1))  # a line on a pixel boundary
            steady = (cover >= self.line_cover).mean(axis=0) >= 0.85
            lo, hi = int(self.margin * size), int((1 - self.margin) * size)
            for pos in np.flatnonzero(steady[lo:hi]) + lo:
                if found and found[-1][0] == axis and pos - found[-1][1] <= 2:
                    continue  # the same line, one pixel over
                if self._picture_both_sides(a, axis, int(pos), size):
                    found.append((axis, int(pos)))
        return found

    @staticmethod
    def _picture_both_sides(a: ClipAnalysis, axis: str, pos: int, size: int) -> bool:
        """Both panes are picture that changes: a bar (flat, still) or a caption band is not
        a pane, and two halves of one still picture are not a split."""
        if axis == "v":
            sides = (a.std[:, : max(1, pos - 1)], a.std[:, pos + 2 :])
        else:
            sides = (a.std[: max(1, pos - 1), :], a.std[pos + 2 :, :])
        return all(part.size and float(part.mean()) > 1.5 for part in sides)

    def _inner_box(self, a: ClipAnalysis) -> bool:
        """A rectangle of persistent edges inside the frame whose inside changes differently
        from its outside."""
        mask = a.persistent_edges.astype(np.uint8) * 255
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
        contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        h, w = mask.shape
        for contour in contours:
            x, y, bw, bh = cv2.boundingRect(contour)
            area = bw * bh / (h * w)
            if not self.min_box <= area <= self.max_box or min(bw, bh) < 12:
                continue
            if x <= 1 or y <= 1 or x + bw >= w - 1 or y + bh >= h - 1:
                continue  # touches the frame: not inside it
            if not _rectangle_outline(a.persistent_edges, x, y, bw, bh):
                continue
            # a frame that stays drawn while the picture inside it changes (a video, not a
            # dialog box where a line of text is typed)
            inside = a.std[y + 2 : y + bh - 2, x + 2 : x + bw - 2]
            if inside.size and float((inside > MOVING_STD).mean()) >= 0.3:
                return True
        return False


def _rectangle_outline(edges: np.ndarray, x: int, y: int, w: int, h: int) -> bool:
    """Whether all four sides of the box are mostly edge pixels (within a pixel)."""

    def covered(line: np.ndarray) -> float:
        return float(line.any(axis=0).mean()) if line.ndim == 2 else float(line.mean())

    top = edges[max(0, y - 1) : y + 2, x : x + w]
    bottom = edges[max(0, y + h - 2) : y + h + 1, x : x + w]
    left = edges[y : y + h, max(0, x - 1) : x + 2].T
    right = edges[y : y + h, max(0, x + w - 2) : x + w + 1].T
    return min(covered(top), covered(bottom), covered(left), covered(right)) >= 0.8


# ------------------------------------------------------------------------------ still image


@dataclass
class StillScorer(_ContentScorer):
    name: ClassVar[str] = "still"
    columns: ClassVar[tuple[str, ...]] = ("still_area_frac", "ken_burns")

    max_residual: float = 2.5  # grey levels left after warping one frame onto the next
    residual_share: float = 0.35  # ... and at most this share of the difference before warping

    def score(self, frames: Frames) -> dict[str, Any]:
        if len(frames.images) < 2:
            return dict.fromkeys(self.columns)
        analysis = analyse(frames)
        return {
            "still_area_frac": round(float((analysis.std < STILL_STD).mean()), 4),
            "ken_burns": self._ken_burns(analysis.grey),
        }

    def _ken_burns(self, grey: np.ndarray) -> bool:
        """Every pair of frames one similarity transform apart, with real motion and almost
        nothing left after warping: a still image slowly zoomed or panned."""
        moved = 0
        for a, b in zip(grey[:-1], grey[1:], strict=True):
            verdict = self._pair_is_warp(a, b)
            if verdict is False:
                return False  # one pair that is not a warp decides (and saves the rest)
            moved += verdict is True
        return moved >= max(2, int(0.7 * (len(grey) - 1)))

    def _pair_is_warp(self, a: np.ndarray, b: np.ndarray) -> bool | None:
        """True: b is a warped a; False: it is not; None: the pair did not move."""
        a8, b8 = a.astype(np.uint8), b.astype(np.uint8)
        before = float(np.abs(a - b).mean())
        if before < 1.0:
            return None
        points = cv2.goodFeaturesToTrack(a8, maxCorners=200, qualityLevel=0.01, minDistance=5)
        if points is None or len(points) < 12:
            return False
        moved, status, _ = cv2.calcOpticalFlowPyrLK(a8, b8, points, None)
        good = status.ravel() == 1
        if good.sum() < 12:
            return False
        matrix, inliers = cv2.estimateAffinePartial2D(
            points[good], moved[good], method=cv2.RANSAC, ransacReprojThreshold=1.0
        )
        if matrix is None or inliers is None or inliers.mean() < 0.8:
            return False
        h, w = a.shape
        warped = cv2.warpAffine(a, matrix, (w, h), flags=cv2.INTER_LINEAR, borderValue=-1.0)
        valid = warped >= 0
        valid[:4, :] = valid[-4:, :] = False
        valid[:, :4] = valid[:, -4:] = False
        if valid.mean() < 0.5:
            return False
        residual = float(np.abs(warped[valid] - b[valid]).mean())
        return residual <= self.max_residual and residual <= self.residual_share * before


# ------------------------------------------------------------------------------ logo


@dataclass
class LogoScorer(_ContentScorer):
    """Two looks at the corners, the larger patch wins.

    1. *Opaque*: edge pixels in every frame whose grey level never changes (a logo is drawn,
       not filmed).
    2. *See-through*: a semi-transparent logo's grey levels change with the picture behind
       it, but its edges keep their direction and strength in every frame (gradient
       coherence); edges of filmed content move or come and go. Only edge pixels whose grey
       level changes count here (an unchanging patch is the opaque look's to judge). A looser
       test of persistence, so the patch must be larger (40 edge pixels, 0.5 % of the frame)
       and the picture around it clearly moving (60 % of the ring). Chosen on the labelled dev
       videos, where coherence 0.85-0.95, edge strength 30-60 and ring 0.6 with 40 pixels all
       give the same detections (``benchmarks/content.py``); the area floor came after a
       Game-of-Life still life in a synthetic split screen (0.4 % of the frame) passed the
       rest, while the see-through logos found are 1.2-2.8 %.
    """

    name: ClassVar[str] = "logo"
    columns: ClassVar[tuple[str, ...]] = ("logo_area",)

    corner: float = 0.25  # corner regions: this share of the width and height
    min_moving: float = 0.15  # share of the picture that must move around the logo
    min_pixels: int = 20  # persistent edge pixels that make a logo at the analysis size
    ring_moving: float = 0.3  # share of the pixels around the patch that must change
    see_through_coherence: float = 0.9
    see_through_edge: float = 40.0  # strength of the steady gradient (Sobel, analysis size)
    see_through_pixels: int = 40
    see_through_area: float = 0.005
    see_through_ring: float = 0.6

    def score(self, frames: Frames) -> dict[str, Any]:
        if len(frames.images) < 2:
            return dict.fromkeys(self.columns)
        a = analyse(frames)
        if a.moving_frac < self.min_moving:
            return {"logo_area": 0.0}  # nothing moves: a logo cannot be told from the picture
        opaque = a.edges.all(axis=0) & (a.std < 2 * FROZEN_STD)
        see_through = (
            (a.gradient_coherence >= self.see_through_coherence)
            & (a.steady_gradient >= self.see_through_edge)
            & a.steady_edges
            & (a.std >= 2 * FROZEN_STD)  # grey levels that change (the rest: the opaque look)
        )
        best = max(
            self._corner_patch(a, opaque, self.min_pixels, self.ring_moving),
            self._corner_patch(
                a, see_through, self.see_through_pixels, self.see_through_ring,
                self.see_through_area,
            ),
        )  # fmt: skip
        return {"logo_area": round(best, 5)}

    def _corner_patch(
        self,
        a: ClipAnalysis,
        strict: np.ndarray,
        min_pixels: int,
        ring_moving: float,
        min_area: float = 0.0,
    ) -> float:
        """Area (share of the frame) of the largest patch of ``strict`` pixels wholly inside a
        corner, with the picture around it moving."""
        # words of a line merge into one patch, so a caption line is too wide for a corner
        mask = cv2.dilate(strict.astype(np.uint8), np.ones((5, 15), np.uint8))
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        h, w = mask.shape
        ch, cw = self.corner * h, self.corner * w
        best = 0.0
        for label, (x, y, bw, bh, _) in enumerate(stats[1:count], start=1):
            pixels = int(strict[labels == label].sum())
            if pixels < min_pixels:
                continue
            in_x = x + bw <= cw + 1 or x >= w - cw - 1  # wholly in a corner: not a subtitle line
            in_y = y + bh <= ch + 1 or y >= h - ch - 1
            if not (in_x and in_y and bw <= w * self.corner and bh <= h * self.corner):
                continue
            if bw * bh < min_area * h * w:
                continue
            # the picture right around it moves, or most of the picture moves and the patch is
            # dense with persistent edges (a static corner of a static shot is no logo)
            pad = max(4, min(bw, bh) // 2)
            ring = a.std[max(0, y - pad) : y + bh + pad, max(0, x - pad) : x + bw + pad]
            around = float((ring > MOVING_STD).mean())
            dense = pixels / (bw * bh) >= 0.25
            if around >= ring_moving or (a.moving_frac >= 0.5 and dense):
                best = max(best, bw * bh / (h * w))
        return best


CONTENT_SCORERS = ("overlay_text", "layout", "still", "logo")
