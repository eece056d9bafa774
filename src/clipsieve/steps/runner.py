"""Apply a post-run step to a run folder in bounded memory.

One runner for every command after ``run`` (filter, topn, dedup, cluster, predict, score,
caption, export, report), replacing each command's own load/modify/save:

1. open ``clips.parquet`` (footer only) and give the step a :class:`StepContext`;
2. ``step.prepare(ctx)``: whole-table work on the columns it needs;
3. stream the table batch by batch (one Parquet row group at a time), put the step's new
   columns in, move vector columns to ``vectors/`` (:mod:`clipsieve.vectors`), and write a
   new file beside the old one, renamed into place when complete (a kill leaves the old
   table);
4. record provenance once: the step's entry (name, version, params, columns read and written)
   replaces its earlier one in the Parquet key-value metadata (``clipsieve_steps``, written
   with the new file) and in ``run.json``'s ``steps``, which also keeps the step's ``summary``
   (counts known only after the pass). Steps are listed apart from ``run``'s ``stages``: a
   post-run `score` is not the run's score stage, and `run` resumes only on its own stages.

Memory is one batch of the table plus what the step holds; the table is never held twice.
The csv/jsonl views at the run root (``clips.csv``, ``clips.jsonl``) describe the table as it
was; a step that changes the table removes them (``clipsieve export RUN --format views``
writes them again), so no file in the folder silently disagrees with the table.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from clipsieve.runfolder import RUN_JSON, clips_path
from clipsieve.runlock import run_lock
from clipsieve.steps.base import DEFAULT_BATCH_ROWS, PostRunStep, StepContext
from clipsieve.table import (
    atomic_path,
    encode_metadata,
    merge_parquet,
    parquet_metadata,
    stream_parquet,
    write_json,
    write_parquet,
)
from clipsieve.vectors import VectorWriter, as_fixed_vectors, is_vector_column, split_vectors

VIEW_FILES = ("clips.csv", "clips.jsonl")
STEPS_KEY = "clipsieve_steps"  # the post-run steps' provenance in the table's metadata
ROW_GROUP_ROWS = 65_536


@dataclass
class StepOutcome:
    record: dict[str, Any]
    rows: int
    removed_views: list[str]
    clips_file: Path


def replace_step(steps: Sequence[Mapping[str, Any]], step: Mapping[str, Any]) -> list[Any]:
    """``steps`` with any earlier entry of the same name replaced by ``step`` (at the end)."""
    return [s for s in steps if s.get("name") != step.get("name")] + [dict(step)]


def _with_columns(batch: pa.RecordBatch, updates: Mapping[str, Any]) -> pa.Table:
    table = pa.Table.from_batches([batch])
    for name, values in updates.items():
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        if len(values) != table.num_rows:
            raise RuntimeError(f"step wrote {len(values)} values of '{name}' for {len(table)} rows")
        if name in table.column_names:
            table = table.set_column(table.column_names.index(name), name, values)
        else:
            table = table.append_column(name, values)
    return table


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table | None:
    """``table`` in ``schema``'s column order and types, or None when it does not fit (other
    columns, or values in a column the schema has as ``null``)."""
    if set(table.column_names) != set(schema.names):
        return None
    arrays = []
    for field in schema:
        column = table.column(field.name)
        if column.type != field.type:
            if pa.types.is_null(field.type) and column.null_count < len(column):
                return None
            try:
                column = column.cast(field.type)
            except pa.ArrowException:
                return None
        arrays.append(column)
    return pa.Table.from_arrays(arrays, schema=schema)


class StepRunner:
    """Applies steps to one run folder (see the module docstring)."""

    def __init__(self, run_dir: str | Path, batch_rows: int = DEFAULT_BATCH_ROWS) -> None:
        self.run_dir = Path(run_dir)
        self.clips_file = clips_path(self.run_dir)  # one line if the folder is not a run
        self.batch_rows = batch_rows

    def context(self) -> StepContext:
        source = stream_parquet(self.clips_file)
        return StepContext(
            run_dir=self.run_dir,
            clips_file=self.clips_file,
            schema=source.schema_arrow,
            num_rows=source.metadata.num_rows,
            batch_rows=self.batch_rows,
        )

    def apply(self, step: PostRunStep) -> StepOutcome:
        """Apply ``step``, holding the run folder's lock (a command that holds it already, as
        every post-run command does, takes it again without waiting)."""
        with run_lock(self.run_dir, step.name):
            return self._apply(step)

    def _apply(self, step: PostRunStep) -> StepOutcome:
        ctx = self.context()
        try:
            step.prepare(ctx)
            if not step.writes:
                step.consume(ctx)
                record = step.record()
                self.record_run_json(record)
                return StepOutcome(record, ctx.num_rows, [], self.clips_file)
            rows = self._rewrite(step)
        finally:
            ctx.close()
        record = step.record()
        if record:  # a step that puts other steps' records back (carry-over) has none
            self.record_run_json(record)
        return StepOutcome(record, rows, self.remove_views(), self.clips_file)

    # -- the streaming pass
    def _rewrite(self, step: PostRunStep) -> int:
        """Stream the table through ``step.apply`` into a new file, renamed into place.

        Rows go to one Parquet writer. A column that was all null in the first batches (type
        ``null``) and gets values later cannot be cast into that writer's schema: the pass then
        starts a new part file, and the parts are joined at the end with their types unified
        (:func:`~clipsieve.table.merge_parquet`); in the common case there is one
        part and no extra copy.
        """
        source = stream_parquet(self.clips_file)
        metadata = parquet_metadata(self.clips_file)
        metadata[STEPS_KEY] = step.recorded_steps(metadata.get(STEPS_KEY, []))
        batches = source.iter_batches(batch_size=self.batch_rows)
        first = next(batches, None)
        if first is None:  # no rows: still run apply once so the new columns get their types
            first = pa.RecordBatch.from_pylist([], schema=source.schema_arrow.remove_metadata())
        vector_writers: dict[str, VectorWriter] = {}
        parts: list[Path] = []
        writer: pq.ParquetWriter | None = None
        schema: pa.Schema | None = None
        rows = 0
        ok = False
        with atomic_path(self.clips_file) as tmp:
            try:
                batch: pa.RecordBatch | None = first
                while batch is not None:
                    table = _with_columns(batch, step.apply(batch))
                    table = self._split_vectors(table, vector_writers)
                    conformed = _conform(table, schema) if schema is not None else None
                    if conformed is None:
                        if writer is not None:
                            writer.close()
                        schema = table.schema.remove_metadata().with_metadata(
                            encode_metadata(metadata)
                        )
                        parts.append(tmp if not parts else tmp.with_suffix(f".{len(parts)}"))
                        writer = pq.ParquetWriter(parts[-1], schema, compression="zstd")
                        conformed = _conform(table, schema)
                    assert writer is not None
                    writer.write_table(conformed, ROW_GROUP_ROWS)
                    rows += table.num_rows
                    batch = next(batches, None)
                if writer is not None:
                    writer.close()
                    writer = None
                if len(parts) > 1:
                    self._join_parts(parts, tmp, metadata)
                ok = True
            finally:
                if writer is not None:
                    writer.close()
                for extra in parts[1:]:
                    extra.unlink(missing_ok=True)
                for vectors in vector_writers.values():
                    vectors.close(ok)
        return rows

    @staticmethod
    def _join_parts(parts: list[Path], tmp: Path, metadata: dict[str, Any]) -> None:
        first = tmp.with_suffix(".0")
        os.replace(tmp, first)
        try:
            merge_parquet([first, *parts[1:]], tmp, pa.schema([]), metadata)
        finally:
            first.unlink(missing_ok=True)

    def _split_vectors(self, table: pa.Table, writers: dict[str, VectorWriter]) -> pa.Table:
        """Move vector columns out of the table into their own files."""
        names = [n for n in table.column_names if is_vector_column(n)]
        for name in names:
            if name not in writers:
                writers[name] = VectorWriter(self.run_dir, name)
            values = as_fixed_vectors(table.column(name))
            part = pa.table({"clip_id": table.column("clip_id"), name: values})
            writers[name].write(part.filter(values.is_valid()))
        return table.drop_columns(names) if names else table

    # -- provenance, once
    def record_run_json(self, record: Mapping[str, Any]) -> None:
        """Put ``record`` in ``run.json``'s ``steps`` in place of the step's earlier entry."""
        path = self.run_dir / RUN_JSON
        if path.is_file():
            info = json.loads(path.read_text(encoding="utf-8"))
            info["steps"] = replace_step(info.get("steps", []), record)
            write_json(info, path)

    def remove_views(self) -> list[str]:
        """Delete the run-root csv/jsonl views (they show the table before the change)."""
        removed = []
        for name in VIEW_FILES:
            path = self.run_dir / name
            if path.is_file():
                path.unlink()
                removed.append(name)
        return removed


def apply_step(
    run_dir: str | Path, step: PostRunStep, batch_rows: int = DEFAULT_BATCH_ROWS
) -> StepOutcome:
    """Apply ``step`` to ``run_dir`` (see :class:`StepRunner`)."""
    return StepRunner(run_dir, batch_rows).apply(step)


def save_clips(run_dir: str | Path, clips: pa.Table, step: Mapping[str, Any]) -> Path:
    """Atomically replace the run's clip table with ``clips`` (already in memory) after
    ``step``, keeping the provenance chain.

    For a library user or a test holding a small table. Commands go through the step runner
    (:mod:`clipsieve.steps`), which streams instead of holding the table. Vector columns are
    moved to ``vectors/``; the csv/jsonl views are removed like after any step.
    """
    run_dir = Path(run_dir)
    path = clips_path(run_dir)
    clips, vectors = split_vectors(clips)
    for column, part in vectors.items():
        writer = VectorWriter(run_dir, column)
        writer.write(part)
        writer.close()
    metadata = parquet_metadata(path)
    metadata[STEPS_KEY] = replace_step(metadata.get(STEPS_KEY, []), step)
    write_parquet(clips.replace_schema_metadata(None), path, metadata)
    runner = StepRunner(run_dir)
    runner.record_run_json(step)
    runner.remove_views()
    return path
