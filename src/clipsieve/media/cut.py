"""Frame-accurate clip cutting with ffmpeg.

A clip is the source frames ``[start_frame, end_frame)`` in clipsieve's numbering (0-based
indices of the frames a decoder outputs, in presentation order; see :mod:`clipsieve.media.probe`).

``reencode`` mode (the default) makes a clip that holds exactly those frames, fast even deep into
a long video:

1. **Input seeking.** ``-ss`` before ``-i`` jumps to the keyframe before a point half a second
   ahead of the first wanted frame, so only that GOP tail is decoded, never the file from frame 0.
2. **Exact selection by timestamp.** With ``-copyts`` the filter graph sees the source's own
   timestamps, and ``select`` keeps the frames whose time lies between the midpoints to the
   neighbouring frames (times from :func:`~clipsieve.media.probe.frame_times`). Midpoints make
   the choice immune to rounding and work for variable frame rate sources. ``-frames:v`` stops
   decoding right after the last wanted frame, and ``-fps_mode passthrough`` forbids ffmpeg to
   duplicate or drop frames.
3. **Verification.** The clip's frame count is checked; if a seek ever lands wrong, the cut is
   redone from the file start (slow but exact) before giving up with a one-line error.

Output is H.264 (libx264), yuv420p, no audio (training clips do not use it), timestamps from 0.
Display rotation is **applied** (ffmpeg's autorotate), so clips are stored upright with no display
matrix; training data loaders often ignore that side data. Odd dimensions are cropped to even
(the last row/column is dropped) because yuv420p needs even sizes; ``short_side`` downscales so
the shorter displayed side has that many pixels (never upscales) and makes pixels square.

``copy`` mode stream-copies (no re-encoding, very fast): it must start on a keyframe, so the clip
starts at the last keyframe at or before ``start_frame``, and the end is wherever ffmpeg's packet
cut falls. The result reports the frames it actually holds. Rotation metadata is kept as is.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar, Literal

import av
import numpy as np
import pyarrow as pa

from clipsieve.media.ffmpeg import FFmpegError, run_ffmpeg
from clipsieve.media.probe import (
    ProbeError,
    demux_video_packets,
    open_input,
    probe_video,
    select_video_stream,
)
from clipsieve.media.sources import SourceCache, SourceUnavailable
from clipsieve.media.threads import ffmpeg_input_thread_args, ffmpeg_output_thread_args
from clipsieve.stage import Resources, RowStage, StageError, merge_row
from clipsieve.table import (
    STATUS_ERROR,
    STATUS_OK,
    atomic_path,
    commit_temp,
    table_to_rows,
    temp_beside,
)

CutMode = Literal["reencode", "copy"]

SEEK_MARGIN_S = 0.5  # seek this far ahead of the first frame: covers B-frame reorder delays
DEFAULT_CUT_TIMEOUT_S = 600.0


class CutError(Exception):
    """A clip could not be cut; the message is one line meant for the user."""


@dataclass(frozen=True)
class SourceIndex:
    """What cutting needs to know about a source, computed once per source file.

    ``times`` are presentation times (seconds, absolute stream time) of every decoded frame in
    output order; ``keyframes`` marks which of those frames are keyframes (copy-mode cut points).
    """

    path: str
    times: np.ndarray
    keyframes: np.ndarray
    stream_index: int
    container_start_s: float
    width: int
    height: int
    sar: float

    @property
    def num_frames(self) -> int:
        return len(self.times)


@dataclass(frozen=True)
class CutResult:
    """The clip that was written and the source frames it holds (``end_frame`` exclusive)."""

    path: str
    mode: str
    start_frame: int
    end_frame: int
    num_frames: int
    width: int
    height: int
    fps: float | None
    keyframe_aligned: bool


def source_index(
    path: str | os.PathLike[str],
    frame_times: np.ndarray | None = None,
    timeout_s: float = DEFAULT_CUT_TIMEOUT_S,
) -> SourceIndex:
    """Demux (no decoding) the source once: frame times, keyframes and stream geometry."""
    p = Path(path)
    if not p.is_file():
        raise CutError(f"source not found: {p}")
    deadline = time.monotonic() + timeout_s
    try:
        with open_input(p, timeout_s) as container:
            stream = select_video_stream(container)
            tb = float(stream.time_base or Fraction(1, 1))
            start = container.start_time / av.time_base if container.start_time else 0.0
            sar = stream.sample_aspect_ratio
            width, height = int(stream.codec_context.width), int(stream.codec_context.height)
            packets = demux_video_packets(container, stream, deadline, "indexing frames")
            index = stream.index
    except ProbeError as exc:
        raise CutError(f"cannot read source: {exc}") from None
    if not packets.pts or any(t is None for t in packets.pts):
        raise CutError("source packets carry no timestamps; cannot cut frame-accurately")
    ticks = np.array(packets.pts, dtype=np.int64)
    order = np.argsort(ticks, kind="stable")
    times = ticks[order].astype(np.float64) * tb
    keyframes = np.array(packets.keyframes, dtype=bool)[order]
    if frame_times is not None:
        given = np.asarray(frame_times, dtype=np.float64)
        if len(given) != len(times):
            raise CutError(
                f"frame_times has {len(given)} entries but the source has {len(times)} frames"
            )
        times = given
    return SourceIndex(
        path=str(p),
        times=times,
        keyframes=keyframes,
        stream_index=index,
        container_start_s=float(start),
        width=width,
        height=height,
        sar=float(sar) if sar and sar > 0 else 1.0,
    )


def _bounds(times: np.ndarray, start: int, end: int) -> tuple[float | None, float | None]:
    """Selection window [lo, hi) in seconds: midpoints to the neighbouring frames."""
    lo = None if start == 0 else (times[start - 1] + times[start]) / 2
    hi = None if end >= len(times) else (times[end - 1] + times[end]) / 2
    return lo, hi


def _size_filter(src: SourceIndex, short_side: int | None) -> str:
    """Scale so the shorter displayed side is ``short_side`` (never up), else crop to even."""
    display_short = min(src.width * src.sar, float(src.height))
    if short_side is not None and display_short > short_side:
        s = max(2, short_side - short_side % 2)
        # iw*sar is the displayed width; autorotate has already run, so iw/ih are upright.
        w = f"if(lt(iw*sar\\,ih)\\,{s}\\,round({s}*iw*sar/ih/2)*2)"
        h = f"if(lt(iw*sar\\,ih)\\,round({s}*ih/(iw*sar)/2)*2\\,{s})"
        return f"scale=w='{w}':h='{h}',setsar=1"
    return "crop=trunc(iw/2)*2:trunc(ih/2)*2:0:0"


def _clip_filters(
    src: SourceIndex, start: int, end: int, short_side: int | None, out_fps: float | None
) -> list[str]:
    """The filter chain that keeps exactly source frames ``[start, end)`` (by timestamp),
    restarts time at 0 and sizes them (see the module docstring)."""
    lo, hi = _bounds(src.times, start, end)
    conds = []
    if lo is not None:
        conds.append(f"gte(t\\,{lo:.9f})")
    if hi is not None:
        conds.append(f"lt(t\\,{hi:.9f})")
    filters = []
    if conds:
        filters.append(f"select='{'*'.join(conds)}'")
    filters.append("setpts=PTS-STARTPTS")
    if out_fps:
        filters.append(f"fps={out_fps:g}")
    filters.append(_size_filter(src, short_side))
    filters.append("format=yuv420p")
    return filters


def _input_args(src: SourceIndex, start: int, seek: bool) -> list[str]:
    """Decode the source from the keyframe before ``start`` (less a margin), with its own
    timestamps (``-copyts``) so the selection sees the source's times."""
    args = ["-copyts", "-noaccurate_seek"]
    seek_to = float(src.times[start]) - src.container_start_s - SEEK_MARGIN_S
    if seek and seek_to > 0:
        args += ["-ss", f"{seek_to:.6f}"]
    args += ffmpeg_input_thread_args()
    return [*args, "-i", src.path]


