"""Reading a run folder's merged tables in a form two runs can be compared by."""

from __future__ import annotations

import os
from pathlib import Path

from clipsieve.table import read_parquet


def table_rows(run_dir: Path, name: str, sort: bool = False) -> list[dict]:
    """Rows of ``run_dir/name`` with paths inside the run folder made relative to it.

    ``sort`` orders them by id (for engines whose row order is not the ingest order).
    """
    rows = read_parquet(run_dir / name).to_pylist()
    for row in rows:
        if row.get("path") and str(row["path"]).startswith(str(run_dir)):
            row["path"] = os.path.relpath(row["path"], run_dir)
    if sort:
        key = "clip_id" if name.startswith("clips") else "video_id"
        rows.sort(key=lambda r: r[key])
    return rows
