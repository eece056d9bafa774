"""`clipsieve filter` on a finished run: marks, funnel, re-runs, presets, datautil flags."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from clipsieve.cli import app
from clipsieve.runfolder import load_clips
from clipsieve.select.datautil import flag_conditions
from clipsieve.select.filter import apply_filter, combine
from clipsieve.select.presets import PresetError, available_presets, load_preset
from clipsieve.steps import save_clips

runner = CliRunner()


def _invoke(*args: str):
    return runner.invoke(app, list(args))


def _eligible(clips: pa.Table) -> list[dict]:
    return [r for r in clips.to_pylist() if r["keep"] and r["status"] != "error"]


def test_filter_marks_rows_and_writes_the_funnel(run_copy: Path) -> None:
    before = load_clips(run_copy)
    eligible = _eligible(before)
    flows = sorted(r["flow_mean"] for r in eligible if r["flow_mean"] is not None)
    threshold = round(flows[len(flows) // 2], 4)
    result = _invoke(
        "filter", str(run_copy), "--where", f"flow_mean >= {threshold} and duration_s > 0"
    )
    assert result.exit_code == 0, result.output
    funnel = json.loads((run_copy / "funnel.json").read_text())
    assert funnel["total"] == before.num_rows and funnel["eligible"] == len(eligible)
    first = funnel["steps"][0]
    assert first["column"] == "flow_mean" and first["op"] == ">=" and first["value"] == threshold
    expected_pass = sum(1 for r in eligible if (r["flow_mean"] or -1) >= threshold)
    assert first["rows_in"] == len(eligible) and first["passed"] == expected_pass
    assert funnel["steps"][1]["rows_in"] == expected_pass
    after = {r["clip_id"]: r for r in load_clips(run_copy).to_pylist()}
    assert len(after) == before.num_rows  # rows are never removed
    for old in before.to_pylist():
        new = after[old["clip_id"]]
        if not old["keep"]:  # dropped earlier (length policy, errors): untouched
            assert new["keep"] is False and new["drop_reason"] == old["drop_reason"]
            assert new["filter_pass"] is None
        elif old["status"] != "error" and (old["flow_mean"] or -1) < threshold:
            assert new["drop_reason"] == f"filter: flow_mean >= {threshold}"
            assert new["filter_pass"] is False
    assert "filter funnel" in result.output
    stages = json.loads((run_copy / "run.json").read_text())["steps"]
    assert any(s["name"] == "filter" and "flow_mean" in s["params"]["where"] for s in stages)

    # a looser re-run starts from a clean slate of filter's own drops
    again = _invoke("filter", str(run_copy), "--where", "flow_mean >= 0")
    assert again.exit_code == 0, again.output
    rows = load_clips(run_copy).to_pylist()
    assert sum(1 for r in rows if r["keep"]) == sum(
        1 for r in eligible if r["flow_mean"] is not None
    )
    assert not any((r["drop_reason"] or "").startswith("filter: flow_mean >= 0.") for r in rows)


def test_unscored_rows_fail_unless_kept(run_copy: Path) -> None:
    clips = load_clips(run_copy)
    target = _eligible(clips)[0]["clip_id"]
    flows = [
        None if cid == target else f
        for cid, f in zip(
            clips.column("clip_id").to_pylist(), clips.column("flow_mean").to_pylist(), strict=True
        )
    ]
    index = clips.column_names.index("flow_mean")
    clips = clips.set_column(index, "flow_mean", pa.array(flows, pa.float64()))
    save_clips(run_copy, clips, {"name": "test-edit", "version": "1", "params": {}})

    assert _invoke("filter", str(run_copy), "--where", "flow_mean >= 0").exit_code == 0
    row = next(r for r in load_clips(run_copy).to_pylist() if r["clip_id"] == target)
    assert row["keep"] is False and row["drop_reason"] == "filter: flow_mean >= 0"
    assert json.loads((run_copy / "funnel.json").read_text())["steps"][0]["unscored"] == 1

    assert (
        _invoke("filter", str(run_copy), "-w", "flow_mean >= 0", "--keep-unscored").exit_code == 0
    )
    row = next(r for r in load_clips(run_copy).to_pylist() if r["clip_id"] == target)
    assert row["keep"] is True and row["drop_reason"] is None


def test_preset_with_a_missing_score_names_the_way_to_get_it(run_copy: Path) -> None:
    before = (run_copy / "clips.parquet").read_bytes()
    result = _invoke("filter", str(run_copy), "--preset", "opensora-v1.2")
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "column 'aes' missing" in text and "clipsieve score" in text and "ViT-L/14" in text
    assert "Traceback" not in result.output
    assert (run_copy / "clips.parquet").read_bytes() == before  # nothing written


def test_hostile_where_fails_cleanly(run_copy: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    result = _invoke(
        "filter", str(run_copy), "--where", f"__import__('os').system('touch {marker}')"
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "error" in result.output and not marker.exists()


def test_datautil_flags_join_the_funnel(run_copy: Path) -> None:
    result = _invoke(
        "filter", str(run_copy), "--durmin", "0.5", "--fmax", "100000", "--flowmin", "0"
    )
    assert result.exit_code == 0, result.output
    funnel = json.loads((run_copy / "funnel.json").read_text())
    assert funnel["where"] == "num_frames <= 100000 and duration_s >= 0.5 and flow_mean >= 0"
    assert [s["column"] for s in funnel["steps"]] == ["num_frames", "duration_s", "flow_mean"]


def test_flag_conditions_and_combine() -> None:
    conditions = flag_conditions(
        {"aesmin": 5, "hwmax": 921600, "text_area_max": 0.02},
        lang=["en,de"],
        remove_empty_caption=True,
        columns=["text"],
    )
    assert conditions == [
        "resolution <= 921600",
        "aes >= 5",
        "text_area_ratio <= 0.02",
        "lang in ('en', 'de')",
        "text is not null and text != ''",
    ]
    assert combine(["a > 1 and b < 2", "", "c == 'x'"]) == "a > 1 and b < 2 and c == 'x'"
    with pytest.raises(ValueError, match="unknown datautil flags"):
        flag_conditions({"nope": 1})


def test_shipped_presets_parse() -> None:
    shipped = ["content-clean", "easyanimate", "hdvg-supershy", "opensora-v1.2"]
    assert available_presets() == shipped
    assert "not split_screen" in load_preset("content-clean").where
    easy = load_preset("easyanimate")
    assert "duration_s between 3 and 10" in easy.where and "aes_siglip >= 4.0" in easy.where
    assert "embed_cos_min >= 0.8" in easy.where
    hdvg = load_preset("hdvg-supershy")
    assert hdvg.top_n is not None and hdvg.top_n.by == "quality_prob" and hdvg.top_n.n is None
    with pytest.raises(PresetError, match="shipped: content-clean, easyanimate"):
        load_preset("nope")


def test_preset_file_and_top_n(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nwhere:\n  - score > 0.5\ntop_n:\n  by: score\n  n: 1\n")
    preset = load_preset(str(path))
    assert preset.where == ("score > 0.5",) and preset.top_n and preset.top_n.n == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("where:\n  - score >\n")
    with pytest.raises(PresetError, match="bad.yaml"):
        load_preset(str(bad))


def test_apply_filter_in_memory_keeps_other_drop_reasons() -> None:
    clips = pa.Table.from_pylist(
        [
            {"clip_id": "a", "status": "ok", "keep": True, "drop_reason": None, "s": 1.0},
            {"clip_id": "b", "status": "ok", "keep": False, "drop_reason": "too short", "s": 9.0},
            {
                "clip_id": "c",
                "status": "ok",
                "keep": False,
                "drop_reason": "filter: s > 5",
                "s": 3.0,
            },
            {"clip_id": "d", "status": "error", "keep": True, "drop_reason": None, "s": 9.0},
        ]
    )
    result = apply_filter(clips, "s > 2")
    rows = {r["clip_id"]: (r["keep"], r["drop_reason"]) for r in result.table.to_pylist()}
    assert rows == {
        "a": (False, "filter: s > 2"),
        "b": (False, "too short"),
        "c": (True, None),  # dropped by an earlier filter: reconsidered
        "d": (True, None),  # an error row is not decided by the filter
    }
    assert result.funnel["excluded_before"] == {"error": 1, "too short": 1}


def test_missing_column_hints_name_real_scorers() -> None:
    """Every `--scorers NAME` hint names a registered scorer that really outputs the column."""
    import importlib
    import re

    from clipsieve.score.names import SCORERS
    from clipsieve.select.columns import PRODUCERS, missing_column_message

    for column, (_, how) in PRODUCERS.items():
        m = re.search(r"--scorers (\w+)", how)
        if not m:
            continue
        module, cls = SCORERS[m.group(1)].split(":")
        assert column in getattr(importlib.import_module(module), cls).columns, column
    assert missing_column_message("flow_mena", ["flow_mean"]).endswith("(did you mean flow_mean?)")