def _encode_args(
    src: SourceIndex, out: Path, start: int, end: int, crf: int, preset: str, out_fps: float | None
) -> list[str]:
    """Output options of one clip file (everything after its ``-map`` / ``-vf``)."""
    args = ["-fps_mode", "passthrough"]
    args += ["-c:v", "libx264", "-crf", str(crf), "-preset", preset, "-pix_fmt", "yuv420p"]
    args += ffmpeg_output_thread_args()
    if not out_fps:
        args += ["-frames:v", str(end - start)]
    else:
        # The clip spans from its first frame to where the frame after it would start.
        t = src.times
        step = float(t[-1] - t[-2]) if len(t) > 1 else 1.0 / out_fps
        duration = float((t[end] if end < len(t) else t[-1] + step) - t[start])
        args += ["-t", f"{duration:.6f}"]
    return [*args, "-map_metadata", "-1", "-movflags", "+faststart", "-f", "mp4", str(out)]


def _reencode_args(
    src: SourceIndex,
    out: Path,
    start: int,
    end: int,
    *,
    seek: bool,
    crf: int,
    preset: str,
    short_side: int | None,
    out_fps: float | None,
) -> list[str]:
    filters = _clip_filters(src, start, end, short_side, out_fps)
    args = _input_args(src, start, seek)
    args += ["-map", f"0:{src.stream_index}", "-an", "-sn", "-dn", "-vf", ",".join(filters)]
    return args + _encode_args(src, out, start, end, crf, preset, out_fps)


