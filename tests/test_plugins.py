"""A plugin package (tests/plugins/example) installed the way users install one: its scorer
and export format are found through entry points by `run`, `score`, `export` and the API."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import clipsieve
from clipsieve.cli import app
from clipsieve.export.manifests import MANIFEST_REGISTRY
from clipsieve.score.names import SCORER_REGISTRY

PLUGIN = Path(__file__).resolve().parent / "plugins" / "example"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import shutil

    target = tmp_path_factory.mktemp("site")
    source = tmp_path_factory.mktemp("plugin") / "example"
    shutil.copytree(PLUGIN, source)  # the build writes next to the sources: not in the repo
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--no-build-isolation", "--target", str(target), str(source)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    return target


@pytest.fixture
def plugin(installed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(installed))
    # worker processes of `run` find it too
    monkeypatch.setenv("PYTHONPATH", str(installed))


def test_entry_points_register_the_plugin(plugin: None) -> None:
    assert "brightness_trend" in SCORER_REGISTRY.names()
    assert "tsv" in MANIFEST_REGISTRY.names()


def test_the_plugin_scorer_in_run_score_and_the_api(
    plugin: None, sample_set: Path, tmp_path: Path
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("score:\n  scorers: [static, brightness_trend]\n")
    run_dir = tmp_path / "run"
    args = ["run", str(sample_set / "cuts.mp4"), "--out", str(run_dir), "--config", str(config)]
    result = CliRunner().invoke(app, [*args, "--workers", "2"])
    assert result.exit_code == 0, result.output
    run = clipsieve.open_run(run_dir)
    clips = run.clips().collect()
    kept = clips.filter((clips["status"] == "ok") & clips["keep"])
    assert kept["brightness_level"].null_count() == 0 and kept["rgb_diff_mean"].null_count() == 0

    # `score` adds it to another run's table; so does the API
    rescored = CliRunner().invoke(app, ["score", str(run_dir), "--scorers", "brightness_trend"])
    assert rescored.exit_code == 0, rescored.output
    assert run.score(["brightness_trend", "static"]) == {}
    steps = [s["name"] for s in run.info["steps"]]
    assert steps.count("score") == 1  # one record per step, the latest

    # the plugin's export format
    exported = CliRunner().invoke(app, ["export", str(run_dir), "--format", "tsv"])
    assert exported.exit_code == 0, exported.output
    lines = (run_dir / "export" / "tsv" / "clips.tsv").read_text().splitlines()
    assert lines[0] == "path\tcaption" and len(lines) == 1 + kept.height


def test_without_the_plugin_the_name_is_one_line(tmp_path: Path, sample_run: Path) -> None:
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(sample_run, run_dir)
    result = CliRunner().invoke(app, ["score", str(run_dir), "--scorers", "brightness_trend"])
    assert result.exit_code == 2 and "unknown scorer 'brightness_trend'" in result.output
