"""``run``'s executors by name: the one place that knows which classes they are."""

from __future__ import annotations

from pathlib import Path

from clipsieve.engine.base import Executor
from clipsieve.stage import Pipeline
from clipsieve.storage import RunLocation

EXECUTORS = ("local", "ray")


def make_executor(
    name: str,
    pipeline: Pipeline,
    run_dir: str | Path,
    *,
    location: RunLocation | None = None,
    workers: int | None = None,
    clips_per_task: int | None = None,
    address: str | None = None,
) -> Executor:
    """The executor called ``name`` (``local`` or ``ray``); ``workers``: local processes or
    Ray CPUs (None: the machine's or cluster's); ``address``: the Ray cluster to join."""
    if name == "ray":
        from clipsieve.engine.ray import RayRunner

        return RayRunner(
            pipeline, Path(run_dir), address=address, num_cpus=workers,
            clips_per_task=clips_per_task, location=location,
        )  # fmt: skip
    if name != "local":
        raise ValueError(f"unknown executor {name!r} (known: {', '.join(EXECUTORS)})")
    from clipsieve.engine.local import LocalRunner

    return LocalRunner(
        pipeline, Path(run_dir), workers=workers, clips_per_task=clips_per_task or 1,
        location=location,
    )  # fmt: skip