def _group_args(
    src: SourceIndex,
    clips: list[tuple[Path, int, int]],
    *,
    crf: int,
    preset: str,
    short_side: int | None,
) -> list[str]:
    """One ffmpeg command that decodes the source once, from before the first clip to the end
    of the last, and encodes each ``(out, start, end)`` clip into its own file: the decoded
    frames are split to one selection + encoder per clip, so each encoder sees exactly the
    frames a single-clip cut would give it."""
    first = min(start for _, start, _ in clips)
    labels = [f"c{i}" for i in range(len(clips))]
    graph = f"[0:{src.stream_index}]split={len(clips)}" + "".join(f"[{x}]" for x in labels)
    for (_, start, end), label in zip(clips, labels, strict=True):
        chain = ",".join(_clip_filters(src, start, end, short_side, None))
        graph += f";[{label}]{chain}[o{label}]"
    args = [*_input_args(src, first, seek=True), "-filter_complex", graph]
    for (out, start, end), label in zip(clips, labels, strict=True):
        args += ["-map", f"[o{label}]", *_encode_args(src, out, start, end, crf, preset, None)]
    return args


def _copy_args(src: SourceIndex, out: Path, key: int, end: int) -> list[str]:
    seek_to = float(src.times[key]) - src.container_start_s
    _, hi = _bounds(src.times, key, end)
    args = []
    if seek_to > 0:
        args += ["-ss", f"{seek_to:.6f}"]
    args += ["-i", src.path, "-map", f"0:{src.stream_index}", "-c", "copy"]
    if hi is not None:
        args += ["-t", f"{hi - float(src.times[key]):.6f}"]
    args += ["-avoid_negative_ts", "make_zero", "-movflags", "+faststart", "-f", "mp4", str(out)]
    return args


def _keyframe_at_or_before(src: SourceIndex, frame: int) -> int:
    keys = np.flatnonzero(src.keyframes[: frame + 1])
    return int(keys[-1]) if len(keys) else 0


def _reencode_result(out: Path, start: int, end: int, info: dict[str, Any]) -> CutResult:
    """What a re-encoded clip holds: exactly source frames ``[start, end)``, as probed."""
    return CutResult(
        path=str(out),
        mode="reencode",
        start_frame=start,
        end_frame=end,
        num_frames=info["num_frames"],
        width=info["width"],
        height=info["height"],
        fps=info["fps"],
        keyframe_aligned=False,
    )


def _copy_result(out: Path, key: int, info: dict[str, Any]) -> CutResult:
    """What a stream-copied clip holds: frames from keyframe ``key`` on, as probed."""
    return CutResult(
        path=str(out),
        mode="copy",
        start_frame=key,
        end_frame=key + info["num_frames"],
        num_frames=info["num_frames"],
        width=info["display_width"],
        height=info["display_height"],
        fps=info["fps"],
        keyframe_aligned=True,
    )


