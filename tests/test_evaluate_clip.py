"""CLIP text–frame similarity for evaluation: the corrected frame mean vs the original formula,
every-second-frame sampling on a real file, paired caption comparison, and the one-line skip
when no CLIP weights exist. Models are tiny random CLIP checkpoints loaded by path."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from clipsieve.evaluate import clipsim
from clipsieve.evaluate.captions import caption_pairs, compare_paired, text_stats
from clipsieve.evaluate.runner import EvaluateOptions, evaluate_run
from clipsieve.runfolder import load_clips
from clipsieve.steps import save_clips

pytestmark = pytest.mark.usefixtures("fresh_encoders")


def write_video(path: Path, frames: int, fps: int = 25) -> Path:
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for _ in range(frames):
            image = rng.integers(0, 256, (48, 64, 3), np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_corrected_mean_vs_original_formula() -> None:
    # a 10-frame clip scored on frames 0, 2, 4, 6, 8: 100·cos = 20, 30, -5, 10, 25
    sims = np.array([20.0, 30.0, -5.0, 10.0, 25.0])
    assert clipsim.clip_score(sims) == pytest.approx(17.0)  # (20 + 30 + 0 + 10 + 25) / 5
    assert clipsim.original_clip_score(sims, total_frames=10) == pytest.approx(
        8.5
    )  # ... / 10: half
    # odd frame count: 9 frames, 5 scored; the old value is 5/9 of the true mean
    assert clipsim.original_clip_score(sims, 9) == pytest.approx(17.0 * 5 / 9)
    with pytest.raises(ValueError):
        clipsim.clip_score(np.array([]))


def test_every_second_frame_of_a_real_clip(tmp_path: Path, tiny_clip: str) -> None:
    video = write_video(tmp_path / "c.mp4", frames=11)
    encoder = clipsim.load_clip(tiny_clip, "cpu")
    row = {"clip_id": "c", "path": str(video), "fps": 25.0, "num_frames": 11}
    frames = clipsim.frame_features(encoder, row, frame_step=2)
    assert frames.features.shape == (6, encoder.dim)  # frames 0, 2, 4, 6, 8, 10
    assert frames.total_frames == 11
    assert np.allclose(np.linalg.norm(frames.features, axis=1), 1.0)
    text = clipsim.text_features(encoder, ["a red car"])["a red car"]
    sims = clipsim.similarities(frames, text)
    assert np.all(np.abs(sims) <= 100.0 + 1e-6)
    ratio = clipsim.original_clip_score(sims, 11) / max(clipsim.clip_score(sims), 1e-9)
    if clipsim.clip_score(sims) > 0:
        assert ratio == pytest.approx(6 / 11)
    assert len(clipsim.frame_features(encoder, row, frame_step=3).features) == 4  # 0, 3, 6, 9


def test_paired_comparison_synthetic() -> None:
    rng = np.random.default_rng(0)
    old = rng.normal(20.0, 3.0, 50)
    better = compare_paired(old, old + 2.0 + rng.normal(0, 1.0, 50), draws=500, seed=1)
    assert better.outcome == "better" and better.ci_low > 0 and better.win_rate > 0.9
    assert better.verdict.startswith("new captions beat the source captions on CLIP score by 2")
    same = compare_paired(old, old + rng.normal(0, 1.0, 50), draws=500, seed=1)
    assert same.outcome == "unclear" and same.ci_low < 0 < same.ci_high
    again = compare_paired(old, old + 2.0, draws=500, seed=1)
    assert again.tie_rate == 0 and again.win_rate == 1.0


def test_text_stats() -> None:
    stats = text_stats(["a dog runs on the beach", "A Cat sleeps.", "two birds fly!"])
    assert stats["n"] == 3
    assert stats["mean_words"] == pytest.approx((6 + 3 + 3) / 3)
    assert stats["share_lowercase"] == pytest.approx(2 / 3)
    assert stats["share_capitalised"] == pytest.approx(1 / 3)
    assert stats["share_end_punctuation"] == pytest.approx(2 / 3)
    assert stats["vocabulary"] == 11  # "a" counted once


def _add_captions(run_dir: Path) -> int:
    """Source captions on every ok clip, new captions on the kept ones; returns the pair count."""
    clips = load_clips(run_dir)
    rows = clips.to_pylist()
    old = [f"video clip number {i}" if r["status"] == "ok" else None for i, r in enumerate(rows)]
    new = [
        f"a colourful moving pattern, shot {i}." if r["keep"] and r["status"] == "ok" else None
        for i, r in enumerate(rows)
    ]
    clips = clips.append_column("caption_src", [old]).append_column("caption", [new])
    save_clips(run_dir, clips, {"name": "test-captions", "version": "1", "params": {}})
    return len(caption_pairs(clips.to_pylist()))


def test_evaluate_run_with_tiny_clip(run_copy: Path, tiny_clip: str) -> None:
    pairs = _add_captions(run_copy)
    assert pairs > 0
    options = EvaluateOptions(metrics=["flow_mean"], draws=200, clip_model=tiny_clip, device="cpu")
    doc = evaluate_run(run_copy, options)
    clip = doc["clip"]
    assert clip["status"] == "used" and clip["model"] == f"clip:{tiny_clip}"
    assert clip["text_column"] == "caption_src"  # covers the whole pool, not only kept clips
    assert clip["clips_scored"] == doc["pool"] and clip["errors"] == 0
    # every second frame scored, divided correctly: the old formula gives about half
    ratio = clip["pool_mean_original_formula"] / clip["pool_mean"]
    assert 0.45 < ratio < 0.55
    assert [m["metric"] for m in doc["metrics"]] == ["flow_mean", "clip_sim"]
    captions = doc["captions"]
    assert captions["n_pairs"] == pairs and captions["clip"]["n"] == pairs
    assert 0.0 <= captions["clip"]["win_rate"] <= 1.0
    assert captions["text_stats"]["caption"]["share_end_punctuation"] == 1.0
    assert captions["text_stats"]["caption_src"]["mean_words"] == 4.0
    assert (run_copy / "evaluation.json").is_file()


def test_no_clip_weights_is_one_line(
    run_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _add_captions(run_copy)
    monkeypatch.setenv("CLIPSIEVE_MODELS", str(tmp_path / "no-models"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    lines: list[str] = []
    doc = evaluate_run(
        run_copy, EvaluateOptions(metrics=["flow_mean"], draws=100), notes=lines.append
    )
    assert doc["clip"]["status"] == "skipped"
    assert len(lines) == 1 and lines[0].startswith("CLIP similarity skipped: ")
    assert "\n" not in lines[0] and "clip-vit-large-patch14" in lines[0]
    assert [m["metric"] for m in doc["metrics"]] == ["flow_mean"]
    assert doc["captions"]["clip"] is None and doc["captions"]["n_pairs"] > 0
