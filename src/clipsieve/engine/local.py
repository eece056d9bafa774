"""The local engine: a streaming scheduler over a process pool, checkpointing per video.

How work flows (see :mod:`clipsieve.engine.tasks` for the task kinds)::

    ingest rows ──▶ video task (probe, shots, plan) ──▶ clip tasks (cut, score), a few clips each
                     │ long video: stops after probe        ▲         │
                     └▶ shot segment tasks ──▶ tail task ───┘         │
                        (any worker)           (combine, plan)        │
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
- **A video that kills workers does not kill the run.** When a worker process dies (a crash
  in a decoder, the OOM killer), the pool is restarted and every video that was in flight is
  retried alone; one that kills its worker even then is committed as an error row
  (``engine: worker process died ...``) and the run goes on. (``workers=1`` runs in this
  process, so there a crash ends the run; a resume then redoes only uncommitted videos.)
- **Ctrl-C.** The scheduler terminates the workers and re-raises; committed shards stay, nothing
  half-written is trusted (temp files are removed on the next start).
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from clipsieve.engine.base import Executor, Invocation, ProgressCallback, StageProgressCallback
from clipsieve.engine.tasks import (
    ClipTaskResult,
    SegmentPlan,
    SegmentTaskResult,
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
    unmerge_rows,
)
from clipsieve.errors import UserError
from clipsieve.stage import Pipeline
from clipsieve.storage import RunLocation
from clipsieve.table import CLIP_SCHEMA, STATUS_ERROR, VIDEO_SCHEMA, error_text, rows_to_table


class WorkerDied(UserError):
    """Worker processes die before finishing any task: nothing to blame on one video."""


RESUME_HINT = (
    "finished videos are saved: fix that and run the same command again, or use --workers 1 "
    "to see the error"
)


__all__ = ["LocalRunner", "capped_workers", "default_workers"]


def default_workers() -> int:
    """One worker per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


WORKERS_PER_CORE = 4  # past this, more processes only add memory (each loads the stages)


def worker_cap() -> int:
    """The most local workers a run starts: :data:`WORKERS_PER_CORE` per usable core."""
    return WORKERS_PER_CORE * default_workers()


def capped_workers(requested: int | None) -> tuple[int, str | None]:
    """``(workers to start, a one-line note when the request was lowered)``."""
    wanted = max(1, requested or default_workers())
    cap = worker_cap()
    if wanted <= cap:
        return wanted, None
    return cap, (
        f"--workers {wanted} is more than {WORKERS_PER_CORE} per core on this machine "
        f"({default_workers()} cores): using {cap} (each worker is a process with its own models)"
    )


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
        """The stages release what they hold (no processes to stop)."""
        for stage in self.pipeline.stages:
            stage.teardown()

    def terminate(self) -> None:
        self.close()


@dataclass
class _VideoJob:
    """A started, uncommitted video: its row, and its results as they come back."""

    row: dict[str, Any]
    videos: pa.Table | None = None
    planned_columns: list[str] = field(default_factory=list)
    parts: list[ClipTaskResult | None] = field(default_factory=list)
    unscheduled: pa.Table | None = None  # the plan itself when there are no clip stages
    split: SegmentPlan | None = None  # a segmented video stage still running
    split_videos: pa.Table | None = None  # the row the segments work on
    segment_parts: list[dict[str, Any] | None] = field(default_factory=list)
    stats: StatsByStage = field(default_factory=dict)  # what its finished tasks added

    @property
    def complete(self) -> bool:
        return self.videos is not None and all(p is not None for p in self.parts)

    def clips(self) -> pa.Table:
        if self.unscheduled is not None:
            return self.unscheduled
        results = [p for p in self.parts if p is not None]
        order = serial_column_order(self.planned_columns, results)
        return reorder(join_chunks(r.clips for r in results), order)


