"""Cutting: a re-encoded clip holds exactly the requested source frames, for B-frame GOPs,
variable frame rates, odd sizes, rotation and timestamp offsets; copy mode starts on a keyframe;
the stage cuts kept rows once and resumes."""

from __future__ import annotations

import time
from pathlib import Path

import av
import numpy as np
import pytest

from clipsieve.media.cut import CutError, CutStage, cut_clip, source_index
from clipsieve.media.ffmpeg import run_ffmpeg
from clipsieve.media.probe import frame_times, probe_video
from clipsieve.table import CLIP_SCHEMA, rows_to_table

FPS = 25
N_FRAMES = 100


def _gradient(size: str, frames: int = N_FRAMES, pix_fmt: str = "yuv420p") -> str:
    """A diagonal luma ramp that moves 9 levels per frame: every frame differs from its
    neighbours by ~17 grey levels on average, so a decoded frame identifies its index."""
    return (
        f"nullsrc=s={size}:r={FPS}:d={frames / FPS},format={pix_fmt},"
        "geq=lum='mod(X+Y+N*9\\,256)':cb=128:cr=128"
    )


def _encode(path: Path, lavfi: str, *extra: str, pix_fmt: str = "yuv420p") -> Path:
    """Near-lossless H.264 (qp 0), GOP 50 without scene-cut keyframes, two B-frames."""
    args = ["-loglevel", "error", "-f", "lavfi", "-i", lavfi, *extra]
    args += ["-c:v", "libx264", "-qp", "0", "-g", "50", "-sc_threshold", "0", "-bf", "2"]
    args += ["-pix_fmt", pix_fmt, str(path)]
    run_ffmpeg(args, timeout_s=60, what="test video")
    return path


def _gray_frames(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="gray") for f in container.decode(video=0)]).astype(
            np.float32
        )


def _assert_frames_match(clip: Path, source_frames: np.ndarray, start: int, count: int) -> None:
    """Clip frame i must be closest to source frame start+i, and close in absolute terms."""
    clip_frames = _gray_frames(clip)
    assert len(clip_frames) == count
    h, w = clip_frames.shape[1:]
    src = source_frames[:, :h, :w]
    for i, frame in enumerate(clip_frames):
        mad = np.abs(src - frame).mean(axis=(1, 2))
        assert int(np.argmin(mad)) == start + i, (i, int(np.argmin(mad)), start + i)
        assert mad[start + i] < 2.0, (i, float(mad[start + i]))


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cut")
    m = {"source": _encode(d / "source.mp4", _gradient("160x120"))}
    # Frames 0-29 at 25 fps, then every third frame: a variable frame rate source.
    m["vfr"] = _encode(
        d / "vfr.mp4",
        _gradient("160x120"),
        *("-vf", "select='lt(n\\,30)+not(mod(n\\,3))'", "-fps_mode", "vfr"),
    )
    m["odd"] = _encode(d / "odd.mp4", _gradient("161x121", pix_fmt="yuv444p"), pix_fmt="yuv444p")
    return m


@pytest.fixture(scope="module")
def source_frames(media) -> np.ndarray:
    return _gray_frames(media["source"])


def test_reencode_holds_exactly_the_requested_frames(tmp_path, media, source_frames):
    result = cut_clip(media["source"], tmp_path / "c.mp4", 37, 81)
    assert (result.start_frame, result.end_frame, result.num_frames) == (37, 81, 44)
    assert (result.width, result.height) == (160, 120)
    assert result.fps == pytest.approx(FPS)
    assert result.keyframe_aligned is False
    _assert_frames_match(tmp_path / "c.mp4", source_frames, 37, 44)
    info = probe_video(tmp_path / "c.mp4")
    assert info["num_frames"] == 44 and info["start_time_s"] == pytest.approx(0.0)


def test_cut_from_first_frame_and_to_last_frame(tmp_path, media, source_frames):
    first = cut_clip(media["source"], tmp_path / "first.mp4", 0, 10)
    assert first.num_frames == 10
    _assert_frames_match(tmp_path / "first.mp4", source_frames, 0, 10)
    last = cut_clip(media["source"], tmp_path / "last.mp4", N_FRAMES - 7, N_FRAMES)
    assert last.num_frames == 7
    _assert_frames_match(tmp_path / "last.mp4", source_frames, N_FRAMES - 7, 7)


