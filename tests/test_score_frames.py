"""Frame sampler and score stage: index placement, sizes, rotation, one decode per clip."""

from __future__ import annotations

import av
import numpy as np
import pytest

from clipsieve.media import frames as frames_module
from clipsieve.media.ffmpeg import run_ffmpeg
from clipsieve.media.frames import Frames, FrameSampler, FrameSpec, SampleError, spec_indices
from clipsieve.score import names as score_names
from clipsieve.score.base import Scorer
from clipsieve.score.stage import ScoreStage
from clipsieve.table import CLIP_SCHEMA, rows_to_table


def _grey_ramp_video(path, frames=100, fps=25, size="160x96", extra=(), quality=("-qp", "0")):
    """Every frame a different flat grey level (frame i has level 2*i+20): identifiable.

    Lossless (the default) makes x264 use no B-frames at all; ``quality=("-crf", "18")`` gives
    the usual I/P/B pattern.
    """
    expr = "geq=lum='2*N+20':cb=128:cr=128,format=yuv420p"
    run_ffmpeg(
        ["-f", "lavfi", "-i", f"color=c=black:s={size}:r={fps}:d={frames / fps}"]
        + ["-vf", expr, "-c:v", "libx264", *quality, "-g", "30", "-bf", "2", *extra, str(path)]
    )
    return path


def _level(image: np.ndarray) -> float:
    return float(image.mean())


