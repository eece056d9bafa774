"""The run report: one self-contained HTML page that explains a run.

It answers "what happened to my videos?": the funnel of counts per stage, every error, why clips
were dropped, and a thumbnail of each kept clip. Thumbnails are embedded as base64 JPEG data
URIs and the CSS is inline, so the file can be mailed or opened offline (no CDN, no side files).
For big runs the thumbnails and error rows are capped and the page says so.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2
import pyarrow as pa
import pyarrow.parquet as pq

from clipsieve.evaluate import EVALUATION_FILE
from clipsieve.export.opensora import score_columns
from clipsieve.report.data import SAMPLE_ROWS, load_report_data
from clipsieve.report.sections import ThumbBudget, read_json, selection_context
from clipsieve.report.thumbs import thumbnail_jpeg
from clipsieve.steps.base import PostRunStep, StepContext
from clipsieve.table import atomic_path

MAX_THUMBS = 500
MAX_SECTION_THUMBS = 240  # percentile galleries, drop examples, duplicates, cluster grids
MAX_ERRORS = 1000
THUMB_SIDE = 256


def _thumb_uri(clip: Mapping[str, Any], run_dir: Path) -> str | None:
    """Middle frame of the cut clip file, else the same frame in the source video."""
    data = None
    path = clip.get("path")
    if path:
        clip_file = Path(path) if Path(path).is_absolute() else run_dir / path
        frames = clip.get("num_frames")
        data = thumbnail_jpeg(clip_file, frames // 2 if frames else None, max_side=THUMB_SIDE)
    start, end = clip.get("start_frame"), clip.get("end_frame")
    if data is None and clip.get("source_path") and start is not None and end is not None:
        data = thumbnail_jpeg(clip["source_path"], (start + end - 1) // 2, max_side=THUMB_SIDE)
    if data is None:
        return None
    return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")


def _card(
    clip: Mapping[str, Any], run_dir: Path, budget: ThumbBudget | None = None
) -> dict[str, Any]:
    duration = clip.get("duration_s")
    if duration is None and clip.get("num_frames") and clip.get("fps"):
        duration = clip["num_frames"] / clip["fps"]
    width, height = clip.get("width"), clip.get("height")
    return {
        "clip_id": clip.get("clip_id"),
        "thumb": _thumb_uri(clip, run_dir)
        if budget is None
        else budget.get(str(clip.get("clip_id")), lambda: _thumb_uri(clip, run_dir)),
        "duration": f"{duration:.2f} s" if duration is not None else "?",
        "frames": clip.get("num_frames") if clip.get("num_frames") is not None else "?",
        "resolution": f"{width}\u00d7{height}" if width and height else "?",
        "source": os.path.basename(clip.get("source_path") or ""),
        "span": f"{clip.get('start_frame')}\u2013{clip.get('end_frame')}",
    }


def _content(
    content: Mapping[str, Any] | None, run_dir: Path, budget: ThumbBudget
) -> dict[str, Any] | None:
    """The content section: the counts as they are, example rows turned into cards."""
    if content is None:
        return None
    examples = {
        kind: [_card(row, run_dir, budget) for row in rows]
        for kind, rows in content["examples"].items()
    }
    return {**content, "examples": examples}


def _summary(run_info: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of ``run.json`` worth a glance; everything else goes in a details table."""
    inputs = run_info.get("inputs") or run_info.get("input") or []
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    when = next(
        (
            run_info[k]
            for k in ("finished_at", "started_at", "created_at", "when")
            if run_info.get(k)
        ),
        None,
    )
    versions = run_info.get("versions") or {}
    if not isinstance(versions, Mapping):
        versions = {"version": versions}
    invocations = run_info.get("invocations") or []
    if not when and invocations and isinstance(invocations[-1], Mapping):
        when = invocations[-1].get("finished") or invocations[-1].get("started")
    stages = [
        {
            "name": s.get("stage"),
            "seconds": f"{s.get('seconds', 0):.1f}",
            "rows_in": s.get("rows_in"),
            "rows_out": s.get("rows_out"),
            "errors": ", ".join(f"{reason} ×{n}" for reason, n in (s.get("errors") or {}).items()),
        }
        for s in run_info.get("stage_stats") or []
        if isinstance(s, Mapping)
    ]
    shown = {"inputs", "input", "versions", "stage_stats"}
    # Nested values (config, stage parameters) are long: shown folded, as indented JSON.
    details = {
        k: v
        if isinstance(v, (str, int, float, bool)) or v is None
        else json.dumps(v, indent=2, default=str)
        for k, v in run_info.items()
        if k not in shown
    }
    return {
        "inputs": [str(i) for i in inputs],
        "when": str(when) if when else None,
        "versions": {str(k): str(v) for k, v in versions.items()},
        "stages": stages,
        "details": details,
        "stale_steps": stale_steps(run_info),
    }


