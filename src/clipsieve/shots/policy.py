"""Length policy: shots → clip rows.

Turns a probed ``videos`` row with detected ``cuts`` into ``clips`` rows:

* each shot is ``[cut_i, cut_{i+1})`` in 0-based frame indices (end exclusive);
* ``trim_frames`` frames are removed at each end of a shot that touches a detected boundary, so
  the tail of a fade or a mis-placed cut frame does not leak into a clip (the very first and last
  frames of the video are not boundaries and are not trimmed);
* shots shorter than ``min_s`` keep a row with ``keep=False, drop_reason='too_short'``;
* shots longer than ``max_s`` are split. ``split='even'`` (default) cuts a shot of length L into
  ``ceil(L / max_s)`` equal pieces, so nothing is thrown away and every piece is at least
  ``max_s / 2`` long — EasyAnimate's fixed 10 s pieces drop tails shorter than 3 s, this keeps
  them. ``split='fixed'`` gives ``max_s`` pieces and a tail that is kept only when it reaches
  ``min_s`` (dropped tails keep a row with ``drop_reason='short_tail'``).

Times are ``frame / fps`` from the start of the video stream (the average frame rate; for a
variable-frame-rate source they are approximate, frame indices are exact).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from clipsieve.stage import RowStage

DROP_TOO_SHORT = "too_short"
DROP_SHORT_TAIL = "short_tail"


@dataclass(frozen=True)
class Piece:
    """A planned clip inside a shot."""

    shot_index: int
    piece: int
    start_frame: int
    end_frame: int  # exclusive
    drop_reason: str | None = None


def shot_bounds(cuts: list[int], num_frames: int) -> list[tuple[int, int]]:
    """``[start, end)`` of each shot given the first frames of new shots."""
    inner = sorted({c for c in cuts if 0 < c < num_frames})
    edges = [0, *inner, num_frames]
    return [(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def plan_pieces(
    cuts: list[int],
    num_frames: int,
    fps: float,
    *,
    min_s: float = 2.0,
    max_s: float | None = 10.0,
    trim_frames: int = 0,
    split: Literal["even", "fixed"] = "even",
) -> list[Piece]:
    """Apply the length policy to one video's shots (a pure function: easy to test)."""
    if fps <= 0 or num_frames <= 0:
        return []
    min_frames = max(1, math.ceil(min_s * fps - 1e-9))
    max_frames = None if max_s is None else max(1, math.floor(max_s * fps + 1e-9))
    pieces: list[Piece] = []
    for shot_index, (shot_start, shot_end) in enumerate(shot_bounds(cuts, num_frames)):
        start = shot_start + (trim_frames if shot_start > 0 else 0)
        end = shot_end - (trim_frames if shot_end < num_frames else 0)
        length = end - start
        if length < min_frames:
            # Keep the whole shot's span on the dropped row: it explains what was not used.
            pieces.append(Piece(shot_index, 0, shot_start, shot_end, DROP_TOO_SHORT))
            continue
        if max_frames is None or length <= max_frames:
            pieces.append(Piece(shot_index, 0, start, end))
            continue
        if split == "even":
            count = math.ceil(length / max_frames)
            edges = [start + (length * i) // count for i in range(count + 1)]
            for k in range(count):
                pieces.append(Piece(shot_index, k, edges[k], edges[k + 1]))
        else:
            for k, piece_start in enumerate(range(start, end, max_frames)):
                piece_end = min(piece_start + max_frames, end)
                short = piece_end - piece_start < min_frames
                pieces.append(
                    Piece(shot_index, k, piece_start, piece_end, DROP_SHORT_TAIL if short else None)
                )
    return pieces


def clip_id_for(video_id: str, shot_index: int, piece: int) -> str:
    """Deterministic clip id: ``{video_id}_{shot_index:04d}_{piece}``."""
    return f"{video_id}_{shot_index:04d}_{piece}"


@dataclass
class ClipPlanStage(RowStage):
    """videos → clips: one row per planned clip, dropped ones included with their reason."""

    name: ClassVar[str] = "policy"
    version: ClassVar[str] = "1"
    table: ClassVar[str] = "videos"
    output_table: ClassVar[str | None] = "clips"
    inputs: ClassVar[tuple[str, ...]] = ("video_id", "path", "cuts", "num_frames", "fps")
    output_columns: ClassVar[tuple[str, ...]] = (
        "clip_id",
        "shot_index",
        "start_frame",
        "end_frame",
        "start_s",
        "end_s",
        "keep",
        "drop_reason",
    )

    min_s: float = 2.0
    max_s: float | None = 10.0
    trim_frames: int = 0
    split: Literal["even", "fixed"] = "even"

    def passthrough(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        # A video that failed upstream has no clips; its videos row carries the error.
        return []

    def on_error(self, row: dict[str, Any], exc: BaseException) -> list[dict[str, Any]]:
        # The policy is pure arithmetic; a failure here is a bug worth surfacing loudly.
        raise exc

    def process_row(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        num_frames = row.get("num_frames_decoded") or row.get("num_frames") or 0
        fps = row.get("fps") or 0.0
        width = row.get("display_width") or row.get("width")
        height = row.get("display_height") or row.get("height")
        pieces = plan_pieces(
            list(row.get("cuts") or []),
            int(num_frames),
            float(fps),
            min_s=self.min_s,
            max_s=self.max_s,
            trim_frames=self.trim_frames,
            split=self.split,
        )
        out = []
        for p in pieces:
            frames = p.end_frame - p.start_frame
            out.append(
                {
                    "clip_id": clip_id_for(row["video_id"], p.shot_index, p.piece),
                    "video_id": row["video_id"],
                    "path": None,
                    "source_path": row["path"],
                    "shot_index": p.shot_index,
                    "piece": p.piece,
                    "start_frame": p.start_frame,
                    "end_frame": p.end_frame,
                    "start_s": p.start_frame / fps,
                    "end_s": p.end_frame / fps,
                    "duration_s": frames / fps,
                    "fps": fps,
                    "num_frames": frames,
                    "width": width,
                    "height": height,
                    "aspect_ratio": (height / width) if width and height else None,
                    "resolution": (height * width) if width and height else None,
                    "status": "ok",
                    "error": None,
                    "keep": p.drop_reason is None,
                    "drop_reason": p.drop_reason,
                    "shot_detector": row.get("shot_detector"),
                }
            )
        return out
