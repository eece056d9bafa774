"""`clipsieve export`: training-set folders in five formats, byte-identical WebDataset shards."""

from __future__ import annotations

import csv
import hashlib
import json
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from clipsieve.cli import app
from clipsieve.export.buckets import aspect_bucket, bucket_of, duration_bucket, resolution_bucket
from clipsieve.export.training import ExportError, export_training_set, parse_size
from clipsieve.export.webdataset import sample_key
from clipsieve.runfolder import load_clips
from clipsieve.select.marks import set_column
from clipsieve.table import read_jsonl


@pytest.fixture
def run_with_caption(run_copy: Path) -> Path:
    """The shared run with captions on all clips and one more kept clip dropped by a filter."""
    clips = load_clips(run_copy)
    rows = clips.to_pylist()
    kept = [i for i, r in enumerate(rows) if r["keep"] and r["status"] == "ok" and r["path"]]
    keep = [r["keep"] for r in rows]
    reasons = [r["drop_reason"] for r in rows]
    keep[kept[0]], reasons[kept[0]] = False, "filter: flow_mean > 9"
    clips = set_column(clips, "keep", keep)
    clips = set_column(clips, "drop_reason", reasons)
    clips = set_column(clips, "caption", [f"a clip number {i}" for i in range(len(rows))])
    pq.write_table(clips, run_copy / "clips.parquet")
    return run_copy


def _expected_ids(run_dir: Path) -> list[str]:
    rows = load_clips(run_dir).to_pylist()
    return sorted(
        (r["clip_id"] for r in rows if r["keep"] and r["status"] == "ok" and r["path"]),
        key=sample_key,
    )


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_buckets() -> None:
    assert resolution_bucket(640, 360) == "360p" and resolution_bucket(1920, 1080) == "1080p"
    assert resolution_bucket(100, 80) == "lt144p" and resolution_bucket(None, 5) == "unknown"
    assert aspect_bucket(1920, 1080) == "16x9" and aspect_bucket(1080, 1920) == "9x16"
    assert aspect_bucket(640, 480) == "4x3" and aspect_bucket(500, 500) == "1x1"
    assert duration_bucket(1.9) == "0-2s" and duration_bucket(4.0) == "4-8s"
    assert duration_bucket(40) == "ge32s" and duration_bucket(None) == "unknown"
    row = {"width": 320, "height": 180, "num_frames": 75, "fps": 25.0}
    assert bucket_of(row) == {
        "name": "144p_16x9_2-4s", "resolution": "144p", "aspect": "16x9", "duration": "2-4s"
    }  # fmt: skip
    assert parse_size("500MB") == 500_000_000 and parse_size("1GiB") == 1 << 30
    assert parse_size("2048") == 2048
    with pytest.raises(ExportError):
        parse_size("lots")


def test_webdataset_shards_are_bucketed_complete_and_byte_identical(
    run_with_caption: Path, tmp_path: Path
) -> None:
    run = run_with_caption
    clips = load_clips(run)
    first = export_training_set(run, clips, tmp_path / "a", "webdataset", shard_count=2)
    second = export_training_set(run, clips, tmp_path / "b", "webdataset", shard_count=2)
    assert second.index == first.index
    ids = _expected_ids(run)
    index = first.index
    assert index is not None and index["total"] == len(ids) == first.count > 0
    assert index["captioned"] == len(ids)
    assert sum(b["count"] for b in index["buckets"].values()) == len(ids)
    shards = sorted(p.name for p in (tmp_path / "a").glob("*.tar"))
    assert shards == sorted(s["name"] for s in index["shards"])
    assert shards == sorted(p.name for p in (tmp_path / "b").glob("*.tar"))
    for name in shards:  # byte-identical, and the index records the right hash
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert {s["name"]: s["sha256"] for s in index["shards"]} == {
        n: _sha(tmp_path / "a" / n) for n in shards
    }
    assert (tmp_path / "a" / "index.json").read_bytes() == (
        tmp_path / "b" / "index.json"
    ).read_bytes()

    by_id = {r["clip_id"]: r for r in clips.to_pylist()}
    seen = []
    for shard in index["shards"]:
        assert shard["name"] == f"{shard['bucket']}-{shard['name'][-10:-4]}.tar"
        assert 1 <= shard["count"] <= 2
        with tarfile.open(tmp_path / "a" / shard["name"]) as tar:
            members = tar.getmembers()
            assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 for m in members)
            names = [m.name for m in members]
            keys = list(dict.fromkeys(n.split(".", 1)[0] for n in names))
            assert names == [f"{k}.{ext}" for k in keys for ext in ("mp4", "json", "txt")]
            for key in keys:
                meta = json.loads(tar.extractfile(f"{key}.json").read())
                row = by_id[meta["clip_id"]]
                assert sample_key(row["clip_id"]) == key
                assert set(meta) == set(row)  # every column of the row
                assert bucket_of(row)["name"] == shard["bucket"]
                video = tar.extractfile(f"{key}.mp4").read()
                assert video == (run / row["path"]).read_bytes()
                assert tar.extractfile(f"{key}.txt").read().decode() == row["caption"]
                seen.append(row["clip_id"])
    assert sorted(seen, key=sample_key) == ids


