"""The clip table: schemas, nulls, atomic writes, csv/jsonl round trips, shard checkpoints."""

from __future__ import annotations

import os

import pyarrow as pa

from clipsieve.engine.checkpoint import ShardStore
from clipsieve.table import (
    CLIP_SCHEMA,
    VIDEO_SCHEMA,
    atomic_path,
    error_text,
    parquet_metadata,
    read_csv,
    read_jsonl,
    read_parquet,
    rows_to_table,
    write_csv,
    write_jsonl,
    write_parquet,
)

VIDEO_COLUMNS = [
    "video_id",
    "path",
    "status",
    "error",
    "size_bytes",
    "duration_s",
    "fps",
    "num_frames",
    "width",
    "height",
    "sar",
    "rotation",
    "codec",
    "pix_fmt",
    "bit_depth",
    "has_audio",
    "bitrate",
]
CLIP_COLUMNS = [
    "clip_id",
    "video_id",
    "path",
    "source_path",
    "shot_index",
    "start_frame",
    "end_frame",
    "start_s",
    "end_s",
    "duration_s",
    "fps",
    "num_frames",
    "width",
    "height",
    "aspect_ratio",
    "resolution",
    "status",
    "error",
    "keep",
    "drop_reason",
]


def test_core_columns_are_named_exactly():
    assert VIDEO_SCHEMA.names == VIDEO_COLUMNS
    assert CLIP_SCHEMA.names == CLIP_COLUMNS


def test_missing_values_are_null_and_extra_columns_are_appended():
    table = rows_to_table([{"video_id": "a", "path": "/a", "cuts": [1, 2]}], VIDEO_SCHEMA)
    row = table.to_pylist()[0]
    assert row["fps"] is None and row["num_frames"] is None and row["width"] is None
    assert table.column_names[-1] == "cuts"
    assert table.schema.field("cuts").type == pa.list_(pa.int64())
    assert table.schema.field("fps").type == pa.float64()


def test_parquet_round_trip_with_metadata(tmp_path):
    table = rows_to_table([{"clip_id": "c", "video_id": "v", "keep": True}], CLIP_SCHEMA)
    path = write_parquet(table, tmp_path / "t.parquet", {"stages": [{"name": "x"}]})
    assert read_parquet(path).to_pylist() == table.to_pylist()
    assert parquet_metadata(path)["stages"] == [{"name": "x"}]
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.parquet"
    try:
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("killed")
    except RuntimeError:
        pass
    assert os.listdir(tmp_path) == []


def test_csv_and_jsonl_round_trip(tmp_path):
    table = rows_to_table(
        [{"clip_id": "c1", "video_id": "v", "fps": 25.0, "keep": True, "cuts": [3]}], CLIP_SCHEMA
    )
    rows = read_csv(write_csv(table, tmp_path / "t.csv", ["clip_id", "fps", "error", "cuts"]))
    assert rows == [{"clip_id": "c1", "fps": "25.0", "error": "", "cuts": "[3]"}]
    assert read_jsonl(write_jsonl(table, tmp_path / "t.jsonl")) == table.to_pylist()


def test_error_text_is_one_line_with_stage_prefix():
    assert error_text("probe", "bad\nthing\n  here") == "probe: bad thing here"


def test_shard_store_commit_marker(tmp_path):
    store = ShardStore(tmp_path)
    videos = rows_to_table([{"video_id": "v1", "path": "/v1", "status": "ok"}], VIDEO_SCHEMA)
    clips = rows_to_table([{"clip_id": "v1_0000_0", "video_id": "v1"}], CLIP_SCHEMA)
    assert not store.is_done("v1")
    store.write("v1", videos, clips)
    assert store.done_ids() == {"v1"}
    merged_videos, merged_clips = store.read(["v1", "v2"])
    assert merged_videos.num_rows == 1 and merged_clips.num_rows == 1


def test_atomic_writes_are_world_readable(tmp_path) -> None:
    from clipsieve.table import write_json

    path = write_json({"a": 1}, tmp_path / "x.json")
    assert path.stat().st_mode & 0o777 == 0o644
