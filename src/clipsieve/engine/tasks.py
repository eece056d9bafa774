"""The units of work every local executor schedules, and per-stage accounting.

A video's work is split into tasks so that one long video cannot hold the whole run:

- a **video task** runs the ``videos`` stages (probe, shot detection) and the plan stage on one
  video row, returning the finished ``videos`` row and the planned ``clips`` rows;
- for a long video it stops before a :class:`~clipsieve.stage.SegmentedStage` (shot detection)
  instead: one **segment task** per segment (read with overlapping context, see
  :mod:`clipsieve.shots.stage`), then a **tail task** combines them and plans the clips;
- a **clip task** runs the ``clips`` stages (cut, score) on a few consecutive planned rows of one
  video.

Every stage is row-wise and deterministic and a segmented stage's combined parts equal its
whole result, so concatenating the clip chunks in plan order gives exactly the table a serial
run over the whole video gives.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from clipsieve.stage import Pipeline, RowStage, Segment, SegmentedStage, Stage, StageError
from clipsieve.table import CLIP_SCHEMA, STATUS_ERROR, VIDEO_SCHEMA, concat_tables, rows_to_table


@dataclass
class StageStats:
    """Per-stage accounting for the run summary."""

    seconds: float = 0.0
    rows_in: int = 0
    rows_out: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    def add(self, other: StageStats) -> None:
        self.seconds += other.seconds
        self.rows_in += other.rows_in
        self.rows_out += other.rows_out
        self.errors.update(other.errors)


StatsByStage = dict[str, StageStats]


def merge_stats(into: StatsByStage, more: StatsByStage) -> None:
    """Add ``more`` (one task's stats, e.g. from a worker process) into ``into``."""
    for name, stats in more.items():
        into.setdefault(name, StageStats()).add(stats)


def unmerge_rows(into: StatsByStage, less: StatsByStage) -> None:
    """Take ``less``'s rows and errors back out of ``into`` (work that will be redone); the
    seconds stay, they were spent."""
    for name, stats in less.items():
        entry = into.get(name)
        if entry is not None:
            entry.rows_in -= stats.rows_in
            entry.rows_out -= stats.rows_out
            entry.errors.subtract(stats.errors)
            entry.errors += Counter()  # drop the reasons that reached zero


def count_new_errors(before: pa.Table, after: pa.Table) -> Counter[str]:
    """Errors that appeared in this stage, by reason (the text after the ``stage:`` prefix)."""
    key = "clip_id" if "clip_id" in after.column_names else "video_id"
    failed_before = (
        {
            k
            for k, s in zip(
                before.column(key).to_pylist(), before.column("status").to_pylist(), strict=True
            )
            if s == "error"
        }
        if key in before.column_names
        else set()
    )
    counter: Counter[str] = Counter()
    for row in after.select([key, "status", "error"]).to_pylist():
        if row["status"] == "error" and row[key] not in failed_before:
            counter[(row["error"] or "").split(": ", 1)[-1][:80]] += 1
    return counter


def timed(
    stats: StatsByStage,
    stage: Stage,
    batch: pa.Table,
    process: Callable[[pa.Table], pa.Table] | None = None,
) -> pa.Table:
    """``stage.process(batch)`` (or ``process(batch)``), with its time, row counts and new
    errors added to ``stats``."""
    start = time.perf_counter()
    out = (process or stage.process)(batch)
    entry = stats.setdefault(stage.name, StageStats())
    entry.seconds += time.perf_counter() - start
    entry.rows_in += batch.num_rows
    entry.rows_out += out.num_rows
    entry.errors.update(count_new_errors(batch, out))
    return out


@dataclass
class SegmentPlan:
    """A video task stopped at a :class:`SegmentedStage`: its segments are tasks of their own."""

    stage_index: int  # position of that stage in ``pipeline.video_stages``
    segments: list[Segment]


@dataclass
class VideoTaskResult:
    video_id: str
    videos: pa.Table  # one row (with ``split``: as it was before the segmented stage)
    planned: pa.Table  # the plan stage's clip rows (possibly none)
    stats: StatsByStage
    split: SegmentPlan | None = None  # set: run the segments, then run_video_tail


@dataclass
class SegmentTaskResult:
    video_id: str
    index: int  # position of the segment
    part: dict[str, Any]  # the stage's part, or {"error": message}
    stats: StatsByStage


@dataclass
class ClipTaskResult:
    video_id: str
    chunk: int  # position of this chunk in the video's plan
    clips: pa.Table
    stats: StatsByStage
    added: list[list[str]] = field(default_factory=list)  # new columns, per clip stage


def run_video_task(pipeline: Pipeline, row: dict[str, Any], split: bool = False) -> VideoTaskResult:
    """Probe, detect shots and plan clips for one ingested video row.

    With ``split``, a :class:`SegmentedStage` that wants to split this video stops the task
    there: the result carries the segments, which the caller runs as
    :func:`run_segment_task` and finishes with :func:`run_video_tail`.
    """
    stats: StatsByStage = {}
    videos = rows_to_table([row], VIDEO_SCHEMA)
    for index, stage in enumerate(pipeline.video_stages):
        if split and isinstance(stage, SegmentedStage):
            current = videos.to_pylist()[0]
            segments = [] if current.get("status") == STATUS_ERROR else stage.segments(current)
            if len(segments) > 1:
                plan = SegmentPlan(index, segments)
                return VideoTaskResult(row["video_id"], videos, _no_clips(), stats, plan)
        videos = timed(stats, stage, videos)
    return _plan(pipeline, row["video_id"], videos, stats)


def run_segment_task(
    pipeline: Pipeline, video_id: str, plan: SegmentPlan, videos: pa.Table, index: int
) -> SegmentTaskResult:
    """One segment of a split video stage; a failure becomes the part's ``error``."""
    stage = pipeline.video_stages[plan.stage_index]
    assert isinstance(stage, SegmentedStage)
    started = time.perf_counter()
    part = segment_part(stage, videos.to_pylist()[0], plan.segments[index])
    stats = {stage.name: StageStats(seconds=time.perf_counter() - started)}
    return SegmentTaskResult(video_id, index, part, stats)


def segment_part(stage: SegmentedStage, row: dict[str, Any], segment: Segment) -> dict[str, Any]:
    """``stage.process_segment``; a failure becomes the part's ``error`` (see combine_parts)."""
    try:
        return stage.process_segment(row, segment)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        return {"error": str(exc) or type(exc).__name__}


def combine_parts(
    stage: SegmentedStage, row: dict[str, Any], parts: list[dict[str, Any]]
) -> dict[str, Any]:
    """The finished row; a failed segment fails it with that segment's reason, the same error a
    whole read raising it would record."""
    failed = next((p["error"] for p in parts if "error" in p), None)
    if failed is not None:
        raise StageError(failed)
    return stage.combine_segments(row, parts)


def run_video_tail(
    pipeline: Pipeline,
    video_id: str,
    plan: SegmentPlan,
    videos: pa.Table,
    parts: list[dict[str, Any]],
) -> VideoTaskResult:
    """Combine a split stage's parts, then run the remaining video stages and the plan."""
    stats: StatsByStage = {}
    stage = pipeline.video_stages[plan.stage_index]
    assert isinstance(stage, RowStage) and isinstance(stage, SegmentedStage)

    def combine(row: dict[str, Any]) -> dict[str, Any]:
        return combine_parts(stage, row, parts)

    videos = timed(stats, stage, videos, lambda batch: stage.map_rows(batch, combine))
    for later in pipeline.video_stages[plan.stage_index + 1 :]:
        videos = timed(stats, later, videos)
    return _plan(pipeline, video_id, videos, stats)


def _no_clips() -> pa.Table:
    return CLIP_SCHEMA.empty_table()


def _plan(
    pipeline: Pipeline, video_id: str, videos: pa.Table, stats: StatsByStage
) -> VideoTaskResult:
    planned = timed(stats, pipeline.plan_stage, videos)
    if planned.num_rows == 0:
        planned = _no_clips()
    return VideoTaskResult(video_id, videos, planned, stats)


def run_clip_task(pipeline: Pipeline, video_id: str, chunk: int, clips: pa.Table) -> ClipTaskResult:
    """Cut and score a few planned clip rows of one video."""
    stats: StatsByStage = {}
    added: list[list[str]] = []
    for stage in pipeline.clip_stages:
        before = set(clips.column_names)
        if clips.num_rows:
            clips = timed(stats, stage, clips)
        added.append([c for c in clips.column_names if c not in before])
    return ClipTaskResult(video_id, chunk, clips, stats, added)


def split_rows(table: pa.Table, size: int) -> list[pa.Table]:
    """``table`` in consecutive slices of at most ``size`` rows (none for an empty table)."""
    size = max(1, size)
    return [table.slice(i, size) for i in range(0, table.num_rows, size)]


def join_chunks(chunks: Iterable[pa.Table]) -> pa.Table:
    """Clip chunks of one video back into one table, in plan order."""
    parts = [c for c in chunks if c.num_rows]
    if not parts:
        return CLIP_SCHEMA.empty_table()
    if len(parts) == 1:
        return parts[0]
    return concat_tables(parts, CLIP_SCHEMA).combine_chunks()


def serial_column_order(planned: list[str], results: list[ClipTaskResult]) -> list[str]:
    """The column order a serial run over the whole video would have produced.

    A row-wise stage adds columns in the order it first meets them over the batch, and every
    later stage keeps that order. A chunk that holds only dropped rows meets a later stage's
    columns first, so plain concatenation could order columns differently from a serial run;
    ordering by (stage that first added the column, first chunk that has it) restores it.
    """
    order = list(planned)
    seen = set(order)
    stages = max((len(r.added) for r in results), default=0)
    for stage in range(stages):
        for result in results:
            for column in result.added[stage] if stage < len(result.added) else ():
                if column not in seen:
                    seen.add(column)
                    order.append(column)
    return order


def reorder(table: pa.Table, order: list[str]) -> pa.Table:
    """``table`` with its columns in ``order`` (unknown ones kept, at the end)."""
    names = [c for c in order if c in table.column_names]
    names += [c for c in table.column_names if c not in set(names)]
    return table.select(names) if names != table.column_names else table
