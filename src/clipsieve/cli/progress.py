"""The progress display of ``clipsieve run``: one bar for committed videos, one per stage.

Each stage bar counts the rows the stage has taken in during this invocation, with its rate,
ETA and errors so far. Video stages (and the plan) count videos, so their total is the videos
this invocation processes; clip stages count clips, so their total grows as plans come in (the
plan stage's rows out), and their ETA firms up once every video is planned.
"""

from __future__ import annotations

from pathlib import Path

from rich.progress import Progress, TaskID

from clipsieve.engine.tasks import StatsByStage
from clipsieve.stage import Pipeline


class RunProgress:
    """Rich progress tasks for a run; its two methods are the engines' progress callbacks."""

    def __init__(self, progress: Progress, pipeline: Pipeline, videos: int, todo: int) -> None:
        self.progress = progress
        self.resumed = videos - todo
        self.videos = progress.add_task(
            "videos", total=videos, completed=self.resumed, rate="", current=""
        )
        self.plan = pipeline.plan_stage.name
        self.clip_stages = {stage.name for stage in pipeline.clip_stages}
        self.todo = todo
        self.stages: dict[str, TaskID] = {
            stage.name: progress.add_task(
                f"  {stage.name}",
                total=None if stage.name in self.clip_stages else todo,
                rate="",
                current="",
            )
            for stage in pipeline.stages
        }

    def _rate(self, task: TaskID, done: int) -> str:
        elapsed = self.progress.tasks[task].elapsed or 0.0
        return f"{done / elapsed:.2f}/s" if elapsed > 0 and done else ""

    def on_video(self, path: str, done: int, total: int) -> None:
        """A video was committed (``done`` of ``total``, resumed ones included)."""
        self.progress.update(
            self.videos,
            completed=done,
            total=total,
            rate=self._rate(self.videos, done - self.resumed),
            current=Path(path).name[:40],
        )

    def on_stages(self, stats: StatsByStage) -> None:
        """The per-stage stats of this invocation so far."""
        planned = stats[self.plan].rows_out if self.plan in stats else None
        for name, task in self.stages.items():
            entry = stats.get(name)
            if entry is None:
                continue
            errors = sum(entry.errors.values())
            self.progress.update(
                task,
                completed=entry.rows_in,
                total=planned if name in self.clip_stages else self.todo,
                rate=self._rate(task, entry.rows_in),
                current=f"{errors} errors" if errors else "",
            )