def test_cut_starting_on_a_keyframe_and_one_frame_clip(tmp_path, media, source_frames):
    cut_clip(media["source"], tmp_path / "k.mp4", 50, 53)
    _assert_frames_match(tmp_path / "k.mp4", source_frames, 50, 3)
    cut_clip(media["source"], tmp_path / "one.mp4", 49, 50)
    _assert_frames_match(tmp_path / "one.mp4", source_frames, 49, 1)


def test_variable_frame_rate_source(tmp_path, media):
    times = frame_times(media["vfr"])
    assert len(times) == 30 + 24  # frames 0-29, then 30, 33, ..., 99
    frames = _gray_frames(media["vfr"])
    # [20, 40) straddles the change from 25 fps to every third frame.
    result = cut_clip(media["vfr"], tmp_path / "v.mp4", 20, 40, frame_times=times)
    assert result.num_frames == 20
    _assert_frames_match(tmp_path / "v.mp4", frames, 20, 20)
    clip_times = frame_times(tmp_path / "v.mp4")
    np.testing.assert_allclose(np.diff(clip_times), np.diff(times[20:40]), atol=1e-3)


def test_odd_dimensions_are_cropped_to_even(tmp_path, media):
    frames = _gray_frames(media["odd"])
    result = cut_clip(media["odd"], tmp_path / "o.mp4", 5, 25)
    assert (result.width, result.height) == (160, 120)
    info = probe_video(tmp_path / "o.mp4")
    assert info["pix_fmt"] == "yuv420p"
    _assert_frames_match(tmp_path / "o.mp4", frames, 5, 20)


def test_short_side_downscales_but_never_upscales(tmp_path, media):
    small = cut_clip(media["source"], tmp_path / "s.mp4", 10, 20, short_side=60)
    assert (small.width, small.height) == (80, 60)
    assert small.num_frames == 10
    assert probe_video(tmp_path / "s.mp4")["sar"] == "1:1"
    same = cut_clip(media["source"], tmp_path / "u.mp4", 10, 20, short_side=480)
    assert (same.width, same.height) == (160, 120)


def test_out_fps_resamples_the_clip_duration(tmp_path, media):
    result = cut_clip(media["source"], tmp_path / "f.mp4", 10, 60, out_fps=10)
    assert result.num_frames == 20  # 2 s of source at 10 fps
    assert result.fps == pytest.approx(10.0)


def test_rotation_is_applied(tmp_path, media, source_frames):
    rotated = tmp_path / "rot.mp4"
    run_ffmpeg(
        ["-loglevel", "error", "-display_rotation", "90", "-i", str(media["source"])]
        + ["-c", "copy", str(rotated)]
    )
    small = cut_clip(rotated, tmp_path / "small.mp4", 30, 40, short_side=60)
    assert (small.width, small.height) == (60, 80)  # upright portrait, short side 60
    result = cut_clip(rotated, tmp_path / "r.mp4", 30, 40)
    assert (result.width, result.height) == (120, 160)
    info = probe_video(tmp_path / "r.mp4")
    assert info["rotation"] == 0 and (info["width"], info["height"]) == (120, 160)
    # Undo the 90 degree counter-clockwise display rotation: the source frames come back.
    upright = _gray_frames(tmp_path / "r.mp4")
    for i, frame in enumerate(np.rot90(upright, k=-1, axes=(1, 2))):
        mad = np.abs(source_frames - frame).mean(axis=(1, 2))
        assert int(np.argmin(mad)) == 30 + i
        assert mad[30 + i] < 2.0


def test_nonzero_start_time(tmp_path, media, source_frames):
    shifted = tmp_path / "shift.mp4"
    run_ffmpeg(
        ["-loglevel", "error", "-i", str(media["source"]), "-c", "copy"]
        + ["-output_ts_offset", "3.0", str(shifted)]
    )
    assert frame_times(shifted)[0] == pytest.approx(3.0)
    cut_clip(shifted, tmp_path / "c.mp4", 60, 75)
    _assert_frames_match(tmp_path / "c.mp4", source_frames, 60, 15)


def test_copy_mode_starts_on_the_keyframe_at_or_before(tmp_path, media, source_frames):
    idx = source_index(media["source"])
    assert list(np.flatnonzero(idx.keyframes)) == [0, 50]
    result = cut_clip(media["source"], tmp_path / "k.mp4", 60, 90, mode="copy", index=idx)
    assert result.keyframe_aligned is True
    assert result.start_frame == 50 <= 60
    assert result.end_frame >= 90
    assert result.num_frames == result.end_frame - result.start_frame
    _assert_frames_match(tmp_path / "k.mp4", source_frames, 50, result.num_frames)


