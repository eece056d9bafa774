"""Text coverage (RapidOCR detection) and NudeNet scorers on synthetic frames."""

from __future__ import annotations

import cv2
import nudenet
import numpy as np
import pytest
import rapidocr_onnxruntime

from clipsieve.media.frames import Frames
from clipsieve.score.nsfw import NsfwScorer, summarize
from clipsieve.score.ocr import TextScorer, box_aspect, union_area_ratio

W, H = 640, 360
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _background(seed: int) -> np.ndarray:
    """Dark, slightly noisy RGB frame with a soft gradient (not a flat colour)."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(10, 50, W, dtype=np.float64)[None, :, None]
    noise = rng.normal(0, 6, (H, W, 3))
    return np.clip(ramp + noise + np.array([5.0, 10.0, 20.0]), 0, 255).astype(np.uint8)


def _text_frame(seed: int, text: str = "HELLO WORLD") -> tuple[np.ndarray, float]:
    """Frame with big white text; returns it and the drawn text rectangle's area ratio."""
    img = _background(seed)
    scale, thickness, origin = 2.0, 5, (60, 200)
    (tw, th), baseline = cv2.getTextSize(text, FONT, scale, thickness)
    cv2.putText(img, text, origin, FONT, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return img, tw * (th + baseline) / (W * H)


def _frames(images: list[np.ndarray]) -> Frames:
    n = len(images)
    return Frames(
        images=np.stack(images),
        indices=np.arange(n),
        times_s=np.arange(n) / 25.0,
        fps=25.0,
        source_size=(W, H),
    )


@pytest.fixture(scope="module")
def text_scorer() -> TextScorer:
    scorer = TextScorer()
    scorer.setup()
    return scorer


@pytest.fixture(scope="module")
def nsfw_scorer() -> NsfwScorer:
    scorer = NsfwScorer()
    scorer.setup()
    return scorer


def test_union_area_counts_overlap_once() -> None:
    a = np.array([[0, 0], [10, 0], [10, 10], [0, 10]])  # 11 x 11 pixels (inclusive edges)
    b = a + 5  # overlaps a in a 6 x 6 square
    assert union_area_ratio([a], 100, 100) == pytest.approx(121 / 10000)
    assert union_area_ratio([a, b], 100, 100) == pytest.approx((121 * 2 - 36) / 10000)
    assert union_area_ratio([], 100, 100) == 0.0


def test_text_area_matches_drawn_text(text_scorer: TextScorer) -> None:
    images, drawn = zip(*(_text_frame(seed) for seed in range(3)), strict=True)
    out = text_scorer.score(_frames(list(images)))
    assert set(out) == set(TextScorer.columns)
    assert out["text_area_ratio"] > 0.005
    assert drawn[0] / 2 < out["text_area_ratio"] < drawn[0] * 2
    assert out["text_boxes"] >= 1
    assert out["ocr_text"] is None  # recognition is off by default


def test_text_max_over_frames(text_scorer: TextScorer) -> None:
    """One captioned frame among blank ones still sets the clip's value."""
    text, _ = _text_frame(0)
    only_text = text_scorer.score(_frames([text]))
    mixed = text_scorer.score(_frames([_background(1), text, _background(2)]))
    assert mixed["text_area_ratio"] == pytest.approx(only_text["text_area_ratio"])
    assert mixed["text_boxes"] == only_text["text_boxes"]


def test_squat_boxes_must_read_as_text(text_scorer: TextScorer) -> None:
    """A short word makes a squat box: recognition confirms it; a texture box is rejected."""
    assert box_aspect(np.array([[0, 0], [40, 0], [40, 20], [0, 20]])) == pytest.approx(2.0)
    assert box_aspect(np.array([[0, 0], [0, 0], [0, 0], [0, 0]])) == float("inf")
    short_word, _ = _text_frame(0, "OK")
    assert text_scorer.score(_frames([short_word]))["text_area_ratio"] > 0.005
    # Blotches of a leafy texture: the detector may fire on them, verification must not keep it.
    textures = []
    for seed in (4, 5):
        rng = np.random.default_rng(seed)
        texture = _background(6)
        for _ in range(60):
            centre = (int(rng.integers(80, 560)), int(rng.integers(60, 300)))
            axes = (int(rng.integers(8, 30)), int(rng.integers(4, 14)))
            colour = tuple(int(c) for c in rng.integers(90, 255, 3))
            cv2.ellipse(texture, centre, axes, float(rng.integers(0, 180)), 0, 360, colour, -1)
        textures.append(texture)
    unverified = TextScorer(verify_aspect=0, verify_area=1.0, verify_max_boxes=0)
    unverified.setup()
    raw = unverified.score(_frames(textures))["text_area_ratio"]
    checked = text_scorer.score(_frames(textures))["text_area_ratio"]
    assert raw > 0.3  # the bare detector takes the blotches for text
    assert checked < 0.005


def test_no_text(text_scorer: TextScorer) -> None:
    out = text_scorer.score(_frames([_background(seed) for seed in range(3)]))
    assert out["text_area_ratio"] < 0.001
    assert out["text_boxes"] == 0
    assert out["ocr_text"] is None


def test_large_frames_are_analysed_at_fixed_size(text_scorer: TextScorer) -> None:
    """A 2x frame is shrunk to the analysis size, so the ratio stays the same."""
    text, _ = _text_frame(0)
    big = cv2.resize(text, (W * 2, H * 2), interpolation=cv2.INTER_CUBIC)
    small = text_scorer.score(_frames([text]))["text_area_ratio"]
    large = text_scorer.score(_frames([big]))["text_area_ratio"]
    assert large == pytest.approx(small, rel=0.1)


def test_recognize_reads_text() -> None:
    scorer = TextScorer(recognize=True)
    scorer.setup()
    out = scorer.score(_frames([_text_frame(0, "HELLO WORLD")[0], _background(3)]))
    assert "HELLO" in out["ocr_text"].upper().replace(" ", "")
    assert out["text_boxes"] >= 1
    blank = scorer.score(_frames([_background(4)]))
    assert blank["ocr_text"] == ""


def test_nsfw_innocuous_frames(nsfw_scorer: NsfwScorer) -> None:
    rng = np.random.default_rng(0)
    images = [
        _background(0),
        _text_frame(1)[0],
        rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
        np.full((H, W, 3), (200, 160, 140), np.uint8),  # flat skin-like colour
    ]
    out = nsfw_scorer.score(_frames(images))
    assert set(out) == set(NsfwScorer.columns)
    assert out["nsfw_score"] < 0.2
    assert out["nsfw_labels"] == []


def test_nsfw_summary_uses_only_exposed_classes() -> None:
    detections = [
        [{"class": "FACE_FEMALE", "score": 0.95, "box": [0, 0, 5, 5]}],
        [
            {"class": "BUTTOCKS_EXPOSED", "score": 0.42, "box": [0, 0, 5, 5]},
            {"class": "FEMALE_BREAST_EXPOSED", "score": 0.71, "box": [0, 0, 5, 5]},
            {"class": "BELLY_EXPOSED", "score": 0.9, "box": [0, 0, 5, 5]},
        ],
        [{"class": "ANUS_EXPOSED", "score": 0.55, "box": [0, 0, 5, 5]}],
    ]
    out = summarize(detections, label_min=0.5)
    assert out == {
        "nsfw_score": pytest.approx(0.71),
        "nsfw_labels": ["ANUS_EXPOSED", "FEMALE_BREAST_EXPOSED"],
    }
    assert summarize([[], []], label_min=0.5) == {"nsfw_score": 0.0, "nsfw_labels": []}


def test_models_load_once_per_scorer(monkeypatch: pytest.MonkeyPatch) -> None:
    created = {"ocr": 0, "nsfw": 0}
    real_ocr, real_nude = rapidocr_onnxruntime.RapidOCR, nudenet.NudeDetector

    def counting_ocr(*args, **kwargs):
        created["ocr"] += 1
        return real_ocr(*args, **kwargs)

    def counting_nude(*args, **kwargs):
        created["nsfw"] += 1
        return real_nude(*args, **kwargs)

    monkeypatch.setattr(rapidocr_onnxruntime, "RapidOCR", counting_ocr)
    monkeypatch.setattr(nudenet, "NudeDetector", counting_nude)
    ocr, nsfw = TextScorer(count=1), NsfwScorer(count=1)
    ocr.setup()
    nsfw.setup()
    for seed in range(3):  # three clips
        clip = _frames([_background(seed)])
        ocr.score(clip)
        nsfw.score(clip)
    ocr.setup()  # a second setup call is a no-op too
    assert created == {"ocr": 1, "nsfw": 1}


def test_onnx_sessions_take_the_workers_share_of_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    """ONNX Runtime does not read OMP_NUM_THREADS, which the engine's workers set to their
    share of the cores; the ONNX scorers pass it on (an explicit ``threads`` wins)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    text = TextScorer()
    text.setup()
    assert text._engine.text_det.infer.session.get_session_options().intra_op_num_threads == 1
    nsfw = NsfwScorer()
    nsfw.setup()
    assert nsfw._detector.onnx_session.get_session_options().intra_op_num_threads == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    explicit = TextScorer(threads=2)
    explicit.setup()
    assert explicit._engine.text_det.infer.session.get_session_options().intra_op_num_threads == 2
