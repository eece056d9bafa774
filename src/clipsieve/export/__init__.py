"""Export: the only step that drops rows.

``clips.parquet`` keeps every row (kept, dropped and failed) so a run can always explain each
input; the training-set files (``clips.csv`` in Open-Sora's layout, ``clips.jsonl``) hold only the
kept clips (see :mod:`clipsieve.export.kept`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from clipsieve.export.jsonl import write_clips_jsonl
from clipsieve.export.kept import kept_clips, kept_mask
from clipsieve.export.opensora import write_opensora_csv
from clipsieve.table import write_parquet

FORMATS = ("parquet", "csv", "jsonl")
FILE_NAMES = {"parquet": "clips.parquet", "csv": "clips.csv", "jsonl": "clips.jsonl"}


def export_run(
    run_dir: Path,
    clips: pa.Table,
    formats: Sequence[str] = FORMATS,
    metadata: Mapping[str, Any] | None = None,
    root: str | None = None,
) -> dict[str, Path]:
    """Write the requested formats into ``run_dir``; return ``{format: path}``.

    ``parquet`` gets all rows (with ``metadata`` as key-value metadata); ``csv`` and ``jsonl``
    only the kept ones. Every file is written atomically. ``root``: what the csv's ``relpath``
    is relative to (default ``run_dir``; the URL of a URL run folder, made in staging).
    """
    unknown = [f for f in formats if f not in FILE_NAMES]
    if unknown:
        raise ValueError(
            f"unknown export format(s) {', '.join(unknown)}: choose from {', '.join(FORMATS)}"
        )
    run_dir = Path(run_dir)
    out: dict[str, Path] = {}
    for fmt in dict.fromkeys(formats):
        target = run_dir / FILE_NAMES[fmt]
        if fmt == "parquet":
            out[fmt] = write_parquet(clips, target, metadata=metadata)
        elif fmt == "csv":
            out[fmt] = write_opensora_csv(clips, target, root=root or run_dir)
        else:
            out[fmt] = write_clips_jsonl(clips, target)
    return out


__all__ = [
    "FORMATS",
    "export_run",
    "kept_clips",
    "kept_mask",
    "write_clips_jsonl",
    "write_opensora_csv",
]
