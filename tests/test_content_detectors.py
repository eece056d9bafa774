"""The offline content detectors on ffmpeg-made cases: each kind found where it is and nowhere
else (the same cases and rules as benchmarks/content.py), and `--scorers content` in a run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from clipsieve.score.names import SCORER_GROUPS, expand_groups
from clipsieve.score.stage import ScoreStage
from clipsieve.table import CLIP_SCHEMA, rows_to_table
from clipsieve.testing.content_cases import CASES, DETECTORS, make_content_cases

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from content import RULES, metrics  # noqa: E402


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    paths = make_content_cases(tmp_path_factory.mktemp("content-cases"))
    stage = ScoreStage(scorers=["content"])
    stage.setup()
    rows = [
        {"clip_id": case.name, "path": str(path), "status": "ok", "keep": True, "fps": 25.0}
        for case, path in zip(CASES, paths, strict=True)
    ]
    return stage.process(rows_to_table(rows, CLIP_SCHEMA)).to_pylist()


def test_the_group_expands_to_the_four_detectors() -> None:
    assert expand_groups(["static", "content", "logo"]) == ["static", *SCORER_GROUPS["content"]]
    assert ScoreStage(scorers=["content"]).scorers == list(SCORER_GROUPS["content"])


def test_every_detector_finds_its_kind_and_nothing_else(scored: list[dict]) -> None:
    assert all(row["score_errors"] is None for row in scored)
    table = metrics([case.truth for case in CASES], scored)
    for name in DETECTORS:
        assert table[name]["tp"] >= 1, name
        assert table[name]["precision"] >= 0.9 and table[name]["recall"] >= 0.8, (name, table[name])


def test_values_are_in_range(scored: list[dict]) -> None:
    for row in scored:
        for column in ("overlay_text_ratio", "scene_text_ratio", "still_area_frac", "logo_area"):
            assert 0.0 <= row[column] <= 1.0
        assert isinstance(row["split_screen"], bool) and isinstance(row["ken_burns"], bool)
    by_name = {row["clip_id"]: row for row in scored}
    assert RULES["overlay_text"](by_name["subtitles_bottom"])
    assert by_name["still_with_sticker"]["still_area_frac"] > 0.8
    assert by_name["natural_life"]["still_area_frac"] < 0.1


def test_score_content_then_the_preset_on_a_run(run_copy: Path) -> None:
    from typer.testing import CliRunner

    from clipsieve.cli import app
    from clipsieve.runfolder import load_clips

    scored = CliRunner().invoke(app, ["score", str(run_copy), "--scorers", "content"])
    assert scored.exit_code == 0, scored.output
    rows = [r for r in load_clips(run_copy).to_pylist() if r["keep"] and r["status"] == "ok"]
    assert rows and all(r["still_area_frac"] is not None for r in rows)
    filtered = CliRunner().invoke(app, ["filter", str(run_copy), "--preset", "content-clean"])
    assert filtered.exit_code == 0, filtered.output
    assert "content-clean" in filtered.output or "funnel" in filtered.output
