"""Inputs are part of a run's identity: edited metafiles are planned again, failed videos are
retried once their file exists, finished videos are never silently dropped."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

from typer.testing import CliRunner

import hostile_media as hm
from clipsieve.cli import app
from clipsieve.table import read_parquet

runner = CliRunner()


def _write_meta(path: Path, rows: list[tuple[Path, str]]) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "text"])
        for video, text in rows:
            writer.writerow([str(video), text])
    return path


def _run(meta: Path, out: Path, config: Path):
    return runner.invoke(
        app, ["run", "--metafile", str(meta), "--out", str(out), "-c", str(config), "-w", "1"]
    )


def _clips(out: Path) -> list[dict]:
    return read_parquet(out / "clips.parquet").to_pylist()


def test_edited_metafile_missing_files_and_changed_input_lists(tmp_path: Path) -> None:
    videos = hm.plain_videos(tmp_path / "videos")
    config = tmp_path / "c.yaml"
    config.write_text("score:\n  scorers: [static]\n")
    out = tmp_path / "run"
    a, b, c = videos / "a.mp4", videos / "b.mp4", videos / "c.mp4"
    meta = _write_meta(tmp_path / "meta.csv", [(a, "cap A"), (b, "cap B"), (c, "cap C")])
    result = _run(meta, out, config)
    assert result.exit_code == 0, result.output

    # 12. a span whose file is not there yet is a row, with the reason, not nothing
    rows = {Path(r["source_path"]).name: r for r in _clips(out)}
    assert rows["c.mp4"]["status"] == "error" and "not found" in rows["c.mp4"]["error"]
    assert rows["c.mp4"]["caption_src"] == "cap C"

    # 3. an edited caption is planned again: the new caption, one row per clip_id
    meta = _write_meta(meta, [(a, "cap A, edited"), (b, "cap B"), (c, "cap C")])
    result = _run(meta, out, config)
    assert result.exit_code == 0, result.output
    clips = _clips(out)
    assert not [i for i, n in Counter(r["clip_id"] for r in clips).items() if n > 1]
    rows = {Path(r["source_path"]).name: r for r in clips}
    assert rows["a.mp4"]["caption_src"] == "cap A, edited"
    latest = json.loads((out / "run.json").read_text())["invocations"][-1]
    assert len(latest["replanned"]) == 1 and latest["replanned"][0].startswith("a")
    assert "doing again 1 video(s) whose inputs changed" in result.output

    # 3. the failed video is tried again once its file exists
    hm._plain(c, 3.0)
    result = _run(meta, out, config)
    assert result.exit_code == 0, result.output
    rows = {Path(r["source_path"]).name: r for r in _clips(out)}
    assert rows["c.mp4"]["status"] == "ok" and Path(rows["c.mp4"]["path"]).is_file()
    assert rows["c.mp4"]["caption_src"] == "cap C"
    latest = json.loads((out / "run.json").read_text())["invocations"][-1]
    assert [v.startswith("c") for v in latest["retried"]] == [True]
    assert "replanned" not in latest, latest["replanned"]

    # 3. a different input list does not silently replace the run
    smaller = _write_meta(tmp_path / "smaller.csv", [(a, "cap A, edited"), (c, "cap C")])
    result = _run(smaller, out, config)
    assert result.exit_code == 2, result.output
    assert "not among these inputs" in result.output and "Traceback" not in result.output
    assert len(_clips(out)) == 3  # nothing lost
