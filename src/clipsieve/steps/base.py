"""Post-run steps: what a command after ``run`` does to a run folder, declared up front.

A step is a plain object with a ``name``, a ``version``, its ``params``, the columns it
``reads`` and the columns it ``writes``. It never opens ``clips.parquet`` itself: the
:class:`~clipsieve.steps.runner.StepRunner` hands it a :class:`StepContext` for whole-table
work (narrow column scans, DuckDB queries over the file, vector files) in :meth:`prepare`,
then streams the table through :meth:`apply` one batch at a time and writes the result. So
every step runs in memory bounded by a batch plus what its own algorithm must hold, and the
table is rewritten atomically with provenance recorded once.

Three shapes cover every command:

* **row-local** (``filter``, ``predict``, ``score``): ``apply`` computes the new columns from
  the batch alone; ``prepare`` does nothing.
* **global** (``topn``, ``dedup``, ``cluster``, the caption merge): ``prepare`` computes the
  answer from the columns it needs (DuckDB, numpy over narrow columns, vector blocks) and
  returns it as a stream of update batches in table order; ``apply`` takes the next slice of
  that stream (:class:`AlignedUpdates`).
* **read-only** (``export``, ``report``): ``writes`` is empty; the runner calls
  :meth:`consume` with the context and records the step in ``run.json`` without touching the
  table.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.parquet as pq

from clipsieve.table import stream_parquet

DEFAULT_BATCH_ROWS = 65_536


@dataclass
class StepContext:
    """What a step may read: the run folder, the clip table's schema and narrow scans of it."""

    run_dir: Path
    clips_file: Path
    schema: pa.Schema
    num_rows: int
    batch_rows: int = DEFAULT_BATCH_ROWS
    _sql: Any = field(default=None, repr=False)
    _spill: str = field(default="", repr=False)

    def scan(
        self, columns: Sequence[str], batch_rows: int | None = None
    ) -> Iterator[pa.RecordBatch]:
        """The table's ``columns`` (those it has), batch by batch, in table order."""
        present = [c for c in columns if c in self.schema.names]
        source = stream_parquet(self.clips_file)
        yield from source.iter_batches(batch_size=batch_rows or self.batch_rows, columns=present)

    def read_columns(self, columns: Sequence[str]) -> pa.Table:
        """Only ``columns`` of the whole table (for steps whose algorithm needs them all)."""
        present = [c for c in columns if c in self.schema.names]
        return pq.read_table(self.clips_file, columns=present, pre_buffer=False)

    def sql(self, memory: str | None = None) -> Any:
        """A DuckDB connection with the view ``clips`` (the table plus ``_row``, its 0-based
        position) and a memory cap (``memory``, default 1 GB), so queries spill to disk
        instead of growing."""
        if self._sql is None:
            from clipsieve.steps import sql

            con, self._spill = sql.connect(memory or sql.DUCKDB_MEMORY)
            con.execute(
                "CREATE VIEW clips AS SELECT * EXCLUDE (file_row_number), file_row_number AS _row "
                f"FROM read_parquet({sql.text(str(self.clips_file))}, file_row_number = true)"
            )
            self._sql = con
        return self._sql

    def close(self) -> None:
        if self._sql is not None:
            from clipsieve.steps import sql

            sql.close(self._sql, self._spill)
            self._sql = None


class AlignedUpdates:
    """Slices a stream of update batches (in table order) to the runner's batch lengths.

    A global step's answer comes back from DuckDB or numpy in batches of any size; the runner
    reads the table in its own batches. ``take(n)`` returns the next ``n`` rows of updates.
    """

    def __init__(
        self,
        batches: Iterator[pa.RecordBatch] | pa.RecordBatchReader,
        schema: pa.Schema | None = None,
    ) -> None:
        self.schema = schema if schema is not None else getattr(batches, "schema", None)
        self._batches = iter(batches)
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0

    def take(self, n: int) -> pa.Table:
        if n == 0 and self.schema is not None:
            return self.schema.empty_table()
        while self._pending_rows < n:
            batch = next(self._batches, None)
            if batch is None:
                raise RuntimeError(f"update stream ended {n - self._pending_rows} rows early")
            self._pending.append(batch)
            self._pending_rows += batch.num_rows
        table = pa.Table.from_batches(self._pending) if self._pending else None
        if table is None:
            raise RuntimeError("update stream is empty")
        head, rest = table.slice(0, n), table.slice(n)
        self._pending = rest.to_batches()
        self._pending_rows = rest.num_rows
        return head


class PostRunStep:
    """Base of every post-run step (see the module docstring for the three shapes)."""

    name: ClassVar[str] = "step"
    version: ClassVar[str] = "1"
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()

    def params(self) -> dict[str, Any]:
        return {}

    def prepare(self, ctx: StepContext) -> None:
        """Whole-table work before the streaming pass (optional)."""

    def apply(self, batch: pa.RecordBatch) -> Mapping[str, pa.Array | pa.ChunkedArray]:
        """The new values of the written columns for ``batch`` (same length, same order)."""
        return {}

    def consume(self, ctx: StepContext) -> None:
        """The work of a read-only step (``writes`` empty)."""

    def summary(self) -> dict[str, Any]:
        """What the step decided, recorded with its provenance (counts, not rows)."""
        return {}

    def record(self) -> dict[str, Any]:
        """The provenance entry: stored in the table's metadata and in ``run.json``."""
        entry: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "params": self.params(),
            "inputs": list(self.reads),
            "outputs": list(self.writes),
        }
        summary = self.summary()
        if summary:
            entry["summary"] = summary
        return entry

    def recorded_steps(self, steps: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The table's list of step records once this step has run (written in its metadata
        before the pass, so without the summary): earlier entries of the same name replaced."""
        entry = {k: v for k, v in self.record().items() if k != "summary"}
        return [dict(s) for s in steps if s.get("name") != self.name] + [entry]
