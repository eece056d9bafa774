"""A corpus of broken and odd media files, each with the outcome clipsieve must give.

Used by ``tests/test_hostile_media.py``. Every file is generated here with the ffmpeg binary that
``imageio-ffmpeg`` ships, or by damaging such a file byte by byte, so the corpus needs nothing
but the test dependencies. Each :class:`Case` states what a run must do with it: ``"ok"`` (a
video row with ``status='ok'``, probed properties as given) or ``"error"`` (a row with
``status='error'`` and a one-line ``error`` containing ``reason``).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clipsieve.media.ffmpeg import run_ffmpeg

W, H, FPS = 160, 120, 25


@dataclass(frozen=True)
class Case:
    """One hostile file: how to make it and what a run must report for it."""

    name: str
    make: Callable[[Path], None]
    outcome: str  # "ok" | "error"
    reason: str = ""  # for "error": a substring of the one-line error
    props: dict[str, Any] = field(default_factory=dict)  # for "ok": expected probe values
    note: str = ""  # what clipsieve does with it (the README's robustness table)


def _source(seconds: float, size: str = f"{W}x{H}", rate: int = FPS) -> list[str]:
    return ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}"]


def _h264(*extra: str) -> list[str]:
    return ["-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p", *extra]


def _encode(out: Path, args: list[str]) -> None:
    run_ffmpeg(["-y", "-loglevel", "error", *args, str(out)], timeout_s=120)


def _plain(out: Path, seconds: float = 2.0, *extra: str) -> None:
    _encode(out, [*_source(seconds), *_h264(*extra)])


def plain_videos(folder: Path, names: tuple[str, ...] = ("a.mp4", "b.mp4")) -> Path:
    """``folder`` with a plain 3-second H.264 video under each of ``names``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        _plain(folder / name, 3.0)
    return folder


def _zero_byte(out: Path) -> None:
    out.write_bytes(b"")


def _random_bytes(out: Path) -> None:
    out.write_bytes(bytes((i * 7919 + 13) % 251 for i in range(200_000)))


