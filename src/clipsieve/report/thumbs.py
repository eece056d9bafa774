"""Small JPEG thumbnails of one frame, for the HTML report.

A report must always be written, so a thumbnail that cannot be made (missing file, broken video,
frame past the end) is ``None`` and the page shows a grey "no preview" box instead. Decoding
seeks to the keyframe at or before the target and decodes forward, which is exact for
constant-frame-rate files (all clips we cut are) and costs one GOP at most.
"""

from __future__ import annotations

import io
import logging
import os
from fractions import Fraction

import av

from clipsieve.media.threads import configure_decoder
from clipsieve.storage import av_source

log = logging.getLogger(__name__)


def _frame_image(path: str, frame: int | None, time_s: float | None):  # -> PIL.Image | None
    with av.open(av_source(path)) as container:
        stream = container.streams.video[0]
        configure_decoder(stream)
        rate = stream.average_rate or stream.guessed_rate
        tb = stream.time_base
        if rate is None or tb is None:
            raise ValueError("no frame rate or time base")
        if frame is None and time_s is None:
            if stream.frames:
                frame = stream.frames // 2
            elif stream.duration is not None:
                time_s = float(stream.duration * tb) / 2
            elif container.duration is not None:
                time_s = container.duration / av.time_base / 2
            else:
                time_s = 0.0
        target_s = Fraction(frame) / Fraction(rate) if frame is not None else Fraction(time_s)
        start = stream.start_time or 0
        target_pts = start + int(target_s / tb)
        # a frame counts as reached once its pts is within half a frame of the target
        half = int(Fraction(1, 2) / Fraction(rate) / tb)
        if target_pts > start:
            container.seek(target_pts, stream=stream, backward=True, any_frame=False)
        last = None
        for decoded in container.decode(stream):
            if decoded.pts is None:
                last = decoded
                continue
            if decoded.pts + half >= target_pts:
                return decoded.to_image()
            last = decoded
        if last is not None and frame is None:
            return last.to_image()  # a time past the last frame: show the last frame
        return None


def thumbnail_jpeg(
    video_path: str | os.PathLike[str],
    frame: int | None = None,
    *,
    time_s: float | None = None,
    max_side: int = 256,
    quality: int = 80,
) -> bytes | None:
    """JPEG bytes of frame ``frame`` (0-based) or the frame at ``time_s`` seconds.

    With neither given, the middle frame. The longer side is scaled down to ``max_side``.
    Returns ``None`` (never raises) when the frame cannot be decoded.
    """
    try:
        image = _frame_image(os.fspath(video_path), frame, time_s)
        if image is None:
            return None
        image = image.convert("RGB")
        image.thumbnail((max_side, max_side))
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=quality, optimize=True)
        return buf.getvalue()
    except Exception as exc:  # a report never fails on one bad thumbnail
        log.debug("no thumbnail for %s: %s", video_path, exc)
        return None
