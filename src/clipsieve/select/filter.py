"""Apply a filter expression to a run's clip table and record the funnel.

Semantics (see :mod:`clipsieve.select.marks`): ``filter`` recomputes from a clean slate of its
own earlier results (rows it dropped before are reconsidered), never resurrects rows dropped by
anything else, and decides only rows that are still kept and not in error.

The expression's top-level ``and`` terms are the funnel's steps, applied in order: a row that
fails gets ``keep=false`` and ``drop_reason = "filter: <first failed condition>"``. Each step
records how many rows entered, passed and were unscored (null), and the column/operator/value
so the report can draw threshold lines on that column's histogram. The result lands in
``RUN_DIR/funnel.json`` and in the boolean column ``filter_pass`` (null for rows the filter did
not decide).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from clipsieve.select.columns import missing_column_message
from clipsieve.select.expr import (
    And,
    Evaluator,
    Node,
    compile_expression,
    conjuncts,
    describe,
    parse,
    to_text,
)
from clipsieve.select.marks import apply_marks, eligible_rows, release_own_marks, set_column
from clipsieve.table import write_json

FILTER_REASON = "filter: "
FUNNEL_FILE = "funnel.json"
STEP_NAME = "filter"
STEP_VERSION = "1"


def is_filter_reason(reason: str) -> bool:
    """Whether a drop reason was written by ``filter``."""
    return reason.startswith(FILTER_REASON)


def combine(parts: list[str]) -> str:
    """One expression that is the ``and`` of ``parts`` (each parsed, so a bad part fails here)."""
    nodes: list[Node] = []
    for part in parts:
        if not part or not part.strip():
            continue
        nodes.extend(conjuncts(parse(part)))
    if not nodes:
        return ""
    return to_text(nodes[0] if len(nodes) == 1 else And(tuple(nodes)))


@dataclass
class FilterResult:
    """The marked table and the funnel (the content of ``funnel.json``)."""

    table: pa.Table
    funnel: dict[str, Any]


def apply_filter(clips: pa.Table, where: str, keep_unscored: bool = False) -> FilterResult:
    """Mark ``clips`` by ``where`` (allow-list: unscored fails unless ``keep_unscored``)."""
    node = compile_expression(where, clips, missing_column_message)
    keep, reasons = release_own_marks(clips, is_filter_reason)
    eligible = eligible_rows(clips, keep)
    excluded = Counter(
        reasons[i] or ("error" if keep[i] else "dropped")
        for i in range(clips.num_rows)
        if not eligible[i]
    )
    evaluator = Evaluator(clips, missing_column_message)
    alive = eligible.copy()
    steps: list[dict[str, Any]] = []
    for term in conjuncts(node):
        raw = evaluator.mask(term)
        unknown = np.asarray(pc.is_null(raw).to_numpy(zero_copy_only=False), dtype=bool)
        passed = np.asarray(
            pc.fill_null(raw, keep_unscored).to_numpy(zero_copy_only=False), dtype=bool
        )
        info = describe(term)
        failed = alive & ~passed
        for i in np.flatnonzero(failed):
            reasons[i] = FILTER_REASON + info["condition"]
        steps.append(
            {
                **info,
                "rows_in": int(alive.sum()),
                "passed": int((alive & passed).sum()),
                "unscored": int((alive & unknown).sum()),
            }
        )
        alive &= passed
    keep = np.where(eligible, alive, keep)
    table = apply_marks(clips, keep, reasons)
    decided = [bool(alive[i]) if eligible[i] else None for i in range(clips.num_rows)]
    table = set_column(table, "filter_pass", pa.array(decided, pa.bool_()))
    funnel = {
        "where": to_text(node),
        "keep_unscored": keep_unscored,
        "total": clips.num_rows,
        "eligible": int(eligible.sum()),
        "excluded_before": dict(sorted(excluded.items())),
        "kept": int(alive.sum()),
        "steps": steps,
    }
    return FilterResult(table, funnel)


def write_funnel(run_dir: str | Path, funnel: dict[str, Any]) -> Path:
    """Write ``RUN_DIR/funnel.json`` atomically."""
    return write_json(funnel, Path(run_dir) / FUNNEL_FILE)


def step_record(where: str, keep_unscored: bool, sources: dict[str, Any]) -> dict[str, Any]:
    """The provenance entry for ``save_clips`` (what was applied and where it came from)."""
    return {
        "name": STEP_NAME,
        "version": STEP_VERSION,
        "params": {"where": where, "keep_unscored": keep_unscored, **sources},
    }
