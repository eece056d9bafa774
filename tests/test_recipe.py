"""Recipes: a workflow as a list of commands; the packaged hdvg-supershy recipe end to end.

The end-to-end test replays the original filtering workflow on generated videos listed in an
Open-Sora csv metafile, with labels from a rule on known properties (moving = good, still =
bad), so the classifier's job and the selection are checkable.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import hostile_media as hm
from clipsieve.cli import app
from clipsieve.ingest.metafiles import read_metafile
from clipsieve.media.ffmpeg import run_ffmpeg
from clipsieve.recipe import RecipeError, load_recipe, packaged_recipes
from clipsieve.table import read_parquet


def test_variables_conditions_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(
        "name: r\nvars: {a: null, b: '', c: x}\n"
        "steps:\n  - [run, '{a}', --out, '{out}']\n  - when: b\n    run: [caption, '{out}']\n"
    )
    recipe = load_recipe(str(path))
    assert recipe.commands(recipe.values(Path("o"), {"a": "in"})) == [["run", "in", "--out", "o"]]
    two = recipe.commands(recipe.values(Path("o"), {"a": "in", "b": "yes"}))
    assert two[1] == ["caption", "o"]
    with pytest.raises(RecipeError, match="needs a: pass --set a="):
        recipe.commands(recipe.values(Path("o"), {}))
    with pytest.raises(RecipeError, match="no variable zz"):
        recipe.values(Path("o"), {"zz": "1"})
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [[run, 1], {when: x, run: 'not a list'}]\n")
    with pytest.raises(RecipeError, match="step 2"):
        load_recipe(str(bad))
    assert "hdvg-supershy" in packaged_recipes()


def _still(out: Path) -> None:
    run_ffmpeg(
        ["-y", "-loglevel", "error", "-f", "lavfi", "-i", "smptebars=size=160x120:rate=25"]
        + ["-t", "3", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(out)]
    )


def test_hdvg_supershy_recipe_replays_the_workflow(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    moving = {f"moving{i}.mp4" for i in range(4)}
    for name in sorted(moving):
        hm._plain(videos / name, 3.0)
    for i in range(4):
        _still(videos / f"still{i}.mp4")
    meta = tmp_path / "meta.csv"
    with open(meta, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "text"])
        for path in sorted(videos.iterdir()):
            writer.writerow([str(path), f"a clip called {path.stem}"])
    labels = {
        video.spans[0].span_id: int(Path(video.path).name in moving)
        for video in read_metafile(meta).videos
    }
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    out = tmp_path / "run"
    sets = [f"metafile={meta}", f"videos={videos}", f"labels={tmp_path / 'labels.json'}"]
    result = CliRunner().invoke(
        app,
        ["recipe", "hdvg-supershy", "--out", str(out), "--set", "download="]
        + [arg for s in sets for arg in ("--set", s)],
    )
    assert result.exit_code == 0, result.output
    clips = {
        Path(c["source_path"]).name: c for c in read_parquet(out / "clips.parquet").to_pylist()
    }
    assert all(c["quality_prob"] is not None for c in clips.values())
    kept = {name for name, c in clips.items() if c["keep"]}
    assert kept and kept <= moving  # the classifier learned the rule; stills are dropped
    assert (out / "evaluation.json").is_file() and (out / "report.html").is_file()
    assert (out / "export" / "opensora-csv" / "clips.csv").is_file()


def test_a_failing_step_stops_the_recipe(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(
        "steps:\n  - [config, init, '{out}/a.yaml']\n  - [filter, '{out}', --where, 'x > 1']\n"
        "  - [config, init, '{out}/b.yaml']\n"
    )
    out = tmp_path / "out"
    out.mkdir()
    result = CliRunner().invoke(app, ["recipe", str(path), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "stopped there" in result.output
    assert (out / "a.yaml").is_file() and not (out / "b.yaml").exists()
