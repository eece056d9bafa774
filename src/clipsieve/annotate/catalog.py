"""What the labelling page may show: the run's clips, their playable files, scores and captions.

Why a catalog: the server must serve *only* files that the run's table names and that really lie
inside the run folder. The catalog resolves every clip's file once (following symlinks) and keeps
an allow-list of URL keys (paths relative to the run folder); the server looks a request up in
that list and never joins a user-supplied path onto the disk. A clip whose file is missing, or
whose file resolves outside the run folder, gets no URL and the page says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from clipsieve.runfolder import inside, load_clips, resolve_clip_file
from clipsieve.table import CAPTION_COLUMNS, caption_of

# Bookkeeping numbers that are not scores; the page shows the rest of the numeric columns.
_NOT_SCORES = {
    "shot_index",
    "start_frame",
    "end_frame",
    "start_s",
    "end_s",
    "resolution",
    "aspect_ratio",
    "piece",
    "requested_start_frame",
    "requested_end_frame",
}


@dataclass
class ClipEntry:
    """One clip as the page sees it."""

    index: int  # row index in clips.parquet
    clip_id: str
    key: str | None  # path relative to the run folder, the URL and export key; None: no file
    caption: str | None
    scores: dict[str, float | int | None] = field(default_factory=dict)


def _score_value(value: Any) -> float | int | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else float(f"{value:.4g}")
    return value


@dataclass
class Catalog:
    """The run's clips in table order plus the allow-list of servable files."""

    root: Path
    entries: list[ClipEntry]
    files: dict[str, Path]  # key → resolved file inside ``root``
    by_id: dict[str, ClipEntry]
    table: pa.Table = field(repr=False)

    @classmethod
    def load(cls, run_dir: str | Path) -> Catalog:
        root = Path(run_dir).resolve()
        table = load_clips(root)
        numeric = [
            f.name
            for f in table.schema
            if (pa.types.is_integer(f.type) or pa.types.is_floating(f.type))
            and f.name not in _NOT_SCORES
        ]
        captions = [c for c in CAPTION_COLUMNS if c in table.column_names]
        rows = table.select(
            ["clip_id", *(["path"] if "path" in table.column_names else []), *numeric, *captions]
        ).to_pylist()
        entries, files = [], {}
        for index, row in enumerate(rows):
            found = resolve_clip_file(root, row["path"]) if row.get("path") else None
            key = None
            if found is not None:
                key, real = found
                files[key] = real
            entries.append(
                ClipEntry(
                    index=index,
                    clip_id=row["clip_id"],
                    key=key,
                    caption=caption_of(row),
                    scores={name: _score_value(row.get(name)) for name in numeric},
                )
            )
        return cls(
            root=root,
            entries=entries,
            files=files,
            by_id={e.clip_id: e for e in entries},
            table=table,
        )

    def file_for(self, key: str) -> Path | None:
        """The file behind an allowed key, re-checked now (a symlink may have been swapped)."""
        known = self.files.get(key)
        if known is None:
            return None
        real = (self.root / key).resolve()
        if real != known or not real.is_file() or not inside(real, self.root):
            return None
        return real

    def export_key(self, clip_id: str) -> str:
        """The ``annotations.json`` key of a clip: its path in the run folder, else its id."""
        entry = self.by_id.get(clip_id)
        return entry.key if entry is not None and entry.key else clip_id
