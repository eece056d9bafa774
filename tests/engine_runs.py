"""What the engine and storage tests share: a cheap CPU config and a private input subset."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from clipsieve.config import RunConfig


def cheap_config(
    workers: int = 1,
    executor: str = "local",
    clips_per_task: int | None = None,
    formats: Sequence[str] = ("parquet",),
) -> RunConfig:
    """The real pipeline at its cheapest: ``content`` shots, ultrafast cut, two fast scorers,
    no report."""
    config = RunConfig()
    config.shots.detector = "content"
    config.score.scorers = ["static", "phash"]
    config.cut.preset = "ultrafast"
    config.export.formats = list(formats)
    config.report.enabled = False
    config.engine.executor = executor  # type: ignore[assignment]
    config.engine.workers = workers
    config.engine.clips_per_task = clips_per_task
    return config


def copy_subset(sample_set: Path, folder: Path, names: Sequence[str]) -> Path:
    """``folder`` holding copies of the named sample videos (a run reads only these)."""
    for name in names:
        shutil.copy(sample_set / name, folder / name)
    return folder


@contextlib.contextmanager
def local_ray(num_cpus: int = 2, num_gpus: int = 0) -> Iterator[Any]:
    """A private Ray instance for the test (skipped without Ray); it inherits this process's
    environment as it is now. ``num_gpus``: logical GPUs (Ray places by them; nothing needs a
    real one unless a stage uses CUDA)."""
    ray = pytest.importorskip("ray")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(
        address="local", num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False,
        log_to_driver=False, configure_logging=False,
    )  # fmt: skip
    try:
        yield ray
    finally:
        ray.shutdown()