def _reference_levels(path) -> list[float]:
    """Mean RGB level of every frame, from a plain full decode."""
    with av.open(str(path)) as container:
        return [_level(f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]


def test_spec_indices():
    every = spec_indices(FrameSpec(every_s=0.25), 100, 24.0)
    assert every.tolist() == [0, 6, 12, 18, 24, 30, 36, 42, 48, 54, 60, 66, 72, 78, 84, 90, 96]
    assert spec_indices(FrameSpec(count=4), 100, 25.0).tolist() == [13, 38, 63, 88]
    assert spec_indices(FrameSpec(count=3, positions="ends"), 100, 25.0).tolist() == [0, 50, 99]
    assert spec_indices(FrameSpec(fractions=(0.1, 0.5, 0.9)), 101, 25.0).tolist() == [10, 50, 90]
    # short clips: never out of range, duplicates collapse
    assert spec_indices(FrameSpec(count=8), 3, 25.0).tolist() == [0, 1, 2]
    assert spec_indices(FrameSpec(every_s=1.0), 1, 25.0).tolist() == [0]
    assert spec_indices(FrameSpec(count=3), 0, 25.0).tolist() == []
    with pytest.raises(ValueError):
        FrameSpec()
    with pytest.raises(ValueError):
        FrameSpec(every_s=1.0, count=3)


def test_union_decoded_once_and_each_spec_gets_its_view(tmp_path, monkeypatch):
    video = _grey_ramp_video(tmp_path / "ramp.mp4")
    opens = []
    real_open = av.open

    def counting_open(*args, **kwargs):
        opens.append(args[0])
        return real_open(*args, **kwargs)

    monkeypatch.setattr(frames_module.av, "open", counting_open)
    sampler = FrameSampler(
        {
            "dense": FrameSpec(every_s=0.25, size=(80, 48), color="gray"),
            "few": FrameSpec(count=3, positions="ends"),
            "small": FrameSpec(count=4, short_side=48),
        }
    )
    out = sampler.sample(video)
    assert len(opens) == 1
    assert out["dense"].images.shape == (16, 48, 80)  # 4 s every 0.25 s
    assert out["few"].images.shape == (3, 96, 160, 3)
    assert out["small"].images.shape == (4, 48, 80, 3)
    assert out["few"].indices.tolist() == [0, 50, 99]
    reference = _reference_levels(video)
    for index, image in zip(out["few"].indices, out["few"].images, strict=True):
        assert _level(image) == pytest.approx(reference[index], abs=1)
    assert out["dense"].times_s.tolist() == pytest.approx(out["dense"].indices / 25.0)
    assert out["dense"].indices.tolist()[:3] == [0, 6, 13]
    assert out["few"].source_size == (160, 96)


def test_sampling_a_span_of_the_source_matches_the_same_frames(tmp_path):
    video = _grey_ramp_video(tmp_path / "ramp.mp4")
    sampler = FrameSampler({"ends": FrameSpec(count=3, positions="ends")})
    span = sampler.sample(video, start_frame=40, end_frame=81, fps=25.0)["ends"]
    assert span.indices.tolist() == [0, 20, 40]
    reference = _reference_levels(video)
    levels = [_level(im) for im in span.images]
    assert levels == pytest.approx([reference[40], reference[60], reference[80]], abs=1)


def test_rotated_video_is_made_upright(tmp_path):
    src = _grey_ramp_video(tmp_path / "flat.mp4", frames=10, size="160x96")
    rotated = tmp_path / "rot.mp4"
    run_ffmpeg(["-display_rotation", "90", "-i", str(src), "-c", "copy", str(rotated)])
    out = FrameSampler({"a": FrameSpec(count=1, short_side=48)}).sample(rotated)["a"]
    assert out.source_size == (96, 160)
    assert out.images.shape == (1, 80, 48, 3)


def test_broken_file_is_a_sample_error(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(SampleError, match="cannot open"):
        FrameSampler({"a": FrameSpec(count=1)}).sample(bad)


def test_decode_past_its_timeout_is_a_sample_error(tmp_path):
    src = _grey_ramp_video(tmp_path / "ramp.mp4", frames=10, size="160x96")
    sampler = FrameSampler({"a": FrameSpec(count=3)}, timeout_s=1e-6)
    with pytest.raises(SampleError, match="timed out"):
        sampler.sample(src)


class _MeanLevel(Scorer):
    name = "meanlevel"
    columns = ("mean_level", "frames_seen")

    def frame_spec(self) -> FrameSpec:
        return FrameSpec(count=2, color="gray", size=(32, 32))

    def score(self, frames: Frames) -> dict:
        return {"mean_level": float(frames.images.mean()), "frames_seen": len(frames.images)}


class _Broken(Scorer):
    name = "broken"
    columns = ("broken_value",)

    def frame_spec(self) -> FrameSpec:
        return FrameSpec(count=1)

    def score(self, frames: Frames) -> dict:
        raise RuntimeError("model exploded\nwith detail")


def test_score_stage_keeps_other_scores_when_one_scorer_fails(tmp_path, monkeypatch):
    monkeypatch.setitem(score_names.SCORERS, "meanlevel", f"{__name__}:_MeanLevel")
    monkeypatch.setitem(score_names.SCORERS, "broken", f"{__name__}:_Broken")
    video = _grey_ramp_video(tmp_path / "ramp.mp4", frames=20)
    stage = ScoreStage(scorers=["meanlevel", "broken"])
    stage.setup()
    rows = [
        {"clip_id": "a", "video_id": "v", "path": str(video), "fps": 25.0, "keep": True},
        {"clip_id": "b", "video_id": "v", "path": None, "keep": False},
        {"clip_id": "c", "video_id": "v", "path": str(tmp_path / "gone.mp4"), "keep": True},
    ]
    out = {r["clip_id"]: r for r in stage.process(rows_to_table(rows, CLIP_SCHEMA)).to_pylist()}
    assert out["a"]["frames_seen"] == 2 and out["a"]["broken_value"] is None
    assert out["a"]["score_errors"] == "broken: model exploded with detail"
    assert out["a"]["status"] in (None, "ok")
    assert out["b"]["mean_level"] is None and out["b"]["status"] is None
    assert out["c"]["status"] == "error" and out["c"]["error"].startswith("score: ")
    assert stage.describe()["params"]["scorers"][0]["name"] == "meanlevel"


def test_motion_and_camera_share_one_flow_computation(tmp_path, monkeypatch):
    from clipsieve.score import motion

    calls = []
    real = motion.flow_fields

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(motion, "flow_fields", counting)
    video = _grey_ramp_video(tmp_path / "ramp.mp4", frames=50)
    stage = ScoreStage(scorers=["motion", "camera"])
    stage.setup()
    row = {"clip_id": "a", "video_id": "v", "path": str(video), "fps": 25.0, "keep": True}
    out = stage.process(rows_to_table([row], CLIP_SCHEMA)).to_pylist()[0]
    assert len(calls) == 1
    assert out["flow_mean"] is not None and out["camera_motion"] is not None
    assert out["score_errors"] is None


def test_score_stage_asks_for_a_gpu_only_for_large_models():
    assert ScoreStage(scorers=["static", "motion"]).resources().gpus == 0
    assert ScoreStage(scorers=["static", "match"]).resources().gpus == 1
    embed = ScoreStage(scorers=["embed"], scorer_params={"embed": {"encoder": "clip:some/model"}})
    assert embed.resources().gpus == 1
    assert ScoreStage(scorers=["embed"]).resources().gpus == 0


def _count_decoded(monkeypatch) -> list[int]:
    """Patch the sampler to count the frames the decoder hands out (skipped ones never are)."""
    seen: list[int] = []
    real = FrameSampler._indexed_frames

    def counting(self, *args, **kwargs):
        for item in real(self, *args, **kwargs):
            seen.append(item[0])
            yield item

    monkeypatch.setattr(FrameSampler, "_indexed_frames", counting)
    return seen


def test_reference_frames_only_takes_the_nearest_decoded_frame(tmp_path, monkeypatch):
    video = _grey_ramp_video(tmp_path / "ramp.mp4", quality=("-crf", "18"))  # I/P/B frames
    seen = _count_decoded(monkeypatch)
    spec = FrameSpec(count=3, positions="ends")
    exact = FrameSampler({"a": spec}).sample(video)["a"]
    exact_decoded = len(seen)
    seen.clear()
    fast = FrameSampler({"a": spec}, reference_frames_only=True).sample(video)["a"]
    assert len(seen) < 0.8 * exact_decoded  # B-frames were skipped, not decoded
    assert exact.indices.tolist() == [0, 50, 99]
    assert len(fast.indices) == 3
    assert np.abs(fast.indices - exact.indices).max() <= 3
    reference = _reference_levels(video)
    for index, image in zip(fast.indices, fast.images, strict=True):
        assert _level(image) == pytest.approx(reference[index], abs=1)  # labelled truthfully
    assert fast.times_s.tolist() == pytest.approx(fast.indices / 25.0)


def test_reference_frames_only_is_exact_without_b_frames(tmp_path):
    video = _grey_ramp_video(tmp_path / "ip.mp4", frames=40, extra=("-bf", "0"))
    fast = FrameSampler({"a": FrameSpec(count=4)}, reference_frames_only=True).sample(video)["a"]
    assert fast.indices.tolist() == spec_indices(FrameSpec(count=4), 40, 25.0).tolist()


def test_reference_frames_only_on_a_span_of_the_source(tmp_path):
    video = _grey_ramp_video(tmp_path / "ramp.mp4", quality=("-crf", "18"))
    sampler = FrameSampler(
        {"ends": FrameSpec(count=3, positions="ends")}, reference_frames_only=True
    )
    span = sampler.sample(video, start_frame=40, end_frame=81, fps=25.0)["ends"]
    assert np.abs(span.indices - np.array([0, 20, 40])).max() <= 3
    reference = _reference_levels(video)
    for index, image in zip(span.indices, span.images, strict=True):
        assert _level(image) == pytest.approx(reference[40 + index], abs=1)


def test_codec_threads_follow_the_environment(tmp_path, monkeypatch):
    from clipsieve.media import threads

    video = _grey_ramp_video(tmp_path / "ramp.mp4", frames=10)
    monkeypatch.delenv(threads.CODEC_THREADS_ENV, raising=False)
    assert threads.codec_threads() == 0 and threads.ffmpeg_input_thread_args() == []
    assert threads.ffmpeg_output_thread_args() == ["-threads", "1"]  # the encoder: always 1
    monkeypatch.setenv(threads.CODEC_THREADS_ENV, "2")
    assert threads.ffmpeg_input_thread_args() == ["-threads", "2"]
    assert threads.ffmpeg_output_thread_args() == ["-threads", "1", "-filter_threads", "2"]
    monkeypatch.setenv(threads.CODEC_THREADS_ENV, "1")
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        threads.configure_decoder(stream)
        assert stream.codec_context.thread_count == 1
        threads.configure_decoder(stream, threads=3)
        assert stream.codec_context.thread_count == 3
    monkeypatch.setenv(threads.CODEC_THREADS_ENV, "lots")
    assert threads.codec_threads() == 0  # a bad value means FFmpeg's default, not a crash
    # Decoding under the cap still works.
    assert FrameSampler({"a": FrameSpec(count=2)}).sample(video)["a"].images.shape[0] == 2
