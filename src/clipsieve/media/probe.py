"""Probe a video file: the facts the ``videos`` table records, read with PyAV.

There is no ffprobe on this machine (imageio-ffmpeg ships only ``ffmpeg``), so probing goes
through PyAV's bundled FFmpeg libraries, which also means the numbers are the ones our decoder
will see.

Frame numbers in clipsieve are 0-based indices of the frames a decoder *outputs*, in presentation
order. The frame count therefore excludes packets the demuxer marks as discarded (MP4 edit
lists, e.g. from a stream-copy cut, keep samples that a decoder drops) and empty packets. For MP4
and MOV the container's sample index holds every frame, so the count comes from there without
reading any media data ("container"); for other formats (Matroska, WebM, AVI, TS) the video
packets are demuxed and counted, without decoding ("counted").

``rotation`` is the display-matrix rotation as FFmpeg reports it (``av_display_rotation_get``,
what ``ffmpeg -display_rotation`` sets and ffprobe prints): degrees **counter-clockwise**,
normalised to 0..359. A phone clip tagged with the legacy ``rotate=90`` (clockwise) tag therefore
reads 270.
"""

from __future__ import annotations

import math
import os
import stat
import struct
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar

import av
import numpy as np

from clipsieve.media.sources import SourceCache, SourceUnavailable
from clipsieve.media.threads import configure_decoder
from clipsieve.stage import Resources, RowStage, StageError, merge_row
from clipsieve.table import STATUS_OK, VIDEO_SCHEMA

DEFAULT_PROBE_TIMEOUT_S = 120.0
MAX_FRAME_PIXELS = 8192 * 8192
"""Larger frames are refused at probe: one RGB frame of 8192x8192 is already 200 MB, and a
crafted header claiming more would make every later stage allocate absurd buffers."""

# ISO-BMFF (MP4/MOV) top-level boxes that a complete, playable file needs.
_ISOBMFF_SIGNATURE_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot"}


class ProbeError(Exception):
    """The file cannot be used as a video; the message is one line meant for the user."""


# ---------------------------------------------------------------------------- file checks


_SPECIAL_FILES = (
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a folder"),
)


def _check_file(path: Path) -> int:
    """Size in bytes of a readable, non-empty regular file, else a one-line ProbeError."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ProbeError("file not found") from None
    except OSError as exc:
        raise ProbeError(f"cannot access file: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = next((k for test, k in _SPECIAL_FILES if test(st.st_mode)), "special file")
        raise ProbeError(f"not a regular file ({kind}): give video files")
    if st.st_size == 0:
        raise ProbeError("empty file (0 bytes)")
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except PermissionError:
        raise ProbeError("cannot read file: permission denied") from None
    except OSError as exc:
        raise ProbeError(f"cannot read file: {exc.strerror or exc}") from None
    return st.st_size


def _isobmff_truncation(path: Path, size: int) -> str | None:
    """Why an MP4/MOV file is cut short, judged from its top-level box layout, or None.

    FFmpeg only says "Invalid data found" for an MP4 whose ``moov`` (index) box is missing,
    which is what an interrupted download of a non-faststart file looks like. Walking the
    top-level boxes (size + type headers, no media data read) tells the two cases apart.
    """
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8 or head[4:8] != b"ftyp":
            return None
        pos = 0
        seen: set[bytes] = set()
        while pos < size:
            fh.seek(pos)
            header = fh.read(16)
            if len(header) < 8:
                return f"truncated: incomplete MP4 box header at byte {pos} of {size}"
            box_size, box_type = struct.unpack(">I4s", header[:8])
            if box_size == 1:
                if len(header) < 16:
                    return f"truncated: incomplete MP4 box header at byte {pos} of {size}"
                box_size = struct.unpack(">Q", header[8:16])[0]
            elif box_size == 0:  # box runs to the end of the file
                box_size = size - pos
            if box_size < 8:
                return None  # not a box layout we understand; let FFmpeg judge
            seen.add(box_type)
            if pos + box_size > size:
                kind = box_type.decode("latin-1", "replace")
                return (
                    f"truncated: MP4 '{kind}' box needs {pos + box_size} bytes, "
                    f"file has {size}" + ("" if b"moov" in seen else " (no moov index)")
                )
            pos += box_size
        if b"moov" not in seen:
            return "truncated: MP4 has no moov index box (incomplete download or write?)"
    return None


# ---------------------------------------------------------------------------- stream helpers


def open_input(path: Path, timeout_s: float) -> av.container.InputContainer:
    """Open with PyAV, turning FFmpeg errors into one-line ProbeErrors."""
    try:
        return av.open(str(path), mode="r", timeout=timeout_s, metadata_errors="ignore")
    except av.error.ExitError:  # PyAV's timeout interrupted the open
        raise ProbeError(f"timed out after {timeout_s:g} s while opening") from None
    except av.FFmpegError as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ProbeError(f"not a readable media file: {reason}") from None


def select_video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    """The first real video stream (cover-art pictures in audio files do not count)."""
    videos = list(container.streams.video)
    real = [s for s in videos if not (s.disposition & av.stream.Disposition.attached_pic)]
    if real:
        return real[0]
    if videos:
        raise ProbeError("no video stream (audio with cover art only)")
    if container.streams.audio:
        raise ProbeError("no video stream (audio only)")
    raise ProbeError("no video stream")


def _complete_index(stream: av.video.stream.VideoStream) -> bool:
    """True when the container's index lists every sample (MP4/MOV), so no demux is needed."""
    try:
        n = len(stream.index_entries)
    except Exception:  # pragma: no cover - formats without an index
        return False
    return n > 0 and stream.frames == n


