"""A moved run folder keeps working: clip paths follow the folder.

The table stores each clip's file as an absolute path (so it can be read from anywhere). After
the folder is moved or copied elsewhere those paths point at the old place; the per-video
checkpoints keep them too, so every merge brings them back. After each merge `run` checks the
``path`` column against the current clip folder, and when rows point elsewhere at a file whose
name is in the current clip folder, :class:`RelocateClipsStep` rewrites them (one streaming pass,
only then).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from clipsieve.runfolder import CLIPS_FILE
from clipsieve.steps.base import PostRunStep
from clipsieve.steps.runner import StepRunner
from clipsieve.table import stream_parquet


def _elsewhere(paths: pa.Array, prefix: str) -> np.ndarray:
    inside = pc.fill_null(pc.starts_with(paths, prefix), True)
    return ~np.asarray(inside.to_numpy(zero_copy_only=False), bool)


class RelocateClipsStep(PostRunStep):
    """Point ``path`` at ``clip_dir/<name>`` for rows whose file lives there now."""

    name = "relocate-clips"
    reads = ("path",)
    writes = ("path",)

    def __init__(self, clip_dir: Path) -> None:
        self.clip_dir = clip_dir
        self.prefix = str(clip_dir) + os.sep
        self.moved = 0

    def apply(self, batch: pa.RecordBatch) -> dict[str, Any]:
        paths = batch.column("path")
        out = paths.to_pylist()
        for i in np.flatnonzero(_elsewhere(paths, self.prefix)).tolist():
            here = self.clip_dir / os.path.basename(out[i])
            if here.is_file():
                out[i] = str(here)
                self.moved += 1
        return {"path": pa.array(out, pa.string())}

    def record(self) -> dict[str, Any]:
        return {}  # a repair of where files are, not a step the user ran

    def recorded_steps(self, steps: Any) -> list[dict[str, Any]]:
        return [dict(s) for s in steps]


def relocate_clips(run_dir: Path, clip_dir: Path) -> int:
    """Rewrite the clip paths of a moved run folder; the number of rows changed (0: none)."""
    clips_file = run_dir / CLIPS_FILE
    if not clips_file.is_file() or not clip_dir.is_dir():
        return 0
    source = stream_parquet(clips_file)
    if "path" not in source.schema_arrow.names:
        return 0
    prefix = str(clip_dir) + os.sep
    if not any(
        _elsewhere(b.column("path"), prefix).any() for b in source.iter_batches(columns=["path"])
    ):
        return 0
    step = RelocateClipsStep(clip_dir)
    StepRunner(run_dir).apply(step)
    return step.moved
