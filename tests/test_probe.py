"""Probing: exact stream facts of generated videos, frame counts that match a decoder, and
one-line reasons for files that are not usable videos."""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
import pytest

from clipsieve.media.ffmpeg import run_ffmpeg
from clipsieve.media.probe import ProbeError, ProbeStage, frame_times, probe_video
from clipsieve.table import VIDEO_SCHEMA, rows_to_table

SRC = "testsrc2=size=160x120:rate=25:duration=2"


def _make(path: Path, *args: str) -> Path:
    run_ffmpeg(["-loglevel", "error", *args, str(path)], timeout_s=60, what="test video")
    return path


def _h264(path: Path, *extra: str, src: str = SRC) -> Path:
    return _make(path, "-f", "lavfi", "-i", src, "-c:v", "libx264", "-bf", "2", *extra)


def _decoded_pts_seconds(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        return [float(f.pts * f.time_base) for f in container.decode(video=0)]


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("probe")
    v: dict[str, Path] = {}
    v["plain"] = _h264(d / "plain.mp4", "-pix_fmt", "yuv420p", "-g", "50")
    v["mkv"] = _h264(d / "plain.mkv", "-pix_fmt", "yuv420p")
    v["audio_video"] = _make(
        d / "av.mp4",
        *("-f", "lavfi", "-i", SRC, "-f", "lavfi", "-i", "sine=duration=2"),
        *("-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"),
    )
    v["rot90"] = _make(
        d / "rot90.mp4", "-display_rotation", "90", "-i", str(v["plain"]), "-c", "copy"
    )
    v["ten_bit"] = _h264(d / "ten.mp4", "-pix_fmt", "yuv420p10le")
    # Keep frames 0-19, then every third: 47 frames with two different intervals.
    v["vfr"] = _h264(
        d / "vfr.mp4",
        *("-vf", "select='lt(n\\,20)+not(mod(n\\,3))'", "-fps_mode", "vfr", "-pix_fmt", "yuv420p"),
        src="testsrc2=size=160x120:rate=25:duration=4",
    )
    # A stream copy from 0.5 s leaves an MP4 edit list whose leading samples a decoder drops.
    v["edit_list"] = _make(
        d / "edit.mp4", "-ss", "0.5", "-i", str(v["plain"]), "-c", "copy", "-t", "1"
    )
    v["offset"] = _make(
        d / "offset.mp4", "-i", str(v["plain"]), "-c", "copy", "-output_ts_offset", "1.5"
    )
    v["audio_only"] = _make(d / "audio.mp4", "-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac")
    return v


def test_plain_h264_facts_are_exact(videos):
    info = probe_video(videos["plain"])
    assert info["size_bytes"] == videos["plain"].stat().st_size
    assert info["num_frames"] == 50
    assert info["duration_s"] == pytest.approx(2.0)
    assert info["fps"] == pytest.approx(25.0)
    assert info["fps_nominal"] == pytest.approx(25.0)
    assert (info["width"], info["height"]) == (160, 120)
    assert (info["display_width"], info["display_height"]) == (160, 120)
    assert info["codec"] == "h264"
    assert info["pix_fmt"] == "yuv420p"
    assert info["bit_depth"] == 8
    assert info["has_audio"] is False
    assert info["sar"] == "1:1"
    assert info["rotation"] == 0
    assert info["start_time_s"] == pytest.approx(0.0)
    assert info["frame_count_source"] == "container"
    assert info["vfr"] is False
    expected_bitrate = 8 * (videos["plain"].stat().st_size) / 2.0
    assert 0.5 * expected_bitrate < info["bitrate"] <= expected_bitrate


def test_matroska_frames_are_counted_by_demuxing(videos):
    info = probe_video(videos["mkv"])
    assert info["frame_count_source"] == "counted"
    assert info["num_frames"] == 50
    assert info["duration_s"] == pytest.approx(2.0)
    assert info["fps"] == pytest.approx(25.0)


@pytest.mark.parametrize("name", ["plain", "mkv", "vfr", "edit_list", "offset", "ten_bit"])
def test_frame_count_and_times_match_the_decoder(videos, name):
    decoded = _decoded_pts_seconds(videos[name])
    info = probe_video(videos[name])
    assert info["num_frames"] == len(decoded)
    times = frame_times(videos[name])
    np.testing.assert_allclose(times, decoded, atol=1e-9)


def test_edit_list_samples_the_decoder_drops_are_not_counted(videos):
    with av.open(str(videos["edit_list"])) as container:
        samples = container.streams.video[0].frames
    info = probe_video(videos["edit_list"])
    assert info["num_frames"] < samples  # the container lists samples nobody will see
    assert info["num_frames"] == len(_decoded_pts_seconds(videos["edit_list"]))


def test_audio_is_detected(videos):
    assert probe_video(videos["audio_video"])["has_audio"] is True


def test_display_rotation_is_read_counter_clockwise(videos):
    info = probe_video(videos["rot90"])
    assert info["rotation"] == 90  # what `ffmpeg -display_rotation 90` wrote
    assert (info["width"], info["height"]) == (160, 120)  # coded size is untouched
    assert (info["display_width"], info["display_height"]) == (120, 160)


def test_ten_bit_depth(videos):
    info = probe_video(videos["ten_bit"])
    assert info["pix_fmt"] == "yuv420p10le"
    assert info["bit_depth"] == 10


def test_variable_frame_rate(videos):
    info = probe_video(videos["vfr"])
    assert info["num_frames"] == 47
    assert info["vfr"] is True
    assert info["fps_nominal"] == pytest.approx(25.0)
    assert info["fps"] < 20
    times = frame_times(videos["vfr"])
    assert times[19] == pytest.approx(19 / 25)
    assert times[20] == pytest.approx(21 / 25)  # frame 20 of the source was dropped


def test_start_time_offset(videos):
    info = probe_video(videos["offset"])
    assert info["start_time_s"] == pytest.approx(1.5)
    assert info["num_frames"] == 50
    assert frame_times(videos["offset"])[0] == pytest.approx(1.5)


def _broken(tmp_path: Path, videos: dict[str, Path], kind: str) -> Path:
    if kind == "empty":
        p = tmp_path / "empty.mp4"
        p.write_bytes(b"")
    elif kind == "random":
        p = tmp_path / "random.mp4"
        p.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    elif kind == "text":
        p = tmp_path / "notes.mp4"
        p.write_text("this is not a video\n")
    elif kind == "truncated_moov_at_end":
        data = videos["plain"].read_bytes()  # ffmpeg writes the moov index at the end
        p = tmp_path / "trunc.mp4"
        p.write_bytes(data[: int(len(data) * 0.3)])
    elif kind == "truncated_faststart":
        fast = _make(
            tmp_path / "fast.mp4",
            "-i",
            str(videos["plain"]),
            "-c",
            "copy",
            "-movflags",
            "+faststart",
        )
        data = fast.read_bytes()
        p = tmp_path / "trunc_fast.mp4"
        p.write_bytes(data[: int(len(data) * 0.5)])
    elif kind == "truncated_mkv":
        data = videos["mkv"].read_bytes()
        p = tmp_path / "trunc.mkv"
        p.write_bytes(data[: int(len(data) * 0.3)])
    elif kind == "audio_only":
        p = videos["audio_only"]
    else:
        p = tmp_path / "missing.mp4"
    return p


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("empty", "empty file (0 bytes)"),
        ("random", "not a readable media file: Invalid data found when processing input"),
        ("text", "not a readable media file: Invalid data found when processing input"),
        ("truncated_moov_at_end", "truncated: MP4 'mdat' box needs"),
        ("truncated_faststart", "truncated: MP4 'mdat' box needs"),
        ("truncated_mkv", "truncated: video data ends at"),
        ("audio_only", "no video stream (audio only)"),
        ("missing", "file not found"),
    ],
)
def test_unusable_files_raise_one_line_reasons(tmp_path, videos, kind, reason):
    path = _broken(tmp_path, videos, kind)
    with pytest.raises(ProbeError) as err:
        probe_video(path)
    message = str(err.value)
    assert message.startswith(reason)
    assert "\n" not in message
    if kind == "truncated_moov_at_end":
        assert "(no moov index)" in message


