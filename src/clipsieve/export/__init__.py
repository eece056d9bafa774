"""Export: the only step that drops rows.

``clips.parquet`` keeps every row (kept, dropped and failed) so a run can always explain each
input; the training-set files (``clips.csv`` in Open-Sora's layout, ``clips.jsonl``) hold only the
kept clips (see :mod:`clipsieve.export.kept`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from clipsieve.export.jsonl import write_clips_jsonl
from clipsieve.export.kept import kept_clips, kept_mask
from clipsieve.export.opensora import opensora_columns, opensora_table, write_opensora_csv
from clipsieve.table import CsvFileWriter, JsonlFileWriter, stream_parquet, write_parquet

FORMATS = ("parquet", "csv", "jsonl")
FILE_NAMES = {"parquet": "clips.parquet", "csv": "clips.csv", "jsonl": "clips.jsonl"}


def clip_batches(
    clips: pa.Table | str | os.PathLike[str], batch_rows: int = 65_536
) -> Iterator[pa.Table]:
    """A clip table, or the Parquet file holding one, as tables of at most ``batch_rows``."""
    if isinstance(clips, pa.Table):
        for batch in clips.to_batches(max_chunksize=batch_rows):
            yield pa.Table.from_batches([batch], schema=clips.schema)
        return
    for batch in stream_parquet(clips).iter_batches(batch_size=batch_rows):
        yield pa.Table.from_batches([batch])


def export_run(
    run_dir: Path,
    clips: pa.Table | Path,
    formats: Sequence[str] = FORMATS,
    metadata: Mapping[str, Any] | None = None,
    root: str | None = None,
) -> dict[str, Path]:
    """Write the requested formats into ``run_dir``; return ``{format: path}``.

    ``clips``: the table, or its Parquet file (streamed batch by batch, so a run of millions
    of clips writes its views in bounded memory). ``parquet`` gets all rows (with ``metadata``
    as key-value metadata; only from an in-memory table); ``csv`` and ``jsonl`` only the kept
    ones. Every file is written atomically. ``root``: what the csv's ``relpath`` is relative to
    (default ``run_dir``; the URL of a URL run folder, made in staging).
    """
    unknown = [f for f in formats if f not in FILE_NAMES]
    if unknown:
        raise ValueError(
            f"unknown export format(s) {', '.join(unknown)}: choose from {', '.join(FORMATS)}"
        )
    run_dir = Path(run_dir)
    out: dict[str, Path] = {}
    wanted = list(dict.fromkeys(formats))
    if "parquet" in wanted:
        if not isinstance(clips, pa.Table):
            raise ValueError("the parquet view is the clip table itself: pass the table")
        out["parquet"] = write_parquet(clips, run_dir / FILE_NAMES["parquet"], metadata=metadata)
    views = [f for f in wanted if f != "parquet"]
    if not views:
        return out
    schema = clips.schema if isinstance(clips, pa.Table) else pq.read_schema(clips)
    with contextlib.ExitStack() as stack:
        writers: dict[str, Any] = {}
        for fmt in views:
            target = run_dir / FILE_NAMES[fmt]
            if fmt == "csv":
                writers[fmt] = stack.enter_context(CsvFileWriter(target, opensora_columns(schema)))
            else:
                writers[fmt] = stack.enter_context(JsonlFileWriter(target))
            out[fmt] = target
        for part in clip_batches(clips):
            kept = kept_clips(part)
            if "csv" in writers:
                writers["csv"].write(opensora_table(part, root or run_dir))
            if "jsonl" in writers:
                writers["jsonl"].write(kept)
    return out


__all__ = [
    "FORMATS",
    "export_run",
    "kept_clips",
    "kept_mask",
    "write_clips_jsonl",
    "write_opensora_csv",
]
