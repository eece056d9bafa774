"""Export writes only kept clips to the training-set files, in Open-Sora's layout."""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow as pa
import pytest

from clipsieve.export import export_run, kept_clips, write_clips_jsonl, write_opensora_csv
from clipsieve.export.opensora import OPENSORA_COLUMNS, timecode
from clipsieve.table import CLIP_SCHEMA, read_jsonl, read_parquet, rows_to_table


def _clip(clip_id: str, start: int, end: int, **extra) -> dict:
    row = {
        "clip_id": clip_id,
        "video_id": "v0",
        "path": f"clips/{clip_id}.mp4",
        "source_path": "/data/in/v0.mp4",
        "shot_index": 0,
        "start_frame": start,
        "end_frame": end,
        "start_s": start / 25,
        "end_s": end / 25,
        "duration_s": (end - start) / 25,
        "fps": 25.0,
        "num_frames": end - start,
        "width": 320,
        "height": 180,
        "aspect_ratio": 180 / 320,
        "resolution": 320 * 180,
        "status": "ok",
        "error": None,
        "keep": True,
        "drop_reason": None,
    }
    row.update(extra)
    return row


def _table(with_scores: bool = True) -> pa.Table:
    scores = {"aes": 5.25, "motion": 1.5, "text": "a red car"} if with_scores else {}
    rows = [
        _clip("v0_0000", 25, 75, **scores),
        _clip("v0_0001", 75, 100, keep=False, drop_reason="too_short", path=None),
        _clip("v0_0002", 100, 200, status="error", error="cut: ffmpeg failed", path=None),
        _clip("v0_0003", 3600 * 25 + 1525, 3600 * 25 + 1800, **scores),
        _clip("v0_0004", 300, 400, keep=None),  # never decided: an allow-list drops it
    ]
    if with_scores:
        rows[3]["aes"] = None  # unscored stays empty, never 0
    return rows_to_table(rows, CLIP_SCHEMA)


def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def test_timecode_matches_pyscenedetect_format() -> None:
    assert timecode(0) == "00:00:00.000"
    assert timecode(3725.5) == "01:02:05.500"
    assert timecode(1 / 25 * 26) == "00:00:01.040"


def test_kept_clips_is_allow_list() -> None:
    assert kept_clips(_table()).column("clip_id").to_pylist() == ["v0_0000", "v0_0003"]


def test_opensora_csv_layout(tmp_path: Path) -> None:
    out = write_opensora_csv(_table(), tmp_path / "clips.csv", root=tmp_path)
    header, rows = _read(out)
    assert header == [*OPENSORA_COLUMNS, "aes", "motion", "text"]
    assert OPENSORA_COLUMNS == [
        "path", "id", "relpath", "num_frames", "height", "width",
        "aspect_ratio", "fps", "resolution", "timestamp",
    ]  # fmt: skip
    assert [r["id"] for r in rows] == ["v0_0000", "v0_0003"]
    first, second = rows
    assert first["path"] == str((tmp_path / "clips" / "v0_0000.mp4").resolve())
    assert first["relpath"] == "clips/v0_0000.mp4"
    assert first["num_frames"] == "50"
    assert (first["height"], first["width"]) == ("180", "320")
    assert float(first["aspect_ratio"]) == pytest.approx(0.5625)
    assert first["resolution"] == "57600"
    assert float(first["fps"]) == 25.0
    assert first["timestamp"] == "('00:00:01.000', '00:00:03.000')"
    assert second["timestamp"] == "('01:01:01.000', '01:01:12.000')"
    assert (first["aes"], first["motion"], first["text"]) == ("5.25", "1.5", "a red car")
    assert second["aes"] == ""


def test_csv_without_scores_or_captions(tmp_path: Path) -> None:
    header, rows = _read(write_opensora_csv(_table(with_scores=False), tmp_path / "x.csv"))
    assert header == OPENSORA_COLUMNS
    assert len(rows) == 2
    # root defaults to the CSV's folder
    assert rows[0]["relpath"] == "clips/v0_0000.mp4"


def test_absolute_clip_paths_outside_root(tmp_path: Path) -> None:
    table = rows_to_table(
        [_clip("a", 0, 50, path=str(tmp_path / "elsewhere" / "a.mp4"))], CLIP_SCHEMA
    )
    _, rows = _read(write_opensora_csv(table, tmp_path / "run" / "clips.csv"))
    assert rows[0]["path"] == str(tmp_path / "elsewhere" / "a.mp4")
    assert rows[0]["relpath"] == "../elsewhere/a.mp4"


def test_empty_selection_writes_header_only(tmp_path: Path) -> None:
    table = rows_to_table([_clip("a", 0, 50, keep=False, drop_reason="static")], CLIP_SCHEMA)
    header, rows = _read(write_opensora_csv(table, tmp_path / "clips.csv"))
    assert header == OPENSORA_COLUMNS and rows == []


def test_jsonl_round_trip(tmp_path: Path) -> None:
    table = _table()
    rows = read_jsonl(write_clips_jsonl(table, tmp_path / "clips.jsonl"))
    assert rows == kept_clips(table).to_pylist()
    assert set(rows[0]) == set(table.column_names)
    assert rows[1]["aes"] is None and rows[0]["text"] == "a red car"


def test_export_run_writes_all_formats(tmp_path: Path) -> None:
    table = _table()
    paths = export_run(tmp_path, table, metadata={"stage": "export"})
    assert paths == {
        "parquet": tmp_path / "clips.parquet",
        "csv": tmp_path / "clips.csv",
        "jsonl": tmp_path / "clips.jsonl",
    }
    full = read_parquet(paths["parquet"])
    assert full.num_rows == 5  # dropped rows stay in the table
    assert full.column("drop_reason").to_pylist()[1] == "too_short"
    assert len(_read(paths["csv"])[1]) == 2
    assert len(read_jsonl(paths["jsonl"])) == 2
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temp files

    only_csv = export_run(tmp_path / "b", table, formats=["csv"])
    assert list(only_csv) == ["csv"] and not (tmp_path / "b" / "clips.parquet").exists()


def test_export_run_rejects_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown export format"):
        export_run(tmp_path, _table(), formats=["csv", "tfrecord"])
