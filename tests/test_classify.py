"""``clipsieve classify``: structured answers from the loopback stand-in server, the fallback for
servers without structured output, lenient reading, resume, filters and recipes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import caption_server
from caption_server import wanted
from clipsieve.classify.labels import LabelSetError, load_label_set
from clipsieve.cli import app
from clipsieve.runfolder import load_clips
from clipsieve.table import parquet_metadata

BROAD = load_label_set("broad")


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    with caption_server.StandInServer() as srv:
        yield srv


def _classify(run_dir: Path, server: Any, model: str, *extra: str) -> Any:
    args = ["classify", str(run_dir), "--base-url", server.url, "--model", model]
    return CliRunner().invoke(app, [*args, "--frame-size", "64", "-j", "4", *extra])


def test_structured_answers_become_columns_once(run_copy: Path, server: Any) -> None:
    server.reset()
    result = _classify(run_copy, server, "classify")
    assert result.exit_code == 0, result.output
    assert "classified" in result.output and "label set broad" in result.output
    rows = load_clips(run_copy).to_pylist()
    asked = wanted(rows)
    assert asked and len(server.requests) == len(asked)  # each kept clip asked exactly once
    schema = server.response_formats[0]["json_schema"]["schema"]
    assert schema["properties"]["content_type"]["enum"] == list(BROAD.types)
    for row in asked:
        assert row["content_type"] in BROAD.types and row["content_conf"] == 0.75
        assert row["content_error"] is None and json.loads(row["content_raw"])
        assert row["content_labels"] == f"broad:{BROAD.digest}"
        assert row["content_watermark"] == ("watermark" in row["content_flags"])
    for row in rows:
        if row not in asked:
            assert row["content_type"] is None and row["content_raw"] is None
    assert len({r["content_type"] for r in asked}) > 1  # the scripted answers vary
    steps = parquet_metadata(run_copy / "clips.parquet")["clipsieve_steps"]
    record = steps[-1]
    assert record["name"] == "classify" and record["params"]["label_digest"] == BROAD.digest
    recorded = json.loads((run_copy / "run.json").read_text())["steps"][-1]
    assert sum(recorded["summary"]["types"].values()) == len(asked)
    assert not (run_copy / "classify").exists()  # the answer parts were merged and removed
    server.reset()
    again = _classify(run_copy, server, "classify")
    assert again.exit_code == 0 and not server.requests  # nothing left to ask

    # the report shows what the clips are, with examples per type
    report = CliRunner().invoke(app, ["report", str(run_copy)])
    assert report.exit_code == 0, report.output
    html = (run_copy / "report.html").read_text()
    assert 'id="content"' in html and "Content types" in html
    assert all(f"<code>{kind}</code>" in html for kind in {r["content_type"] for r in asked})

    # the columns filter like any other
    expression = "content_type in ('natural', 'slideshow') and not content_watermark"
    filtered = CliRunner().invoke(app, ["filter", str(run_copy), "--where", expression])
    assert filtered.exit_code == 0, filtered.output
    kept = [r for r in load_clips(run_copy).to_pylist() if r["keep"]]
    assert all(r["content_type"] in ("natural", "slideshow") for r in kept)


def test_a_server_without_structured_output_gets_the_question_in_words(
    run_copy: Path, server: Any
) -> None:
    server.reset()
    result = _classify(run_copy, server, "classify-400", "--labels", "panda70m", "-j", "1")
    assert result.exit_code == 0, result.output
    assert server.response_formats[0] is not None  # asked with a schema once, refused
    assert all(f is None for f in server.response_formats[1:])
    panda = load_label_set("panda70m")
    asked = wanted(load_clips(run_copy).to_pylist())
    assert asked and all(r["content_type"] in panda.types for r in asked)
    assert all(r["content_conf"] is None and r["content_error"] is None for r in asked)


def test_unreadable_answers_are_asked_again(run_copy: Path, server: Any) -> None:
    server.reset()
    first = _classify(run_copy, server, "echo")  # "The video shows clip ..." names no type
    assert first.exit_code == 0
    assert "names no type" in first.output
    rows = wanted(load_clips(run_copy).to_pylist())
    assert all(r["content_type"] is None and "names no type" in r["content_error"] for r in rows)
    server.reset()
    second = _classify(run_copy, server, "classify-prose")
    assert second.exit_code == 0, second.output
    assert len(server.requests) == len(rows)
    rows = wanted(load_clips(run_copy).to_pylist())
    assert all(r["content_type"] in BROAD.types and r["content_error"] is None for r in rows)
    flagged = [r for r in rows if r["content_flags"]]
    assert flagged and all(r["content_watermark"] for r in flagged)  # read from the prose


def test_label_set_files_and_their_errors(run_copy: Path, server: Any, tmp_path: Path) -> None:
    own = tmp_path / "mine.yaml"
    own.write_text("types:\n  outdoor: outside\n  indoor: inside a building\nflags: {}\n")
    server.reset()
    result = _classify(run_copy, server, "classify", "--labels", str(own))
    assert result.exit_code == 0, result.output
    assert {r["content_type"] for r in wanted(load_clips(run_copy).to_pylist())} <= {
        "outdoor",
        "indoor",
    }
    bad = tmp_path / "bad.yaml"
    for text, message in (
        ("types:\n  Outdoor Scene: x\n  b: y\n", "lower-case"),
        ("types:\n  only: one\n", "at least two types"),
        ("types: [a, b]\n", "must map each label"),
        ("types:\n  a: x\n  b: y\nflags:\n  a: x\n", "both a type and a flag"),
    ):
        bad.write_text(text)
        with pytest.raises(LabelSetError, match=message):
            load_label_set(str(bad))
    refused = _classify(run_copy, server, "classify", "--labels", "nope")
    assert refused.exit_code == 2 and "unknown label set 'nope'" in refused.output
    assert "Traceback" not in refused.output


def test_classify_from_a_recipe(run_copy: Path, server: Any, tmp_path: Path) -> None:
    recipe = tmp_path / "content.yaml"
    recipe.write_text(
        "name: content\n"
        "vars:\n  url: null\n"
        "steps:\n"
        "  - [classify, '{out}', --base-url, '{url}', --model, classify, --labels, panda70m]\n"
        "  - [filter, '{out}', --where, \"content_type == 'desirable'\"]\n"
    )
    server.reset()
    args = ["recipe", str(recipe), "--out", str(run_copy), "--set", f"url={server.url}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = load_clips(run_copy).to_pylist()
    assert all(r["content_type"] == "desirable" for r in rows if r["keep"])
    assert any(r["drop_reason"] and r["drop_reason"].startswith("filter") for r in rows)
