"""`clipsieve evaluate` end to end on a finished run: filter, evaluate, report."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from clipsieve.cli import app
from clipsieve.runfolder import load_clips

runner = CliRunner()


def _invoke(*args: str):
    return runner.invoke(app, list(args))


def test_filter_then_evaluate_then_report(run_copy: Path) -> None:
    filtered = _invoke("filter", str(run_copy), "--where", "flow_mean >= 5")
    assert filtered.exit_code == 0, filtered.output
    rows = load_clips(run_copy).to_pylist()
    kept = [r for r in rows if r["keep"] and r["status"] == "ok"]
    pool = [
        r
        for r in rows
        if r["status"] == "ok" and r["drop_reason"] not in ("too_short", "short_tail")
    ]
    assert 0 < len(kept) < len(pool)

    args = (
        "evaluate",
        str(run_copy),
        "--metric",
        "flow_mean",
        "--metric",
        "sharpness",
        "--draws",
        "300",
        "--seed",
        "3",
    )
    result = _invoke(*args)
    assert result.exit_code == 0, result.output
    assert "CLIP similarity skipped: no clip has a caption" in result.output
    doc = json.loads((run_copy / "evaluation.json").read_text())
    assert doc["seed"] == 3 and doc["draws"] == 300
    assert doc["selected"] == len(kept) and doc["pool"] == len(pool)
    flow = next(m for m in doc["metrics"] if m["metric"] == "flow_mean")
    # every kept clip has flow_mean >= 5: hardly any random subset of the same size does as
    # well, though with a handful of test clips the 95% interval may still reach 0
    assert flow["selected_mean"] >= 5 and flow["gain"] > 0
    assert flow["selected_mean"] > flow["random_mean"] and flow["p_value"] < 0.05
    assert flow["ci_low"] < flow["gain"] < flow["ci_high"]
    assert (flow["outcome"] == "better") == (flow["ci_low"] > 0)
    assert f"n={len(kept)} of {len(pool)}" in flow["verdict"]
    assert flow["verdict"] in " ".join(result.output.split())

    # the same seed reproduces every number
    again = _invoke(*args)
    assert again.exit_code == 0
    redo = json.loads((run_copy / "evaluation.json").read_text())
    assert redo["metrics"] == doc["metrics"]

    report = _invoke("report", str(run_copy), "--max-thumbs", "2")
    assert report.exit_code == 0, report.output
    html = (run_copy / "report.html").read_text()
    assert 'id="evaluation"' in html and flow["verdict"] in html


def test_evaluate_unknown_metric_is_one_line(run_copy: Path) -> None:
    result = _invoke("evaluate", str(run_copy), "--metric", "nope", "--no-clip")
    assert result.exit_code == 2
    assert "--metric nope: no such column" in result.output
    assert "Traceback" not in result.output
    assert not (run_copy / "evaluation.json").exists()


def test_evaluate_non_numeric_metric_is_one_line(run_copy: Path) -> None:
    result = _invoke("evaluate", str(run_copy), "-m", "camera_motion", "--no-clip")
    assert result.exit_code == 2
    assert "--metric camera_motion: the column holds string, not numbers" in result.output
