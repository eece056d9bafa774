"""The one interface of ``run``'s executors: what they take, what they hand back, how they resume.

An executor (:class:`LocalRunner` in ``local.py``, :class:`RayRunner` in ``ray.py``) runs the
stages of a :class:`~clipsieve.stage.Pipeline` over video rows and commits each finished video
to the :class:`~clipsieve.engine.checkpoint.ShardStore`. Everything around that is the same for
every executor and lives here: which videos are already done (resume), the progress callbacks,
the merge of the shards into the run's tables, and the :class:`RunResult`. An executor
implements only :meth:`Executor.process`. :func:`make_executor` picks one by name.

The merged tables are files (``videos.parquet``, ``clips.parquet``), written by streaming the
shards; :class:`RunResult` reads them only when someone asks for a whole table, so a run over
millions of clips does not hold its table in memory just to print a summary.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

from clipsieve.engine.checkpoint import MergeCounts, ShardStore
from clipsieve.engine.tasks import StatsByStage
from clipsieve.stage import Pipeline
from clipsieve.storage import RunLocation
from clipsieve.table import read_parquet

ProgressCallback = Callable[[str, int, int], None]  # (video path, videos done, total)
# The per-stage stats of this invocation so far (rows in/out, errors, seconds), after each task.
StageProgressCallback = Callable[[StatsByStage], None]


@dataclass
class RunResult:
    videos_path: Path
    clips_path: Path
    processed: int  # videos processed in this invocation
    skipped: int  # videos already finished by an earlier invocation
    stats: StatsByStage
    counts: MergeCounts = field(default_factory=MergeCounts)
    engine: str = "local"
    workers: int = 1
    startup_s: float = 0.0  # engine start-up inside the engine time (Ray: joining/starting Ray)

    @cached_property
    def videos(self) -> pa.Table:
        """The merged ``videos`` table (read from ``videos.parquet`` on first use)."""
        return read_parquet(self.videos_path)

    @cached_property
    def clips(self) -> pa.Table:
        """The merged ``clips`` table (read from ``clips.parquet`` on first use)."""
        return read_parquet(self.clips_path)


@dataclass
class Invocation:
    """What one invocation has to do (the unfinished videos; how many earlier ones did), whom
    it tells how it goes, and the per-stage stats it adds to."""

    todo: list[dict[str, Any]]
    skipped: int  # videos committed by an earlier invocation
    total: int  # all videos of the run
    progress: ProgressCallback | None = None
    stage_progress: StageProgressCallback | None = None
    stats: StatsByStage = field(default_factory=dict)


class Executor(ABC):
    """Runs a pipeline over video rows, committing each finished video as a shard.

    Subclasses set :attr:`name`, :attr:`workers` and implement :meth:`process`; resuming,
    progress for resumed videos, the merge and the result are shared.
    """

    name: ClassVar[str]

    def __init__(
        self, pipeline: Pipeline, run_dir: str | Path, location: RunLocation | None = None
    ) -> None:
        self.pipeline = pipeline
        self.run_dir = Path(run_dir)
        self.store = ShardStore(self.run_dir, location)
        self.workers = 1  # what the result reports (local processes, Ray CPUs)
        self.startup_s = 0.0  # engine start-up inside the engine time (e.g. joining Ray)

    def pending(
        self,
        rows: list[dict[str, Any]],
        progress: ProgressCallback | None = None,
        stage_progress: StageProgressCallback | None = None,
    ) -> Invocation:
        """The videos of ``rows`` not committed yet (a resume redoes exactly these); half-written
        shards of an interrupted invocation are removed first."""
        self.store.remove_partial()
        done_ids = self.store.done_ids()
        todo = [row for row in rows if row["video_id"] not in done_ids]
        skipped = len(rows) - len(todo)
        if progress is not None and skipped:
            progress(rows[-1]["path"], skipped, len(rows))
        return Invocation(todo, skipped, len(rows), progress, stage_progress)

    @abstractmethod
    def process(self, job: Invocation) -> int:
        """Process ``job.todo`` (never empty), committing each video to :attr:`store` and adding
        to ``job.stats``; return how many videos were committed."""

    def close(self) -> None:
        """Release what :meth:`process` left running for later (called after the merge)."""
        return None

    def execute(
        self,
        rows: list[dict[str, Any]],
        progress: ProgressCallback | None = None,
        stage_progress: StageProgressCallback | None = None,
    ) -> tuple[int, int, StatsByStage]:
        """Process every unfinished video of ``rows``; return (processed, skipped, stats)."""
        job = self.pending(rows, progress, stage_progress)
        processed = self.process(job) if job.todo else 0
        return processed, job.skipped, job.stats

    def run(
        self,
        rows: list[dict[str, Any]],
        progress: ProgressCallback | None = None,
        stage_progress: StageProgressCallback | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> RunResult:
        """Process (or resume) ``rows``, then stream the shards into the two merged tables."""
        try:
            processed, skipped, stats = self.execute(rows, progress, stage_progress)
            videos_path, clips_path, counts = self.store.merge_run(self.run_dir, rows, metadata)
        finally:
            self.close()
        return RunResult(
            videos_path, clips_path, processed, skipped, stats, counts,
            self.name, self.workers, self.startup_s,
        )  # fmt: skip
