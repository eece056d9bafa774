"""The clip table: Arrow schemas, row conversion and atomic file I/O.

Everything the pipeline knows lives in two tables, ``videos`` (one row per source file) and
``clips`` (one row per clip). Stages add columns; rows are never silently dropped (a failed or
filtered row keeps ``status``/``error`` or ``keep``/``drop_reason``). Unknown values are null,
never 0 or -1, so an allow-list filter can tell "unscored" from "scored zero".

Files are written atomically (temp file in the same folder, fsync, rename) so an interrupted run
never leaves a half-written table that a resume would trust.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from clipsieve.redact import redact_value

VIDEO_FIELDS: list[pa.Field] = [
    pa.field("video_id", pa.string(), nullable=False),
    pa.field("path", pa.string(), nullable=False),
    pa.field("status", pa.string()),  # "ok" | "error"
    pa.field("error", pa.string()),  # "<stage>: <one-line reason>" when status == "error"
    pa.field("size_bytes", pa.int64()),
    pa.field("duration_s", pa.float64()),
    pa.field("fps", pa.float64()),  # average frame rate (frames / duration)
    pa.field("num_frames", pa.int64()),
    pa.field("width", pa.int32()),  # coded width, before rotation
    pa.field("height", pa.int32()),
    pa.field("sar", pa.string()),  # sample aspect ratio "num:den"
    pa.field("rotation", pa.int32()),  # display rotation in degrees (0/90/180/270)
    pa.field("codec", pa.string()),
    pa.field("pix_fmt", pa.string()),
    pa.field("bit_depth", pa.int32()),
    pa.field("has_audio", pa.bool_()),
    pa.field("bitrate", pa.int64()),  # bits per second
]

CLIP_FIELDS: list[pa.Field] = [
    pa.field("clip_id", pa.string(), nullable=False),
    pa.field("video_id", pa.string(), nullable=False),
    pa.field("path", pa.string()),  # the cut clip file (null until cut, or when not cut)
    pa.field("source_path", pa.string()),
    pa.field("shot_index", pa.int32()),
    pa.field("start_frame", pa.int64()),  # inclusive, 0-based decode order in the source
    pa.field("end_frame", pa.int64()),  # exclusive
    pa.field("start_s", pa.float64()),
    pa.field("end_s", pa.float64()),
    pa.field("duration_s", pa.float64()),
    pa.field("fps", pa.float64()),
    pa.field("num_frames", pa.int64()),
    pa.field("width", pa.int32()),
    pa.field("height", pa.int32()),
    pa.field("aspect_ratio", pa.float64()),  # height / width, as Open-Sora
    pa.field("resolution", pa.int64()),  # height * width
    pa.field("status", pa.string()),
    pa.field("error", pa.string()),
    pa.field("keep", pa.bool_()),
    pa.field("drop_reason", pa.string()),
]

VIDEO_SCHEMA = pa.schema(VIDEO_FIELDS)
CLIP_SCHEMA = pa.schema(CLIP_FIELDS)

STATUS_OK = "ok"
STATUS_ERROR = "error"

CAPTION_COLUMNS = ("caption", "text", "caption_src")
"""Where a clip's caption lives, best first: a VLM's new ``caption``, a ``text`` column from an
Open-Sora table, the source caption ``caption_src`` (from a metafile). The first non-empty wins."""


def caption_of(row: Mapping[str, Any]) -> str | None:
    """The clip's caption: the first non-empty of :data:`CAPTION_COLUMNS`."""
    for column in CAPTION_COLUMNS:
        value = row.get(column)
        if isinstance(value, str) and value.strip():
            return value
    return None


def has_captions(table: pa.Table) -> bool:
    """Whether ``table`` has any caption column at all."""
    return any(c in table.column_names for c in CAPTION_COLUMNS)


def error_text(stage: str, message: object) -> str:
    """One-line ``"<stage>: <message>"`` for the ``error`` column (newlines folded, capped)."""
    text = " ".join(str(message).split()) or type(message).__name__
    return f"{stage}: {text[:500]}"


def _schema_for(rows: Sequence[Mapping[str, Any]], base: pa.Schema) -> pa.Schema:
    """The base schema plus any extra columns the rows carry, in first-seen order."""
    fields = list(base)
    known = set(base.names)
    extra: dict[str, list[Any]] = {}
    for row in rows:
        for key, value in row.items():
            if key not in known:
                extra.setdefault(key, []).append(value)
    for key, values in extra.items():
        fields.append(pa.field(key, pa.array(values).type if values else pa.null()))
    return pa.schema(fields, metadata=base.metadata)


