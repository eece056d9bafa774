"""Camera motion class (static, pan, tilt, zoom, dynamic) from a robust global fit of the flow.

For each sampled pair the dense flow (shared with :mod:`clipsieve.score.motion`) is sampled on a
grid and a similarity transform (translation, rotation, uniform scale) is fitted with RANSAC
(``cv2.estimateAffinePartial2D``). RANSAC keeps the model most of the frame agrees on, so a
person walking in front of a still background fits "no motion" and the clip counts as static
even though its ``flow_mean`` is not zero.

Conventions (those of camera-motion labels in video datasets, e.g. "camera pans right"):
the labels name what the *camera* does, which is the opposite of how the content moves.

- ``pan_right``: camera turns right, content moves left (x displacement < 0); ``pan_left`` the
  reverse.
- ``tilt_up``: camera tilts up, content moves down (y displacement > 0, image y points down);
  ``tilt_down`` the reverse.
- ``zoom_in``: content grows (scale > 1); ``zoom_out``: content shrinks.
- ``dynamic``: no single global model explains the frame (few RANSAC inliers while much of the
  frame moves): handheld shake, fast complex motion, crowds filling the frame.
- ``static``: the global model is (nearly) the identity.

Thresholds are rates relative to the analysis frame, so they do not depend on resolution, fps or
the sampling step: translation of the frame centre in fractions of the frame width (x) or height
(y) per second, and scale as log-scale per second.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar

import cv2
import numpy as np

from clipsieve.score.base import Frames, Scorer
from clipsieve.score.motion import (
    FlowParams,
    clip_flow_fields,
)

LABELS = (
    "static",
    "pan_left",
    "pan_right",
    "tilt_up",
    "tilt_down",
    "zoom_in",
    "zoom_out",
    "dynamic",
)


@dataclass(frozen=True)
class GlobalMotion:
    """The dominant motion of one pair, as rates per second.

    ``tx``/``ty``: displacement of the frame centre in frame widths / heights per second;
    ``zoom``: log(scale) per second; ``inliers``: fraction of grid points the model explains;
    ``residual``: median distance (fraction of the short side, per second) by which the points
    the model does *not* explain miss it (0 when all are inliers).
    """

    tx: float
    ty: float
    zoom: float
    inliers: float
    residual: float


def fit_global_motion(flow: np.ndarray, dt: float, step: int = 8) -> GlobalMotion | None:
    """Fit a similarity transform to ``flow`` (h, w, 2) sampled every ``step`` px; None if no fit.

    The RANSAC reprojection threshold is 1% of the short side (2.4 px at 240 px): generous
    enough for flow noise, tight enough to separate a moving object from the background.
    """
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[step // 2 : h : step, step // 2 : w : step]
    src = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)
    disp = flow[ys.ravel(), xs.ravel()].astype(np.float32)
    dst = src + disp
    short = float(min(h, w))
    model, inlier_mask = cv2.estimateAffinePartial2D(
        src,
        dst,
        method=cv2.RANSAC,
        ransacReprojThreshold=0.01 * short,
        maxIters=2000,
        confidence=0.99,
        refineIters=10,
    )
    if model is None:
        return None
    centre = np.array([w / 2.0, h / 2.0, 1.0])
    moved = model @ centre
    scale = float(np.hypot(model[0, 0], model[1, 0]))
    inliers = inlier_mask.ravel().astype(bool)
    predicted = src @ model[:, :2].T + model[:, 2]
    miss = np.hypot(*(dst - predicted).T)[~inliers]
    residual = float(np.median(miss)) / short / dt if miss.size else 0.0
    return GlobalMotion(
        tx=float(moved[0] - centre[0]) / w / dt,
        ty=float(moved[1] - centre[1]) / h / dt,
        zoom=float(np.log(max(scale, 1e-6))) / dt,
        inliers=float(inliers.mean()),
        residual=residual,
    )


@dataclass
class CameraMotionScorer(FlowParams, Scorer):
    """Clip-level camera motion label by majority vote over sampled pairs.

    Columns: ``camera_motion`` (one of :data:`LABELS`) and ``camera_motion_conf`` (fraction of
    pairs that voted for it, 0..1). None when fewer than two frames.

    ``method`` / ``preset``: the flow, as in :class:`~clipsieve.score.motion.FlowScorer`; very
    fast pans (over ~40 analysis px per pair) need ``preset="medium"`` or they come out
    ``dynamic``. Thresholds (all rates per second, relative to the analysis frame):
    ``pan_threshold`` / ``tilt_threshold``: centre displacement in frame widths / heights per
    second above which the camera pans / tilts (0.03 = crossing the frame in ~33 s);
    ``zoom_threshold``: |log scale| per second (0.03 = 3% per second); ``min_inliers``: below
    this RANSAC inlier fraction, with the unexplained points missing the model by more than
    ``dynamic_residual`` short sides per second, the pair is ``dynamic``.
    """

    name: ClassVar[str] = "camera"
    columns: ClassVar[tuple[str, ...]] = ("camera_motion", "camera_motion_conf")

    pan_threshold: float = 0.03
    tilt_threshold: float = 0.03
    zoom_threshold: float = 0.03
    min_inliers: float = 0.5
    dynamic_residual: float = 0.05

    def classify(self, motion: GlobalMotion | None) -> str:
        """Label of one pair; a pair with no fit at all is ``dynamic``."""
        if motion is None:
            return "dynamic"
        if motion.inliers < self.min_inliers and motion.residual > self.dynamic_residual:
            return "dynamic"
        # Strength of each component relative to its threshold; the strongest one wins.
        strengths = {
            "pan": abs(motion.tx) / self.pan_threshold,
            "tilt": abs(motion.ty) / self.tilt_threshold,
            "zoom": abs(motion.zoom) / self.zoom_threshold,
        }
        kind, strength = max(strengths.items(), key=lambda kv: kv[1])
        if strength < 1.0:
            return "static"
        if kind == "pan":
            return "pan_right" if motion.tx < 0 else "pan_left"
        if kind == "tilt":
            return "tilt_up" if motion.ty > 0 else "tilt_down"
        return "zoom_in" if motion.zoom > 0 else "zoom_out"

    def pair_labels(self, frames: Frames) -> list[str]:
        """One label per consecutive pair of sampled frames."""
        flows = clip_flow_fields(frames, self.method, self.preset)
        times = np.asarray(frames.times_s, dtype=np.float64)
        labels = []
        for i, flow in enumerate(flows):
            dt = float(times[i + 1] - times[i]) if len(times) == len(frames.images) else 0.0
            if dt <= 0:
                dt = self.every_s
            labels.append(self.classify(fit_global_motion(flow, dt)))
        return labels

    def score(self, frames: Frames) -> dict[str, Any]:
        if len(frames.images) < 2:
            return {"camera_motion": None, "camera_motion_conf": None}
        labels = self.pair_labels(frames)
        counts = Counter(labels)
        # Ties go to the label listed first in LABELS (static before any motion).
        best = max(LABELS, key=lambda label: (counts[label], -LABELS.index(label)))
        return {"camera_motion": best, "camera_motion_conf": counts[best] / len(labels)}