def cut_clip(
    source: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    start_frame: int,
    end_frame: int,
    *,
    mode: CutMode = "reencode",
    crf: int = 18,
    preset: str = "veryfast",
    short_side: int | None = None,
    out_fps: float | None = None,
    frame_times: np.ndarray | None = None,
    timeout_s: float = DEFAULT_CUT_TIMEOUT_S,
    index: SourceIndex | None = None,
) -> CutResult:
    """Cut source frames ``[start_frame, end_frame)`` into ``out_path`` (an MP4).

    ``frame_times`` (from :func:`clipsieve.media.probe.frame_times`) or a prepared ``index``
    (from :func:`source_index`) avoid demuxing the source again for every clip. The output is
    written to a temp file and renamed, so a killed run never leaves a half clip behind.
    Raises :class:`CutError` with a one-line reason.
    """
    if mode not in ("reencode", "copy"):
        raise CutError(f"unknown cut mode {mode!r} (use 'reencode' or 'copy')")
    src = index or source_index(source, frame_times=frame_times, timeout_s=timeout_s)
    n = src.num_frames
    start_frame, end_frame = int(start_frame), int(end_frame)
    if not 0 <= start_frame < end_frame <= n:
        raise CutError(f"frames [{start_frame}, {end_frame}) are outside the source's [0, {n})")
    out = Path(out_path)

    if mode == "copy":
        key = _keyframe_at_or_before(src, start_frame)
        with atomic_path(out) as tmp:
            _run(_copy_args(src, tmp, key, end_frame), timeout_s)
            info = _probe_output(tmp)
        return _copy_result(out, key, info)

    expected = end_frame - start_frame
    with atomic_path(out) as tmp:
        info = {}
        for seek in (True, False):  # the unseeked pass is the exact fallback
            args = _reencode_args(
                src,
                tmp,
                start_frame,
                end_frame,
                seek=seek,
                crf=crf,
                preset=preset,
                short_side=short_side,
                out_fps=out_fps,
            )
            _run(args, timeout_s)
            info = _probe_output(tmp)
            if out_fps or info["num_frames"] == expected:
                break
        else:
            raise CutError(f"clip has {info['num_frames']} frames, expected {expected}")
    return _reencode_result(out, start_frame, end_frame, info)


GROUP_CLIPS = 4
"""Clips one ffmpeg process cuts at most: its encoders are all open at once, each holding a few
frames of lookahead, so a long video is cut in groups."""
GROUP_PIXELS = 2 * 1920 * 1080
"""...and at most this many source pixels' worth of clips per process: a group of 4 clips of a
1080p source held 690 MB (one clip alone about 200 MB), so 1080p is cut 2 at a time."""
GROUP_GAP_S = 5.0
"""A clip starting further than this after the previous one's end starts a new group: decoding
the gap would cost more than seeking to it."""


