"""Run-directory checkpoints: one pair of Parquet shards per finished video.

Layout of a run directory::

    run.json              config, versions, stage descriptions, inputs
    shards/<video_id>.clips.parquet    written first
    shards/<video_id>.vectors.parquet  then the clips' vectors (embeddings), if any
    shards/<video_id>.videos.parquet   written last: its presence marks the video finished
    videos.parquet, clips.parquet      the merged tables (rebuilt from the shards at the end)
    vectors/<column>.parquet           the merged vectors, keyed by clip_id

The merge streams: it reads every shard's schema (footer only) to find the common schema, then
copies shard after shard into one Parquet writer, so memory holds one row group, not the dataset.

Each shard is written atomically (temp file + rename), and the videos shard is the commit marker,
so a run killed at any instant leaves either a finished video or nothing for it: a resume redoes
only unfinished videos and can neither lose nor duplicate rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from clipsieve.runfolder import CLIPS_FILE, VIDEOS_FILE
from clipsieve.storage import RunLocation
from clipsieve.table import (
    CLIP_SCHEMA,
    VIDEO_SCHEMA,
    concat_tables,
    merge_parquet,
    read_parquet,
    stream_parquet,
    write_parquet,
)
from clipsieve.vectors import VectorWriter, split_vectors

SHARD_DIR = "shards"


@dataclass
class MergeCounts:
    """What the summary line needs, counted while merging (no second pass over the tables)."""

    videos: int = 0
    video_errors: int = 0
    clips: int = 0
    kept: int = 0


def _aligned(ids: pa.Table, part: pa.Table, column: str) -> pa.Array:
    """``part``'s vectors (rows that have one) spread back over every clip of ``ids``."""
    where = pc.index_in(ids.column("clip_id"), value_set=part.column("clip_id"))
    return part.column(column).combine_chunks().take(where)


def merge_vectors(paths: list[Path], run_dir: Path) -> list[str]:
    """Stream the vectors shards into ``vectors/<column>.parquet`` (rows that have a vector),
    in shard order; returns the columns written. Vector files of columns no shard has (a
    post-run ``score --scorers embed``) are left as they are."""
    columns: list[str] = []
    for path in paths:
        for name in pq.read_schema(path).names:
            if name != "clip_id" and name not in columns:
                columns.append(name)
    for column in columns:
        writer = VectorWriter(run_dir, column)
        try:
            for path in paths:
                if column not in pq.read_schema(path).names:
                    continue
                for batch in stream_parquet(path).iter_batches(columns=["clip_id", column]):
                    part = pa.Table.from_batches([batch])
                    writer.write(part.filter(pc.is_valid(part.column(column))))
        except BaseException:
            writer.close(ok=False)
            raise
        writer.close()
    return columns


class ShardStore:
    """Atomic per-video shards under ``run_dir/shards``.

    With a URL ``location`` each committed pair is also uploaded, the videos shard last, so the
    remote folder carries the same commit marker (see :mod:`clipsieve.storage`).
    """

    def __init__(self, run_dir: Path, location: RunLocation | None = None) -> None:
        self.dir = Path(run_dir) / SHARD_DIR
        self.location = location

    def _path(self, video_id: str, table: str) -> Path:
        return self.dir / f"{video_id}.{table}.parquet"

    def is_done(self, video_id: str) -> bool:
        return self._path(video_id, "videos").exists()

    def done_ids(self) -> set[str]:
        if not self.dir.exists():
            return set()
        suffix = ".videos.parquet"
        return {p.name[: -len(suffix)] for p in self.dir.glob(f"*{suffix}")}

    def discard(self, video_id: str) -> None:
        """Forget one committed video so the next run does it again: its commit marker (the
        videos shard) goes first, so a kill in between leaves it simply not done."""
        for table in ("videos", "clips", "vectors"):
            self._path(video_id, table).unlink(missing_ok=True)

    def remove_partial(self) -> int:
        """Delete temp files a killed run left behind (they never count as finished work)."""
        removed = 0
        if self.dir.exists():
            for tmp in self.dir.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)
                removed += 1
        return removed

    def write(self, video_id: str, videos: pa.Table, clips: pa.Table) -> None:
        """Commit one video: clips shard first, its vectors shard (embeddings, kept out of
        the clip table) next, then the videos shard that marks it done."""
        clips, vectors = split_vectors(clips)
        names = ["clips"]
        write_parquet(clips, self._path(video_id, "clips"))
        if vectors:
            table = pa.table({"clip_id": clips.column("clip_id")})
            for column, part in vectors.items():
                table = table.append_column(column, _aligned(table, part, column))
            write_parquet(table, self._path(video_id, "vectors"))
            names.append("vectors")
        write_parquet(videos, self._path(video_id, "videos"))
        names.append("videos")
        if self.location is not None and self.location.remote:
            self.location.upload(f"{SHARD_DIR}/{video_id}.{table}.parquet" for table in names)

    def merge_run(
        self, run_dir: Path, rows: list[dict[str, Any]], metadata: Mapping[str, Any] | None
    ) -> tuple[Path, Path, MergeCounts]:
        """Merge the shards of ``rows`` into ``run_dir``'s videos/clips tables (every engine)."""
        videos_path, clips_path = run_dir / VIDEOS_FILE, run_dir / CLIPS_FILE
        counts = self.merge([row["video_id"] for row in rows], videos_path, clips_path, metadata)
        return videos_path, clips_path, counts

    def merge(
        self,
        video_ids: list[str],
        videos_out: Path,
        clips_out: Path,
        metadata: Mapping[str, Any] | None = None,
    ) -> MergeCounts:
        """Stream the finished shards of ``video_ids`` (in that order) into the two tables."""
        done = [v for v in video_ids if self.is_done(v)]
        counts = MergeCounts()

        def count_videos(table: pa.Table) -> None:
            counts.videos += table.num_rows
            counts.video_errors += int(pc.sum(pc.equal(table["status"], "error")).as_py() or 0)

        def count_clips(table: pa.Table) -> None:
            counts.clips += table.num_rows
            if table.num_rows:
                kept = pc.and_(
                    pc.fill_null(table["keep"], False),
                    pc.fill_null(pc.not_equal(table["status"], "error"), True),
                )
                counts.kept += int(pc.sum(kept).as_py() or 0)

        merge_parquet(
            [self._path(v, "videos") for v in done], videos_out, VIDEO_SCHEMA, metadata,
            count_videos,
        )  # fmt: skip
        clip_paths = [p for v in done if (p := self._path(v, "clips")).exists()]
        merge_parquet(clip_paths, clips_out, CLIP_SCHEMA, metadata, count_clips)
        vector_paths = [p for v in done if (p := self._path(v, "vectors")).exists()]
        merge_vectors(vector_paths, clips_out.parent)
        return counts

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