def rows_to_table(rows: Sequence[Mapping[str, Any]], base: pa.Schema) -> pa.Table:
    """Build a table with ``base``'s columns first; missing values become null.

    Extra keys become extra columns with an inferred type, so stages can add columns without
    registering them here first.
    """
    schema = _schema_for(rows, base)
    columns = {name: [row.get(name) for row in rows] for name in schema.names}
    arrays = []
    for field in schema:
        values = columns[field.name]
        if pa.types.is_null(field.type) and any(v is not None for v in values):
            arrays.append(pa.array(values))
        else:
            arrays.append(pa.array(values, type=field.type))
    fields = [pa.field(f.name, a.type) for f, a in zip(schema, arrays, strict=True)]
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=base.metadata))


def table_to_rows(table: pa.Table) -> list[dict[str, Any]]:
    """Rows as plain dicts (the form row-wise stages work in)."""
    return table.to_pylist()


def concat_tables(tables: Iterable[pa.Table], base: pa.Schema) -> pa.Table:
    """Concatenate tables whose extra columns may differ; missing columns become null."""
    tables = [t for t in tables if t is not None]
    if not tables:
        return base.empty_table()
    return pa.concat_tables(tables, promote_options="permissive")


# ---------------------------------------------------------------------------- atomic writes


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success fsync and rename it into place."""
    tmp = temp_beside(path)
    try:
        yield tmp
        commit_temp(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def temp_beside(path: str | os.PathLike[str]) -> Path:
    """A new empty temp file in ``path``'s folder (hidden, ``.tmp``), for :func:`commit_temp`."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    return Path(tmp_name)


def commit_temp(tmp: Path, path: str | os.PathLike[str]) -> None:
    """fsync the finished ``tmp`` and rename it to ``path`` (readable by all, like any output:
    mkstemp creates files owner-only)."""
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def encode_metadata(metadata: Mapping[str, Any]) -> dict[bytes, bytes]:
    """Parquet key-value metadata: JSON values, credentials in URLs and keys redacted."""
    return {k.encode(): json.dumps(redact_value(v)).encode() for k, v in metadata.items()}


def write_parquet(
    table: pa.Table, path: str | os.PathLike[str], metadata: Mapping[str, Any] | None = None
) -> Path:
    """Write Parquet atomically; ``metadata`` is stored JSON-encoded as key-value metadata."""
    if metadata:
        existing = dict(table.schema.metadata or {})
        existing.update(encode_metadata(metadata))
        table = table.replace_schema_metadata(existing)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return Path(path)


def read_parquet(path: str | os.PathLike[str]) -> pa.Table:
    return pq.read_table(path)


def stream_parquet(path: str | os.PathLike[str]) -> pq.ParquetFile:
    """A Parquet file opened for reading batch by batch in bounded memory.

    pyarrow's default ``pre_buffer`` reads ahead across row groups: iterating a 300 MB vector
    file grew the process by 250 MB more than reading it row group by row group does.
    """
    return pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)


def parquet_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON-decoded key-value metadata written by :func:`write_parquet`."""
    raw = pq.read_schema(path).metadata or {}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.decode()
        if name == "ARROW:schema":
            continue
        try:
            out[name] = json.loads(value)
        except ValueError:
            out[name] = value.decode(errors="replace")
    return out


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return value


class RowFileWriter:
    """A text table written batch by batch, atomically (temp file renamed on a clean exit).

    The streaming form of :func:`write_csv` and :func:`write_jsonl`: an export of millions of
    rows holds one batch, not the table. Use as a context manager; an exception inside leaves
    no file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.rows = 0

    def __enter__(self) -> RowFileWriter:
        self._atomic = atomic_path(self.path)
        tmp = self._atomic.__enter__()
        self._fh = open(tmp, "w", newline="", encoding="utf-8")  # noqa: SIM115 (closed in exit)
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            if exc[0] is None:
                self.end()
        finally:
            self._fh.close()
            self._atomic.__exit__(*exc)

    def start(self) -> None:
        """Write what comes before the rows."""

    def end(self) -> None:
        """Write what comes after the rows."""

    def write(self, table: pa.Table | pa.RecordBatch) -> None:
        raise TypeError("use CsvFileWriter or JsonlFileWriter")


