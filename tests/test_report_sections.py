"""The selection sections of the report: funnel, histograms, galleries, duplicates, clusters."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from clipsieve.media.ffmpeg import run_ffmpeg
from clipsieve.report.html import write_report
from clipsieve.report.sections import (
    clusters_section,
    drop_examples,
    duplicate_groups,
    funnel,
    percentile_galleries,
    thresholds,
)
from clipsieve.table import CLIP_SCHEMA, rows_to_table, write_json

FUNNEL = {
    "where": "flow_mean >= 4 and sharpness between 2 and 30",
    "total": 22,
    "eligible": 20,
    "kept": 12,
    "steps": [
        {"condition": "flow_mean >= 4", "column": "flow_mean", "op": ">=", "value": 4,
         "rows_in": 20, "passed": 16},
        {"condition": "sharpness between 2 and 30", "column": "sharpness", "op": "between",
         "value": [2, 30], "rows_in": 16, "passed": 12},
    ],
}  # fmt: skip


def _rows(video: str | None = None) -> list[dict]:
    rows = []
    for i in range(20):
        keep = 4 <= i < 16
        reason = None if keep else ("filter: flow_mean >= 4" if i < 4 else "filter: sharpness")
        rows.append(
            {
                "clip_id": f"c{i:02d}", "video_id": "v0", "path": video, "status": "ok",
                "keep": keep, "drop_reason": reason, "flow_mean": float(i),
                "sharpness": float(2 * i), "duration_s": 1.0 + i / 4, "fps": 25.0,
                "camera_motion": "static" if i % 3 else "pan_left",
                "dup_group": 1 if i in (5, 6, 7) else None,
                "dup_of": "c05" if i in (6, 7) else None, "cluster_id": i % 2,
            }
        )  # fmt: skip
    rows.append({"clip_id": "bad", "video_id": "v1", "status": "error", "keep": None})
    rows.append({"clip_id": "unscored", "video_id": "v1", "status": "ok", "keep": True})
    return rows


def _card(row: dict) -> dict:
    return {"clip_id": row["clip_id"], "thumb": None, "duration": "?", "resolution": "?"}


def test_funnel_from_file_and_from_table() -> None:
    rows = _rows()
    recorded = funnel(rows, FUNNEL)
    assert [(s["label"], s["rows_in"], s["passed"]) for s in recorded["steps"]] == [
        ("clips in the table", 22, 22),
        ("still kept when the filter ran", 22, 20),
        ("flow_mean >= 4", 20, 16),
        ("sharpness between 2 and 30", 16, 12),
    ]
    assert recorded["steps"][-1]["pct"] == pytest.approx(100 * 12 / 22, abs=0.1)
    # a later step (dedup) dropped two rows that had passed the filter
    for row in rows[4:6]:
        row.update(filter_pass=True, keep=False, drop_reason="duplicate")
    later = funnel(rows, FUNNEL)["steps"][-1]
    assert (later["label"], later["rows_in"], later["passed"]) == (
        "not dropped by duplicate",
        12,
        10,
    )
    rows = _rows()
    rebuilt = funnel(rows, None)
    assert [(s["label"], s["passed"]) for s in rebuilt["steps"]] == [
        ("clips planned", 22),
        ("without errors", 21),
        ("not dropped by filter: flow_mean >= 4", 17),
        ("not dropped by filter: sharpness", 13),
    ]
    assert rebuilt["kept"] == 13
    assert thresholds(FUNNEL) == {
        "flow_mean": [(4.0, ">= 4")],
        "sharpness": [(2.0, "between 2"), (30.0, "between 30")],
    }


def test_percentiles_examples_duplicates() -> None:
    rows = _rows()
    galleries = percentile_galleries(rows, ["flow_mean"], _card)
    labels = [c["label"] for c in galleries[0]["cards"]]
    expected = ((5, 1), (25, 5), (50, 10), (75, 14), (95, 18))  # nearest rank of 0..19
    assert labels == [f"p{p}: flow_mean = {v}" for p, v in expected]
    examples = drop_examples(rows, FUNNEL, _card)
    assert [(g["reason"], g["total"]) for g in examples["groups"]] == [
        ("filter: flow_mean >= 4", 4),
        ("filter: sharpness", 4),
    ]
    assert examples["groups"][0]["cards"][1]["label"] == "flow_mean = 1"
    assert len(examples["kept"]) == 4
    dups = duplicate_groups(rows, _card)
    assert dups["total"] == 1
    assert [c["label"] for c in dups["groups"][0]["cards"]] == [
        "kept copy",
        "duplicate of c05",
        "duplicate of c05",
    ]


def test_clusters_section_reads_clusters_json() -> None:
    info = {
        "k": 2, "k_mode": "auto", "silhouette": 0.41234, "davies_bouldin": 0.9, "n_clustered": 20,
        "balance": {"spec": "cap=5", "seed": 0, "before": {"0": 10, "1": 10},
                    "after": {"0": 5, "1": 5}, "dropped": 10},
        "clusters": [
            {"id": c, "size": 10, "kept": 5, "keyword_source": "captions",
             "keywords": [{"word": "car", "score": 0.61}], "nearest": ["c00", "c02", "zz"]}
            for c in (0, 1)
        ],
        "map": {"method": "tsne", "points": [
            {"clip_id": f"c{i:02d}", "cluster": i % 2, "x": float(i), "y": 1.0} for i in range(20)
        ]},
    }  # fmt: skip
    by_id = {r["clip_id"]: r for r in _rows()}
    section = clusters_section(info, by_id, _card)
    assert section["silhouette"] == "0.412" and section["k"] == 2
    assert section["map"].startswith("data:image/png;base64,")
    assert section["counts"].startswith("data:image/png;base64,")
    assert section["rows"][0]["keywords"] == "car (0.61)"
    assert [c["clip_id"] for c in section["rows"][0]["cards"]] == ["c00", "c02"]
    assert clusters_section(None, by_id, _card) is None


@pytest.fixture(scope="module")
def tiny_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("media") / "tiny.mp4"
    run_ffmpeg(
        ["-f", "lavfi", "-i", "testsrc2=s=96x54:r=25:d=1", "-c:v", "libx264",
         "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)]
    )  # fmt: skip
    return path


def test_report_renders_every_section(tmp_path: Path, tiny_video: Path) -> None:
    clips = rows_to_table(_rows(str(tiny_video)), CLIP_SCHEMA)
    write_json(FUNNEL, tmp_path / "funnel.json")
    html = write_report(tmp_path, None, clips, {}, max_thumbs=2).read_text(encoding="utf-8")
    for section in ("funnel", "scores", "percentiles", "examples", "duplicates", "distributions"):
        assert f'<h2 id="{section}">' in html
    assert '<h2 id="clusters">' not in html  # no clusters.json yet
    columns = re.findall(r'alt="histogram of ([a-z_]+)"', html)
    assert columns == ["flow_mean", "sharpness", "cluster_dist"][: len(columns)]
    assert "cluster_id" not in columns and "dup_group" not in columns
    assert "sharpness between 2 and 30" in html and 'alt="camera motion"' in html
    assert html.count("data:image/jpeg;base64,") >= 5  # thumbnails of the cut clip

    budget = write_report(
        tmp_path, None, clips, {}, out=tmp_path / "small.html", max_section_thumbs=3
    ).read_text(encoding="utf-8")
    assert "thumbnail budget (3)" in budget
