"""Score an existing run folder: add score columns to its clip table without re-cutting.

Used by ``clipsieve score RUN_DIR --scorers a,b``. The clip table is rewritten atomically with
the score stage appended to its provenance metadata and to ``run.json``; the csv/jsonl exports
are rewritten so they carry the new columns.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from clipsieve.export import export_run
from clipsieve.score.stage import ScoreStage
from clipsieve.table import (
    CLIP_SCHEMA,
    concat_tables,
    parquet_metadata,
    read_parquet,
    write_json,
    write_parquet,
)


class RunFolderError(ValueError):
    """The folder is not a finished clipsieve run (one line saying what is missing)."""


def score_run(
    run_dir: str | Path,
    scorers: Sequence[str],
    scorer_params: dict[str, dict[str, Any]] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> pa.Table:
    """Score every kept clip of ``run_dir`` and rewrite its tables; returns the clip table."""
    run_dir = Path(run_dir)
    clips_path = run_dir / "clips.parquet"
    if not clips_path.is_file():
        raise RunFolderError(f"{run_dir} has no clips.parquet: run `clipsieve run` into it first")
    stage = ScoreStage(scorers=list(scorers), scorer_params=dict(scorer_params or {}))
    stage.setup()
    clips = read_parquet(clips_path)
    # Drop stale columns of the scorers being re-run so the new values replace them.
    stale = [c for c in stage.outputs if c in clips.column_names]
    clips = clips.drop_columns(stale)
    parts = []
    for start in range(clips.num_rows):
        parts.append(stage.process(clips.slice(start, 1)))
        if progress is not None:
            progress(start + 1, clips.num_rows)
    scored = concat_tables(parts, CLIP_SCHEMA) if parts else clips
    metadata = parquet_metadata(clips_path)
    stages = [s for s in metadata.get("clipsieve_stages", []) if s.get("name") != stage.name]
    metadata["clipsieve_stages"] = [*stages, stage.describe()]
    write_parquet(scored, clips_path, metadata)
    export_run(run_dir, scored, formats=("csv", "jsonl"))
    info_path = run_dir / "run.json"
    if info_path.is_file():
        info = json.loads(info_path.read_text(encoding="utf-8"))
        info["stages"] = [s for s in info.get("stages", []) if s.get("name") != stage.name]
        info["stages"].append(stage.describe())
        write_json(info, info_path)
    return scored
