"""Score an existing run folder: add score columns to its clip table without re-cutting.

Used by ``clipsieve score RUN_DIR --scorers a,b``. The clip table is rewritten atomically with
the score stage appended to its provenance metadata and to ``run.json``; the csv/jsonl exports
are rewritten so they carry the new columns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from clipsieve.runfolder import load_clips, save_clips
from clipsieve.score.stage import ScoreStage
from clipsieve.table import CLIP_SCHEMA, concat_tables


def score_run(
    run_dir: str | Path,
    scorers: Sequence[str],
    scorer_params: dict[str, dict[str, Any]] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> pa.Table:
    """Score every kept clip of ``run_dir`` and rewrite its tables; returns the clip table."""
    clips = load_clips(run_dir)
    stage = ScoreStage(scorers=list(scorers), scorer_params=dict(scorer_params or {}))
    stage.setup()
    # Drop stale columns of the scorers being re-run so the new values replace them.
    stale = [c for c in stage.outputs if c in clips.column_names]
    clips = clips.drop_columns(stale)
    parts = []
    for start in range(clips.num_rows):
        parts.append(stage.process(clips.slice(start, 1)))
        if progress is not None:
            progress(start + 1, clips.num_rows)
    scored = concat_tables(parts, CLIP_SCHEMA) if parts else clips
    save_clips(run_dir, scored, stage.describe())
    return scored