@dataclass
class VideoPackets:
    """Per-frame data from demuxing one video stream (decode order, kept frames only)."""

    pts: list[int | None]
    durations: list[int]
    sizes: list[int]
    keyframes: list[bool]


def demux_video_packets(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    deadline: float,
    what: str,
) -> VideoPackets:
    """Demux (no decoding) the video packets a decoder would turn into frames.

    Empty packets (the demuxer's end-of-stream flush) and packets flagged discard (dropped by
    the decoder because of an edit list) are skipped, so the count equals the decoder's output.
    """
    out = VideoPackets([], [], [], [])
    try:
        for i, packet in enumerate(container.demux(stream)):
            if i % 256 == 0 and time.monotonic() > deadline:
                raise ProbeError(f"timed out while {what}")
            if packet.size == 0 or packet.is_discard:
                continue
            out.pts.append(packet.pts)
            out.durations.append(packet.duration or 0)
            out.sizes.append(packet.size)
            out.keyframes.append(bool(packet.is_keyframe))
    except av.error.ExitError:  # PyAV's read timeout
        raise ProbeError(f"timed out while {what}") from None
    except av.FFmpegError as exc:
        if not out.pts:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise ProbeError(f"cannot read video packets: {reason}") from None
        # Damage after some frames: keep what was read; the truncation check judges it.
    return out