def test_bad_requests_raise_one_line_errors(tmp_path, media):
    with pytest.raises(CutError, match=r"outside the source's \[0, 100\)"):
        cut_clip(media["source"], tmp_path / "x.mp4", 90, 101)
    with pytest.raises(CutError, match="outside"):
        cut_clip(media["source"], tmp_path / "x.mp4", 20, 20)
    with pytest.raises(CutError, match="^source not found"):
        cut_clip(tmp_path / "missing.mp4", tmp_path / "x.mp4", 0, 5)
    assert not (tmp_path / "x.mp4").exists()


def test_cut_stage_cuts_kept_rows_once(tmp_path, media, source_frames):
    src = str(media["source"])
    rows = [
        {
            "clip_id": "v_0",
            "video_id": "v",
            "source_path": src,
            "start_frame": 0,
            "end_frame": 20,
            "keep": True,
        },
        {
            "clip_id": "v_1",
            "video_id": "v",
            "source_path": src,
            "start_frame": 20,
            "end_frame": 45,
            "keep": None,
        },
        {
            "clip_id": "v_2",
            "video_id": "v",
            "source_path": src,
            "start_frame": 45,
            "end_frame": 100,
            "keep": False,
            "drop_reason": "too_long",
        },
        {
            "clip_id": "v_3",
            "video_id": "v",
            "source_path": src,
            "start_frame": 0,
            "end_frame": 5,
            "status": "error",
            "error": "shots: failed",
        },
        {
            "clip_id": "v_4",
            "video_id": "v",
            "source_path": src,
            "start_frame": 95,
            "end_frame": 120,
            "keep": True,
        },
    ]
    stage = CutStage(out_dir=str(tmp_path / "clips"), short_side=60)
    out = stage.process(rows_to_table(rows, CLIP_SCHEMA)).to_pylist()
    by_id = {r["clip_id"]: r for r in out}
    assert list(by_id) == ["v_0", "v_1", "v_2", "v_3", "v_4"]
    for cid, n in (("v_0", 20), ("v_1", 25)):
        r = by_id[cid]
        assert r["path"] == str(tmp_path / "clips" / f"{cid}.mp4")
        assert r["num_frames"] == n
        assert (r["width"], r["height"]) == (80, 60)
        assert r["resolution"] == 4800 and r["aspect_ratio"] == pytest.approx(0.75)
        assert r["fps"] == pytest.approx(FPS)
        assert r["cut_mode"] == "reencode" and r["keyframe_aligned"] is False
        assert r["status"] == "ok"
    assert by_id["v_2"]["path"] is None and by_id["v_2"]["drop_reason"] == "too_long"
    assert by_id["v_3"]["path"] is None and by_id["v_3"]["error"] == "shots: failed"
    assert by_id["v_4"]["status"] == "error"
    assert by_id["v_4"]["error"].startswith("cut: frames [95, 120) are outside")
    assert sorted(p.name for p in (tmp_path / "clips").iterdir()) == ["v_0.mp4", "v_1.mp4"]

    mtimes = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "clips").iterdir()}
    again = CutStage(out_dir=str(tmp_path / "clips"), short_side=60)
    out2 = again.process(rows_to_table(rows, CLIP_SCHEMA)).to_pylist()
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "clips").iterdir()} == mtimes
    assert [r["num_frames"] for r in out2] == [r["num_frames"] for r in out]

    # A clip left incomplete (wrong frame count) is cut again.
    (tmp_path / "clips" / "v_1.mp4").write_bytes((tmp_path / "clips" / "v_0.mp4").read_bytes())
    third = CutStage(out_dir=str(tmp_path / "clips"), short_side=60)
    out3 = {r["clip_id"]: r for r in third.process(rows_to_table(rows, CLIP_SCHEMA)).to_pylist()}
    assert out3["v_1"]["num_frames"] == 25
    assert probe_video(tmp_path / "clips" / "v_1.mp4")["num_frames"] == 25


