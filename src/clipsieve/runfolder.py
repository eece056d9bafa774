"""Read and rewrite the clip table of a finished run folder.

Where a run's tables are and how to read them whole (for small runs, the library and tests).
Commands after ``run`` never load the whole table: they are post-run steps applied by the
streaming runner in :mod:`clipsieve.steps`. :func:`save_clips` replaces the table with one held
in memory, keeping the same provenance chain as the runner.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from clipsieve.errors import UserError
from clipsieve.table import parquet_metadata, read_parquet, write_parquet

CLIPS_FILE = "clips.parquet"
VIDEOS_FILE = "videos.parquet"
RUN_JSON = "run.json"


class RunFolderError(UserError):
    """The folder is not a finished clipsieve run (one line saying what is missing)."""


def clips_path(run_dir: str | Path) -> Path:
    """``RUN_DIR/clips.parquet``, or a :class:`RunFolderError` saying how to make it."""
    path = Path(run_dir) / CLIPS_FILE
    if not path.is_file():
        raise RunFolderError(
            f"{run_dir} has no {CLIPS_FILE}: run `clipsieve run INPUT --out {run_dir}` first"
        )
    return path


def load_clips(run_dir: str | Path, vectors: bool = False) -> pa.Table:
    """The run's clip table (all rows, all columns, with its schema metadata); ``vectors``
    joins the vector columns from ``vectors/`` too."""
    table = read_parquet(clips_path(run_dir))
    if vectors:
        from clipsieve.vectors import VECTOR_DIR, attach_vectors

        for path in sorted((Path(run_dir) / VECTOR_DIR).glob("*.parquet")):
            table = attach_vectors(table, run_dir, path.stem)
    return table


def load_videos(run_dir: str | Path) -> pa.Table:
    """The run's videos table."""
    path = Path(run_dir) / VIDEOS_FILE
    if not path.is_file():
        raise RunFolderError(f"{run_dir} has no {VIDEOS_FILE}: it is not a finished clipsieve run")
    return read_parquet(path)


def save_clips(run_dir: str | Path, clips: pa.Table, step: Mapping[str, Any]) -> Path:
    """Atomically replace the run's clip table with ``clips`` (already in memory) after
    ``step``, keeping the provenance chain.

    For a library user or a test holding a small table. Commands go through the step runner
    (:mod:`clipsieve.steps`), which streams instead of holding the table. Vector columns are
    moved to ``vectors/``; the csv/jsonl views are removed like after any step.
    """
    from clipsieve.steps.runner import STEPS_KEY, StepRunner, replace_step
    from clipsieve.vectors import VectorWriter, split_vectors

    run_dir = Path(run_dir)
    path = clips_path(run_dir)
    clips, vectors = split_vectors(clips)
    for column, part in vectors.items():
        writer = VectorWriter(run_dir, column)
        writer.write(part)
        writer.close()
    metadata = parquet_metadata(path)
    metadata[STEPS_KEY] = replace_step(metadata.get(STEPS_KEY, []), step)
    write_parquet(clips.replace_schema_metadata(None), path, metadata)
    runner = StepRunner(run_dir)
    runner.record_run_json(step)
    runner.remove_views()
    return path
