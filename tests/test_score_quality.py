"""Quality and perceptual-hash scorers on synthetic numpy frames (no video files needed)."""

from __future__ import annotations

import cv2
import numpy as np
import pyarrow as pa
import pytest

from clipsieve.media.frames import Frames
from clipsieve.score.phash import (
    PHashScorer,
    hamming,
    is_informative,
    phash_distance,
    phash_int,
    to_signed,
    to_unsigned,
)
from clipsieve.score.quality import QualityScorer, border_fraction, colorfulness
from clipsieve.table import CLIP_SCHEMA, read_parquet, rows_to_table, write_parquet

H, W = 360, 640


def make_frames(images: list[np.ndarray] | np.ndarray, fps: float = 25.0) -> Frames:
    """A Frames object as the sampler would build it, for uniformly spaced frames."""
    arr = np.stack(images) if isinstance(images, list) else images
    n = len(arr)
    indices = np.arange(n, dtype=np.int64) * 10
    return Frames(
        images=arr.astype(np.uint8),
        indices=indices,
        times_s=indices / fps,
        fps=fps,
        source_size=(arr.shape[2], arr.shape[1]),
    )


def noise(seed: int, h: int = H, w: int = W, low: int = 40, high: int = 256) -> np.ndarray:
    """Bright RGB noise: sharp, and no row or column is dark."""
    return np.random.default_rng(seed).integers(low, high, (h, w, 3), dtype=np.uint8)


