"""Large per-clip values (embeddings) kept apart from the clip table.

``clips.parquet`` holds the scalar columns users filter and read; a 1280-d embedding stored in
it made every row 10 KB and every post-run step rewrite it. Vectors live instead in
``RUN/vectors/<column>.parquet``: two columns, ``clip_id`` and ``<column>`` as a fixed-size list
of float32 (float16 files are read too), one row per clip that has a vector. They are written
in the same exactly-once shard commit as the clip rows (``shards/<video>.vectors.parquet``,
before the video's commit marker) and merged beside the clip table.

Join them by ``clip_id``::

    duckdb:  SELECT c.*, v.embedding FROM 'run/clips.parquet' c
             JOIN 'run/vectors/embedding.parquet' v USING (clip_id)
    polars:  pl.scan_parquet("run/clips.parquet").join(
                 pl.scan_parquet("run/vectors/embedding.parquet"), on="clip_id")
    pandas:  clips.merge(pd.read_parquet("run/vectors/embedding.parquet"), on="clip_id")
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from clipsieve.table import stream_parquet

VECTOR_DIR = "vectors"
VECTOR_COLUMNS = ("embedding",)
"""Columns that never live in ``clips.parquet``."""
VECTOR_ROW_GROUP = 8192  # rows per row group: 8192 x 1280 float32 = 40 MB


def is_vector_column(name: str) -> bool:
    return name in VECTOR_COLUMNS or name.endswith("_embedding")


def vector_path(run_dir: str | Path, column: str) -> Path:
    return Path(run_dir) / VECTOR_DIR / f"{column}.parquet"


def vector_columns(schema: pa.Schema) -> list[str]:
    """The vector columns a table (or shard) carries."""
    return [name for name in schema.names if is_vector_column(name)]


def as_fixed_vectors(values: pa.Array | pa.ChunkedArray, dtype: pa.DataType = pa.float32()):
    """``values`` (a list column, nulls allowed) as a fixed-size list of ``dtype``.

    The length is that of the first non-null vector; a vector of another length is an error
    (one model gives one width).
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_fixed_size_list(values.type) and values.type.value_type == dtype:
        return values
    lengths = pc.list_value_length(values)
    valid = lengths.drop_null()
    if len(valid) == 0:
        return pa.nulls(len(values), pa.list_(dtype, 1))
    width = int(valid[0].as_py())
    if pc.any(pc.not_equal(valid, width)).as_py():
        raise ValueError("vectors of different lengths in one column")
    flat = pc.list_flatten(values).cast(dtype)
    filled = pa.FixedSizeListArray.from_arrays(flat, width)
    if values.null_count == 0:
        return filled
    # re-insert the nulls: take the filled rows back at the positions of the valid ones
    positions = np.cumsum(values.is_valid().to_numpy(zero_copy_only=False)) - 1
    taken = filled.take(pa.array(np.maximum(positions, 0)))
    return pc.if_else(values.is_valid(), taken, pa.nulls(len(values), taken.type))


def split_vectors(table: pa.Table) -> tuple[pa.Table, dict[str, pa.Table]]:
    """``(scalar table, {column: clip_id + vector rows})``; rows without a vector are left out."""
    columns = vector_columns(table.schema)
    if not columns:
        return table, {}
    parts: dict[str, pa.Table] = {}
    for name in columns:
        values = as_fixed_vectors(table.column(name))
        part = pa.table({"clip_id": table.column("clip_id"), name: values})
        parts[name] = part.filter(pc.is_valid(part.column(name)))
    return table.drop_columns(columns), parts


class VectorWriter:
    """Streams one vector column into ``vectors/<column>.parquet`` (atomically on close)."""

    def __init__(self, run_dir: str | Path, column: str) -> None:
        from clipsieve.table import atomic_path

        self.column = column
        self._atomic = atomic_path(vector_path(run_dir, column))
        self._tmp = self._atomic.__enter__()
        self._writer: pq.ParquetWriter | None = None
        self.rows = 0

    def write(self, part: pa.Table) -> None:
        if part.num_rows == 0:
            return
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._tmp, part.schema, compression="zstd")
        self._writer.write_table(part.cast(self._writer.schema), VECTOR_ROW_GROUP)
        self.rows += part.num_rows

    def close(self, ok: bool = True) -> None:
        if self._writer is not None:
            self._writer.close()
        if not ok:
            self._atomic.__exit__(RuntimeError, RuntimeError("aborted"), None)
            return
        if self._writer is None:  # no vectors at all: an empty file with a plain schema
            empty = pa.schema([("clip_id", pa.string()), (self.column, pa.list_(pa.float32()))])
            pq.write_table(empty.empty_table(), self._tmp)
        self._atomic.__exit__(None, None, None)


def has_vectors(run_dir: str | Path, column: str) -> bool:
    return vector_path(run_dir, column).is_file()


def iter_vectors(
    run_dir: str | Path, column: str, batch_rows: int = VECTOR_ROW_GROUP
) -> Iterator[tuple[list[str], np.ndarray]]:
    """``(clip ids, float32 matrix)`` blocks of a vector file, in file order."""
    source = stream_parquet(vector_path(run_dir, column))
    for batch in source.iter_batches(batch_size=batch_rows, columns=["clip_id", column]):
        yield batch.column(0).to_pylist(), vectors_to_numpy(batch.column(1))


