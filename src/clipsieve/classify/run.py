"""``clipsieve classify`` without the command line: classify a finished run folder's clips.

Answers go to ``RUN/classify/part-NNNNNN.parquet`` as they arrive (Ctrl-C or a crash loses at
most the chunk in flight; a re-run asks only rows without a readable answer), then one post-run
step joins them into the table and the parts are removed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from clipsieve.caption.run import AnswerParts, aligned_answers, ask_all
from clipsieve.caption.stage import CaptionStats
from clipsieve.classify.stage import CONTENT_FIELDS, ClassifyStage, flag_column
from clipsieve.engine.ray_pool import RayOptions
from clipsieve.errors import UserError
from clipsieve.steps import AlignedUpdates, PostRunStep, StepContext, StepRunner

PARTS_DIR = "classify"


def answer_schema(stage: ClassifyStage) -> pa.Schema:
    flags = [pa.field(flag_column(f), pa.bool_()) for f in stage.label_set.flags]
    return pa.schema([pa.field("clip_id", pa.string()), *CONTENT_FIELDS, *flags])


@dataclass
class ClassifyOutcome:
    """What a classify run did: request counts, answers per type and flag, errors."""

    stats: CaptionStats
    types: dict[str, int] = field(default_factory=dict)
    flags: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)


class ClassifyMergeStep(PostRunStep):
    """Join the answer parts into the table (a global step, streamed back in table order);
    rows without a new answer keep what they had."""

    name = "classify"

    def __init__(self, stage: ClassifyStage, parts: AnswerParts) -> None:
        self.stage, self.parts = stage, parts
        self.schema = parts.schema
        self.writes = tuple(self.schema.names[1:])
        self.types: Counter[str] = Counter()
        self.flags: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self._answers: AlignedUpdates | None = None
        self.engine = "local"

    def prepare(self, ctx: StepContext) -> None:
        self._answers = aligned_answers(ctx, self.parts)

    def apply(self, batch: pa.RecordBatch) -> dict[str, pa.Array]:
        n = batch.num_rows
        names = batch.schema.names
        current = {
            name: batch.column(name).to_pylist() if name in names else [None] * n
            for name in self.writes
        }
        if self._answers is not None:
            answers = self._answers.take(n).to_pylist()
            for i, answer in enumerate(answers):
                if answer.pop("_answered"):
                    for name in self.writes:
                        current[name][i] = answer.get(name)
        for i in range(n):
            if current["content_error"][i]:
                self.errors[current["content_error"][i]] += 1
            elif current["content_type"][i]:
                self.types[current["content_type"][i]] += 1
                self.flags.update(current["content_flags"][i] or [])
        return {name: pa.array(current[name], self.schema.field(name).type) for name in self.writes}

    def record(self) -> dict[str, Any]:
        step = self.stage.describe()
        step["params"]["engine"] = self.engine
        step["outputs"] = list(self.writes)
        step["summary"] = {
            "types": dict(self.types),
            "flags": dict(self.flags),
            "errors": sum(self.errors.values()),
        }
        return step


def classify_run(
    run_dir: str | Path,
    stage: ClassifyStage,
    progress: Callable[[str, int], None] | None = None,
    chunk_rows: int = 64,
    ray: RayOptions | None = None,
) -> ClassifyOutcome:
    """Classify the selected clips of ``run_dir`` with ``stage``; ``ray``: ask from a pool of
    Ray actors. Raises a :class:`UserError` (after merging what was recorded) when the backend
    is unusable or the run stopped."""
    run_dir = Path(run_dir)
    stage.setup()
    runner = StepRunner(run_dir)
    parts = AnswerParts(run_dir, PARTS_DIR, answer_schema(stage))
    merge = ClassifyMergeStep(stage, parts)
    merge.engine = "ray" if ray is not None else "local"
    ask_all(runner, stage, parts, merge, chunk_rows, ray, progress)
    runner.apply(merge)
    parts.clear()
    stage.teardown()
    if stage.aborted:
        raise UserError(f"classify stopped: {stage.aborted}")
    return ClassifyOutcome(stage.stats, dict(merge.types), dict(merge.flags), dict(merge.errors))
