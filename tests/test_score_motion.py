"""Static, motion and camera scorers on synthetic numpy frames with known motion.

Every clip is cut from one large smoothed-noise texture, so the true motion is known exactly:
a crop window sliding right by ``dx`` px per sample means content moves left by ``dx`` px, which
a camera panning right produces.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from clipsieve.media.frames import Frames
from clipsieve.score.camera import CameraMotionScorer, fit_global_motion
from clipsieve.score.motion import ANALYSIS_SHORT_SIDE, FlowScorer, flow_fields
from clipsieve.score.static import RgbDiffScorer, rgb_diffs

W, H = 640, 360  # source frame size; analysis size is 427x240 (short side 240)
STEP_S = 0.25


@pytest.fixture(scope="module")
def texture() -> np.ndarray:
    """A large RGB texture with detail at every scale flow needs (blurred uniform noise)."""
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (1400, 2000, 3), dtype=np.uint8)
    blurred = cv2.GaussianBlur(noise, (0, 0), 3)
    return cv2.normalize(blurred, None, 0, 255, cv2.NORM_MINMAX)


def make_frames(images: np.ndarray) -> Frames:
    n = len(images)
    return Frames(
        images=images,
        indices=np.arange(n) * 6,
        times_s=np.arange(n) * STEP_S,
        fps=24.0,
        source_size=(images.shape[2], images.shape[1]),
    )


def slide(texture: np.ndarray, dx: int, dy: int, n: int = 5, size=(W, H), scale: float = 1.0):
    """Crop window moving by (dx, dy) texture px per frame, resized by ``scale``."""
    w, h = size
    x0, y0 = 600, 500
    crops = [
        texture[y0 + i * dy : y0 + i * dy + h, x0 + i * dx : x0 + i * dx + w] for i in range(n)
    ]
    if scale != 1.0:
        out = (round(w * scale), round(h * scale))
        crops = [cv2.resize(c, out, interpolation=cv2.INTER_AREA) for c in crops]
    return np.stack(crops)


def zoom(texture: np.ndarray, factor: float, n: int = 5) -> np.ndarray:
    """Centred crop shrinking by ``factor`` per frame, resized to W x H: content grows (zoom in)."""
    cx, cy = 1000, 700
    frames = []
    for i in range(n):
        w, h = 960 / factor**i, 540 / factor**i
        crop = texture[round(cy - h / 2) : round(cy + h / 2), round(cx - w / 2) : round(cx + w / 2)]
        frames.append(cv2.resize(crop, (W, H), interpolation=cv2.INTER_AREA))
    return np.stack(frames)


def moving_square(texture: np.ndarray, n: int = 5) -> np.ndarray:
    """Still textured background with a textured 90x90 square moving 30 px right per frame."""
    background = texture[100 : 100 + H, 100 : 100 + W]
    patch = texture[1200:1290, 1800:1890]
    frames = []
    for i in range(n):
        frame = background.copy()
        frame[150:240, 50 + 30 * i : 140 + 30 * i] = patch
        frames.append(frame)
    return np.stack(frames)


def camera(images: np.ndarray, **kwargs) -> dict:
    return CameraMotionScorer(**kwargs).score(make_frames(images))


def test_static_frames_score_zero_everywhere(texture):
    images = slide(texture, 0, 0)
    assert RgbDiffScorer().score(make_frames(images)) == {"rgb_diff_max": 0.0, "rgb_diff_mean": 0.0}
    flow = FlowScorer().score(make_frames(images))
    assert flow["flow_mean"] == pytest.approx(0.0, abs=1e-3)
    assert flow["flow_max"] == pytest.approx(0.0, abs=1e-3)
    assert camera(images) == {"camera_motion": "static", "camera_motion_conf": 1.0}


def test_rgb_diff_is_mean_squared_difference_on_0_255_scale():
    a = np.zeros((3, 180, 320, 3), dtype=np.uint8)
    a[1] = 10  # 0 -> 10 -> 0: every pixel differs by 10, squared 100
    a[2, :90] = 20  # 10 -> (20 top half, 0 bottom half): (100 + 100) / 2
    assert rgb_diffs(a).tolist() == [100.0, 100.0]
    a[2] = 0
    a[2, :, :160] = 30  # left half 10 -> 30 (400), right half 10 -> 0 (100): mean 250
    result = RgbDiffScorer().score(make_frames(a))
    assert result == {"rgb_diff_max": 250.0, "rgb_diff_mean": 175.0}


def test_rgb_diff_accepts_grey_and_other_sizes():
    grey = np.zeros((2, 720, 1280), dtype=np.uint8)
    grey[1] = 4
    assert rgb_diffs(grey).tolist() == [16.0]


@pytest.mark.parametrize(
    ("dx", "dy", "label"),
    [
        (12, 0, "pan_right"),  # window moves right: content moves left: camera pans right
        (-12, 0, "pan_left"),
        (0, 10, "tilt_down"),  # window moves down: content moves up: camera tilts down
        (0, -10, "tilt_up"),
    ],
)
def test_pan_and_tilt_direction(texture, dx, dy, label):
    images = slide(texture, dx, dy)
    assert camera(images) == {"camera_motion": label, "camera_motion_conf": 1.0}
    # 12 source px per step at 640x360 is 8 analysis px at 427x240.
    expected = np.hypot(dx, dy) * ANALYSIS_SHORT_SIDE / H
    assert FlowScorer().score(make_frames(images))["flow_mean"] == pytest.approx(expected, rel=0.03)


def test_global_motion_rates_match_the_synthetic_pan(texture):
    images = slide(texture, 12, 0, n=2)
    grey = [
        cv2.cvtColor(cv2.resize(i, (427, 240), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
        for i in images
    ]
    motion = fit_global_motion(flow_fields(grey)[0], dt=STEP_S)
    # content moves 12/640 of the width per 0.25 s = -0.075 widths per second
    assert motion.tx == pytest.approx(-0.075, abs=0.003)
    assert abs(motion.ty) < 0.003 and abs(motion.zoom) < 0.01
    assert motion.inliers > 0.95


@pytest.mark.parametrize(("factor", "label"), [(1.05, "zoom_in"), (1 / 1.05, "zoom_out")])
def test_zoom_direction(texture, factor, label):
    images = zoom(texture, factor)
    assert camera(images) == {"camera_motion": label, "camera_motion_conf": 1.0}


def test_moving_object_on_still_background_is_static_camera(texture):
    images = moving_square(texture)
    assert camera(images) == {"camera_motion": "static", "camera_motion_conf": 1.0}
    # The square covers 3.5% of the frame and moves 20 analysis px (0.7 px if fully tracked);
    # coarse-to-fine flow only partly tracks a small, fast object (DIS FAST measures ~0.1), but
    # it is two orders of magnitude above a still clip's 1e-3.
    assert FlowScorer().score(make_frames(images))["flow_mean"] > 0.05
    assert RgbDiffScorer().score(make_frames(images))["rgb_diff_mean"] > 10


def test_independent_motion_everywhere_is_dynamic(texture):
    """Four quadrants moving in four directions: no global model explains the frame."""
    quads = [
        slide(texture, dx, dy, size=(W // 2, H // 2))
        for dx, dy in [(15, 0), (-15, 0), (0, 15), (0, -15)]
    ]
    images = np.concatenate(
        [np.concatenate(quads[:2], axis=2), np.concatenate(quads[2:], axis=2)], axis=1
    )
    assert camera(images) == {"camera_motion": "dynamic", "camera_motion_conf": 1.0}


def test_mixed_pairs_vote_by_majority(texture):
    still = slide(texture, 0, 0, n=3)
    panning = slide(texture, 12, 0, n=3)  # starts where ``still`` is
    images = np.concatenate([still, panning])  # pairs: 3 still, then 2 panning
    assert camera(images) == {"camera_motion": "static", "camera_motion_conf": 0.6}
    assert camera(images[2:]) == {"camera_motion": "pan_right", "camera_motion_conf": 2 / 3}


@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_flow_is_resolution_independent(texture, method):
    big = FlowScorer(method=method).score(make_frames(slide(texture, 16, 0, size=(960, 540))))
    small = FlowScorer(method=method).score(
        make_frames(slide(texture, 16, 0, size=(960, 540), scale=1 / 3))
    )  # 320x180: upscaled to the analysis size by the scorer
    assert big["flow_mean"] == pytest.approx(16 * ANALYSIS_SHORT_SIDE / 540, rel=0.05)
    assert small["flow_mean"] == pytest.approx(big["flow_mean"], rel=0.10)


def test_farneback_and_dis_agree_on_a_pan(texture):
    images = slide(texture, 12, 0)
    dis = FlowScorer(method="dis").score(make_frames(images))
    farneback = FlowScorer(method="farneback").score(make_frames(images))
    assert farneback["flow_mean"] == pytest.approx(dis["flow_mean"], rel=0.03)
    assert camera(images, method="farneback")["camera_motion"] == "pan_right"


@pytest.mark.parametrize("scorer", [RgbDiffScorer(), FlowScorer(), CameraMotionScorer()])
def test_fewer_than_two_frames_gives_none(texture, scorer):
    images = slide(texture, 0, 0, n=1)
    assert scorer.score(make_frames(images)) == dict.fromkeys(scorer.columns)
    empty = make_frames(np.zeros((0, H, W, 3), dtype=np.uint8))
    assert scorer.score(empty) == dict.fromkeys(scorer.columns)


def test_frame_specs_and_bad_params():
    assert FlowScorer().frame_spec() == CameraMotionScorer().frame_spec()
    assert FlowScorer().frame_spec().every_s == 0.25
    assert RgbDiffScorer().frame_spec().short_side == 180
    params = FlowScorer(method="farneback").params()
    assert {k: params[k] for k in ("method", "preset", "every_s")} == {
        "method": "farneback",
        "preset": "fast",
        "every_s": 0.25,
    }
    with pytest.raises(ValueError, match="unknown flow method 'raft'"):
        FlowScorer(method="raft")
    with pytest.raises(ValueError, match="every_s"):
        RgbDiffScorer(every_s=0)
