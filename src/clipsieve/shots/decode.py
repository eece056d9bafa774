"""Fast, small-frame video decoding for shot detection.

Shot detectors look at tiny frames (TransNetV2 at 48x27, colour differences at ~64 px wide), so
the cost of a detector is the cost of decoding. This reader is built to make that cheap:

* PyAV with ``thread_type="AUTO"`` (frame + slice threads; PyAV's default is far slower),
* optionally ``skip_loop_filter=all``: H.264/HEVC deblocking is a large part of decode time and
  only smooths block edges, which a 64-px analysis frame never sees,
* one swscale call straight from the decoder's YUV to a small RGB frame (``FAST_BILINEAR`` to
  twice the target size, then an OpenCV area average), instead of converting full-size RGB,
  through a single reused swscale context.

Frames are numbered 0, 1, 2, ... in the order the decoder outputs them, which is presentation
order: the same numbering as ``ffmpeg -fps_mode passthrough`` and the clip table's
``start_frame``/``end_frame``. Variable frame rate, a non-zero start time and display rotation
change nothing in that numbering (rotation is ignored: detection does not care which way is up).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

from clipsieve.media.threads import configure_decoder


class DecodeError(RuntimeError):
    """The video cannot be opened or decoded; the message is one line naming the file."""


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about the video stream (before decoding it)."""

    width: int
    height: int
    fps: float  # average frame rate; 0.0 when the container does not know
    frames_hint: int  # frame count from the container header; 0 when unknown


