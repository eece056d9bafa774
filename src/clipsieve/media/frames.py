"""Decode a clip once and hand every scorer the frames it asked for.

Decoding dominates scoring cost, so the sampler takes the union of all scorers' frame indices,
decodes the clip a single time (PyAV, threaded, stopping after the last needed frame) and, for
each needed frame, converts it once per distinct (size, colour) request through a reused
swscale context. Frames are made upright using the stream's display rotation, so "pan left" means
the same thing for a phone video stored sideways.

Frame indices are clip-relative. When the clip is its own file (the cut clip: the usual case)
they are counted exactly in decode output order. When scoring straight from a source video
(cutting disabled), the sampler seeks to the keyframe before the clip and maps each frame's
timestamp to ``round(t * fps)``: exact for constant-frame-rate sources, approximate for
variable-frame-rate ones.

``reference_frames_only=True`` trades exact positions for speed where "about the middle" is
enough (caption frames, cluster keyword labels): the decoder skips frames no other frame depends on
(``skip_frame=NONREF``: most B-frames of an x264 stream, ~40 % of the decode work) and each
wanted index gets the nearest frame that was decoded, at most a few frames away. The frames'
``indices`` then say which frames were really used.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import av
import numpy as np
from av.video.reformatter import Interpolation, VideoReformatter

from clipsieve.media.threads import configure_decoder
from clipsieve.storage import av_source


@dataclass(frozen=True)
class FrameSpec:
    """Which frames a scorer needs, at what size and in which colour space.

    Sampling is either ``every_s`` (one frame every N seconds of the clip, starting at its first
    frame: the original filtering project used 0.25 s) or ``count`` frames placed by
    ``positions``: ``uniform`` (centres of ``count`` equal parts), ``ends`` (first, middle, last
    for count 3; first and last for 2), or explicit ``fractions`` of the clip's length (Open-Sora's
    aesthetic scorer uses 0.1/0.5/0.9). Size is ``size`` = (width, height) exactly, or
    ``short_side`` keeping the aspect ratio (never upscaling), or the native size when both are
    None.
    """

    every_s: float | None = None
    count: int | None = None
    positions: Literal["uniform", "ends", "fractions"] = "uniform"
    fractions: tuple[float, ...] = ()
    size: tuple[int, int] | None = None
    short_side: int | None = None
    color: Literal["rgb", "gray"] = "rgb"

    def __post_init__(self) -> None:
        if (self.every_s is None) == (self.count is None and not self.fractions):
            raise ValueError("FrameSpec needs exactly one of every_s, count or fractions")


@dataclass
class Frames:
    """What a scorer receives for one clip.

    ``images``: uint8 array (n, h, w, 3) RGB or (n, h, w) grey; ``indices``: frame numbers within
    the clip (0-based); ``times_s``: seconds from the clip's first frame; ``fps``: the clip's
    average frame rate; ``source_size``: (width, height) of the decoded video before resizing.
    """

    images: np.ndarray
    indices: np.ndarray
    times_s: np.ndarray
    fps: float
    source_size: tuple[int, int]
    # Per-clip results that several scorers derive from the same frames (e.g. optical flow for
    # motion and camera), computed by the first scorer that needs them.
    cache: dict[str, Any] = field(default_factory=dict, repr=False)


class SampleError(RuntimeError):
    """The clip could not be decoded; the message is one line."""


def spec_indices(spec: FrameSpec, num_frames: int, fps: float) -> np.ndarray:
    """Sorted unique clip-relative frame indices for ``spec`` in a clip of ``num_frames``."""
    n = int(num_frames)
    if n <= 0:
        return np.zeros(0, np.int64)
    if spec.every_s is not None:
        step = max(spec.every_s * (fps if fps > 0 else 25.0), 1e-9)
        raw = np.arange(0.0, n, step)
    elif spec.fractions:
        raw = np.asarray(spec.fractions, float) * (n - 1)
    elif spec.positions == "ends":
        count = max(1, int(spec.count or 1))
        raw = np.array([(n - 1) / 2]) if count == 1 else np.linspace(0, n - 1, count)
    else:
        count = max(1, int(spec.count or 1))
        raw = (np.arange(count) + 0.5) * n / count
    idx = np.clip(np.floor(raw + 0.5).astype(np.int64), 0, n - 1)
    return np.unique(idx)


def _target_size(
    spec: FrameSpec, width: int, height: int
) -> tuple[int, int]:  # (w, h) of the upright frame
    if spec.size is not None:
        return int(spec.size[0]), int(spec.size[1])
    if spec.short_side is not None and min(width, height) > spec.short_side:
        scale = spec.short_side / min(width, height)
        return max(2, round(width * scale)), max(2, round(height * scale))
    return width, height


DEFAULT_SAMPLE_TIMEOUT_S = 300.0
"""How long decoding one clip may take before the row gets a timeout error (clips are short)."""


class FrameSampler:
    """Decodes clips once for a fixed set of named frame specs.

    ``timeout_s`` bounds one clip's decode, blocking reads included: a stuck or pathologically
    slow file costs at most that long and its row records why. ``reference_frames_only``: see
    the module docstring (approximate positions, less decoding). ``decode_threads``: FFmpeg
    threads per decode (None: the process's share, see :mod:`clipsieve.media.threads`; 1 when
    the caller already decodes many clips in parallel).
    """

    def __init__(
        self,
        specs: Mapping[str, FrameSpec],
        timeout_s: float = DEFAULT_SAMPLE_TIMEOUT_S,
        *,
        reference_frames_only: bool = False,
        decode_threads: int | None = None,
    ) -> None:
        self.specs = dict(specs)
        self.timeout_s = timeout_s
        self.reference_frames_only = reference_frames_only
        self.decode_threads = decode_threads

    def sample(
        self,
        path: str | Path,
        *,
        start_frame: int = 0,
        end_frame: int | None = None,
        fps: float | None = None,
    ) -> dict[str, Frames]:
        """Frames for every spec from clip ``[start_frame, end_frame)`` of ``path``."""
        try:
            container = av.open(av_source(str(path)), timeout=self.timeout_s)
        except av.error.ExitError:
            raise SampleError(f"timed out opening {path}") from None
        except (av.FFmpegError, OSError) as exc:
            raise SampleError(
                f"cannot open {path}: {getattr(exc, 'strerror', None) or exc}"
            ) from None
        with container:
            if not container.streams.video:
                raise SampleError(f"{path} has no video stream")
            stream = container.streams.video[0]
            configure_decoder(stream, self.decode_threads)
            rate = fps or float(stream.average_rate or stream.guessed_rate or 0) or 25.0
            if end_frame is None:
                end_frame = start_frame + (stream.frames or int(_duration_s(container) * rate))
            num = max(0, int(end_frame) - int(start_frame))
            wanted = {name: spec_indices(spec, num, rate) for name, spec in self.specs.items()}
            needed = np.unique(np.concatenate([*wanted.values(), np.zeros(0, np.int64)]))
            if needed.size == 0:
                raise SampleError(f"{path}: clip has no frames")
            users: dict[int, list[FrameSpec]] = {}  # frame index -> the specs that want it
            for name, indices in wanted.items():
                for i in indices:
                    users.setdefault(int(i), []).append(self.specs[name])
            if self.reference_frames_only:
                decoded, used = self._decode_nearest(container, stream, start_frame, rate, users)
            else:
                decoded = self._decode(container, stream, start_frame, rate, needed, users)
                used = {index: index for index in decoded}
        if not decoded:
            raise SampleError(f"{path}: no frames decoded in [{start_frame}, {end_frame})")
        return self._assemble(decoded, used, wanted, rate)

    # ------------------------------------------------------------------------- decoding

    def _decode(
        self,
        container: av.container.InputContainer,
        stream: av.video.stream.VideoStream,
        start_frame: int,
        rate: float,
        needed: np.ndarray,
        users: Mapping[int, list[FrameSpec]],
    ) -> dict[int, tuple[dict[tuple[int, int, str], np.ndarray], tuple[int, int]]]:
        """clip index → ({(w, h, colour): image}, upright source size) for the needed frames.

        Each frame is converted only for the specs that want it (``users``): a scorer that
        asks for 4 frames must not pay a conversion on every frame another scorer samples.
        """
        scalers: dict[tuple[int, int, str], VideoReformatter] = {}
        need = set(int(i) for i in needed)
        last = int(needed.max())
        out: dict[int, tuple[dict[tuple[int, int, str], np.ndarray], tuple[int, int]]] = {}
        try:
            for index, frame in self._indexed_frames(container, stream, start_frame, rate):
                if index < 0 or index not in need:
                    if index > last:
                        break
                    continue
                out[index] = self._convert(frame, scalers, users[index])
                if index >= last:
                    break
        except av.error.ExitError:
            raise SampleError(f"reading timed out after {self.timeout_s:g} s") from None
        except av.FFmpegError as exc:
            if not out:
                raise SampleError(
                    f"decode failed: {getattr(exc, 'strerror', None) or exc}"
                ) from None
        return out

    def _decode_nearest(
        self,
        container: av.container.InputContainer,
        stream: av.video.stream.VideoStream,
        start_frame: int,
        rate: float,
        users: Mapping[int, list[FrameSpec]],
    ) -> tuple[
        dict[int, tuple[dict[tuple[int, int, str], np.ndarray], tuple[int, int]]],
        dict[int, int],
    ]:
        """Like :meth:`_decode`, skipping non-reference frames; wanted index → nearest decoded.

        Returns the converted frames keyed by wanted index and, per wanted index, the index of
        the frame that stands in for it.
        """
        scalers: dict[tuple[int, int, str], VideoReformatter] = {}
        targets = sorted(users)
        out: dict[int, tuple[dict[tuple[int, int, str], np.ndarray], tuple[int, int]]] = {}
        used: dict[int, int] = {}
        stream.codec_context.skip_frame = "NONREF"
        previous: tuple[int, av.VideoFrame] | None = None
        pending = 0  # position in targets of the next index to fill

        def take(target: int, index: int, frame: av.VideoFrame) -> None:
            out[target] = self._convert(frame, scalers, users[target])
            used[target] = index

        try:
            for index, frame in self._indexed_frames(
                container, stream, start_frame, rate, by_timestamp=True
            ):
                if index < 0:
                    continue
                while pending < len(targets) and targets[pending] <= index:
                    target = targets[pending]
                    if previous is not None and target - previous[0] < index - target:
                        take(target, *previous)
                    else:
                        take(target, index, frame)
                    pending += 1
                if pending == len(targets):
                    break
                previous = (index, frame)
        except av.error.ExitError:
            raise SampleError(f"reading timed out after {self.timeout_s:g} s") from None
        except av.FFmpegError as exc:
            if not out and previous is None:
                raise SampleError(
                    f"decode failed: {getattr(exc, 'strerror', None) or exc}"
                ) from None
        if previous is not None:  # the clip ended before the last wanted indices
            for target in targets[pending:]:
                take(target, *previous)
        return out, used

    def _indexed_frames(
        self,
        container: av.container.InputContainer,
        stream: av.video.stream.VideoStream,
        start_frame: int,
        rate: float,
        *,
        by_timestamp: bool = False,
    ) -> Iterator[tuple[int, av.VideoFrame]]:
        """(clip-relative index, frame) in decode output order, within the decode deadline.

        Indices are counted when the clip is its own file, unless ``by_timestamp`` (frames are
        being skipped) or the clip starts inside its file; then they come from timestamps.
        A stream without timestamps falls back to counting and decodes every frame.
        """
        tb = stream.time_base
        origin = stream.start_time if stream.start_time is not None else 0
        if start_frame > 0:
            target = origin + int((start_frame / rate - 1.0) / tb) if tb else 0
            container.seek(max(target, origin), stream=stream, backward=True, any_frame=False)
        timed = by_timestamp or start_frame > 0
        count = 0
        deadline = time.monotonic() + self.timeout_s
        for frame in container.decode(stream):
            if time.monotonic() > deadline:
                raise SampleError(f"decoding timed out after {self.timeout_s:g} s")
            if timed and (frame.pts is None or not tb):
                if start_frame > 0:
                    continue
                timed = False  # no timestamps to place skipped frames by: count them all
                stream.codec_context.skip_frame = "DEFAULT"
            index = count
            if timed:
                index = round(float((frame.pts - origin) * tb) * rate) - start_frame
            count += 1
            yield index, frame

    def _convert(
        self,
        frame: av.VideoFrame,
        scalers: dict[tuple[int, int, str], VideoReformatter],
        specs: list[FrameSpec],
    ) -> tuple[dict[tuple[int, int, str], np.ndarray], tuple[int, int]]:
        rotation = int(round(getattr(frame, "rotation", 0) or 0)) % 360
        turns = rotation // 90 if rotation % 90 == 0 else 0
        width, height = (frame.height, frame.width) if turns % 2 else (frame.width, frame.height)
        images: dict[tuple[int, int, str], np.ndarray] = {}
        for spec in specs:
            w, h = _target_size(spec, width, height)
            key = (w, h, spec.color)
            if key in images:
                continue
            scaler = scalers.setdefault(key, VideoReformatter())
            # Scale in the stored orientation, then turn upright.
            sw, sh = (h, w) if turns % 2 else (w, h)
            converted = scaler.reformat(
                frame,
                width=sw,
                height=sh,
                format="gray" if spec.color == "gray" else "rgb24",
                interpolation=Interpolation.AREA,
            )
            image = converted.to_ndarray()
            if turns:
                image = np.ascontiguousarray(np.rot90(image, k=turns))
            images[key] = image
        return images, (width, height)

    # ------------------------------------------------------------------------- output

    def _assemble(
        self,
        decoded: dict[int, tuple[dict[tuple[int, int, str], np.ndarray], tuple[int, int]]],
        used: Mapping[int, int],
        wanted: dict[str, np.ndarray],
        rate: float,
    ) -> dict[str, Frames]:
        available = sorted(decoded)
        source_size = decoded[available[0]][1]
        result: dict[str, Frames] = {}
        by_spec: dict[FrameSpec, Frames] = {}  # equal specs share one Frames (and its cache)
        for name, spec in self.specs.items():
            if spec in by_spec:
                result[name] = by_spec[spec]
                continue
            w, h = _target_size(spec, *source_size)
            # A container may hold fewer frames than it claims: keep the indices that decoded.
            keys = [int(i) for i in wanted[name] if i in decoded]
            idx = np.array([used[i] for i in keys], np.int64)
            images = [decoded[i][0][(w, h, spec.color)] for i in keys]
            shape = (0, h, w) if spec.color == "gray" else (0, h, w, 3)
            result[name] = Frames(
                images=np.stack(images) if images else np.zeros(shape, np.uint8),
                indices=idx,
                times_s=idx / rate,
                fps=rate,
                source_size=source_size,
            )
            by_spec[spec] = result[name]
        return result


def _duration_s(container: av.container.InputContainer) -> float:
    if container.duration:
        return container.duration / 1_000_000
    return 0.0


__all__ = ["FrameSampler", "SampleError", "spec_indices"]
