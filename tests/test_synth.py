"""The sample set's ground truth must match the frames actually in the files."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from clipsieve.media import synth
from clipsieve.media.synth import load_sample_set, make_sample_set, sample_names


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> synth.SampleSet:
    return make_sample_set(tmp_path_factory.mktemp("samples"), scale="test")


@pytest.fixture(scope="module")
def frames(sample: synth.SampleSet) -> dict[str, np.ndarray]:
    """Every decodable file as a (frames, height, width) int16 luma array."""
    out = {}
    for path in sample.good():
        with av.open(str(path)) as container:
            grey = [f.to_ndarray(format="gray") for f in container.decode(video=0)]
        out[path.name] = np.stack(grey).astype(np.int16)
    return out


def _diffs(video: np.ndarray) -> np.ndarray:
    """d[i] = mean |frame i - frame i-1| (d[0] = 0)."""
    d = np.abs(np.diff(video, axis=0)).mean(axis=(1, 2))
    return np.concatenate([[0.0], d])


def test_files_and_expected_json(sample: synth.SampleSet) -> None:
    assert sorted(p.name for p in sample.root.glob("*.mp4")) == list(sample_names("test"))
    on_disk = json.loads(sample.expected_path.read_text())
    assert on_disk == sample.expected
    assert load_sample_set(sample.root).expected == sample.expected
    videos = sample.expected["videos"]
    assert len(sample.good()) == 7 and len(sample.broken()) == 2
    kinds = {v["kind"] for v in videos.values()}
    assert kinds >= {"hard_cuts", "long_take", "gradual", "static", "text", "near_duplicate"}
    assert videos["cuts_reencoded.mp4"]["near_duplicate_of"] == "cuts.mp4"


def test_expected_is_self_consistent(sample: synth.SampleSet) -> None:
    lengths = []
    for name, v in sample.expected["videos"].items():
        if v["expected_error"]:
            assert v["num_frames"] is None and v["shots"] == []
            continue
        assert v["fps"] == 25.0
        assert v["duration_s"] == pytest.approx(v["num_frames"] / 25.0)
        shots = v["shots"]
        assert shots[0]["start"] == 0 and shots[-1]["end"] == v["num_frames"], name
        starts = [s["start"] for s in shots]
        assert set(v["hard_cuts"]) <= set(starts), name
        for first, last in v["gradual_transitions"] + v["static_ranges"] + v["text_ranges"]:
            assert 0 <= first <= last < v["num_frames"], name
        lengths += [(s["end"] - s["start"]) / 25.0 for s in shots]
    # the length policy (min 2 s, max 10 s) has something to do on both sides
    assert min(lengths) < 2.0 and max(lengths) > 10.0


def test_decoded_frames_match_expected(sample: synth.SampleSet, frames: dict) -> None:
    for name, video in frames.items():
        v = sample.video(name)
        assert video.shape == (v["num_frames"], v["height"], v["width"]), name


def test_broken_files(sample: synth.SampleSet) -> None:
    empty = sample.root / "empty.mp4"
    truncated = sample.root / "truncated.mp4"
    assert empty.stat().st_size == 0
    full = (sample.root / "text.mp4").stat().st_size
    assert truncated.stat().st_size == int(full * 0.4)
    for path in (empty, truncated):
        with pytest.raises(av.FFmpegError):
            av.open(str(path)).close()
    assert sample.video("empty.mp4")["expected_error"] == "empty file"
    assert sample.video("truncated.mp4")["expected_error"] == "truncated file"


def test_hard_cuts_are_real_visual_changes(sample: synth.SampleSet, frames: dict) -> None:
    checked = 0
    for name, video in frames.items():
        d = _diffs(video)
        for c in sample.video(name)["hard_cuts"]:
            # the change at the cut dwarfs the change just before it, inside the old shot
            assert d[c] > 25.0, (name, c, d[c])
            assert d[c] > 4.0 * max(d[c - 1], 1.0), (name, c, d[c - 1], d[c])
            checked += 1
    assert checked >= 15


def test_static_text_and_fade_ranges(sample: synth.SampleSet, frames: dict) -> None:
    static = sample.video("static.mp4")["static_ranges"]
    assert static and (static[0][1] - static[0][0]) >= 4 * 25  # held 4+ s
    for name in ("static.mp4", "mixed.mp4"):
        d = _diffs(frames[name])
        for first, last in sample.video(name)["static_ranges"]:
            assert d[first + 1 : last + 1].max() < 2.0, name  # only encoder noise

    text = frames["text.mp4"]
    white = (text[:, text.shape[1] * 2 // 3 :] > 230).sum(axis=(1, 2))
    in_text = np.zeros(len(text), dtype=bool)
    for first, last in sample.video("text.mp4")["text_ranges"]:
        in_text[first : last + 1] = True
    assert white[in_text].min() > 300 and white[~in_text].max() < 50

    fades = frames["fades.mp4"]
    fade, dissolve = sample.video("fades.mp4")["gradual_transitions"]
    black = (fade[0] + fade[1] + 1) // 2  # first frame of the fade-in is black
    assert fades[black].mean() < 3.0
    assert fades[fade[0] - 1].mean() > 60 and fades[fade[1] + 1].mean() > 60
    luma = fades.mean(axis=(1, 2))
    steps = np.diff(luma[fade[0] - 1 : black + 1])
    assert (steps < 0).all()  # darker every frame while fading out
    assert dissolve[1] - dissolve[0] + 1 == 15


def test_near_duplicate_has_same_frames(sample: synth.SampleSet, frames: dict) -> None:
    import cv2

    orig, dup = frames["cuts.mp4"], frames["cuts_reencoded.mp4"]
    assert len(orig) == len(dup) and orig.shape[1:] != dup.shape[1:]

    def thumb(frame: np.ndarray) -> np.ndarray:
        small = cv2.resize(frame.astype(np.uint8), (64, 36), interpolation=cv2.INTER_AREA)
        return small.astype(np.int16)

    same = [np.abs(thumb(orig[i]) - thumb(dup[i])).mean() for i in range(0, len(orig), 10)]
    assert max(same) < 10.0 and np.mean(same) < 4.0, same
    # ...while different frames of the same file are far apart
    assert np.abs(thumb(orig[10]) - thumb(dup[200])).mean() > 30.0


def test_rendering_is_deterministic(tmp_path: Path) -> None:
    spec = synth._specs("test")[0]
    for name in ("a.mp4", "b.mp4"):
        synth._render(spec, tmp_path / name, 160, 90, tmp_path)
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()


def test_unknown_scale_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown sample scale"):
        make_sample_set(tmp_path, scale="huge")  # type: ignore[arg-type]