def stale_steps(run_info: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Post-run steps that a later `run` added rows behind (:mod:`clipsieve.steps.carry`):
    their name and how many rows they never saw, so the report can say what to run again."""
    out = []
    for step in run_info.get("steps") or []:
        if isinstance(step, Mapping) and isinstance(step.get("stale"), Mapping):
            out.append({"name": step.get("name"), "rows": step["stale"].get("rows_added", 0)})
    return out


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("clipsieve", "report/templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def write_report(
    run_dir: Path,
    videos: pa.Table | Path | None,
    clips: pa.Table | Path | None,
    run_info: Mapping[str, Any] | None = None,
    out: Path | None = None,
    *,
    max_thumbs: int = MAX_THUMBS,
    max_section_thumbs: int = MAX_SECTION_THUMBS,
    sample_rows: int = SAMPLE_ROWS,
) -> Path:
    """Render the report for a run into ``out`` (default ``run_dir/report.html``).

    ``videos`` and ``clips``: the tables, or their Parquet files (read by DuckDB: exact counts
    over the whole table, pictures from a bounded sample; see :mod:`clipsieve.report.data`).
    Besides the run facts it shows the selection: funnel, score histograms with the filter's
    thresholds, percentile galleries, dropped examples, duplicate groups, clusters and the
    camera-motion and duration distributions (see :mod:`clipsieve.report.sections`); side files
    ``funnel.json``, ``clusters.json`` and ``evaluation.json`` (written by ``clipsieve
    evaluate``) in ``run_dir`` are used when present.
    """
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir / "report.html"
    schema = None
    if clips is not None:
        schema = clips.schema if isinstance(clips, pa.Table) else pq.read_schema(clips)
    scores = score_columns(schema) if schema is not None else []
    data = load_report_data(run_dir, clips, videos, scores, max_thumbs, sample_rows)
    budget = ThumbBudget(max_section_thumbs)
    selection = selection_context(
        run_dir, data.rows, scores, lambda row: _card(row, run_dir, budget), exact=data
    )
    html = (
        _environment()
        .get_template("report.html")
        .render(
            run_dir=str(run_dir),
            generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
            summary=_summary(run_info or {}),
            counts=data.counts,
            errors=data.errors[:MAX_ERRORS],
            errors_total=data.errors_total,
            drop_reasons=data.drop_reasons,
            cards=[_card(c, run_dir) for c in data.kept_rows],
            kept_total=data.kept_total,
            selection=selection,
            sampled=data.sampled,
            total_clips=data.total,
            evaluation=read_json(run_dir / EVALUATION_FILE),
            content=_content(data.content, run_dir, budget),
            section_thumbs=budget.used,
            section_thumb_limit=max_section_thumbs,
        )
    )
    with atomic_path(out) as tmp:
        tmp.write_text(html, encoding="utf-8")
    return out


class ReportStep(PostRunStep):
    """``clipsieve report`` as a read-only post-run step (recorded in ``run.json``)."""

    name = "report"
    reads = ("clip_id", "status", "keep", "drop_reason")

    def __init__(self, out: Path | None = None, max_thumbs: int = MAX_THUMBS) -> None:
        self.out, self.max_thumbs = out, max_thumbs
        self.path: Path | None = None

    def consume(self, ctx: StepContext) -> None:
        from clipsieve.runfolder import RUN_JSON, VIDEOS_FILE

        videos = ctx.run_dir / VIDEOS_FILE
        info_path = ctx.run_dir / RUN_JSON
        info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
        self.path = write_report(
            ctx.run_dir,
            videos if videos.is_file() else None,
            ctx.clips_file,
            info,
            self.out,
            max_thumbs=self.max_thumbs,
        )

    def params(self) -> dict[str, Any]:
        return {"out": str(self.out) if self.out else None, "max_thumbs": self.max_thumbs}
