"""The local engine: a streaming scheduler over a process pool, checkpointing per video.

How work flows (see :mod:`clipsieve.engine.tasks` for the two task kinds)::

    ingest rows ──▶ video task (probe, shots, plan) ──▶ clip tasks (cut, score), a few clips each
                                                              │
                        all chunks of a video back ──▶ ShardStore.write (atomic, commit marker)

- **Bounded.** At most ``2 × workers`` tasks are queued or running, and at most
  ``2 × workers + 1`` videos are between "started" and "committed"; finished clip chunks are
  scheduled before new videos, so started videos finish first. Memory holds the rows of those
  few videos only, never the dataset's (the final merge streams shards into one file).
- **Parallel.** ``workers`` processes (default: one per core), each with the stages set up once
  (:mod:`clipsieve.engine.pool`). ``workers=1`` runs the same tasks in this process.
- **No straggler stalls the run.** A long video's clips become many small tasks that every worker
  takes from, while other videos' shot detection runs beside them.
- **Exactly once.** A video is committed only when all its chunks are back, by the atomic shard
  pair of :class:`~clipsieve.engine.checkpoint.ShardStore`; a resume redoes exactly the
  uncommitted videos, and chunks are joined in plan order, so interrupted + resumed equals
  uninterrupted, row for row.
- **Ctrl-C.** The scheduler terminates the workers and re-raises; committed shards stay, nothing
  half-written is trusted (temp files are removed on the next start).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from clipsieve.engine.checkpoint import ShardStore
from clipsieve.engine.result import RunResult
from clipsieve.engine.tasks import (
    ClipTaskResult,
    StageStats,
    StatsByStage,
    VideoTaskResult,
    join_chunks,
    merge_stats,
    reorder,
    run_clip_task,
    run_video_task,
    serial_column_order,
    split_rows,
)
from clipsieve.errors import UserError
from clipsieve.pipeline import Pipeline


class WorkerDied(UserError):
    """A worker process vanished mid-task; the run can be resumed."""


ProgressCallback = Callable[[str, int, int], None]  # (video path, videos done, total)
ClipProgressCallback = Callable[[int, int], None]  # (clips done, clips planned so far)

__all__ = ["LocalRunner", "ProgressCallback", "RunResult", "StageStats", "default_workers"]


def default_workers() -> int:
    """One worker per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class InlinePool:
    """The pool interface, run in this process (``workers=1``): no start-up cost, same tasks."""

    workers = 1

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        for stage in pipeline.stages:
            stage.setup()

    @staticmethod
    def _done(value: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_result(value)
        return future

    def submit_video(self, row: dict[str, Any]) -> Future[VideoTaskResult]:
        return self._done(run_video_task(self.pipeline, row))

    def submit_clips(self, video_id: str, chunk: int, clips: pa.Table) -> Future[ClipTaskResult]:
        return self._done(run_clip_task(self.pipeline, video_id, chunk, clips))

    def close(self) -> None:
        """Nothing to stop."""

    def terminate(self) -> None:
        """Nothing to stop."""


@dataclass
class _VideoJob:
    """A started, uncommitted video: its row, and its results as they come back."""

    row: dict[str, Any]
    videos: pa.Table | None = None
    planned_columns: list[str] = field(default_factory=list)
    parts: list[ClipTaskResult | None] = field(default_factory=list)
    unscheduled: pa.Table | None = None  # the plan itself when there are no clip stages

    @property
    def complete(self) -> bool:
        return self.videos is not None and all(p is not None for p in self.parts)

    def clips(self) -> pa.Table:
        if self.unscheduled is not None:
            return self.unscheduled
        results = [p for p in self.parts if p is not None]
        order = serial_column_order(self.planned_columns, results)
        return reorder(join_chunks(r.clips for r in results), order)


class LocalRunner:
    """Runs a pipeline over videos with a process pool, checkpointing every finished video."""

    def __init__(
        self,
        pipeline: Pipeline,
        run_dir: Path,
        workers: int | None = None,
        clips_per_task: int = 1,
    ) -> None:
        self.pipeline = pipeline
        self.run_dir = Path(run_dir)
        self.store = ShardStore(self.run_dir)
        self.workers = max(1, workers or default_workers())
        self.clips_per_task = max(1, clips_per_task)

    def _pool(self) -> Any:
        if self.workers == 1:
            return InlinePool(self.pipeline)
        from clipsieve.engine.pool import StagePool

        return StagePool(self.pipeline, self.workers)

    def execute(
        self,
        rows: list[dict[str, Any]],
        progress: ProgressCallback | None = None,
        clip_progress: ClipProgressCallback | None = None,
    ) -> tuple[int, int, StatsByStage]:
        """Process every unfinished video of ``rows``; return (processed, skipped, stats)."""
        self.store.remove_partial()
        done_ids = self.store.done_ids()
        todo = [row for row in rows if row["video_id"] not in done_ids]
        skipped = len(rows) - len(todo)
        if progress is not None and skipped:
            progress(rows[-1]["path"], skipped, len(rows))
        stats: StatsByStage = {}
        if not todo:
            return 0, skipped, stats
        scheduler = _Scheduler(self, todo, stats, len(rows), skipped, progress, clip_progress)
        pool = self._pool()
        try:
            scheduler.run(pool)
        except BrokenProcessPool:
            pool.terminate()
            raise WorkerDied(
                "a worker process died (out of memory, a crash in a decoder, or a Python script "
                "without `if __name__ == '__main__':`); finished videos are saved: run the same "
                "command again to resume, or use --workers 1"
            ) from None
        except BaseException:
            pool.terminate()
            raise
        pool.close()
        return scheduler.committed, skipped, stats

    def run(
        self,
        rows: list[dict[str, Any]],
        progress: ProgressCallback | None = None,
        clip_progress: ClipProgressCallback | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> RunResult:
        """Process (or resume) ``rows``, then stream the shards into the two merged tables."""
        processed, skipped, stats = self.execute(rows, progress, clip_progress)
        videos_path, clips_path, counts = self.store.merge_run(self.run_dir, rows, metadata)
        return RunResult(
            videos_path, clips_path, processed, skipped, stats, counts, "local", self.workers
        )


class _Scheduler:
    """The bounded streaming loop of one :meth:`LocalRunner.execute` call."""

    def __init__(
        self,
        runner: LocalRunner,
        todo: list[dict[str, Any]],
        stats: StatsByStage,
        total: int,
        skipped: int,
        progress: ProgressCallback | None,
        clip_progress: ClipProgressCallback | None,
    ) -> None:
        self.runner = runner
        self.rows = iter(todo)
        self.stats = stats
        self.total = total
        self.finished = skipped
        self.committed = 0
        self.progress = progress
        self.clip_progress = clip_progress
        self.jobs: dict[str, _VideoJob] = {}
        self.ready: deque[tuple[str, int, pa.Table]] = deque()
        self.futures: set[Future[Any]] = set()
        self.clips_done = 0
        self.clips_planned = 0

    def _fill(self, pool: Any) -> None:
        max_tasks = 2 * pool.workers
        max_videos = 2 * pool.workers + 1
        while len(self.futures) < max_tasks and self.ready:
            self.futures.add(pool.submit_clips(*self.ready.popleft()))
        while len(self.futures) < max_tasks and len(self.jobs) < max_videos:
            row = next(self.rows, None)
            if row is None:
                break
            self.jobs[row["video_id"]] = _VideoJob(row)
            self.futures.add(pool.submit_video(row))

    def run(self, pool: Any) -> None:
        while True:
            self._fill(pool)
            if not self.futures:
                break
            finished, _ = wait(self.futures, return_when=FIRST_COMPLETED)
            for future in finished:
                self.futures.discard(future)
                self._handle(future.result())

    def _handle(self, result: VideoTaskResult | ClipTaskResult) -> None:
        job = self.jobs[result.video_id]
        merge_stats(self.stats, result.stats)
        if isinstance(result, VideoTaskResult):
            job.videos = result.videos
            job.planned_columns = result.planned.column_names
            if self.runner.pipeline.clip_stages:
                chunks = split_rows(result.planned, self.runner.clips_per_task)
                job.parts = [None] * len(chunks)
                self.ready.extend((result.video_id, i, c) for i, c in enumerate(chunks))
            else:
                job.unscheduled = result.planned
            self.clips_planned += result.planned.num_rows
        else:
            job.parts[result.chunk] = result
            self.clips_done += result.clips.num_rows
        if self.clip_progress is not None:
            self.clip_progress(self.clips_done, self.clips_planned)
        if job.complete:
            self._commit(result.video_id, job)

    def _commit(self, video_id: str, job: _VideoJob) -> None:
        assert job.videos is not None
        self.runner.store.write(video_id, job.videos, job.clips())
        del self.jobs[video_id]
        self.committed += 1
        self.finished += 1
        if self.progress is not None:
            self.progress(job.row["path"], self.finished, self.total)
