"""``clipsieve score`` parameters: --param SCORER.KEY=VALUE and --option (category prompts)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from clipsieve.cli import app
from clipsieve.errors import UserError
from clipsieve.score.rescore import parse_scorer_params
from clipsieve.table import parquet_metadata


def test_params_are_nested_and_yaml_typed() -> None:
    params = parse_scorer_params(
        ["motion.every_s=0.5", "match.prompts=[cat, dog]", "ocr.recognize=true"]
    )
    assert params == {
        "motion": {"every_s": 0.5},
        "match": {"prompts": ["cat", "dog"]},
        "ocr": {"recognize": True},
    }


@pytest.mark.parametrize("bad", ["every_s=1", "motion.=1", ".x=1", "motion.every_s", "a.b=[1,"])
def test_malformed_params_are_one_line_errors(bad: str) -> None:
    with pytest.raises(UserError) as info:
        parse_scorer_params([bad])
    assert "\n" not in str(info.value)


def test_score_command_passes_params_to_the_scorer(run_copy) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["score", str(run_copy), "-s", "static", "-p", "static.every_s=0.5"])
    assert ok.exit_code == 0, ok.output
    stages = parquet_metadata(run_copy / "clips.parquet")["clipsieve_steps"]
    score = next(s for s in stages if s["name"] == "score")
    static = next(x for x in score["params"]["scorers"] if x["name"] == "static")
    assert static["params"]["every_s"] == 0.5
    bad = runner.invoke(app, ["score", str(run_copy), "-s", "static", "-p", "static.nope=1"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