def _fps_of(stream: av.video.stream.VideoStream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return float(Fraction(rate))
    return 0.0


def default_decode_timeout(info: VideoInfo) -> float:
    """Seconds a whole decode may take: 2 min plus 4x the video's duration when known.

    Decoding runs far faster than real time (1080p H.264 ~8x here), so a decode that is slower
    than a quarter of real time is stuck or pathological; 1 h when the length is unknown.
    """
    if info.fps > 0 and info.frames_hint > 0:
        return 120.0 + 4.0 * info.frames_hint / info.fps
    return 3600.0


def analysis_size(width: int, height: int, target_width: int) -> tuple[int, int]:
    """(w, h) with ``w == target_width`` (or smaller for tiny videos), keeping the aspect ratio."""
    w = min(target_width, width) if width > 0 else target_width
    h = max(2, round(height * w / width)) if width > 0 else max(2, target_width * 9 // 16)
    return max(2, w), h


class FrameReader:
    """Decode a video once, yielding ``(index, frame)`` with small ``uint8`` frames.

    Frames are ``rgb24`` (or ``pix_fmt``, e.g. ``bgr24`` for OpenCV-minded code), shape (h, w, 3).

    ``size`` is the output (width, height), or a function of the coded (width, height) that
    returns it; ``None`` keeps the aspect ratio at ``width`` pixels.
    ``fast=True`` skips the in-loop deblocking filter (see module docs). The reader is a
    one-shot iterator; ``num_frames`` holds the decoded count once it is exhausted.
    ``timeout_s`` bounds the whole decode (default: :func:`default_decode_timeout`): a file that
    decodes pathologically slowly, or a read that blocks, costs at most that long.

    ``start_frame``/``end_frame`` read only frames ``[start_frame, end_frame)`` (a segment of a
    long video, see :mod:`clipsieve.shots.stage`): the reader seeks to the keyframe before the
    start and numbers frames by timestamp, ``round((pts - start) * fps)``, which equals the
    decode-order count of a whole read for constant-frame-rate streams (the only ones split).
    Indices are always frame numbers of the whole video.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        width: int = 64,
        size: tuple[int, int] | Callable[[int, int], tuple[int, int]] | None = None,
        fast: bool = True,
        threads: int | None = None,
        pix_fmt: str = "rgb24",
        timeout_s: float | None = None,
        start_frame: int = 0,
        end_frame: int | None = None,
    ) -> None:
        self.path = str(path)
        self.start_frame = max(0, int(start_frame))
        self.end_frame = end_frame
        self._pix_fmt = pix_fmt
        self._width = width
        self._size = size
        self._fast = fast
        self._threads = threads
        self.num_frames = 0
        self.timeout_s = timeout_s if timeout_s is not None else 60.0  # for the header read
        self.info = self._probe()
        if timeout_s is None:
            self.timeout_s = default_decode_timeout(self.info)

    def _open(self) -> av.container.InputContainer:
        try:
            container = av.open(self.path, timeout=self.timeout_s)
        except av.error.ExitError:
            raise DecodeError(f"timed out opening {self.path}") from None
        except (av.error.FFmpegError, OSError) as exc:
            raise DecodeError(f"cannot open {self.path}: {_reason(exc)}") from None
        if not container.streams.video:
            container.close()
            raise DecodeError(f"no video stream in {self.path}")
        return container

    def _probe(self) -> VideoInfo:
        with self._open() as container:
            stream = container.streams.video[0]
            ctx = stream.codec_context
            return VideoInfo(
                width=int(ctx.width or 0),
                height=int(ctx.height or 0),
                fps=_fps_of(stream),
                frames_hint=int(stream.frames or 0),
            )

    @property
    def size(self) -> tuple[int, int]:
        """The (width, height) of the yielded frames."""
        if callable(self._size):
            return self._size(self.info.width, self.info.height)
        if self._size is not None:
            return self._size
        return analysis_size(self.info.width, self.info.height, self._width)

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        width, height = self.size
        # swscale's FAST_BILINEAR is nearly free but aliases on big reductions; going to twice
        # the target and area-averaging the rest in OpenCV keeps it cheap and smooth.
        mid_w, mid_h = width * 2, height * 2
        # One reformatter for the whole video: ``frame.reformat`` builds a fresh swscale
        # context per frame, which cost more than decoding itself (15.1 s vs 9.3 s for 3,678
        # frames of 1080p).
        scaler = VideoReformatter()
        container = self._open()
        try:
            stream = container.streams.video[0]
            configure_decoder(stream, self._threads)
            if self._fast:
                stream.codec_context.options = {"skip_loop_filter": "all"}
            deadline = time.monotonic() + self.timeout_s
            try:
                for index, frame in self._numbered(container, stream):
                    if time.monotonic() > deadline:
                        raise DecodeError(
                            f"decoding {self.path} timed out after {self.timeout_s:g} s "
                            f"({self.num_frames} frames)"
                        )
                    if frame.width >= mid_w and frame.height >= mid_h:
                        mid = scaler.reformat(
                            frame, mid_w, mid_h, self._pix_fmt, interpolation="FAST_BILINEAR"
                        ).to_ndarray()
                        image = cv2.resize(mid, (width, height), interpolation=cv2.INTER_AREA)
                    else:
                        image = scaler.reformat(
                            frame, width, height, self._pix_fmt, interpolation="BILINEAR"
                        ).to_ndarray()
                    self.num_frames += 1
                    yield index, image
            except av.error.ExitError:
                raise DecodeError(
                    f"reading {self.path} timed out ({self.num_frames} frames)"
                ) from None
            except av.error.FFmpegError as exc:
                if self.num_frames == 0:
                    raise DecodeError(f"cannot decode {self.path}: {_reason(exc)}") from None
                # A truncated tail still leaves every frame before it usable.
        finally:
            container.close()

    def _numbered(
        self, container: av.container.InputContainer, stream: av.video.stream.VideoStream
    ) -> Iterator[tuple[int, av.VideoFrame]]:
        """(frame number, frame) within ``[start_frame, end_frame)``: see the class docs."""
        end = self.end_frame
        if self.start_frame == 0:  # counted in decode order, like every whole read
            for index, frame in enumerate(container.decode(stream)):
                if end is not None and index >= end:
                    return
                yield index, frame
            return
        fps, tb = self.info.fps, stream.time_base
        if fps <= 0 or not tb:
            raise DecodeError(f"{self.path}: no frame rate or time base to seek by")
        origin = stream.start_time if stream.start_time is not None else 0
        # A second early: the keyframe at or before it also precedes the start frame.
        target = origin + int((self.start_frame / fps - 1.0) / tb)
        container.seek(max(target, origin), stream=stream, backward=True, any_frame=False)
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            index = round(float((frame.pts - origin) * tb) * fps)
            if index < self.start_frame:
                continue
            if end is not None and index >= end:
                return
            yield index, frame


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split())


def read_frames(
    path: str | Path, *, width: int = 64, size: tuple[int, int] | None = None, fast: bool = True
) -> tuple[np.ndarray, VideoInfo]:
    """All frames of ``path`` as one ``(n, h, w, 3)`` uint8 array, plus the stream info."""
    reader = FrameReader(path, width=width, size=size, fast=fast)
    frames = [image for _, image in reader]
    w, h = reader.size
    stack = np.stack(frames) if frames else np.zeros((0, h, w, 3), np.uint8)
    return stack, reader.info
