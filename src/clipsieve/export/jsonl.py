"""JSON Lines export: one object per kept clip with every column the table has."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa

from clipsieve.export.kept import kept_clips
from clipsieve.table import write_jsonl


def write_clips_jsonl(clips: pa.Table, path: str | os.PathLike[str]) -> Path:
    """Write the kept clips (all columns) to ``path`` atomically."""
    return write_jsonl(kept_clips(clips), path)
