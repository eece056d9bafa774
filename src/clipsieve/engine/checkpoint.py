"""Run-directory checkpoints: one pair of Parquet shards per finished video.

Layout of a run directory::

    run.json              config, versions, stage descriptions, inputs
    shards/<video_id>.clips.parquet    written first
    shards/<video_id>.videos.parquet   written last: its presence marks the video finished
    videos.parquet, clips.parquet      the merged tables (rebuilt from the shards at the end)

Each shard is written atomically (temp file + rename), and the videos shard is the commit marker,
so a run killed at any instant leaves either a finished video or nothing for it: a resume redoes
only unfinished videos and can neither lose nor duplicate rows.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from clipsieve.table import (
    CLIP_SCHEMA,
    VIDEO_SCHEMA,
    concat_tables,
    read_parquet,
    write_parquet,
)

SHARD_DIR = "shards"


class ShardStore:
    """Atomic per-video shards under ``run_dir/shards``."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = Path(run_dir) / SHARD_DIR

    def _path(self, video_id: str, table: str) -> Path:
        return self.dir / f"{video_id}.{table}.parquet"

    def is_done(self, video_id: str) -> bool:
        return self._path(video_id, "videos").exists()

    def done_ids(self) -> set[str]:
        if not self.dir.exists():
            return set()
        suffix = ".videos.parquet"
        return {p.name[: -len(suffix)] for p in self.dir.glob(f"*{suffix}")}

    def remove_partial(self) -> int:
        """Delete temp files a killed run left behind (they never count as finished work)."""
        removed = 0
        if self.dir.exists():
            for tmp in self.dir.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)
                removed += 1
        return removed

    def write(self, video_id: str, videos: pa.Table, clips: pa.Table) -> None:
        """Commit one video: clips shard first, then the videos shard that marks it done."""
        write_parquet(clips, self._path(video_id, "clips"))
        write_parquet(videos, self._path(video_id, "videos"))

    def read(self, video_ids: list[str]) -> tuple[pa.Table, pa.Table]:
        """Merged tables for ``video_ids`` in the given order (finished ones only)."""
        videos, clips = [], []
        for video_id in video_ids:
            if not self.is_done(video_id):
                continue
            videos.append(read_parquet(self._path(video_id, "videos")))
            clip_path = self._path(video_id, "clips")
            if clip_path.exists():
                clips.append(read_parquet(clip_path))
        return concat_tables(videos, VIDEO_SCHEMA), concat_tables(clips, CLIP_SCHEMA)