def plan_groups(src: SourceIndex, spans: list[tuple[int, int]]) -> list[list[int]]:
    """Indices of ``spans`` (``(start, end)`` frames) in cut groups: in start order, at most
    :data:`GROUP_CLIPS` each (fewer for large frames, :data:`GROUP_PIXELS`), a new group after
    a gap of more than :data:`GROUP_GAP_S`."""
    size = max(1, min(GROUP_CLIPS, GROUP_PIXELS // max(1, src.width * src.height)))
    groups: list[list[int]] = []
    last_end = None
    for i in sorted(range(len(spans)), key=lambda k: spans[k]):
        start, end = spans[i]
        gap = None if last_end is None else float(src.times[start] - src.times[last_end - 1])
        if not groups or len(groups[-1]) >= size or gap is None or gap > GROUP_GAP_S:
            groups.append([])
        groups[-1].append(i)
        last_end = end if last_end is None else max(last_end, end)
    return groups


def cut_group(
    src: SourceIndex,
    clips: list[tuple[Path, int, int]],
    *,
    crf: int = 18,
    preset: str = "veryfast",
    short_side: int | None = None,
    timeout_s: float = DEFAULT_CUT_TIMEOUT_S,
) -> dict[Path, CutResult]:
    """Re-encode several ``(out, start, end)`` clips of one source with one ffmpeg process
    (the source decoded once for all of them); the clips that came out exact, by path.

    Each clip is written under a temp name and renamed when its frame count checks out; a clip
    missing from the result (a seek that landed wrong, a failed process) is for
    :func:`cut_clip` to cut alone, with its exact fallback.
    """
    for _, start, end in clips:
        if not 0 <= start < end <= src.num_frames:
            raise CutError(
                f"frames [{start}, {end}) are outside the source's [0, {src.num_frames})"
            )
    done: dict[Path, CutResult] = {}
    temps = [temp_beside(out) for out, _, _ in clips]
    try:
        staged = [(tmp, start, end) for tmp, (_, start, end) in zip(temps, clips, strict=True)]
        args = _group_args(src, staged, crf=crf, preset=preset, short_side=short_side)
        _run(args, timeout_s * len(clips))
        for tmp, (out, start, end) in zip(temps, clips, strict=True):
            try:
                info = probe_video(tmp)
            except ProbeError:
                continue
            if info["num_frames"] == end - start:
                commit_temp(tmp, out)
                done[out] = _reencode_result(out, start, end, info)
    except CutError:
        pass  # each clip not done is cut alone next
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
    return done


def _run(args: list[str], timeout_s: float) -> None:
    try:
        run_ffmpeg(args, timeout_s=timeout_s, what="ffmpeg cut")
    except FFmpegError as exc:
        raise CutError(str(exc)) from None


def _probe_output(path: Path) -> dict[str, Any]:
    try:
        return probe_video(path)
    except ProbeError as exc:
        raise CutError(f"cut produced an unreadable clip: {exc}") from None


# ---------------------------------------------------------------------------- stage


@dataclass
class CutStage(RowStage):
    """Cut every kept clip row into ``{out_dir}/{clip_id}.mp4``.

    Rows with ``keep == False`` pass through with ``path`` null. A row whose clip file already
    exists (and, in re-encode mode, holds the expected frame count) is not cut again, so a
    resumed run only cuts what is missing. In copy mode ``start_frame``/``end_frame`` (and the
    times) become the frames the clip really holds; ``requested_start_frame`` and
    ``requested_end_frame`` keep what was asked for.
    """

    name: ClassVar[str] = "cut"
    version: ClassVar[str] = "1"
    table: ClassVar[str] = "clips"
    inputs: ClassVar[tuple[str, ...]] = ("clip_id", "source_path", "start_frame", "end_frame")
    output_columns: ClassVar[tuple[str, ...]] = (
        "path",
        "num_frames",
        "width",
        "height",
        "fps",
        "resolution",
        "aspect_ratio",
        "cut_mode",
        "keyframe_aligned",
        "requested_start_frame",
        "requested_end_frame",
    )
    worker_resources: ClassVar[Resources] = Resources(cpus=2.0)

    max_cached_sources: ClassVar[int] = 8
    location_params: ClassVar[tuple[str, ...]] = ("out_dir",)

    out_dir: str
    mode: str = "reencode"
    crf: int = 18
    preset: str = "veryfast"
    short_side: int | None = None
    out_fps: float | None = None
    timeout_s: float = DEFAULT_CUT_TIMEOUT_S
    _source_cache: SourceCache = field(default_factory=SourceCache, init=False, repr=False)
    _sources: OrderedDict[str, SourceIndex] = field(
        default_factory=OrderedDict, init=False, repr=False, compare=False
    )
    _grouped: dict[Path, CutResult] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.mode not in ("reencode", "copy"):
            raise ValueError(f"cut mode must be 'reencode' or 'copy', not {self.mode!r}")

    def _index(self, source: str) -> SourceIndex:
        """The source's frame index, computed once per source (small LRU per stage instance)."""
        if source in self._sources:
            self._sources.move_to_end(source)
            return self._sources[source]
        idx = source_index(source, timeout_s=self.timeout_s)
        self._sources[source] = idx
        while len(self._sources) > self.max_cached_sources:
            self._sources.popitem(last=False)
        return idx

    def process(self, batch: pa.Table) -> pa.Table:
        """Cut the batch's clips: first several clips of a source per ffmpeg process (decoded
        once for them), then row by row for whatever that did not cut."""
        if self.mode == "reencode" and not self.out_fps:
            self._cut_in_groups(table_to_rows(batch))
        try:
            return self.map_rows(batch, self.process_row)
        finally:
            self._grouped.clear()

    def _cut_in_groups(self, rows: list[dict[str, Any]]) -> None:
        """Cut the kept clips of each source in groups (:func:`plan_groups`, :func:`cut_group`)
        into :attr:`_grouped`; a source that cannot be read is left to the rows' own errors."""
        by_source: dict[str, list[tuple[Path, int, int]]] = {}
        for row in rows:
            if row.get("keep") is False or row.get("status") == STATUS_ERROR:
                continue
            if any(row.get(k) is None for k in self.inputs):
                continue
            out = Path(self.out_dir) / f"{row['clip_id']}.mp4"
            if not out.exists():
                span = (out, int(row["start_frame"]), int(row["end_frame"]))
                by_source.setdefault(str(row["source_path"]), []).append(span)
        for source, clips in by_source.items():
            if len(clips) < 2:
                continue
            try:
                with self._source_cache.local(source) as local:
                    idx = self._index(local)
                    # a span outside its source is left to its row, which reports it
                    clips = [c for c in clips if 0 <= c[1] < c[2] <= idx.num_frames]
                    for group in plan_groups(idx, [(s, e) for _, s, e in clips]):
                        if len(group) > 1:
                            self._grouped.update(self._cut_group(idx, [clips[i] for i in group]))
            except (CutError, SourceUnavailable):
                continue

    def _cut_group(
        self, idx: SourceIndex, clips: list[tuple[Path, int, int]]
    ) -> dict[Path, CutResult]:
        return cut_group(
            idx,
            clips,
            crf=self.crf,
            preset=self.preset,
            short_side=self.short_side,
            timeout_s=self.timeout_s,
        )

    def process_row(self, row: dict[str, Any]) -> dict[str, Any]:
        if row.get("keep") is False:
            return row
        for key in ("clip_id", "source_path", "start_frame", "end_frame"):
            if row.get(key) is None:
                raise StageError(f"row has no {key}")
        start, end = int(row["start_frame"]), int(row["end_frame"])
        out = Path(self.out_dir) / f"{row['clip_id']}.mp4"
        try:
            with self._source_cache.local(str(row["source_path"])) as source:  # URL: local copy
                idx = self._index(source)
                grouped = self._grouped.pop(out, None)
                result = (
                    grouped
                    or self._existing(out, idx, start, end)
                    or cut_clip(
                        source,
                        out,
                        start,
                        end,
                        mode=self.mode,  # type: ignore[arg-type]
                        crf=self.crf,
                        preset=self.preset,
                        short_side=self.short_side,
                        out_fps=self.out_fps,
                        timeout_s=self.timeout_s,
                        index=idx,
                    )
                )
        except (CutError, SourceUnavailable) as exc:
            raise StageError(str(exc)) from None
        updates: dict[str, Any] = {
            "path": result.path,
            "num_frames": result.num_frames,
            "width": result.width,
            "height": result.height,
            "fps": result.fps,
            "resolution": result.width * result.height,
            "aspect_ratio": result.height / result.width,
            "cut_mode": result.mode,
            "keyframe_aligned": result.keyframe_aligned,
            "requested_start_frame": start,
            "requested_end_frame": end,
            "status": row.get("status") or STATUS_OK,
        }
        if (result.start_frame, result.end_frame) != (start, end):
            # Copy mode moved the cut: record the frames the clip really holds. Times are
            # relative to the first frame, like the planned clips' start_frame / fps.
            t = idx.times - idx.times[0]
            last_step = float(t[-1] - t[-2]) if len(t) > 1 else 0.0
            end_s = float(t[result.end_frame]) if result.end_frame < len(t) else t[-1] + last_step
            updates.update(
                start_frame=result.start_frame,
                end_frame=result.end_frame,
                start_s=float(t[result.start_frame]),
                end_s=float(end_s),
                duration_s=float(end_s - t[result.start_frame]),
            )
        return merge_row(row, **updates)

    def _existing(self, out: Path, idx: SourceIndex, start: int, end: int) -> CutResult | None:
        """A clip left by an earlier run, if it is complete; None means cut it (again)."""
        if not out.is_file():
            return None
        try:
            info = probe_video(out)
        except ProbeError:
            return None
        if self.mode == "copy":
            return _copy_result(out, _keyframe_at_or_before(idx, start), info)
        if not self.out_fps and info["num_frames"] != end - start:
            return None
        return _reencode_result(out, start, end, info)