def _truncated_moov_at_end(out: Path) -> None:
    """Default mp4 muxing writes the index (moov) last; cutting the file loses it."""
    full = out.with_name("full_" + out.name)
    _plain(full, 3.0)
    data = full.read_bytes()
    full.unlink()
    out.write_bytes(data[: len(data) * 6 // 10])


def _boxes(data: bytes) -> list[tuple[str, int, int]]:
    """Top-level ISO-BMFF boxes as (type, start, size)."""
    out, pos = [], 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if size == 1:
            size = struct.unpack(">Q", data[pos + 8 : pos + 16])[0]
        elif size == 0:
            size = len(data) - pos
        out.append((kind.decode("latin-1"), pos, size))
        pos += size
    return out


def _moov_missing(out: Path) -> None:
    """A complete file with its moov box cut out (media data intact, no index)."""
    full = out.with_name("full_" + out.name)
    _plain(full, 2.0, "-movflags", "+faststart")
    data = full.read_bytes()
    full.unlink()
    kept = b"".join(data[s : s + n] for kind, s, n in _boxes(data) if kind != "moov")
    out.write_bytes(kept)


def _corrupt_mid_stream(out: Path) -> None:
    """Garbage written over a stretch of the media data: the decoder conceals or skips it."""
    _plain(out, 3.0, "-movflags", "+faststart")
    data = bytearray(out.read_bytes())
    mdat = next((s, n) for kind, s, n in _boxes(bytes(data)) if kind == "mdat")
    start = mdat[0] + mdat[1] // 2
    for i in range(start, min(start + 4000, len(data))):
        data[i] = (i * 31 + 7) % 256
    out.write_bytes(bytes(data))


def _audio_only(out: Path) -> None:
    _encode(out, ["-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-c:a", "aac"])


def _still_image(out: Path) -> None:
    """A PNG picture saved under a video name."""
    png = out.with_suffix(".png")
    _encode(png, [*_source(0.04), "-frames:v", "1"])
    png.rename(out)


def _single_frame(out: Path) -> None:
    _encode(out, [*_source(1.0), "-frames:v", "1", *_h264()])


def _short(out: Path) -> None:
    _plain(out, 0.2)


def _long_tiny(seconds: float) -> Callable[[Path], None]:
    def make(out: Path) -> None:
        _encode(out, [*_source(seconds, "32x24", 5), *_h264("-g", "250")])

    return make


def _vfr(out: Path) -> None:
    """Variable frame rate: every third frame dropped, timestamps kept."""
    _encode(
        out,
        [*_source(3.0), "-vf", "select='not(eq(mod(n\\,3)\\,2))'", "-fps_mode", "vfr", *_h264()],
    )


def _rotated(out: Path) -> None:
    """Stored landscape with a 90-degree display matrix (how phones store portrait video)."""
    plain = out.with_name("plain_" + out.name)
    _plain(plain, 2.0)
    _encode(out, ["-display_rotation", "90", "-i", str(plain), "-c", "copy"])
    plain.unlink()


def _odd_size(out: Path) -> None:
    """641x359: odd in both directions, so 4:2:0 cannot hold it; stored 4:4:4."""
    _encode(
        out,
        [*_source(2.0, "640x360"), "-vf", "scale=641:359", "-c:v", "libx264"]
        + ["-preset", "ultrafast", "-pix_fmt", "yuv444p"],
    )


def _uhd(out: Path) -> None:
    _encode(out, [*_source(1.0, "3840x2160"), *_h264()])


def _hevc_10bit(out: Path) -> None:
    _encode(
        out,
        [
            *_source(2.0),
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p10le",
            "-x265-params",
            "log-level=error",
        ],
    )


def _vp9(out: Path) -> None:
    _encode(out, [*_source(2.0), "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8"])


def _av1(out: Path) -> None:
    _encode(out, [*_source(2.0), "-c:v", "libsvtav1", "-preset", "12"])


def _interlaced(out: Path) -> None:
    _encode(out, [*_source(2.0), *_h264("-flags", "+ilme+ildct", "-x264opts", "tff=1")])


def _no_duration(out: Path) -> None:
    """Matroska written as a live stream: no duration, no cues, no frame count."""
    _encode(out, [*_source(2.0), *_h264(), "-f", "matroska", "-live", "1"])


def _start_offset(out: Path) -> None:
    _plain(out, 2.0, "-output_ts_offset", "10")


def _wrong_extension(out: Path) -> None:
    """An mp4 named .avi."""
    mp4 = out.with_suffix(".tmp.mp4")
    _plain(mp4, 2.0)
    mp4.rename(out)


def _mpeg4_avi(out: Path) -> None:
    _encode(out, [*_source(2.0), "-c:v", "mpeg4", "-q:v", "5"])


CASES: list[Case] = [
    Case("zero_byte.mp4", _zero_byte, "error", "empty file", note="error row: empty file"),
    Case(
        "random_bytes.mp4",
        _random_bytes,
        "error",
        "probe:",
        note="error row: not a media file",
    ),
    Case(
        "truncated_moov_at_end.mp4",
        _truncated_moov_at_end,
        "error",
        "probe:",
        note="error row (index atom missing)",
    ),
    Case("moov_missing.mp4", _moov_missing, "error", "probe:", note="error row (no index)"),
    Case(
        "corrupt_mid_stream.mp4",
        _corrupt_mid_stream,
        "ok",
        props={"width": W, "height": H},
        note="ok: damaged frames are concealed by the decoder; clips cut and scored",
    ),
    Case("audio_only.mp4", _audio_only, "error", "no video stream", note="error row"),
    Case(
        "still_image.mp4",
        _still_image,
        "error",
        "still image",
        note="error row: a single picture is not a video",
    ),
    Case(
        "single_frame.mp4",
        _single_frame,
        "ok",
        props={"num_frames": 1},
        note="ok: probed; its one clip is dropped by the length policy (too short)",
    ),
    Case(
        "short_0.2s.mp4",
        _short,
        "ok",
        props={"num_frames": 5},
        note="ok: probed; clip dropped as too short",
    ),
    Case(
        "long_tiny_2min.mp4",
        _long_tiny(120),
        "ok",
        props={"width": 32, "height": 24, "num_frames": 600},
        note="ok: decoded as a stream (fast variant of the 2-hour case in make test-slow)",
    ),
    Case("vfr.mp4", _vfr, "ok", props={"num_frames": 50}, note="ok: frame count exact"),
    Case(
        "rotated_90.mp4",
        _rotated,
        "ok",
        props={"width": W, "height": H, "rotation": 90},
        note="ok: rotation recorded; frames scored upright",
    ),
    Case("odd_641x359.mp4", _odd_size, "ok", props={"width": 641, "height": 359}),
    Case("uhd_3840x2160.mp4", _uhd, "ok", props={"width": 3840, "height": 2160}),
    Case(
        "hevc_10bit.mkv",
        _hevc_10bit,
        "ok",
        props={"codec": "hevc", "bit_depth": 10},
        note="ok",
    ),
    Case("vp9.webm", _vp9, "ok", props={"codec": "vp9"}),
    Case("av1.mkv", _av1, "ok", props={"codec": "av1"}),
    Case("interlaced.mp4", _interlaced, "ok", props={"num_frames": 50}),
    Case(
        "no_duration.mkv",
        _no_duration,
        "ok",
        props={"num_frames": 50},
        note="ok: duration and frame count from counting packets",
    ),
    Case(
        "start_time_10s.mp4",
        _start_offset,
        "ok",
        props={"num_frames": 50},
        note="ok: clip times are relative to the first frame",
    ),
    Case("mp4_named.avi", _wrong_extension, "ok", props={"codec": "h264"}),
    Case("mpeg4_part2.avi", _mpeg4_avi, "ok", props={"codec": "mpeg4"}),
    Case(
        "uni côdé 'q' \"dq\" 日本.mp4",
        lambda out: _plain(out, 2.0),
        "ok",
        props={"num_frames": 50},
        note="ok: any file name; paths stored as given",
    ),
]


def build(folder: Path, cases: list[Case] = CASES) -> dict[str, Case]:
    """Write every case's file into ``folder``; returns them by file name."""
    folder.mkdir(parents=True, exist_ok=True)
    for case in cases:
        case.make(folder / case.name)
    return {case.name: case for case in cases}