def _declared_video_duration(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> float | None:
    """The video duration the file claims, in seconds, or None if it claims none."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    if tag:
        try:
            h, m, s = tag.split(":")
            return int(h) * 3600 + int(m) * 60 + float(s)
        except ValueError:
            pass
    others = [s for s in container.streams if s.index != stream.index]
    if not others and container.duration:
        return container.duration / av.time_base
    return None


def _first_frame_rotation(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> int:
    """Decode the first frame: proves the stream decodes and yields the display rotation."""
    configure_decoder(stream)
    try:
        for frame in container.decode(stream):
            return int(round(frame.rotation)) % 360
    except av.error.ExitError:
        raise ProbeError("timed out while decoding the first frame") from None
    except av.FFmpegError as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ProbeError(f"video does not decode: {reason}") from None
    raise ProbeError("video stream has no decodable frames")


def _is_irregular(timestamps: np.ndarray) -> bool:
    """Frame intervals that vary by more than timestamp rounding (a VFR stream)."""
    if len(timestamps) < 3:
        return False
    diffs = np.diff(np.sort(timestamps))
    diffs = diffs[diffs > 0]
    if len(diffs) < 2:
        return False
    median = float(np.median(diffs))
    return float(diffs.max() - diffs.min()) > max(2.0, 0.05 * median)


def _fraction_text(value: Fraction | None) -> str | None:
    if value is None or value.numerator <= 0 or value.denominator <= 0:
        return None
    return f"{value.numerator}:{value.denominator}"


def _round_dim(x: float) -> int:
    return max(1, int(round(x)))


# ---------------------------------------------------------------------------- public API


def probe_video(path: str | os.PathLike[str], timeout_s: float = DEFAULT_PROBE_TIMEOUT_S) -> dict:
    """Facts about one video file, as columns of the ``videos`` table plus a few extras.

    Core columns (see :data:`clipsieve.table.VIDEO_SCHEMA`): ``size_bytes``, ``duration_s``,
    ``fps`` (average: frames / duration), ``num_frames``, ``width``/``height`` (coded, before
    rotation), ``sar``, ``rotation`` (counter-clockwise degrees), ``codec``, ``pix_fmt``,
    ``bit_depth``, ``has_audio``, ``bitrate`` (of the video stream, bits/s; the whole file's
    when the container does not say). Extras: ``fps_nominal``, ``start_time_s``,
    ``frame_count_source``, ``display_width``/``display_height`` (after SAR and rotation) and
    ``vfr``.

    Raises :class:`ProbeError` with a one-line reason for anything that is not a usable video.
    """
    p = Path(path)
    size = _check_file(p)
    truncation = _isobmff_truncation(p, size)
    if truncation:
        raise ProbeError(truncation)
    deadline = time.monotonic() + timeout_s
    container = open_input(p, timeout_s)
    try:
        return _probe_open(container, p, size, deadline)
    finally:
        container.close()


def _is_still_image(container: av.container.InputContainer) -> bool:
    """Whether FFmpeg opened the file with a still-image demuxer (a picture, not a video)."""
    names = set((container.format.name or "").split(","))
    return "image2" in names or any(n.endswith("_pipe") for n in names)


def _probe_open(
    container: av.container.InputContainer,
    path: Path,
    size: int,
    deadline: float,
) -> dict[str, Any]:
    stream = select_video_stream(container)
    if _is_still_image(container):
        raise ProbeError(f"still image ({container.format.name}), not a video")
    cc = stream.codec_context
    if cc.width and cc.height and cc.width * cc.height > MAX_FRAME_PIXELS:
        raise ProbeError(
            f"frame size {cc.width}x{cc.height} is over the {MAX_FRAME_PIXELS // 10**6} "
            "Mpixel limit"
        )
    tb = stream.time_base or Fraction(1, 1)

    rotation = _first_frame_rotation(container, stream)
    if _complete_index(stream):
        entries = list(stream.index_entries)
        end_byte = max(e.pos + e.size for e in entries)
        if end_byte > size:
            raise ProbeError(f"truncated: video data needs {end_byte} bytes, file has {size}")
        kept = [e for e in entries if not e.is_discard]
        num_frames = len(kept)
        timestamps = np.array([e.timestamp for e in kept], dtype=np.float64)
        packet_bytes = sum(e.size for e in kept)
        count_source = "container"
        counted_span = None
    else:
        # Decoding the first frame moved the read position: count on a fresh demuxer.
        with open_input(path, max(1.0, deadline - time.monotonic())) as fresh:
            packets = demux_video_packets(
                fresh, fresh.streams[stream.index], deadline, "counting frames"
            )
        num_frames = len(packets.pts)
        known = [
            (t, d) for t, d in zip(packets.pts, packets.durations, strict=True) if t is not None
        ]
        timestamps = np.array([t for t, _ in known], dtype=np.float64)
        packet_bytes = sum(packets.sizes)
        count_source = "counted"
        counted_span = None
        if known:
            last_pts, last_dur = max(known)
            counted_span = float((last_pts - min(t for t, _ in known) + last_dur) * tb)
    if num_frames == 0:
        raise ProbeError("video stream has no frames")

    declared = _declared_video_duration(container, stream)
    # A counted stream that stops far short of what the header promises was cut off.
    if (
        counted_span is not None
        and declared
        and declared > 1.0
        and counted_span < declared - max(0.5, 0.05 * declared)
    ):
        raise ProbeError(f"truncated: video data ends at {counted_span:.2f} s of {declared:.2f} s")
    duration_s = declared if declared else counted_span
    if not duration_s or duration_s <= 0:
        duration_s = counted_span

    cc = stream.codec_context
    width, height = int(cc.width), int(cc.height)
    pix_fmt = cc.pix_fmt or (stream.format.name if stream.format else None)
    bit_depth = None
    if pix_fmt:
        try:
            bit_depth = max(c.bits for c in av.VideoFormat(pix_fmt).components)
        except (ValueError, av.FFmpegError):
            bit_depth = None

    sar_value = stream.sample_aspect_ratio
    sar = _fraction_text(sar_value)
    disp_w = float(width) * (float(sar_value) if sar else 1.0)
    disp_h = float(height)
    if rotation in (90, 270):
        disp_w, disp_h = disp_h, disp_w

    fps = num_frames / duration_s if duration_s else None
    nominal = stream.guessed_rate or stream.base_rate or stream.average_rate
    fps_nominal = float(nominal) if nominal else None
    vfr = _is_irregular(timestamps)
    if not vfr and fps and fps_nominal:
        vfr = abs(fps - fps_nominal) / fps_nominal > 0.02

    bitrate = stream.bit_rate or None
    if not bitrate and duration_s:
        bitrate = int(round(packet_bytes * 8 / duration_s)) if packet_bytes else None
    if not bitrate:
        bitrate = container.bit_rate or None

    start_time_s = float(stream.start_time * tb) if stream.start_time is not None else None
    return {
        "size_bytes": size,
        "duration_s": float(duration_s) if duration_s else None,
        "fps": float(fps) if fps and math.isfinite(fps) else None,
        "num_frames": int(num_frames),
        "width": width,
        "height": height,
        "sar": sar,
        "rotation": rotation,
        # the format's name ("av1"), not the decoder's ("libdav1d")
        "codec": getattr(cc.codec, "canonical_name", None) or cc.name,
        "pix_fmt": pix_fmt,
        "bit_depth": bit_depth,
        "has_audio": bool(container.streams.audio),
        "bitrate": int(bitrate) if bitrate else None,
        "fps_nominal": fps_nominal,
        "start_time_s": start_time_s,
        "frame_count_source": count_source,
        "display_width": _round_dim(disp_w),
        "display_height": _round_dim(disp_h),
        "vfr": bool(vfr),
    }


def frame_times(
    path: str | os.PathLike[str], timeout_s: float = DEFAULT_PROBE_TIMEOUT_S
) -> np.ndarray:
    """Presentation timestamps (seconds) of every frame a decoder outputs, in output order.

    Sorting the packet pts gives presentation order (B-frames are stored out of order), and
    discarded/empty packets are skipped, so ``frame_times(p)[i]`` is the time of frame ``i``
    in clipsieve's numbering and ``len(frame_times(p)) == probe_video(p)["num_frames"]``.
    Streams without packet pts (raw elementary streams, some AVI) are decoded instead.
    Times are absolute stream times: a file whose video starts at 1.4 s has ``times[0] == 1.4``.
    """
    p = Path(path)
    _check_file(p)
    deadline = time.monotonic() + timeout_s
    container = open_input(p, timeout_s)
    try:
        stream = select_video_stream(container)
        tb = stream.time_base or Fraction(1, 1)
        packets = demux_video_packets(container, stream, deadline, "reading frame times")
        if packets.pts and all(t is not None for t in packets.pts):
            ticks = np.sort(np.array(packets.pts, dtype=np.int64))
            return ticks.astype(np.float64) * float(tb)
        return _decoded_times(container, stream, deadline)
    finally:
        container.close()


def _decoded_times(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, deadline: float
) -> np.ndarray:
    """Frame times by decoding (slow path for streams whose packets carry no pts)."""
    container.seek(0, stream=stream)
    configure_decoder(stream)
    rate = float(stream.guessed_rate or stream.average_rate or 25)
    times: list[float] = []
    for i, frame in enumerate(container.decode(stream)):
        if i % 64 == 0 and time.monotonic() > deadline:
            raise ProbeError("timed out while decoding frame times")
        times.append(frame.time if frame.time is not None else i / rate)
    return np.array(times, dtype=np.float64)


# ---------------------------------------------------------------------------- stage


@dataclass
class ProbeStage(RowStage):
    """Probe each video row; a bad file becomes ``status='error'``, ``error='probe: ...'``."""

    name: ClassVar[str] = "probe"
    version: ClassVar[str] = "1"
    table: ClassVar[str] = "videos"
    inputs: ClassVar[tuple[str, ...]] = ("path",)

    # Every video column after video_id/path, plus the extra facts probe_video() reports.
    output_columns: ClassVar[tuple[str, ...]] = (
        *VIDEO_SCHEMA.names[2:],
        "fps_nominal",
        "start_time_s",
        "frame_count_source",
        "display_width",
        "display_height",
        "vfr",
    )
    worker_resources: ClassVar[Resources] = Resources(cpus=1.0)

    timeout_s: float = DEFAULT_PROBE_TIMEOUT_S
    _source_cache: SourceCache = field(default_factory=SourceCache, init=False, repr=False)

    def process_row(self, row: dict[str, Any]) -> dict[str, Any]:
        try:
            with self._source_cache.local(str(row["path"])) as local:  # a URL: this node's copy
                info = probe_video(local, timeout_s=self.timeout_s)
        except (ProbeError, SourceUnavailable) as exc:
            raise StageError(str(exc)) from None
        return merge_row(row, status=STATUS_OK, error=None, **info)
