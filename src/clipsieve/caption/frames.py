"""Frames for captioning: decode each clip once, encode each frame to JPEG once, in memory.

The frames come from the score package's :class:`~clipsieve.media.frames.FrameSampler` (one
decode per clip, upright, resized by swscale). By default it decodes reference frames only and
takes the nearest one to each wanted position: a VLM asked for "first, middle, last" does not care
whether the middle is frame 25 or 24, and skipping the other frames saves ~40 % of the decode,
which is most of the client's CPU per clip (``exact=True`` restores exact positions).
JPEG bytes are produced here a single time per clip and reused for every retry of the request;
nothing is written to disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from clipsieve.media.frames import FrameSampler, FrameSpec, SampleError
from clipsieve.media.source_check import SourceChanged, SourceCheck

JPEG_QUALITY = 90


class ClipFrames:
    """Samples one :class:`FrameSpec` from clip rows (thread-safe: no shared decoder state)."""

    def __init__(
        self, spec: FrameSpec, jpeg_quality: int = JPEG_QUALITY, *, exact: bool = False
    ) -> None:
        self.spec = spec
        self.jpeg_quality = int(jpeg_quality)
        # Many clips decode at once on the stage's threads: frame threads inside each decode
        # would only add CPU (21 ms -> 25-28 ms per 640x360 clip).
        self._sampler = FrameSampler(
            {"caption": spec}, reference_frames_only=not exact, decode_threads=1
        )
        self._sources = SourceCheck()

    def arrays(self, row: dict[str, Any]) -> np.ndarray:
        """RGB frames (n, h, w, 3) of the clip in ``row``; :class:`SampleError` if none."""
        clip_file = row.get("path")
        if clip_file and Path(clip_file).is_file():
            frames = self._sampler.sample(clip_file, fps=row.get("fps"))
        elif row.get("source_path") and row.get("end_frame") is not None:
            try:
                source = self._sources.source(row)
            except SourceChanged as exc:
                raise SampleError(str(exc)) from None
            frames = self._sampler.sample(
                source,
                start_frame=int(row.get("start_frame") or 0),
                end_frame=int(row["end_frame"]),
                fps=row.get("fps"),
            )
        else:
            raise SampleError("row has neither a clip file nor a source path")
        images = frames["caption"].images
        if len(images) == 0:
            raise SampleError(f"no frames decoded from {clip_file or row.get('source_path')}")
        return images

    def jpegs(self, images: np.ndarray) -> tuple[bytes, ...]:
        """Each RGB frame as JPEG bytes (OpenCV's encoder; it wants BGR)."""
        params = [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality]
        out = []
        for image in images:
            ok, buffer = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
            if not ok:
                raise SampleError("JPEG encoding failed")
            out.append(buffer.tobytes())
        return tuple(out)