def scene(seed: int, h: int = 240, w: int = 320) -> np.ndarray:
    """A natural-ish picture: smooth random blobs, so phash has low-frequency structure."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    for _ in range(12):
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (int(rng.integers(20, w // 2)), int(rng.integers(20, h // 2)))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.ellipse(img, centre, axes, float(rng.integers(0, 180)), 0, 360, colour, -1)
    return img


# ------------------------------------------------------------------------------- quality


def test_frame_spec_fixed_analysis_size() -> None:
    spec = QualityScorer().frame_spec()
    assert (spec.count, spec.positions, spec.short_side, spec.color) == (8, "uniform", 360, "rgb")
    assert QualityScorer(count=3).frame_spec().count == 3


def test_sharp_beats_blurred() -> None:
    sharp = [noise(i) for i in range(3)]
    blurred = [cv2.GaussianBlur(f, (0, 0), 3) for f in sharp]
    scorer = QualityScorer()
    s_sharp = scorer.score(make_frames(sharp))["sharpness"]
    s_blur = scorer.score(make_frames(blurred))["sharpness"]
    assert s_sharp > 50 * s_blur
    assert s_blur > 0


def test_flat_and_two_tone_brightness_contrast() -> None:
    flat = np.full((4, H, W, 3), 100, np.uint8)
    out = QualityScorer().score(make_frames(flat))
    assert out["brightness"] == pytest.approx(100.0)
    assert out["contrast"] == pytest.approx(0.0)
    assert out["sharpness"] == pytest.approx(0.0)

    two = np.full((4, H, W, 3), 50, np.uint8)
    two[:, :, W // 2 :] = 150
    out = QualityScorer().score(make_frames(two))
    assert out["brightness"] == pytest.approx(100.0)
    assert out["contrast"] == pytest.approx(50.0)


def test_colorfulness_grey_zero_and_saturated_high() -> None:
    grey = np.full((H, W, 3), 128, np.uint8)
    grey[:, : W // 2] = 30
    assert colorfulness(grey) == pytest.approx(0.0)
    red_green = np.zeros((H, W, 3), np.uint8)
    red_green[:, : W // 2, 0] = 255
    red_green[:, W // 2 :, 1] = 255
    # rg = +-255 (std 255, mean 0), yb = 127.5 everywhere (std 0): 255 + 0.3 * 127.5
    assert colorfulness(red_green) == pytest.approx(293.25)
    out = QualityScorer().score(make_frames([red_green, red_green]))
    assert out["colorfulness"] == pytest.approx(293.25)


def test_grey_frames_have_no_colorfulness() -> None:
    greys = np.stack([cv2.cvtColor(noise(i), cv2.COLOR_RGB2GRAY) for i in range(3)])
    out = QualityScorer().score(make_frames(greys))
    assert out["colorfulness"] is None
    assert out["brightness"] == pytest.approx(float(greys.mean()), rel=1e-6)


def test_letterbox_quarter_of_area() -> None:
    bar = H // 8  # 12.5 % top and 12.5 % bottom
    frames = []
    for i in range(5):
        f = noise(i)
        f[:bar] = 0
        f[H - bar :] = np.random.default_rng(100 + i).integers(0, 20, (bar, W, 3))  # noisy black
        frames.append(f)
    out = QualityScorer().score(make_frames(frames))
    assert out["border_frac"] == pytest.approx(0.25)


def test_pillarbox_and_both() -> None:
    side = W // 8
    frames = []
    for i in range(4):
        f = noise(i)
        f[:, :side] = 0
        f[:, W - side :] = 0
        frames.append(f)
    assert QualityScorer().score(make_frames(frames))["border_frac"] == pytest.approx(0.25)
    for f in frames:
        f[: H // 4] = 0  # plus a top bar: inner area is 3/4 x 3/4
    assert QualityScorer().score(make_frames(frames))["border_frac"] == pytest.approx(1 - 9 / 16)


def test_dark_edge_in_one_frame_only_is_not_border() -> None:
    frames = [noise(i) for i in range(4)]
    frames[1][: H // 4] = 0  # a dark object at the top of one frame: not a persistent bar
    frames[2][:, H // 2] = 0  # a dark line inside: not contiguous with an edge
    assert QualityScorer().score(make_frames(frames))["border_frac"] == 0.0


def test_all_black_clip() -> None:
    black = np.zeros((4, H, W, 3), np.uint8)
    out = QualityScorer().score(make_frames(black))
    assert out["border_frac"] is None  # bars cannot be told from dark content
    assert border_fraction(black[..., 0]) is None
    assert out["brightness"] == 0.0
    assert out["sharpness"] == 0.0
    assert out["frozen_ratio"] == 1.0


def test_frozen_ratio() -> None:
    a, b = noise(1), noise(2)
    scorer = QualityScorer()
    assert scorer.score(make_frames([a] * 6))["frozen_ratio"] == 1.0
    assert scorer.score(make_frames([noise(i) for i in range(6)]))["frozen_ratio"] == 0.0
    assert scorer.score(make_frames([a, a, b, b]))["frozen_ratio"] == pytest.approx(2 / 3)
    # Compression-level noise (+-1 on a few pixels) still counts as frozen.
    jitter = a.copy()
    jitter[::4, ::4] = np.clip(jitter[::4, ::4].astype(int) + 1, 0, 255)
    assert scorer.score(make_frames([a, jitter]))["frozen_ratio"] == 1.0
    assert scorer.score(make_frames([a]))["frozen_ratio"] is None


def test_empty_frames_give_nulls() -> None:
    out = QualityScorer().score(make_frames(np.zeros((0, H, W, 3), np.uint8)))
    assert out == dict.fromkeys(QualityScorer.columns)


def test_large_frames_are_scored_at_analysis_size() -> None:
    big = [cv2.resize(scene(i), (1280, 720), interpolation=cv2.INTER_CUBIC) for i in range(3)]
    small = [cv2.resize(f, (640, 360), interpolation=cv2.INTER_AREA) for f in big]
    scorer = QualityScorer()
    assert scorer.score(make_frames(big)) == pytest.approx(scorer.score(make_frames(small)))


# ---------------------------------------------------------------------------------- phash


def test_phash_survives_reencode_and_resize() -> None:
    for seed in range(5):
        img = scene(seed)
        ok, jpg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 40])
        assert ok
        again = cv2.imdecode(jpg, cv2.IMREAD_UNCHANGED)
        again = cv2.resize(again, (160, 120), interpolation=cv2.INTER_AREA)
        assert hamming(phash_int(img), phash_int(again)) <= 8


def test_phash_different_images_far_apart() -> None:
    # Unrelated pictures differ in about half the bits; single pairs scatter around that
    # (seeds 0-11 of these blob scenes: 18..40 bits, mean 30.6), so the mean is what is pinned.
    hashes = [phash_int(scene(seed)) for seed in range(12)]
    dists = [hamming(a, b) for i, a in enumerate(hashes) for b in hashes[i + 1 :]]
    assert min(dists) > 12
    assert 24 < float(np.mean(dists)) < 40
    # Over a clip (mean of 4 aligned frames) unrelated clips are clearly apart.
    clip_a, clip_b = hashes[:4], hashes[4:8]
    assert phash_distance(clip_a, clip_b) > 20


def test_phash_scorer_and_clip_distance() -> None:
    scorer = PHashScorer()
    spec = scorer.frame_spec()
    assert (spec.count, spec.color, spec.short_side) == (4, "gray", 128)
    grey = [cv2.cvtColor(scene(s), cv2.COLOR_RGB2GRAY) for s in range(4)]
    clip = scorer.score(make_frames(grey))["phash"]
    assert len(clip) == 4 and all(-(2**63) <= h < 2**63 for h in clip)
    assert [to_unsigned(h) for h in clip] == [phash_int(g) for g in grey]

    reencoded = []
    for g in grey:
        _, jpg = cv2.imencode(".jpg", g, [cv2.IMWRITE_JPEG_QUALITY, 50])
        reencoded.append(cv2.resize(cv2.imdecode(jpg, cv2.IMREAD_GRAYSCALE), (200, 150)))
    copy = scorer.score(make_frames(reencoded))["phash"]
    other = scorer.score(make_frames([grey[0][:, ::-1].copy() for _ in range(4)]))["phash"]
    assert phash_distance(clip, clip) == 0.0
    assert phash_distance(clip, copy) <= 8
    assert phash_distance(clip, other) > 20
    # Fewer frames on one side: paired by relative position (frames 1 and 3 of 4).
    assert phash_distance(clip[1::2], clip) == 0.0
    with pytest.raises(ValueError):
        phash_distance([], clip)


def test_signed_storage_roundtrip() -> None:
    assert to_signed(2**64 - 1) == -1
    assert to_signed(2**63) == -(2**63)
    assert to_signed(5) == 5
    assert to_unsigned(-1) == 2**64 - 1
    assert hamming(-1, 0) == 64
    assert hamming(to_signed(2**63 + 1), 2**63) == 1


def test_score_row_through_rows_to_table(tmp_path) -> None:
    big_hash = to_signed(2**64 - 3)  # a hash >= 2**63 must not overflow Arrow's int64
    rows = [
        {
            "clip_id": "c0",
            "video_id": "v0",
            **QualityScorer(count=2).score(make_frames([noise(0), noise(1)])),
            "phash": [big_hash, 7],
        },
        {"clip_id": "c1", "video_id": "v0", **dict.fromkeys(QualityScorer.columns), "phash": None},
    ]
    table = rows_to_table(rows, CLIP_SCHEMA)
    assert table.schema.field("phash").type == pa.list_(pa.int64())
    assert table.schema.field("sharpness").type == pa.float64()
    assert table.schema.field("border_frac").type == pa.float64()
    back = read_parquet(write_parquet(table, tmp_path / "clips.parquet")).to_pylist()
    assert back[0]["phash"] == [big_hash, 7]
    assert to_unsigned(back[0]["phash"][0]) == 2**64 - 3
    assert back[1]["phash"] is None and back[1]["sharpness"] is None


def test_flat_frames_are_not_evidence_of_a_duplicate() -> None:
    """Two blank clips hash alike; they are not compared, and flat frames are skipped."""
    scorer = PHashScorer()
    textured = [cv2.cvtColor(scene(s), cv2.COLOR_RGB2GRAY) for s in range(4)]
    black = [np.zeros_like(textured[0]) for _ in range(4)]
    grey = [np.full_like(textured[0], 128) for _ in range(4)]
    flat_a = scorer.score(make_frames(black))["phash"]
    flat_b = scorer.score(make_frames(grey))["phash"]
    assert not any(is_informative(h) for h in flat_a + flat_b)
    assert all(is_informative(h) for h in scorer.score(make_frames(textured))["phash"])
    assert phash_distance(flat_a, flat_b) is None
    # A clip that fades to black: only its textured frames are compared.
    fading = scorer.score(make_frames(textured[:2] + black[:2]))["phash"]
    clip = scorer.score(make_frames(textured[:2] + grey[:2]))["phash"]
    assert phash_distance(fading, clip) == 0.0


def test_phash_distance_can_ignore_quarter_turns() -> None:
    """A copy stored turned (display-rotation metadata applied elsewhere) still matches."""
    scorer = PHashScorer()
    grey = [cv2.cvtColor(scene(s), cv2.COLOR_RGB2GRAY) for s in range(4)]
    clip = scorer.score(make_frames(grey))["phash"]
    for turns in (1, 2, 3):
        turned = scorer.score(make_frames([np.ascontiguousarray(np.rot90(g, turns)) for g in grey]))
        assert phash_distance(clip, turned["phash"]) > 16, turns
        # the turned hash is derived from the bits, so it is approximate: within the default
        # dedup threshold (10 bits), while unrelated clips stay far apart
        assert phash_distance(clip, turned["phash"], rotations=True) <= 10, turns
    other = scorer.score(make_frames([grey[(i + 1) % 4] for i in range(4)]))["phash"]
    assert phash_distance(clip, other, rotations=True) > 16
