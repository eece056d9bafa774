"""``evaluate_run``: read a finished run, compare selected vs random and captions, write JSON.

The clip table is only read; the result goes to ``RUN_DIR/evaluation.json`` (see
:data:`clipsieve.evaluate.EVALUATION_FILE`), which ``clipsieve report`` renders.

CLIP text–frame similarity (``clip_sim``) is computed when a CLIP checkpoint resolves through
the model registry and some pool clips have text. For selected vs random every clip is scored
against the *same* caption column (``text_column``; by default whichever of ``caption_src`` and
``caption`` covers more pool clips, ``caption_src`` on a tie): re-captioning usually touches only
the kept clips, and scoring them with their new captions against the rest with old ones would
credit the captioner to the selection.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from clipsieve.errors import UserError
from clipsieve.evaluate import EVALUATION_FILE
from clipsieve.evaluate.captions import NEW, OLD, caption_pairs, compare_paired, text_stats
from clipsieve.evaluate.subset import (
    POLICY_REASONS,
    Metric,
    column_values,
    compare,
    default_metrics,
    pool_mask,
    selected_mask,
)
from clipsieve.export.opensora import score_columns
from clipsieve.models.registry import ModelUnavailable
from clipsieve.runfolder import load_clips
from clipsieve.table import write_json
from clipsieve.version import __version__

CLIP_COLUMN = "clip_sim"
MAX_ERROR_EXAMPLES = 20  # clips that could not be decoded, listed in evaluation.json
TEXT_COLUMNS = (OLD, NEW)

Progress = Callable[[int, int], None]


@dataclass
class EvaluateOptions:
    """What to evaluate and how (the command's options)."""

    metrics: list[str] = field(default_factory=list)  # empty: every numeric score column
    draws: int = 1000
    seed: int = 0
    clip: bool = True
    clip_model: str = ""  # empty: the match scorer's default CLIP
    text_column: str | None = None  # None: auto (see the module docs)
    frame_step: int = 2
    device: str = "auto"


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def pick_text_column(rows: Sequence[Mapping[str, Any]], pool: np.ndarray) -> str | None:
    """The caption column that covers most pool clips (``caption_src`` on a tie), or None."""
    counts = {
        c: sum(bool(_text(rows[i].get(c))) for i in np.flatnonzero(pool)) for c in TEXT_COLUMNS
    }
    best = max(TEXT_COLUMNS, key=lambda c: counts[c])  # first (caption_src) wins ties
    return best if counts[best] else None


@dataclass
class ClipPass:
    """CLIP similarities computed for this evaluation."""

    model: str
    text_column: str | None
    sims: np.ndarray  # corrected clip score per row for ``text_column`` (NaN: not scored)
    original: np.ndarray  # the original project's formula, same rows
    old: dict[int, float]  # caption pairs: row -> score with caption_src
    new: dict[int, float]
    errors: list[str]


def clip_pass(
    run_dir: Path,
    rows: Sequence[Mapping[str, Any]],
    pool: np.ndarray,
    pairs: Sequence[int],
    options: EvaluateOptions,
    progress: Progress | None = None,
) -> ClipPass:
    """Decode each needed clip once, encode its frames once, score every text it needs."""
    from clipsieve.evaluate.clipsim import (
        clip_score,
        frame_features,
        load_clip,
        original_clip_score,
        similarities,
        text_features,
    )
    from clipsieve.models.encoders import DEFAULT_CLIP

    model = options.clip_model or DEFAULT_CLIP
    encoder = load_clip(model, options.device)  # ModelUnavailable goes to the caller
    column = options.text_column or pick_text_column(rows, pool)
    # row -> {"pool" | "old" | "new": text}: the texts each decoded clip is scored against
    wanted: dict[int, dict[str, str]] = {}
    if column is not None:
        for i in np.flatnonzero(pool):
            text = _text(rows[i].get(column))
            if text:
                wanted.setdefault(int(i), {})["pool"] = text
    for i in pairs:
        old_text, new_text = _text(rows[i].get(OLD)), _text(rows[i].get(NEW))
        if old_text and new_text:
            wanted.setdefault(i, {}).update(old=old_text, new=new_text)
    texts = text_features(encoder, [t for roles in wanted.values() for t in roles.values()])
    sims = np.full(len(rows), np.nan)
    original = np.full(len(rows), np.nan)
    old: dict[int, float] = {}
    new: dict[int, float] = {}
    errors: list[str] = []
    for done, i in enumerate(sorted(wanted), 1):
        roles = wanted[i]
        try:
            frames = frame_features(encoder, rows[i], options.frame_step, run_dir)
        except Exception as exc:  # one unreadable clip must not end the evaluation
            errors.append(f"{rows[i].get('clip_id')}: {' '.join(str(exc).split())[:200]}")
            continue
        if "pool" in roles:
            s = similarities(frames, texts[roles["pool"]])
            sims[i], original[i] = clip_score(s), original_clip_score(s, frames.total_frames)
        if "old" in roles:
            old[i] = clip_score(similarities(frames, texts[roles["old"]]))
            new[i] = clip_score(similarities(frames, texts[roles["new"]]))
        if progress is not None:
            progress(done, len(wanted))
    return ClipPass(encoder.spec, column, sims, original, old, new, errors)


def _mean(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else None


def evaluate_run(
    run_dir: str | Path,
    options: EvaluateOptions | None = None,
    progress: Progress | None = None,
    notes: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Evaluate a run; returns the ``evaluation.json`` document (also written to the run)."""
    run_dir = Path(run_dir)
    options = options or EvaluateOptions()
    if options.draws < 10:
        raise UserError(f"--draws {options.draws} is too few for an interval; use 1000")
    if options.frame_step < 1:
        raise UserError("--frame-step must be at least 1")
    if options.text_column not in (None, *TEXT_COLUMNS):
        raise UserError(f"--text-column must be one of {', '.join(TEXT_COLUMNS)}")
    say = notes or (lambda _line: None)
    clips = load_clips(run_dir)
    rows = clips.to_pylist()
    selected, pool = selected_mask(rows), pool_mask(rows)
    numeric = score_columns(clips)
    metrics = [Metric.parse(m) for m in options.metrics] or default_metrics(rows, numeric)
    for metric in metrics:
        if metric.column == CLIP_COLUMN:
            continue
        known = ", ".join(m.column for m in default_metrics(rows, numeric)) or "none"
        if metric.column not in clips.column_names:
            raise UserError(
                f"--metric {metric.column}: no such column in {run_dir / 'clips.parquet'} "
                f"(numeric score columns: {known})"
            )
        kind = clips.schema.field(metric.column).type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
            raise UserError(
                f"--metric {metric.column}: the column holds {kind}, not numbers "
                f"(numeric score columns: {known})"
            )
    pairs = caption_pairs(rows)
    clip_info: dict[str, Any] = {"status": "not requested", "frame_step": options.frame_step}
    passed: ClipPass | None = None
    if options.clip:
        has_text = pick_text_column(rows, pool) is not None or options.text_column is not None
        if not has_text and not pairs:
            clip_info = {"status": "skipped", "message": "no clip has a caption to compare"}
            say(f"CLIP similarity skipped: no clip has a caption ({OLD} or {NEW})")
        else:
            try:
                passed = clip_pass(run_dir, rows, pool, pairs, options, progress)
            except ModelUnavailable as exc:
                message = " ".join(str(exc).split())
                clip_info = {"status": "skipped", "message": message}
                say(f"CLIP similarity skipped: {message}")
    if passed is not None:
        scored = int(np.isfinite(passed.sims).sum())
        if passed.errors:
            say(
                f"CLIP similarity: {len(passed.errors)} clips could not be decoded "
                f"(first: {passed.errors[0]}); they count as unscored"
            )
        clip_info = {
            "status": "used",
            "model": passed.model,
            "text_column": passed.text_column,
            "frame_step": options.frame_step,
            "clips_scored": scored,
            "errors": len(passed.errors),
            "error_examples": passed.errors[:MAX_ERROR_EXAMPLES],
            "pool_mean": _mean(np.where(pool, passed.sims, np.nan)),
            "pool_mean_original_formula": _mean(np.where(pool, passed.original, np.nan)),
            "formula": "mean over scored frames of max(100*cos, 0); the original divided the "
            "sum by all frames of the clip",
        }
        if scored and not any(m.column == CLIP_COLUMN for m in metrics):
            metrics.append(Metric(CLIP_COLUMN))
    results = []
    for metric in metrics:
        if metric.column == CLIP_COLUMN:
            if passed is None:
                say(f"{CLIP_COLUMN}: not evaluated (no CLIP model)")
                continue
            values = passed.sims
        else:
            values = column_values(rows, metric.column)
        results.append(compare(values, selected, pool, metric, options.draws, options.seed))
    captions: dict[str, Any] = {
        "n_pairs": len(pairs),
        "text_stats": {c: text_stats([_text(rows[i][c]) or "" for i in pairs]) for c in (OLD, NEW)},
        "clip": None,
    }
    if passed is not None and passed.old:
        keys = sorted(passed.old)
        captions["clip"] = compare_paired(
            np.array([passed.old[i] for i in keys]),
            np.array([passed.new[i] for i in keys]),
            options.draws,
            options.seed,
            what=f"CLIP score ({passed.model})",
        ).to_json()
    document = {
        "clipsieve": __version__,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "run_dir": str(run_dir),
        "seed": options.seed,
        "draws": options.draws,
        "confidence": 0.95,
        "rows": len(rows),
        "selected": int(selected.sum()),
        "pool": int(pool.sum()),
        "pool_rule": "status ok, not dropped by the length policy "
        f"({' or '.join(sorted(POLICY_REASONS))})",
        "selected_rule": "keep true and status ok",
        "clip": clip_info,
        "metrics": [r.to_json() for r in results],
        "captions": captions,
    }
    write_json(document, run_dir / EVALUATION_FILE)
    return document


__all__ = [
    "CLIP_COLUMN",
    "ClipPass",
    "EvaluateOptions",
    "clip_pass",
    "evaluate_run",
    "pick_text_column",
]
