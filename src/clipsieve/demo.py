"""The demo recipe: every stage of a curation run, on the built-in sample set, offline.

``clipsieve demo`` renders the sample videos, runs the pipeline with the scorers that need no
downloaded weights, then replays the commands a user would type after a run: filter, dedup, a
quality classifier trained on labels, top-N, clusters with balancing, training-set exports and
the report. Captioning is left out because it needs a VLM server.

The labels come from a rule on measured properties (``DEMO_RULE``), standing in for the person
who labels clips in ``clipsieve annotate``; since the rule is known, the classifier's reported
accuracy says how well it recovers it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from clipsieve.runfolder import CLIPS_FILE
from clipsieve.score.names import DEFAULT_SCORERS
from clipsieve.table import read_parquet

DEMO_SCORERS = [*DEFAULT_SCORERS, "transition", "embed", "ocr"]
DEMO_WHERE = "flow_mean between 1 and 40 and text_area_ratio < 0.02 and sharpness >= 5"
DEMO_RULE = "good = flow_mean <= 15"


def write_demo_config(path: Path) -> Path:
    """A run config with the offline scorer set (decoded once per clip for all of them)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# written by `clipsieve demo`\n" + yaml.safe_dump({"score": {"scorers": DEMO_SCORERS}}),
        encoding="utf-8",
    )
    return path


def rule_label(row: dict[str, Any]) -> int | None:
    """:data:`DEMO_RULE` for one clip; None when the clip was not scored."""
    flow = row.get("flow_mean")
    return None if flow is None else int(flow <= 15)


def write_demo_labels(run_dir: Path) -> Path:
    """``annotations.json`` (``{clip_id: 0|1}``) for every scored clip, from the rule."""
    labels = {
        row["clip_id"]: label
        for row in read_parquet(run_dir / CLIPS_FILE).to_pylist()
        if row["status"] == "ok" and (label := rule_label(row)) is not None
    }
    path = run_dir / "demo-annotations.json"
    path.write_text(json.dumps(labels, indent=1, sort_keys=True), encoding="utf-8")
    return path


def post_run_commands(run_dir: Path, labels: Path) -> list[list[str]]:
    """The commands that follow ``clipsieve run`` in the demo, as argument lists."""
    run = str(run_dir)
    return [
        ["filter", run, "--where", DEMO_WHERE],
        ["dedup", run],
        ["train-classifier", run, "--labels", str(labels), "--folds", "3"],
        ["predict", run],
        ["topn", run, "--by", "quality_prob", "-n", "3"],
        ["cluster", run, "--k", "auto", "--balance", "cap=6"],
        ["export", run, "--format", "webdataset"],
        ["export", run, "--format", "opensora-csv"],
        ["evaluate", run, "--no-clip"],
        ["report", run],
    ]
