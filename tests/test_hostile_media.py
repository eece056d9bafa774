"""Hostile inputs: a run over a corpus of broken and odd files finishes and explains every file.

The corpus and each file's expected outcome live in ``tests/hostile_media.py``. The folder-level
faults (symlink loop, a file deleted or unreadable between ingest and probe, an unwritable run
folder, a full disk) each get their own test below.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pyarrow as pa
import pytest

import hostile_media as hm
from clipsieve.config import RunConfig
from clipsieve.ingest.folder import find_videos
from clipsieve.pipeline_run import RunDirError, run_pipeline
from clipsieve.table import read_parquet


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hostile") / "input"
    hm.build(folder)
    return folder


@pytest.fixture(scope="module")
def hostile_run(corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    return run_pipeline([corpus_dir], tmp_path_factory.mktemp("hostile_run"), RunConfig())


def _cases() -> dict[str, hm.Case]:
    return {case.name: case for case in hm.CASES}


def test_every_hostile_file_has_the_expected_outcome(hostile_run) -> None:
    videos = {Path(r["path"]).name: r for r in hostile_run.result.videos.to_pylist()}
    assert set(videos) == set(_cases())
    for name, case in _cases().items():
        row = videos[name]
        if case.outcome == "error":
            assert row["status"] == "error", (name, row)
            assert case.reason in row["error"], (name, row["error"])
            assert "\n" not in row["error"] and "Traceback" not in row["error"]
        else:
            assert row["status"] == "ok", (name, row["error"])
            for key, value in case.props.items():
                assert row[key] == value, (name, key, row[key], value)


def test_hostile_clips_are_cut_and_scored_or_explained(hostile_run) -> None:
    clips = hostile_run.result.clips.to_pylist()
    by_video: dict[str, list[dict]] = {}
    for clip in clips:
        by_video.setdefault(Path(clip["source_path"]).name, []).append(clip)
    for name, case in _cases().items():
        if case.outcome != "ok":
            assert name not in by_video, name  # a broken file yields no clips
            continue
        rows = by_video.get(name, [])
        assert rows, f"{name}: no clip rows"
        for clip in rows:
            if clip["status"] == "error":
                assert clip["error"] and "\n" not in clip["error"], (name, clip["error"])
            elif clip["keep"]:
                assert clip["path"] and Path(clip["path"]).is_file(), name
                assert clip["rgb_diff_mean"] is not None, (name, clip["score_errors"])
            else:
                assert clip["drop_reason"], name
    # The long ones give kept, scored clips; the tiny ones are dropped as too short.
    assert all(not c["keep"] for c in by_video["single_frame.mp4"])
    assert all(not c["keep"] for c in by_video["short_0.2s.mp4"])
    assert any(c["keep"] for c in by_video["long_tiny_2min.mp4"])
    for name in ("vfr.mp4", "rotated_90.mp4", "hevc_10bit.mkv", "av1.mkv", "no_duration.mkv"):
        assert any(c["keep"] and c["status"] == "ok" for c in by_video[name]), name


def test_rotated_clip_is_upright(hostile_run) -> None:
    """A 160x120 picture with a 90-degree display matrix is a 120x160 (portrait) clip."""
    clips = [
        c
        for c in hostile_run.result.clips.to_pylist()
        if Path(c["source_path"]).name == "rotated_90.mp4" and c["keep"]
    ]
    assert clips and all((c["width"], c["height"]) == (hm.H, hm.W) for c in clips)


def test_symlink_loop_does_not_hang(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    hm._plain(folder / "a.mp4", 1.0)
    os.symlink(folder, folder / "sub" / "loop")
    os.symlink(folder / "sub", folder / "sub" / "loop2")
    found = find_videos([str(folder)])
    assert [Path(p).name for p in found] == ["a.mp4"]


def test_file_deleted_between_ingest_and_probe(tmp_path: Path, monkeypatch) -> None:
    """The file list is made first; a file that vanishes before its probe gets an error row."""
    folder = tmp_path / "in"
    folder.mkdir()
    hm._plain(folder / "stays.mp4", 2.0)
    hm._plain(folder / "vanishes.mp4", 2.0)
    import clipsieve.pipeline_run as run_module

    real = run_module.ingest_rows

    def ingest_then_delete(*args, **kwargs):
        rows = real(*args, **kwargs)
        (folder / "vanishes.mp4").unlink()
        return rows

    monkeypatch.setattr(run_module, "ingest_rows", ingest_then_delete)
    result = run_pipeline([folder], tmp_path / "run", RunConfig()).result
    rows = {Path(r["path"]).name: r for r in result.videos.to_pylist()}
    assert rows["stays.mp4"]["status"] == "ok"
    assert rows["vanishes.mp4"]["status"] == "error"
    assert "file not found" in rows["vanishes.mp4"]["error"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_gets_an_error_row(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    hm._plain(folder / "locked.mp4", 1.0)
    (folder / "locked.mp4").chmod(0)
    try:
        result = run_pipeline([folder], tmp_path / "run", RunConfig()).result
    finally:
        (folder / "locked.mp4").chmod(0o644)
    (row,) = result.videos.to_pylist()
    assert row["status"] == "error" and "ermission" in row["error"]


def test_unwritable_output_is_one_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    hm._plain(folder / "a.mp4", 1.0)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(RunDirError) as info:
        run_pipeline([folder], blocker / "run", RunConfig())
    assert str(blocker) in str(info.value) and "\n" not in str(info.value)


def test_full_disk_stops_cleanly_and_resumes(tmp_path: Path, monkeypatch) -> None:
    """ENOSPC while writing: the run stops with the OS error, no half shard is trusted, and a
    re-run after space is freed finishes with the same tables as a run that never failed."""
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        hm._plain(folder / f"v{i}.mp4", 2.0)
    config = RunConfig()
    config.cut.enabled = False  # only Parquet shards are written: the writer under test
    reference = run_pipeline([folder], tmp_path / "reference", config).result

    import pyarrow.parquet as pq

    real_write_table = pq.write_table
    calls = {"n": 0}

    def write_table(table: pa.Table, where, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        return real_write_table(table, where, *args, **kwargs)

    monkeypatch.setattr(pq, "write_table", write_table)
    run_dir = tmp_path / "run"
    with pytest.raises(OSError, match="No space left"):
        run_pipeline([folder], run_dir, config)
    leftovers = [p.name for p in (run_dir / "shards").glob("*") if p.name.endswith(".tmp")]
    assert leftovers == []
    monkeypatch.setattr(pq, "write_table", real_write_table)
    resumed = run_pipeline([folder], run_dir, config).result
    assert resumed.videos.num_rows == reference.videos.num_rows
    keys = ["clip_id", "start_frame", "end_frame", "keep", "status"]
    assert resumed.clips.select(keys).to_pylist() == reference.clips.select(keys).to_pylist()
    assert read_parquet(run_dir / "clips.parquet").num_rows == reference.clips.num_rows
    shutil.rmtree(run_dir)


def _peak_rss_mb(folder: Path, out: Path, config: Path) -> float:
    """Run ``clipsieve run`` in a child process (one worker); its peak RSS in MB."""
    import subprocess
    import sys

    script = (
        "import resource, subprocess, sys; "
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "sys.stderr.write(p.stderr[-2000:]); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(p.returncode)"
    )
    cmd = [sys.executable, "-m", "clipsieve", "run", str(folder), "--out", str(out)]
    cmd += ["--config", str(config), "--workers", "1"]
    proc = subprocess.run(
        [sys.executable, "-c", script, *cmd], capture_output=True, text=True, timeout=3000
    )
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout.split()[-1]) / 1024


@pytest.mark.slow
def test_two_hour_tiny_video_streams_in_bounded_memory(tmp_path: Path) -> None:
    """2 h of 32x24 video is probed, split and scored as a stream: its peak memory is that of a
    40-minute video (already longer than one shot-detection chunk), not 3 times more
    (make test-slow)."""
    config = tmp_path / "config.yaml"
    config.write_text("cut:\n  enabled: false\n", encoding="utf-8")
    peaks = {}
    for name, seconds in (("forty_minutes", 2400), ("two_hours", 7200)):
        folder = tmp_path / name
        folder.mkdir()
        hm._long_tiny(seconds)(folder / f"{name}.mp4")
        peaks[name] = _peak_rss_mb(folder, tmp_path / f"run_{name}", config)
    clips = read_parquet(tmp_path / "run_two_hours" / "clips.parquet")
    videos = read_parquet(tmp_path / "run_two_hours" / "videos.parquet").to_pylist()
    assert videos[0]["num_frames"] == 36000 and videos[0]["status"] == "ok"
    assert clips.num_rows >= 720  # 10 s maximum per clip
    assert peaks["two_hours"] < 1.2 * peaks["forty_minutes"], peaks
