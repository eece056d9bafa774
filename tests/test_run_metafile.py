"""``clipsieve run --metafile``: videos, spans and captions from a metafile, no shot detection."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from typer.testing import CliRunner

import hostile_media as hm
from clipsieve.cli import app
from clipsieve.table import read_parquet


def test_run_from_an_opensora_csv_keeps_captions_and_skips_shots(tmp_path: Path) -> None:
    videos = hm.plain_videos(tmp_path / "videos")
    meta = tmp_path / "meta.csv"
    with open(meta, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "text"])
        writer.writerow([str(videos / "a.mp4"), "a test pattern moving"])
        writer.writerow([str(videos / "b.mp4"), "another test pattern"])
        writer.writerow([str(videos / "missing.mp4"), "not on disk"])
    out = tmp_path / "run"
    config = tmp_path / "c.yaml"
    config.write_text("score:\n  scorers: [static]\n")
    result = CliRunner().invoke(
        app, ["run", "--metafile", str(meta), "--out", str(out), "-c", str(config), "-w", "1"]
    )
    assert result.exit_code == 0, result.output
    info = json.loads((out / "run.json").read_text())
    names = [s["name"] for s in info["stages"]]
    assert "shots" not in names and "spans" in names
    vids = {Path(r["path"]).name: r for r in read_parquet(out / "videos.parquet").to_pylist()}
    assert vids["a.mp4"]["status"] == "ok" and vids["missing.mp4"]["status"] == "error"
    clips = read_parquet(out / "clips.parquet").to_pylist()
    ok = [c for c in clips if c["status"] == "ok"]
    assert sorted(c["caption_src"] for c in ok) == ["a test pattern moving", "another test pattern"]
    assert all(c["keep"] and Path(c["path"]).is_file() for c in ok)
    assert all(c["rgb_diff_mean"] is not None for c in ok)
    bad = CliRunner().invoke(app, ["run", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "--metafile" in bad.output
