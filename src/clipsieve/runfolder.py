"""Read and rewrite the clip table of a finished run folder.

Commands that work on a finished run (``score``, ``filter``, ``dedup``, ``cluster``, ``caption``,
``predict``, ...) all load ``RUN_DIR/clips.parquet``, add or change columns, and write it back
through :func:`save_clips`, which keeps the provenance chain: the step is appended to the Parquet
key-value metadata (``clipsieve_stages``) and to ``run.json``, and the csv/jsonl views are
re-exported so they never disagree with the Parquet table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from clipsieve.errors import UserError
from clipsieve.table import parquet_metadata, read_parquet, write_json, write_parquet

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


def load_clips(run_dir: str | Path) -> pa.Table:
    """The run's clip table (all rows, all columns, with its schema metadata)."""
    return read_parquet(clips_path(run_dir))


def load_videos(run_dir: str | Path) -> pa.Table:
    """The run's videos table."""
    path = Path(run_dir) / VIDEOS_FILE
    if not path.is_file():
        raise RunFolderError(f"{run_dir} has no {VIDEOS_FILE}: it is not a finished clipsieve run")
    return read_parquet(path)


def _replace_step(steps: Sequence[Mapping[str, Any]], step: Mapping[str, Any]) -> list[Any]:
    """``steps`` with any earlier entry of the same name replaced by ``step`` (at the end)."""
    return [s for s in steps if s.get("name") != step.get("name")] + [dict(step)]


def save_clips(
    run_dir: str | Path,
    clips: pa.Table,
    step: Mapping[str, Any],
    exports: Sequence[str] = ("csv", "jsonl"),
) -> Path:
    """Atomically rewrite the run's clip table after a post-run ``step``.

    ``step`` describes what changed the table (``{"name", "version", "params", ...}``, as
    :meth:`clipsieve.stage.Stage.describe` returns); a re-run of the same step replaces its
    earlier record instead of piling up duplicates.
    """
    from clipsieve.export import export_run

    run_dir = Path(run_dir)
    path = clips_path(run_dir)
    metadata = parquet_metadata(path)
    metadata["clipsieve_stages"] = _replace_step(metadata.get("clipsieve_stages", []), step)
    write_parquet(clips, path, metadata)
    if exports:
        export_run(run_dir, clips, formats=tuple(exports))
    info_path = run_dir / RUN_JSON
    if info_path.is_file():
        info = json.loads(info_path.read_text(encoding="utf-8"))
        info["stages"] = _replace_step(info.get("stages", []), step)
        write_json(info, info_path)
    return path
