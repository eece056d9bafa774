"""``clipsieve caption`` without the command line: caption a finished run folder.

Order: caption the wanted rows (in chunks, saving the table after each so Ctrl-C loses at most
one chunk), optionally rewrite, post-process every caption, save, then optionally recompute the
text-video ``match`` score against the new captions through the score stage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from clipsieve.caption.backends import BackendUnavailable
from clipsieve.caption.columns import apply_columns, init_source_captions
from clipsieve.caption.prompts import load_prompt
from clipsieve.caption.stage import (
    CaptionStage,
    CaptionStats,
    PostOptions,
    postprocess_rows,
    unmark_rows,
)
from clipsieve.errors import UserError
from clipsieve.runfolder import load_clips, save_clips
from clipsieve.table import error_text

MATCH_SCORER = "match"


@dataclass
class CaptionOutcome:
    """What a caption run did (for the summary line and for tests)."""

    clips: pa.Table
    caption: CaptionStats
    rewrite: CaptionStats | None = None
    marks: dict[str, int] = field(default_factory=dict)
    aborted: str | None = None
    rematched: bool = False
    rematch_note: str | None = None  # why --rematch produced no match column (weights absent)


def _save(run_dir: Path, clips: pa.Table, rows: list[dict[str, Any]], step: dict, final: bool):
    table = apply_columns(clips, rows)
    save_clips(run_dir, table, step, exports=("csv", "jsonl") if final else ())
    return table


def caption_run(
    run_dir: str | Path,
    stage: CaptionStage,
    post: PostOptions,
    rewrite: str | None = None,
    rematch: bool = False,
    progress: Callable[[str, int], None] | None = None,
    chunk_rows: int = 256,
) -> CaptionOutcome:
    """Caption ``run_dir`` with ``stage``; ``rewrite``: a prompt name to run the rewrite pass.

    ``progress(phase, total)`` is called when a phase starts; per-row progress goes through
    ``stage.on_row``. Raises a :class:`UserError` (after saving what was recorded) when the
    backend is unusable.
    """
    run_dir = Path(run_dir)
    clips = load_clips(run_dir)
    rows = clips.to_pylist()
    init_source_captions(rows)
    unmark_rows(rows)
    stage.setup()
    rewrite_template = load_prompt(rewrite) if rewrite else None  # fail fast on a bad name
    step = stage.describe()
    step["params"]["post"] = vars(post)
    step["params"]["rewrite"] = rewrite
    todo = [i for i, row in enumerate(rows) if stage.wanted(row)]
    if progress is not None:
        progress("caption", len(todo))
    if todo:
        try:
            stage.backend_instance.check()
        except BackendUnavailable as exc:
            for i in todo:
                rows[i] = {**rows[i], "caption_error": error_text("caption", exc)}
            _save(run_dir, clips, rows, step, final=True)
            stage.backend_instance.close()
            raise
    chunk = max(chunk_rows, 4 * stage.workers)
    for start in range(0, len(todo), chunk):
        part = todo[start : start + chunk]
        subset = [rows[i] for i in part]
        stage.caption_rows(subset)
        for i, row in zip(part, subset, strict=True):
            rows[i] = row
        if start + chunk < len(todo):
            _save(run_dir, clips, rows, step, final=False)
    outcome = CaptionOutcome(clips=clips, caption=stage.stats)
    if rewrite_template is not None and not stage.aborted:
        outcome.rewrite = CaptionStats()
        if progress is not None:
            progress("rewrite", sum(1 for r in rows if r.get("caption_raw")))
        stage.rewrite_rows(rows, rewrite_template, outcome.rewrite)
    outcome.marks = postprocess_rows(rows, post)
    outcome.clips = _save(run_dir, clips, rows, step, final=True)
    outcome.aborted = stage.aborted
    stage.backend_instance.close()
    if stage.aborted:
        raise UserError(f"captioning stopped: {stage.aborted}")
    if rematch:
        outcome.clips = rematch_run(run_dir)
        outcome.rematched = MATCH_SCORER in outcome.clips.column_names
        if not outcome.rematched:
            notes = [e for e in outcome.clips.column("score_errors").to_pylist() if e]
            outcome.rematch_note = notes[0] if notes else "the match scorer wrote no column"
    return outcome


def rematch_run(run_dir: str | Path) -> pa.Table:
    """Recompute the ``match`` score against the new ``caption`` column (score stage registry)."""
    from clipsieve.score.rescore import score_run
    from clipsieve.score.stage import SCORERS

    if MATCH_SCORER not in SCORERS:
        raise UserError(
            f"--rematch needs the text-video '{MATCH_SCORER}' scorer, which this clipsieve "
            f"does not have (known scorers: {', '.join(SCORERS)}); drop --rematch"
        )
    return score_run(run_dir, [MATCH_SCORER])