def test_timeout_is_reported_not_hung(videos):
    with pytest.raises(ProbeError, match="^timed out"):
        probe_video(videos["mkv"], timeout_s=1e-6)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path, videos):
    p = tmp_path / "locked.mp4"
    p.write_bytes(videos["plain"].read_bytes())
    p.chmod(0)
    try:
        with pytest.raises(ProbeError, match="^cannot read file: permission denied$"):
            probe_video(p)
    finally:
        p.chmod(0o644)


def test_probe_stage_marks_only_the_bad_row(tmp_path, videos):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"")
    rows = [
        {"video_id": "a", "path": str(videos["plain"])},
        {"video_id": "b", "path": str(bad)},
        {"video_id": "c", "path": str(videos["mkv"])},
    ]
    out = ProbeStage().process(rows_to_table(rows, VIDEO_SCHEMA)).to_pylist()
    assert [r["video_id"] for r in out] == ["a", "b", "c"]
    assert [r["status"] for r in out] == ["ok", "error", "ok"]
    assert out[1]["error"] == "probe: empty file (0 bytes)"
    assert out[1]["num_frames"] is None
    assert out[0]["error"] is None and out[2]["error"] is None
    assert out[0]["num_frames"] == out[2]["num_frames"] == 50
    assert out[2]["frame_count_source"] == "counted"