def test_cut_stage_copy_mode_records_the_frames_it_holds(tmp_path, media):
    rows = [
        {
            "clip_id": "c",
            "video_id": "v",
            "source_path": str(media["source"]),
            "start_frame": 60,
            "end_frame": 90,
            "start_s": 2.4,
            "end_s": 3.6,
            "keep": True,
        }
    ]
    out = CutStage(out_dir=str(tmp_path), mode="copy").process(rows_to_table(rows, CLIP_SCHEMA))
    r = out.to_pylist()[0]
    assert r["cut_mode"] == "copy" and r["keyframe_aligned"] is True
    assert (r["requested_start_frame"], r["requested_end_frame"]) == (60, 90)
    assert r["start_frame"] == 50 and r["start_s"] == pytest.approx(2.0)
    assert r["end_frame"] - r["start_frame"] == r["num_frames"]


@pytest.mark.slow
def test_cut_deep_into_a_long_video_is_fast(tmp_path):
    src = tmp_path / "long.mp4"
    run_ffmpeg(
        ["-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30:duration=60"]
        + ["-c:v", "libx264", "-preset", "ultrafast", "-g", "60", str(src)],
        timeout_s=300,
    )
    idx = source_index(src)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        result = cut_clip(src, tmp_path / "c.mp4", 1500, 1560, index=idx)
        best = min(best, time.perf_counter() - t0)
    assert result.num_frames == 60
    assert best < 1.5, best


def test_a_group_of_clips_cut_by_one_process_equals_cutting_each(tmp_path, media, source_frames):
    """One ffmpeg process for several clips (the source decoded once): each clip holds exactly
    its frames and is the same file a cut of its own gives."""
    from clipsieve.media.cut import cut_group, plan_groups

    src = source_index(media["source"])
    spans = [(0, 20), (20, 45), (45, 46), (60, 100)]
    assert plan_groups(src, spans) == [[0, 1, 2, 3]]
    clips = [(tmp_path / f"g{i}.mp4", a, b) for i, (a, b) in enumerate(spans)]
    done = cut_group(src, clips)
    assert sorted(done) == sorted(out for out, _, _ in clips)
    for out, start, end in clips:
        _assert_frames_match(out, source_frames, start, end - start)
        alone = cut_clip(media["source"], tmp_path / f"alone-{out.name}", start, end, index=src)
        assert out.read_bytes() == Path(alone.path).read_bytes()
        assert done[out].num_frames == end - start
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_group_clip_that_comes_out_wrong_is_left_for_a_cut_of_its_own(
    tmp_path, media, monkeypatch
):
    from clipsieve.media import cut

    real = cut.probe_video

    def short_second(path):
        info = real(path)
        if ".g1.mp4." in Path(path).name:
            info = {**info, "num_frames": info["num_frames"] - 1}
        return info

    monkeypatch.setattr(cut, "probe_video", short_second)
    src = source_index(media["source"])
    clips = [(tmp_path / f"g{i}.mp4", a, b) for i, (a, b) in enumerate([(0, 10), (10, 30)])]
    done = cut.cut_group(src, clips)
    assert list(done) == [tmp_path / "g0.mp4"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g0.mp4"]  # no partial g1, no temps


def test_the_stage_cuts_a_videos_clips_in_groups(tmp_path, media, source_frames, monkeypatch):
    from clipsieve.media import cut

    groups: list[int] = []
    real = cut.cut_group

    def counted(src, clips, **kw):
        groups.append(len(clips))
        return real(src, clips, **kw)

    monkeypatch.setattr(cut, "cut_group", counted)
    src = str(media["source"])
    spans = [(0, 30), (30, 64), (64, 100), (90, 130)]  # the last is outside: its row says so
    rows = [
        {"clip_id": f"v_{i}", "video_id": "v", "source_path": src, "start_frame": a,
         "end_frame": b, "keep": True}
        for i, (a, b) in enumerate(spans)
    ]  # fmt: skip
    out = CutStage(out_dir=str(tmp_path / "clips")).process(rows_to_table(rows, CLIP_SCHEMA))
    by_id = {r["clip_id"]: r for r in out.to_pylist()}
    assert groups == [3]
    for i, (a, b) in enumerate(spans[:3]):
        assert by_id[f"v_{i}"]["num_frames"] == b - a
        _assert_frames_match(Path(by_id[f"v_{i}"]["path"]), source_frames, a, b - a)
    assert by_id["v_3"]["status"] == "error" and "outside" in by_id["v_3"]["error"]
