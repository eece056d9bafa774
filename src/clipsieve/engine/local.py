"""The simple local runner: one video at a time, every stage, then an atomic checkpoint.

It is deliberately plain (serial, in-process) and replaceable: it only needs a
:class:`~clipsieve.pipeline.Pipeline`, the ingested ``videos`` rows and a run directory. A
parallel streaming executor or Ray Data can take the same three things.

Resume: a video whose shard exists is skipped, so re-running the same command after a crash,
SIGKILL or Ctrl-C finishes the remaining videos and the merged tables equal those of an
uninterrupted run (rows are merged in ingest order, and every stage is deterministic).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from clipsieve.engine.checkpoint import ShardStore
from clipsieve.pipeline import Pipeline
from clipsieve.table import CLIP_SCHEMA, VIDEO_SCHEMA, rows_to_table

ProgressCallback = Callable[[str, int, int], None]  # (video path, done, total)


@dataclass
class StageStats:
    """Per-stage accounting for the run summary."""

    seconds: float = 0.0
    rows_in: int = 0
    rows_out: int = 0
    errors: Counter[str] = field(default_factory=Counter)


@dataclass
class RunResult:
    videos: pa.Table
    clips: pa.Table
    processed: int  # videos processed in this invocation
    skipped: int  # videos already finished by an earlier invocation
    stats: dict[str, StageStats]


def _count_new_errors(before: pa.Table, after: pa.Table) -> Counter[str]:
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


class LocalRunner:
    """Runs a pipeline video by video in this process, checkpointing after each video."""

    def __init__(self, pipeline: Pipeline, run_dir: Path) -> None:
        self.pipeline = pipeline
        self.run_dir = Path(run_dir)
        self.store = ShardStore(self.run_dir)

    def _timed(self, stats: dict[str, StageStats], stage: Any, batch: pa.Table) -> pa.Table:
        start = time.perf_counter()
        out = stage.process(batch)
        entry = stats.setdefault(stage.name, StageStats())
        entry.seconds += time.perf_counter() - start
        entry.rows_in += batch.num_rows
        entry.rows_out += out.num_rows
        entry.errors.update(_count_new_errors(batch, out))
        return out

    def process_video(
        self, row: dict[str, Any], stats: dict[str, StageStats]
    ) -> tuple[pa.Table, pa.Table]:
        """All stages for one video: (videos table of 1 row, clips table)."""
        videos = rows_to_table([row], VIDEO_SCHEMA)
        for stage in self.pipeline.video_stages:
            videos = self._timed(stats, stage, videos)
        clips = self._timed(stats, self.pipeline.plan_stage, videos)
        if clips.num_rows == 0:
            clips = CLIP_SCHEMA.empty_table()
        for stage in self.pipeline.clip_stages:
            if clips.num_rows:
                clips = self._timed(stats, stage, clips)
        return videos, clips

    def run(
        self, rows: list[dict[str, Any]], progress: ProgressCallback | None = None
    ) -> RunResult:
        for stage in self.pipeline.stages:
            stage.setup()
        stats: dict[str, StageStats] = {}
        self.store.remove_partial()
        done = self.store.done_ids()
        processed = skipped = 0
        for index, row in enumerate(rows):
            if row["video_id"] in done:
                skipped += 1
            else:
                videos, clips = self.process_video(row, stats)
                self.store.write(row["video_id"], videos, clips)
                processed += 1
            if progress is not None:
                progress(row["path"], index + 1, len(rows))
        videos, clips = self.store.read([row["video_id"] for row in rows])
        return RunResult(videos, clips, processed, skipped, stats)
