"""Post-run work survives a resumed `run`.

`run` rebuilds ``clips.parquet`` from its per-video checkpoints, which know nothing of what
`filter`, `dedup`, `topn`, `caption`, `cluster`, ... wrote after it. Before the engine merges,
the table as the user left it is kept aside (a hard link, so nothing is copied); after the merge
:class:`CarryOverStep` joins the columns those steps wrote back by ``clip_id``:

- a clip the previous table had gets the previous values of every column a recorded step wrote
  (its marks, captions, clusters, re-computed scores);
- a clip that is new (a video added to the inputs) keeps what `run` made, with the post-run-only
  columns empty; the steps are then listed as *stale* in ``run.json`` (``rows_added``) and the
  report says which to run again.

The join runs in DuckDB in table order and streams through the step runner, like every step.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from clipsieve.runfolder import CLIPS_FILE
from clipsieve.steps.base import AlignedUpdates, PostRunStep, StepContext
from clipsieve.steps.runner import STEPS_KEY, StepRunner
from clipsieve.steps.sql import ident, text
from clipsieve.table import parquet_metadata

PREVIOUS_FILE = ".clips-before-run.parquet"


def recorded_steps(clips_file: Path) -> list[dict[str, Any]]:
    """The post-run steps recorded in a table's metadata (none for a table `run` just made)."""
    steps = parquet_metadata(clips_file).get(STEPS_KEY, [])
    return [s for s in steps if isinstance(s, Mapping)]


def keep_previous_table(run_dir: Path) -> Path | None:
    """Keep ``clips.parquet`` aside before `run` merges over it, when post-run steps changed
    it; the path kept, or None when there is nothing to carry.

    A table left aside by a killed earlier `run` is kept when the current one has no step
    records (it is that run's merge, without the user's work); otherwise the current table is
    the newer work and replaces it.
    """
    clips, previous = run_dir / CLIPS_FILE, run_dir / PREVIOUS_FILE
    current_steps = recorded_steps(clips) if clips.is_file() else []
    if previous.is_file() and not current_steps:
        return previous
    if not current_steps:
        return None
    previous.unlink(missing_ok=True)
    try:
        os.link(clips, previous)  # the merge renames a new file over clips.parquet
    except OSError:
        shutil.copyfile(clips, previous)
    return previous


class CarryOverStep(PostRunStep):
    """Join the columns written by earlier post-run steps back into a table `run` rebuilt."""

    name = "carry-over"

    def __init__(self, previous: Path) -> None:
        self.previous = previous
        self.steps = recorded_steps(previous)
        schema = pq.read_schema(previous)
        written = [c for s in self.steps for c in s.get("outputs", [])]
        self.columns = [c for c in dict.fromkeys(written) if c in schema.names and c != "clip_id"]
        self.types = {c: schema.field(c).type for c in self.columns}
        self.writes = tuple(self.columns)
        self.rows_added = 0
        self._updates: AlignedUpdates | None = None

    def prepare(self, ctx: StepContext) -> None:
        previous = text(str(self.previous))
        self.rows_added = (
            ctx.sql()
            .sql(
                f"SELECT count(*) FROM clips c WHERE NOT EXISTS (SELECT 1 FROM read_parquet("
                f"{previous}) p WHERE p.clip_id = c.clip_id)"
            )
            .fetchall()[0][0]
        )
        if not self.columns:
            return
        have = set(ctx.schema.names)
        picks = []
        for column in self.columns:
            name = ident(column)
            if column in have:  # made by run too: the previous value for a clip it had
                picks.append(f"CASE WHEN p._had THEN p.{name} ELSE c.{name} END AS {name}")
            else:
                picks.append(f"p.{name} AS {name}")
        query = f"""
            WITH p AS (SELECT clip_id, true AS _had, {", ".join(ident(c) for c in self.columns)}
                       FROM read_parquet({previous}))
            SELECT coalesce(p._had, false) AS _had, {", ".join(picks)}
            FROM clips c LEFT JOIN p ON p.clip_id = c.clip_id
            ORDER BY c._row"""
        self._updates = AlignedUpdates(ctx.sql().sql(query).to_arrow_reader(ctx.batch_rows))

    def apply(self, batch: pa.RecordBatch) -> dict[str, Any]:
        if self._updates is None:
            return {}
        part = self._updates.take(batch.num_rows)
        return {c: part.column(c).cast(self.types[c]) for c in self.columns}

    def record(self) -> dict[str, Any]:
        return {}  # the carried steps' own records are put back instead

    def recorded_steps(self, steps: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        return carry_steps(self.steps, self.rows_added)


def carry_steps(steps: Sequence[Mapping[str, Any]], rows_added: int) -> list[dict[str, Any]]:
    """The carried steps' records, marked stale when `run` added rows they never saw (a step
    stale before stays stale until it runs again and writes a fresh record)."""
    out = []
    for step in steps:
        entry = dict(step)
        if rows_added:
            before = step.get("stale", {}).get("rows_added", 0)
            entry["stale"] = {"rows_added": before + rows_added}
        out.append(entry)
    return out


def carry_over(run_dir: Path, previous: Path) -> CarryOverStep:
    """Apply :class:`CarryOverStep` to ``run_dir``'s new table, then drop the kept table."""
    step = CarryOverStep(previous)
    StepRunner(run_dir).apply(step)
    previous.unlink(missing_ok=True)
    return step
