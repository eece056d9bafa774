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
import yaml

from clipsieve.errors import UserError
from clipsieve.runfolder import load_clips, save_clips
from clipsieve.score.stage import ScoreStage
from clipsieve.table import CLIP_SCHEMA, concat_tables


def parse_scorer_params(items: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``["motion.method=farneback", "match.prompts=[cat, dog]"]`` → nested scorer params.

    Values are read as YAML scalars/lists, so numbers, booleans and lists need no quoting.
    """
    params: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        scorer, dot, name = key.strip().partition(".")
        if not sep or not dot or not scorer or not name:
            raise UserError(
                f"--param {item!r}: write it as SCORER.KEY=VALUE, e.g. motion.every_s=0.5"
            )
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            raise UserError(f"--param {item!r}: the value is not valid YAML") from None
        params.setdefault(scorer, {})[name] = value
    return params


def score_run(
    run_dir: str | Path,
    scorers: Sequence[str],
    scorer_params: dict[str, dict[str, Any]] | None = None,
    progress: Callable[[int, int], None] | None = None,
    batch_rows: int = 32,
) -> pa.Table:
    """Score every kept clip of ``run_dir`` and rewrite its tables; returns the clip table."""
    clips = load_clips(run_dir)
    stage = ScoreStage(scorers=list(scorers), scorer_params=dict(scorer_params or {}))
    stage.setup()
    # Drop stale columns of the scorers being re-run so the new values replace them.
    stale = [c for c in stage.outputs if c in clips.column_names]
    clips = clips.drop_columns(stale)
    parts = []
    # Slices, not single rows: model scorers batch the frames of all clips in a slice.
    for start in range(0, clips.num_rows, batch_rows):
        parts.append(stage.process(clips.slice(start, batch_rows)))
        if progress is not None:
            progress(min(start + batch_rows, clips.num_rows), clips.num_rows)
    scored = concat_tables(parts, CLIP_SCHEMA) if parts else clips
    save_clips(run_dir, scored, stage.describe())
    return scored
