"""Score an existing run folder: add score columns to its clip table without re-cutting.

Used by ``clipsieve score RUN_DIR --scorers a,b``. A row-local post-run step
(:class:`ScoreStep`): the runner streams the table through it and rewrites it atomically with
the score stage in its provenance metadata and in ``run.json``.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from clipsieve.engine.ray_pool import RayOptions
from clipsieve.errors import UserError
from clipsieve.score.ray_exec import RayScorer
from clipsieve.score.stage import ScoreStage
from clipsieve.steps import PostRunStep, StepContext, apply_step
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


def with_options(
    scorers: Sequence[str], params: dict[str, dict[str, Any]], options: Sequence[str]
) -> list[str]:
    """``score --option animal``: category prompts for text-frame matching. Adds the ``match``
    scorer when ``options`` are given and appends them to its prompts (in ``params``, without
    repeats); returns the scorer names."""
    names = list(scorers)
    if options:
        if "match" not in names:
            names.append("match")
        prompts = params.setdefault("match", {}).setdefault("prompts", [])
        prompts.extend(o for o in options if o not in prompts)
    return names


class ScoreStep(PostRunStep):
    """Post-run scoring as a row-local step: each batch of the table is scored in slices
    (model scorers batch the frames of a slice) and the score columns come back; the runner
    writes them, and vectors (``embedding``) go to ``vectors/``."""

    name = "score"

    def __init__(
        self,
        scorers: Sequence[str],
        scorer_params: dict[str, dict[str, Any]] | None = None,
        progress: Callable[[int, int], None] | None = None,
        slice_rows: int = 32,
        executor: RayScorer | None = None,
    ) -> None:
        self.stage = ScoreStage(scorers=list(scorers), scorer_params=dict(scorer_params or {}))
        self.executor = executor  # slices scored on Ray workers instead of here
        if executor is None:
            self.stage.setup()
        else:  # the models load on the workers only; what they could not load is recorded
            self.stage.mark_unavailable(executor.unavailable())
        self.reads = tuple(self.stage.inputs)
        self.scores = tuple(self.stage.outputs())
        # a clip that cannot be decoded at all is marked broken (status, error)
        self.writes = (*self.scores, "status", "error")
        self.version = self.stage.version
        self.progress = progress
        self.slice_rows = slice_rows
        self.done = self.total = 0
        self.errors: Counter[str] = Counter()

    def prepare(self, ctx: StepContext) -> None:
        self.total = ctx.num_rows

    def apply(self, batch: pa.RecordBatch) -> dict[str, pa.Array]:
        table = pa.Table.from_batches([batch])
        # the scorers being re-run start from nothing, so their new values replace the old
        table = table.drop_columns([c for c in self.scores if c in table.column_names])
        slices = [
            table.slice(start, self.slice_rows)
            for start in range(0, table.num_rows, self.slice_rows)
        ]
        parts: list[pa.Table] = []
        if self.executor is not None:  # the whole batch's slices at once, on the workers
            parts = self.executor.process(slices)
            self._advance(table.num_rows)
        else:
            for rows in slices:
                parts.append(self.stage.process(rows))
                self._advance(rows.num_rows)
        scored = concat_tables(parts, CLIP_SCHEMA) if parts else table
        if "score_errors" in scored.column_names:
            self.errors.update(e for e in scored.column("score_errors").to_pylist() if e)
        return {c: scored.column(c) for c in self.writes if c in scored.column_names}

    def _advance(self, rows: int) -> None:
        self.done += rows
        if self.progress is not None:
            self.progress(self.done, self.total)

    def record(self) -> dict[str, Any]:
        entry = {**self.stage.describe(), "inputs": list(self.reads)}
        entry["params"] = {**entry["params"], "engine": "ray" if self.executor else "local"}
        entry["outputs"] = list(self.scores)
        if self.errors:
            entry["summary"] = {"errors": dict(self.errors.most_common(10))}
        return entry


def score_step(
    run_dir: str | Path,
    scorers: Sequence[str],
    scorer_params: dict[str, dict[str, Any]] | None = None,
    ray: RayOptions | None = None,
    **options: Any,
) -> ScoreStep:
    """Score every kept clip of ``run_dir`` through the step runner (the clips decoded and
    scored here, or on a pool of Ray actors when ``ray`` is given); the applied step (with its
    error counts) is returned. ``options``: :class:`ScoreStep`'s ``progress``, ``slice_rows``."""
    with contextlib.ExitStack() as stack:
        executor = None
        if ray is not None:
            executor = stack.enter_context(RayScorer(list(scorers), scorer_params or {}, ray))
        step = ScoreStep(scorers, scorer_params, executor=executor, **options)
        # batches of a few thousand rows: decoding dominates, and a batch's scores are held
        # until it is written
        apply_step(run_dir, step, batch_rows=4096)
    return step