class LocalRunner(Executor):
    """Runs a pipeline over videos with a process pool, checkpointing every finished video."""

    name = "local"

    def __init__(
        self,
        pipeline: Pipeline,
        run_dir: Path,
        workers: int | None = None,
        clips_per_task: int = 1,
        location: RunLocation | None = None,
    ) -> None:
        super().__init__(pipeline, run_dir, location)
        self.workers, _ = capped_workers(workers)
        self.clips_per_task = max(1, clips_per_task)

    def _pool(self) -> Any:
        if self.workers == 1:
            return InlinePool(self.pipeline)
        from clipsieve.engine.pool import StagePool

        return StagePool(self.pipeline, self.workers)

    def process(self, job: Invocation) -> int:
        progress, stats, total = job.progress, job.stats, job.total
        scheduler = _Scheduler(
            self, job.todo, stats, total, job.skipped, progress, job.stage_progress
        )
        committed = 0
        while True:
            suspects = self._schedule(scheduler)
            committed += scheduler.committed
            if suspects is None:
                return committed
            if not suspects:
                raise WorkerDied("a worker process died with no task in flight; " + RESUME_HINT)
            # A worker died with these videos in flight; one of them may kill any worker it
            # reaches (a decoder crash, memory blow-up), so each is retried alone first.
            last = scheduler  # carries the counts (finished, clips, tasks) forward
            for row in suspects:
                alone = last = last.follow_up([row], max_videos=1)
                if self._schedule(alone) is not None:
                    if not alone.tasks_done:
                        raise WorkerDied(
                            "worker processes die before finishing any task (out of memory, a "
                            "broken install, or a Python script without `if __name__ == "
                            "'__main__':`); " + RESUME_HINT
                        )
                    self._quarantine(row, stats)
                    alone.finished += 1
                    alone.committed += 1
                    if progress is not None:
                        progress(row["path"], alone.finished, total)
                committed += alone.committed
            scheduler = last.follow_up(list(scheduler.rows))

    def _schedule(self, scheduler: _Scheduler) -> list[dict[str, Any]] | None:
        """Run ``scheduler`` on a fresh pool; the rows in flight if a worker died, else None."""
        pool = self._pool()
        try:
            scheduler.run(pool)
        except BrokenProcessPool:
            pool.terminate()
            return scheduler.abandon()
        except BaseException:
            pool.terminate()
            raise
        pool.close()
        return None

    def _quarantine(self, row: dict[str, Any], stats: StatsByStage) -> None:
        """Commit ``row`` as an error: it killed a worker even when it was the only video."""
        reason = "worker process died"
        error = error_text(
            "engine",
            f"{reason} while processing this video alone (a crash in a decoder or library, or "
            "out of memory); skipped so the run can go on",
        )
        videos = rows_to_table([{**row, "status": STATUS_ERROR, "error": error}], VIDEO_SCHEMA)
        self.store.write(row["video_id"], videos, rows_to_table([], CLIP_SCHEMA))
        stats.setdefault("engine", StageStats()).errors[reason] += 1


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
        stage_progress: StageProgressCallback | None,
        max_videos: int | None = None,
    ) -> None:
        self.runner = runner
        self.rows = iter(todo)
        self.max_videos = max_videos
        self.stats = stats
        self.total = total
        self.finished = skipped
        self.committed = 0
        self.progress = progress
        self.stage_progress = stage_progress
        self.jobs: dict[str, _VideoJob] = {}
        # Tasks of started videos, run before new videos start: ("clips" | "segment" | "tail",
        # arguments of the pool's submit_<kind>).
        self.ready: deque[tuple[str, tuple[Any, ...]]] = deque()
        self.futures: set[Future[Any]] = set()
        self.tasks_done = 0  # tasks that came back from a worker, over all follow-ups

    def follow_up(self, todo: list[dict[str, Any]], max_videos: int | None = None) -> _Scheduler:
        """A scheduler for ``todo`` that continues this one's counts (after a worker died)."""
        after = _Scheduler(
            self.runner, todo, self.stats, self.total, self.finished, self.progress,
            self.stage_progress, max_videos,
        )  # fmt: skip
        after.tasks_done = self.tasks_done
        return after

    def abandon(self) -> list[dict[str, Any]]:
        """Forget the videos in flight (their worker died) and return their rows.

        Their rows no longer count in the stats (time spent does); they count again when retried.
        """
        rows = []
        for job in self.jobs.values():
            rows.append(job.row)
            unmerge_rows(self.stats, job.stats)
        self.jobs.clear()
        self.ready.clear()
        self.futures.clear()
        return rows

    def _fill(self, pool: Any) -> None:
        max_tasks = 2 * pool.workers
        max_videos = self.max_videos or 2 * pool.workers + 1
        while len(self.futures) < max_tasks and self.ready:
            kind, args = self.ready.popleft()
            self.futures.add(getattr(pool, f"submit_{kind}")(*args))
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
                self.tasks_done += 1

    def _handle(self, result: VideoTaskResult | SegmentTaskResult | ClipTaskResult) -> None:
        job = self.jobs[result.video_id]
        merge_stats(self.stats, result.stats)
        merge_stats(job.stats, result.stats)
        if self.stage_progress is not None:
            self.stage_progress(self.stats)
        if isinstance(result, VideoTaskResult) and result.split is not None:
            # A long video: its segments become tasks; the tail task finishes the video.
            job.split, job.split_videos = result.split, result.videos
            job.segment_parts = [None] * len(result.split.segments)
            self.ready.extend(
                ("segment", (result.video_id, result.split, result.videos, i))
                for i in range(len(result.split.segments))
            )
            return
        if isinstance(result, SegmentTaskResult):
            job.segment_parts[result.index] = result.part
            if all(p is not None for p in job.segment_parts):
                parts = [p for p in job.segment_parts if p is not None]
                args = (result.video_id, job.split, job.split_videos, parts)
                self.ready.appendleft(("tail", args))  # clips wait on it: first in line
            return
        if isinstance(result, VideoTaskResult):
            job.videos = result.videos
            job.planned_columns = result.planned.column_names
            if self.runner.pipeline.clip_stages:
                chunks = split_rows(result.planned, self.runner.clips_per_task)
                job.parts = [None] * len(chunks)
                self.ready.extend(("clips", (result.video_id, i, c)) for i, c in enumerate(chunks))
            else:
                job.unscheduled = result.planned
        else:
            job.parts[result.chunk] = result
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
