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
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import Interpolation, VideoReformatter

from clipsieve.score.base import Frames, FrameSpec


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
    slow file costs at most that long and its row records why.
    """

    def __init__(
        self, specs: Mapping[str, FrameSpec], timeout_s: float = DEFAULT_SAMPLE_TIMEOUT_S
    ) -> None:
        self.specs = dict(specs)
        self.timeout_s = timeout_s

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
            container = av.open(str(path), timeout=self.timeout_s)
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
            stream.thread_type = "AUTO"
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
            decoded = self._decode(container, stream, start_frame, rate, needed, users)
        if not decoded:
            raise SampleError(f"{path}: no frames decoded in [{start_frame}, {end_frame})")
        return self._assemble(decoded, wanted, rate)

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
        tb = stream.time_base
        origin = stream.start_time if stream.start_time is not None else 0
        if start_frame > 0:
            target = origin + int((start_frame / rate - 1.0) / tb) if tb else 0
            container.seek(max(target, origin), stream=stream, backward=True, any_frame=False)
        count = 0
        deadline = time.monotonic() + self.timeout_s
        try:
            for frame in container.decode(stream):
                if time.monotonic() > deadline:
                    raise SampleError(f"decoding timed out after {self.timeout_s:g} s")
                if start_frame > 0:
                    if frame.pts is None or not tb:
                        continue
                    index = round(float((frame.pts - origin) * tb) * rate) - start_frame
                else:
                    index = count
                count += 1
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
            idx = np.array([i for i in wanted[name] if i in decoded], np.int64)
            images = [decoded[int(i)][0][(w, h, spec.color)] for i in idx]
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