def vectors_to_numpy(values: pa.Array) -> np.ndarray:
    """A (fixed-size) list column without nulls as an ``(n, d)`` float32 matrix."""
    if len(values) == 0:
        return np.zeros((0, 0), np.float32)
    if not pa.types.is_fixed_size_list(values.type):
        values = as_fixed_vectors(values)
    width = values.type.list_size
    flat = np.asarray(values.flatten().to_numpy(zero_copy_only=False), dtype=np.float32)
    if not flat.flags.writeable:  # a zero-copy view of Arrow's buffer: callers normalise in place
        flat = flat.copy()
    return flat.reshape(-1, width)


def read_vectors(
    run_dir: str | Path, column: str, clip_ids: Iterable[str] | None = None
) -> tuple[list[str], np.ndarray]:
    """The vectors of ``clip_ids`` (all when None) as ``(ids, matrix)``, in file order.

    Reads block by block and keeps only the wanted rows, so memory holds the answer (float32)
    plus one block.
    """
    wanted = None if clip_ids is None else set(clip_ids)
    ids: list[str] = []
    blocks: list[np.ndarray] = []
    for block_ids, matrix in iter_vectors(run_dir, column):
        if wanted is not None:
            keep = [i for i, c in enumerate(block_ids) if c in wanted]
            block_ids = [block_ids[i] for i in keep]
            matrix = matrix[keep]
        ids.extend(block_ids)
        blocks.append(matrix)
    blocks = [b for b in blocks if len(b)]
    return ids, (np.concatenate(blocks) if blocks else np.zeros((0, 0), np.float32))


def attach_vectors(table: pa.Table, run_dir: str | Path, column: str) -> pa.Table:
    """``table`` with ``column`` from ``vectors/<column>.parquet`` joined on ``clip_id``
    (a fixed-size float32 list, null where a clip has no vector). Unchanged when the table
    already has the column (an older run folder) or no vector file exists.

    The join is positional in numpy (``index_in`` per block), so memory is the answer matrix
    plus one block, never a Python object per value.
    """
    if column in table.column_names or not has_vectors(run_dir, column):
        return table
    ids = table.column("clip_id").combine_chunks()
    matrix: np.ndarray | None = None
    present = np.zeros(table.num_rows, bool)
    for block_ids, block in iter_vectors(run_dir, column):
        if not len(block):
            continue
        if matrix is None:
            matrix = np.zeros((table.num_rows, block.shape[1]), np.float32)
        where = pc.index_in(pa.array(block_ids, pa.string()), value_set=ids)
        positions = where.to_numpy(zero_copy_only=False)
        found = ~np.isnan(positions.astype(np.float64))
        rows = positions[found].astype(np.int64)
        matrix[rows] = block[found]
        present[rows] = True
    if matrix is None:
        return table
    flat = pa.array(matrix.reshape(-1))
    values = pa.FixedSizeListArray.from_arrays(flat, matrix.shape[1])
    values = pc.if_else(pa.array(present), values, pa.nulls(len(values), values.type))
    return table.append_column(column, values)


def vectors_for_rows(
    table: pa.Table,
    rows: np.ndarray,
    run_dir: str | Path,
    column: str,
    normalize: bool = False,
    dtype: type = np.float32,
) -> tuple[np.ndarray, np.ndarray]:
    """``(rows that have a vector, their vectors)`` for positions ``rows`` of ``table``, in row
    order, read from ``vectors/<column>.parquet`` block by block (``normalize``: unit length,
    computed in float32 before storing as ``dtype``; float16 halves the memory of a million
    768-d vectors to 1.5 GB).

    The answer matrix is allocated once and filled in place (one copy of the vectors in
    memory, plus one file block); rows without a vector are squeezed out in place.
    """
    ids = table.column("clip_id").combine_chunks().take(pa.array(rows, pa.int64()))
    matrix: np.ndarray | None = None
    present = np.zeros(len(rows), bool)
    for block_ids, block in iter_vectors(run_dir, column):
        where = pc.index_in(pa.array(block_ids, pa.string()), value_set=ids)
        positions = where.to_numpy(zero_copy_only=False).astype(np.float64)
        hit = ~np.isnan(positions)
        if not hit.any():
            continue
        block = block[hit]
        if normalize:
            block /= np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12)
        if matrix is None:
            matrix = np.empty((len(rows), block.shape[1]), dtype)
        at = positions[hit].astype(np.int64)
        matrix[at] = block
        present[at] = True
    if matrix is None:
        return np.zeros(0, np.int64), np.zeros((0, 0), dtype)
    kept = np.flatnonzero(present)
    if len(kept) < len(rows):  # squeeze forward in chunks: no second full-size copy
        for start in range(0, len(kept), VECTOR_ROW_GROUP):
            chunk = kept[start : start + VECTOR_ROW_GROUP]
            matrix[start : start + len(chunk)] = matrix[chunk]
        matrix = matrix[: len(kept)]
    return rows[kept], matrix
