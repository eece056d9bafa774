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

import pyarrow as pa
import pyarrow.compute as pc

from clipsieve.select.columns import missing_column_message
from clipsieve.select.expr import (
    And,
    Evaluator,
    Node,
    columns_of,
    compile_expression,
    conjuncts,
    describe,
    parse,
    to_text,
)
from clipsieve.select.marks import eligible_mask, released_marks, set_column
from clipsieve.steps.base import PostRunStep, StepContext
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


class FilterStep(PostRunStep):
    """Mark rows by a filter expression, batch by batch (a row-local post-run step).

    Allow-list: a row whose condition is unknown (unscored) fails unless ``keep_unscored``.
    The funnel's counts add up over the batches.
    """

    name = STEP_NAME
    version = STEP_VERSION
    writes = ("keep", "drop_reason", "filter_pass")

    def __init__(
        self,
        where: str,
        keep_unscored: bool = False,
        sources: dict[str, Any] | None = None,
        release: tuple[str, ...] = (),
    ) -> None:
        """``release``: other steps' drop-reason prefixes to clear first (a preset that
        re-applies top-N lets the filter judge the rows top-N dropped)."""
        self.where = where
        self.release = (FILTER_REASON, *release)
        self.keep_unscored = keep_unscored
        self.sources = dict(sources or {})
        self.node: Node | None = None
        self.reads = ()

    def bind(self, schema: pa.Schema) -> None:
        """Parse and check the expression against the table's columns and types."""
        self.node = compile_expression(self.where, schema.empty_table(), missing_column_message)
        self.terms = conjuncts(self.node)
        self.reads = tuple(dict.fromkeys([*columns_of(self.node), "keep", "drop_reason"]))
        self.total = self.eligible = self.kept = 0
        self.excluded: Counter[str] = Counter()
        self.counts = [{"rows_in": 0, "passed": 0, "unscored": 0} for _ in self.terms]

    def prepare(self, ctx: StepContext) -> None:
        self.bind(ctx.schema)

    def apply(self, batch: pa.RecordBatch | pa.Table) -> dict[str, pa.Array]:
        assert self.node is not None, "bind() first"
        clips = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        n = clips.num_rows
        keep, reasons = released_marks(clips, self.release)
        eligible = eligible_mask(clips, keep)
        not_eligible = pc.invert(eligible)
        why = pc.if_else(pc.is_valid(reasons), reasons, pc.if_else(keep, "error", "dropped"))
        for item in pc.value_counts(pc.filter(why, not_eligible)).to_pylist():
            self.excluded[item["values"]] += item["counts"]
        evaluator = Evaluator(clips, missing_column_message)
        alive = eligible
        for term, counts in zip(self.terms, self.counts, strict=True):
            raw = evaluator.mask(term)
            raw = raw.combine_chunks() if isinstance(raw, pa.ChunkedArray) else raw
            passed = pc.fill_null(raw, self.keep_unscored)
            failed = pc.and_(alive, pc.invert(passed))
            reasons = pc.if_else(failed, FILTER_REASON + describe(term)["condition"], reasons)
            counts["rows_in"] += pc.sum(alive).as_py() or 0
            counts["passed"] += pc.sum(pc.and_(alive, passed)).as_py() or 0
            counts["unscored"] += pc.sum(pc.and_(alive, pc.is_null(raw))).as_py() or 0
            alive = pc.and_(alive, passed)
        self.total += n
        self.eligible += pc.sum(eligible).as_py() or 0
        self.kept += pc.sum(alive).as_py() or 0
        return {
            "keep": pc.if_else(eligible, alive, keep),
            "drop_reason": reasons.cast(pa.string()),
            "filter_pass": pc.if_else(eligible, alive, pa.nulls(n, pa.bool_())),
        }

    def funnel(self) -> dict[str, Any]:
        """The content of ``funnel.json`` for the rows seen so far."""
        assert self.node is not None
        return {
            "where": to_text(self.node),
            "keep_unscored": self.keep_unscored,
            "total": self.total,
            "eligible": self.eligible,
            "excluded_before": dict(sorted(self.excluded.items())),
            "kept": self.kept,
            "steps": [
                {**describe(term), **counts}
                for term, counts in zip(self.terms, self.counts, strict=True)
            ],
        }

    def params(self) -> dict[str, Any]:
        where = to_text(self.node) if self.node is not None else self.where
        return {"where": where, "keep_unscored": self.keep_unscored, **self.sources}

    def summary(self) -> dict[str, Any]:
        funnel = self.funnel()
        return {k: funnel[k] for k in ("total", "eligible", "kept")}


def apply_filter(clips: pa.Table, where: str, keep_unscored: bool = False) -> FilterResult:
    """Mark an in-memory ``clips`` table by ``where`` (the same rules as the streamed step)."""
    step = FilterStep(where, keep_unscored)
    step.bind(clips.schema)
    table = clips
    for name, values in step.apply(clips).items():
        table = set_column(table, name, values)
    return FilterResult(table, step.funnel())


def write_funnel(run_dir: str | Path, funnel: dict[str, Any]) -> Path:
    """Write ``RUN_DIR/funnel.json`` atomically."""
    return write_json(funnel, Path(run_dir) / FUNNEL_FILE)