class CsvFileWriter(RowFileWriter):
    """CSV rows: nulls as empty cells, lists/dicts JSON-encoded."""

    def __init__(self, path: str | os.PathLike[str], columns: Sequence[str]) -> None:
        super().__init__(path)
        self.columns = list(columns)

    def start(self) -> None:
        self._csv = csv.writer(self._fh)
        self._csv.writerow(self.columns)

    def write(self, table: pa.Table | pa.RecordBatch) -> None:
        if not self.columns or table.num_rows == 0:
            return
        columns = []
        for name in self.columns:
            column = table.column(name)
            kind = column.type
            values = column.to_pylist()
            if pa.types.is_nested(kind):  # lists and structs as JSON text, like _csv_cell
                values = [_csv_cell(v) for v in values]
            columns.append(values)  # csv writes None as an empty cell by itself
        self._csv.writerows(zip(*columns, strict=True))
        self.rows += table.num_rows


class JsonlFileWriter(RowFileWriter):
    """One JSON object per row, serialised by polars (Rust) a batch at a time.

    Non-finite floats are written as ``null`` (JSON has no NaN); everything else reads back
    as ``json.dumps`` of the row would.
    """

    def write(self, table: pa.Table | pa.RecordBatch) -> None:
        if table.num_rows == 0:
            return
        import polars as pl

        frame = pl.from_arrow(table, rechunk=False)
        assert isinstance(frame, pl.DataFrame)
        floats = [name for name, kind in frame.schema.items() if kind.is_float()]
        if floats:
            frame = frame.with_columns(pl.col(floats).fill_nan(None))
        self._fh.write(frame.write_ndjson())
        self.rows += table.num_rows


def write_csv(
    table: pa.Table, path: str | os.PathLike[str], columns: Sequence[str] | None = None
) -> Path:
    """Write CSV atomically (nulls as empty cells, lists/dicts JSON-encoded)."""
    names = list(columns) if columns is not None else table.column_names
    with CsvFileWriter(path, names) as writer:
        writer.write(table)
    return Path(path)


def read_csv(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """Rows of a CSV file as string dicts (types are the caller's business)."""
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def write_jsonl(table: pa.Table, path: str | os.PathLike[str]) -> Path:
    """Write one JSON object per row, atomically."""
    with JsonlFileWriter(path) as writer:
        writer.write(table)
    return Path(path)


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def write_json(obj: Any, path: str | os.PathLike[str]) -> Path:
    """Write a JSON document atomically (``run.json``, funnels, manifests), with credentials
    in URLs redacted (:mod:`clipsieve.redact`)."""
    with atomic_path(path) as tmp:
        text = json.dumps(redact_value(obj), indent=2, sort_keys=True, default=str)
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


ROW_GROUP_ROWS = 50_000  # rows buffered before a merge writes a row group


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with ``schema``'s columns in its order; missing ones null, types promoted."""
    arrays = []
    for field in schema:
        if field.name in table.column_names:
            column = table.column(field.name)
            arrays.append(column if column.type == field.type else column.cast(field.type))
        else:
            arrays.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def merge_parquet(
    paths: list[Path],
    out: Path,
    base: pa.Schema,
    metadata: Mapping[str, Any] | None = None,
    on_table: Any = None,
) -> Path:
    """Concatenate Parquet files into ``out`` (atomically) without loading them all at once.

    The result equals ``concat_tables([read_parquet(p) for p in paths], base)``: the schema is
    the permissive union of the shards' schemas in order (a column that is null in one shard and
    float in another becomes float). ``on_table`` sees each shard's table (for counting).
    """
    schemas = [pq.read_schema(p) for p in paths]
    schema = (
        pa.unify_schemas([s.remove_metadata() for s in schemas], promote_options="permissive")
        if schemas
        else base.remove_metadata()
    )
    encoded = encode_metadata(metadata or {})
    schema = schema.with_metadata(encoded) if encoded else schema
    with atomic_path(out) as tmp, pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        buffered: list[pa.Table] = []
        rows = 0
        for path in paths:
            # row group by row group: a shard is small, a table being joined may not be
            for batch in stream_parquet(path).iter_batches(batch_size=ROW_GROUP_ROWS):
                table = pa.Table.from_batches([batch])
                if on_table is not None:
                    on_table(table)
                buffered.append(_conform(table, schema))
                rows += table.num_rows
                if rows >= ROW_GROUP_ROWS:
                    writer.write_table(pa.concat_tables(buffered))
                    buffered, rows = [], 0
        if buffered or not paths:
            writer.write_table(pa.concat_tables(buffered) if buffered else schema.empty_table())
    return Path(out)
