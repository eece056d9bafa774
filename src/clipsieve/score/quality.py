"""Low-level picture quality: sharpness, exposure, colour, letterbox bars and frozen video.

These are cheap per-clip statistics (no model) that catch the worst clips before any expensive
scorer runs: out-of-focus or heavily compressed footage (low ``sharpness``), black or blown-out
shots (``brightness``), flat fog (``contrast``), near-greyscale material (``colorfulness``),
letterboxed/pillarboxed sources whose bars would be learned as content (``border_frac``) and
stalled or still-image clips (``frozen_ratio``).

Every statistic is computed on frames at one fixed analysis size (``short_side``, default 360,
never upscaled). That matters most for ``sharpness``: the variance of the Laplacian grows when
the same picture is stored with more pixels per edge (and shrinks when downscaled), so values
from a 4K and a 480p source are only comparable if both are measured at the same size. The
scorer therefore also shrinks any frame it receives that is larger than the analysis size, so its
numbers do not depend on what size the frame sampler happened to decode at.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import cv2
import numpy as np

from clipsieve.media.image import fit_short_side, to_gray
from clipsieve.score.base import Frames, Scorer, UniformFrames


def laplacian_variance(grey: np.ndarray) -> float:
    """Variance of the 3x3 Laplacian: edge energy, high for sharp frames, near 0 for blur."""
    return float(cv2.Laplacian(grey, cv2.CV_64F, ksize=1).var())


def colorfulness(rgb: np.ndarray) -> float:
    """Hasler & Süsstrunk (2003) colourfulness M = sigma_rgyb + 0.3 * mu_rgyb.

    ``rg = R - G`` and ``yb = (R + G) / 2 - B``; sigma/mu are the root of the summed squared
    standard deviations/means of the two opponent channels. 0 for any grey image; the paper's
    scale reads ~15 "slightly", ~33 "moderately", ~59 "quite", ~82 "highly", ~109 "extremely"
    colourful.
    """
    # Exact integer opponent channels (yb doubled to stay integral), float64 statistics.
    r, g, b = (c.astype(np.int16) for c in cv2.split(np.ascontiguousarray(rgb)))
    rg = cv2.subtract(r, g)
    yb2 = cv2.subtract(cv2.add(r, g), cv2.add(b, b))
    (mean_rg,), (std_rg,) = cv2.meanStdDev(rg)
    (mean_yb2,), (std_yb2,) = cv2.meanStdDev(yb2)
    sigma = np.hypot(std_rg[0], std_yb2[0] / 2)
    mu = np.hypot(mean_rg[0], mean_yb2[0] / 2)
    return float(sigma + 0.3 * mu)


def _dark_run(is_dark: np.ndarray) -> int:
    """Length of the run of True values at the start of a 1-D boolean array."""
    not_dark = np.flatnonzero(~is_dark)
    return int(not_dark[0]) if not_dark.size else int(is_dark.size)


def border_fraction(greys: np.ndarray, luma_max: int = 24) -> float | None:
    """Fraction of the frame area covered by dark bars at the edges in *every* frame.

    ``greys`` is (n, h, w) uint8 luma. A row (column) belongs to a bar if its brightest pixel
    stays below ``luma_max`` in all frames and it is contiguous with the frame edge, so a dark
    object or a night shot that moves does not count, while real letterbox/pillarbox bars (which
    never change) do. ``luma_max`` 24 sits above limited-range black (16) plus compression noise.
    Returns None when no picture area would remain (an all-dark clip): bars cannot be told apart
    from dark content there, and "all border" would be a confident wrong answer.
    """
    if greys.size == 0:
        return None
    peak = greys.max(axis=0)  # brightest value each pixel reaches over the sampled frames
    dark_rows = peak.max(axis=1) < luma_max
    dark_cols = peak.max(axis=0) < luma_max
    h, w = peak.shape
    top = _dark_run(dark_rows)
    if top == h:
        return None
    bottom = _dark_run(dark_rows[::-1])
    left = _dark_run(dark_cols)
    right = _dark_run(dark_cols[::-1])
    inner = (h - top - bottom) * (w - left - right)
    return float(1.0 - inner / (h * w))


def frozen_ratio(greys: np.ndarray, max_mean_diff: float = 0.5) -> float | None:
    """Fraction of consecutive frame pairs whose mean absolute luma difference is below the limit.

    None with fewer than two frames (no pair to compare).
    """
    if len(greys) < 2:
        return None
    diffs = [cv2.mean(cv2.absdiff(a, b))[0] for a, b in zip(greys[:-1], greys[1:], strict=True)]
    return float(np.mean(np.asarray(diffs) < max_mean_diff))


@dataclass
class QualityScorer(UniformFrames, Scorer):
    """Sharpness, brightness, contrast, colourfulness, border bars and frozen frames.

    ``count`` frames placed uniformly over the clip (centres of equal parts) at ``short_side``
    pixels on the short side. Each column is the mean over the sampled frames except
    ``border_frac`` (bars must persist in all of them) and ``frozen_ratio`` (over pairs).

    ``frozen_ratio`` compares consecutive *sampled* frames, which are ``duration / count`` apart,
    not consecutive video frames. It therefore measures clips that are frozen across their length
    (a still image encoded as video, a stalled stream, a paused screen recording): 1.0 means every
    sampled frame equals the next. Duplicated single frames from frame-rate conversion are not
    visible at this spacing; :class:`~clipsieve.score.base.FrameSpec` cannot ask for adjacent
    frame pairs, and motion scorers cover low-motion clips.
    """

    name: ClassVar[str] = "quality"
    columns: ClassVar[tuple[str, ...]] = (
        "sharpness",
        "brightness",
        "contrast",
        "colorfulness",
        "border_frac",
        "frozen_ratio",
    )

    count: int = 8
    short_side: int = 360
    border_luma_max: int = 24
    frozen_max_diff: float = 0.5

    def score(self, frames: Frames) -> dict[str, Any]:
        images = [fit_short_side(img, self.short_side) for img in frames.images]
        if not images:
            return dict.fromkeys(self.columns)
        greys = np.stack([to_gray(img) for img in images])
        stats = [cv2.meanStdDev(g) for g in greys]  # per-frame luma mean and std
        colour = frames.images.ndim == 4 and frames.images.shape[-1] == 3
        return {
            "sharpness": float(np.mean([laplacian_variance(g) for g in greys])),
            "brightness": float(np.mean([stat[0][0, 0] for stat in stats])),
            "contrast": float(np.mean([stat[1][0, 0] for stat in stats])),
            "colorfulness": float(np.mean([colorfulness(i) for i in images])) if colour else None,
            "border_frac": border_fraction(greys, self.border_luma_max),
            "frozen_ratio": frozen_ratio(greys, self.frozen_max_diff),
        }
