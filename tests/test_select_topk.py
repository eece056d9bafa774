"""Top-N per source video: per-video cap, one per span, deterministic ties, allow-list."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pytest

from clipsieve.errors import UserError
from clipsieve.select.topk import select_top_n


def _table(rows: list[dict]) -> pa.Table:
    base = {"keep": True, "drop_reason": None, "status": "ok"}
    return pa.Table.from_pylist([{**base, **r} for r in rows])


def _kept(table: pa.Table) -> list[str]:
    return sorted(r["clip_id"] for r in table.to_pylist() if r["keep"])


def test_cap_per_video_and_ranks() -> None:
    clips = _table(
        [
            {"clip_id": "a1", "video_id": "a", "score": 0.9},
            {"clip_id": "a2", "video_id": "a", "score": 0.8},
            {"clip_id": "a3", "video_id": "a", "score": 0.7},
            {"clip_id": "b1", "video_id": "b", "score": 0.1},
        ]
    )
    out, summary = select_top_n(clips, "score", n=2)
    assert _kept(out) == ["a1", "a2", "b1"]
    rows = {r["clip_id"]: r for r in out.to_pylist()}
    assert rows["a3"]["drop_reason"] == "top_n: beyond the top 2 of its video"
    assert [rows[c]["topn_rank"] for c in ("a1", "a2", "a3", "b1")] == [1, 2, None, 1]
    assert summary["dropped_over_cap"] == 1 and summary["kept"] == 3


def test_one_per_span_and_ascending() -> None:
    clips = _table(
        [
            {"clip_id": "s1", "video_id": "v", "span_id": "x", "score": 3.0},
            {"clip_id": "s2", "video_id": "v", "span_id": "x", "score": 1.0},
            {"clip_id": "s3", "video_id": "v", "span_id": "y", "score": 2.0},
            {"clip_id": "s4", "video_id": "v", "span_id": None, "score": 5.0},
        ]
    )
    out, _ = select_top_n(clips, "score", n=None)
    assert _kept(out) == ["s1", "s3", "s4"]
    reason = {r["clip_id"]: r["drop_reason"] for r in out.to_pylist()}
    assert reason["s2"] == "top_n: not the best of its span"
    low, _ = select_top_n(clips, "score", n=None, ascending=True)
    assert _kept(low) == ["s2", "s3", "s4"]


def test_scenes_of_one_original_clip_share_a_span_group() -> None:
    """HD-VG: scenes vid.3_0 and vid.3_1 come from clip vid.3, so only the better one stays."""
    clips = _table(
        [
            {
                "clip_id": "a",
                "video_id": "v",
                "span_id": "vid.3_0",
                "span_group": "vid.3",
                "score": 2.0,
            },
            {
                "clip_id": "b",
                "video_id": "v",
                "span_id": "vid.3_1",
                "span_group": "vid.3",
                "score": 3.0,
            },
            {
                "clip_id": "c",
                "video_id": "v",
                "span_id": "vid.4_0",
                "span_group": "vid.4",
                "score": 1.0,
            },
        ]
    )
    out, summary = select_top_n(clips, "score", n=None)
    assert _kept(out) == ["b", "c"] and summary["span_column"] == "span_group"


def test_ties_break_by_clip_id_whatever_the_row_order() -> None:
    rows = [{"clip_id": c, "video_id": "v", "score": 1.0} for c in ("c", "a", "b")]
    for order in (rows, rows[::-1]):
        out, _ = select_top_n(_table(order), "score", n=1)
        assert _kept(out) == ["a"]


def test_unscored_fails_and_earlier_drops_stay() -> None:
    clips = _table(
        [
            {"clip_id": "k", "video_id": "v", "score": None},
            {
                "clip_id": "m",
                "video_id": "v",
                "score": 9.0,
                "keep": False,
                "drop_reason": "duplicate",
            },
            {"clip_id": "n", "video_id": "v", "score": 1.0},
        ]
    )
    out, summary = select_top_n(clips, "score", n=1)
    rows = {r["clip_id"]: r for r in out.to_pylist()}
    assert rows["k"]["drop_reason"] == "top_n: no score value"
    assert rows["m"]["drop_reason"] == "duplicate" and not rows["m"]["keep"]
    assert _kept(out) == ["n"] and summary["dropped_unscored"] == 1


def test_rerun_releases_its_own_marks() -> None:
    clips = _table([{"clip_id": f"c{i}", "video_id": "v", "score": float(i)} for i in range(4)])
    first, _ = select_top_n(clips, "score", n=1)
    assert _kept(first) == ["c3"]
    second, _ = select_top_n(first, "score", n=3)
    assert _kept(second) == ["c1", "c2", "c3"]


def test_bad_column_and_n() -> None:
    clips = _table([{"clip_id": "a", "video_id": "v", "name": "x"}])
    with pytest.raises(UserError, match="quality_prob"):
        select_top_n(clips, "quality_prob")
    with pytest.raises(UserError, match="not numeric"):
        select_top_n(clips, "name")
    with pytest.raises(UserError, match="at least 1"):
        select_top_n(clips.append_column("s", pa.array([1.0])), "s", n=0)


def test_topn_command_and_preset_on_a_run(run_copy) -> None:
    """`topn` caps kept clips per video; the hdvg-supershy preset filters, then applies top-N."""
    import json

    from typer.testing import CliRunner

    from clipsieve.cli import app
    from clipsieve.runfolder import load_clips
    from clipsieve.steps import save_clips

    runner = CliRunner()
    result = runner.invoke(app, ["topn", str(run_copy), "--by", "flow_mean", "-n", "1"])
    assert result.exit_code == 0, result.output
    kept = Counter(r["video_id"] for r in load_clips(run_copy).to_pylist() if r["keep"])
    assert kept and max(kept.values()) == 1

    clips = load_clips(run_copy)
    probs = [((i * 37) % 100) / 100 for i in range(clips.num_rows)]
    clips = clips.append_column("quality_prob", pa.array(probs, pa.float64()))
    save_clips(run_copy, clips, {"name": "test-predict", "version": "1", "params": {}})
    result = runner.invoke(app, ["filter", str(run_copy), "--preset", "hdvg-supershy"])
    assert result.exit_code == 0, result.output
    funnel = json.loads((run_copy / "funnel.json").read_text())
    assert [s["column"] for s in funnel["steps"]] == ["duration_s", "quality_prob"]
    assert funnel["top_n"]["by"] == "quality_prob" and funnel["top_n"]["n"] is None
    rows = load_clips(run_copy).to_pylist()
    # the earlier `topn` marks are released by the preset's own top-N (no per-video cap now)
    assert all(r["quality_prob"] >= 0.5 for r in rows if r["keep"])
    assert not any(r["drop_reason"] == "top_n: beyond the top 1 of its video" for r in rows)