@pytest.mark.parametrize(
    ("fmt", "link"),
    [("jsonl", "copy"), ("opensora-csv", "hard"), ("easyanimate-json", "sym"), ("parquet", "copy")],
)
def test_manifest_formats(run_with_caption: Path, tmp_path: Path, fmt: str, link: str) -> None:
    run = run_with_caption
    out = tmp_path / "out"
    summary = export_training_set(run, load_clips(run), out, fmt, link=link)
    ids = _expected_ids(run)
    files = sorted((out / "clips").iterdir())
    assert [f.name for f in files] == sorted(f"{sample_key(i)}.mp4" for i in ids)
    if link == "sym":
        assert all(f.is_symlink() and f.resolve().is_file() for f in files)
    elif link == "hard":
        assert all(f.stat().st_nlink >= 2 for f in files)
    else:
        assert all(not f.is_symlink() and f.stat().st_nlink == 1 for f in files)
    if fmt == "jsonl":
        rows = read_jsonl(out / "clips.jsonl")
        assert [r["clip_id"] for r in rows] == ids
        assert all((out / r["path"]).is_file() and r["caption"] for r in rows)
    elif fmt == "opensora-csv":
        with open(out / "clips.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert [r["id"] for r in rows] == ids
        assert all(Path(r["path"]).is_file() and r["relpath"].startswith("clips/") for r in rows)
        assert all(r["text"].startswith("a clip number") for r in rows)
    elif fmt == "easyanimate-json":
        entries = json.loads((out / "easyanimate.json").read_text())
        assert [set(e) for e in entries] == [{"file_path", "text", "type"}] * len(ids)
        assert all(e["type"] == "video" and (out / e["file_path"]).is_file() for e in entries)
    else:
        table = pq.read_table(out / "clips.parquet")
        assert table.column("clip_id").to_pylist() == ids
        assert set(table.column_names) == set(load_clips(run).column_names)
    marker = json.loads((out / "export.json").read_text())
    assert marker["format"] == fmt and marker["count"] == summary.count == len(ids)


def test_export_folder_rules(run_with_caption: Path, tmp_path: Path) -> None:
    run = run_with_caption
    clips = load_clips(run)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="not made by `clipsieve export`"):
        export_training_set(run, clips, foreign, "jsonl")
    assert (foreign / "notes.txt").read_text() == "mine"
    out = tmp_path / "out"
    export_training_set(run, clips, out, "jsonl")
    export_training_set(run, clips, out, "webdataset")  # replaces its own earlier export
    assert not (out / "clips").exists() and (out / "index.json").is_file()
    with pytest.raises(ExportError, match="--link does not apply"):
        export_training_set(run, clips, out, "webdataset", link="sym")
    with pytest.raises(ExportError, match="unknown format"):
        export_training_set(run, clips, out, "tfrecord")


def test_export_command(run_with_caption: Path) -> None:
    result = CliRunner().invoke(
        app, ["export", str(run_with_caption), "--format", "webdataset", "--shard-size", "1MB"]
    )
    assert result.exit_code == 0, result.output
    out = run_with_caption / "export" / "webdataset"
    index = json.loads((out / "index.json").read_text())
    assert index["shard_bytes"] == 1_000_000 and index["total"] > 0
    bad = CliRunner().invoke(app, ["export", str(run_with_caption), "--format", "zip"])
    assert bad.exit_code == 2 and "unknown format 'zip'" in bad.output


def test_a_worker_that_cannot_see_the_export_folder_sends_the_shard_back(
    run_with_caption: Path, tmp_path: Path
) -> None:
    """A Ray worker on a node without the driver's disk writes the shard to a temp file and
    returns its bytes; they equal the shard written in place."""
    from clipsieve.export.ray_exec import write_shard_into
    from clipsieve.export.webdataset import make_sample

    rows = [r for r in load_clips(run_with_caption).to_pylist() if r["keep"] and r["path"]][:3]
    files = [str(run_with_caption / r["path"]) for r in rows]
    samples = [
        make_sample(r, f, Path(f).stat().st_size, r["caption"])
        for r, f in zip(rows, files, strict=True)
    ]
    entry, data = write_shard_into(str(tmp_path), "a-000000.tar", samples)
    assert data is None and entry["count"] == 3
    remote, sent = write_shard_into(str(tmp_path / "elsewhere"), "a-000000.tar", samples)
    assert sent == (tmp_path / "a-000000.tar").read_bytes()
    assert remote == entry and not (tmp_path / "elsewhere").exists()


def test_shards_close_at_the_byte_limit(run_with_caption: Path, tmp_path: Path) -> None:
    """A shard closes before a sample would take it past --shard-size; a clip bigger than the
    limit gets a shard of its own."""
    clips = load_clips(run_with_caption)
    sizes = [
        (run_with_caption / r["path"]).stat().st_size
        for r in clips.to_pylist()
        if r["keep"] and r["status"] == "ok" and r["path"]
    ]
    limit = max(sizes) + 8 * 1024  # room for one clip and its small members
    summary = export_training_set(
        run_with_caption, clips, tmp_path / "s", "webdataset", shard_bytes=limit
    )
    assert summary.index is not None
    assert all(s["bytes"] <= limit for s in summary.index["shards"])
    tiny = export_training_set(
        run_with_caption, clips, tmp_path / "t", "webdataset", shard_bytes=1024
    )
    assert tiny.index is not None
    assert [s["count"] for s in tiny.index["shards"]] == [1] * len(sizes)
