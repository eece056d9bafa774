"""Open-Sora csv (and OpenVid's ``video,caption``)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

from clipsieve.ingest.metafiles import parse
from clipsieve.ingest.metafiles.model import MetaVideo


def read_opensora(path: Path) -> list[MetaVideo]:
    """Open-Sora csv (``path,text,...``) or OpenVid csv (``video,caption,...``): local files."""
    where = parse.Where(path)
    header, rows = parse.load_csv(path)
    (path_col,) = parse.need_columns(where, header, ("path", "video"))
    text_col = next((c for c in ("text", "caption") if c in header), None)
    videos = []
    for i, row in enumerate(rows, start=1):
        rec = f"row {i}"
        name = row[path_col].strip()
        if not name:
            raise where.error(rec, path_col, "empty path")
        fps = optional_number(where, rec, row, "fps")
        num_frames = optional_number(where, rec, row, "num_frames") or optional_number(
            where, rec, row, "frame"
        )
        seconds = optional_number(where, rec, row, "seconds")
        duration = seconds if seconds else (num_frames / fps if num_frames and fps else None)
        caption = row.get(text_col, "").strip() or None if text_col else None
        video_id = parse.make_meta_video_id(None, name)
        span = parse.whole_span(video_id, caption, "opensora", duration, fps)
        if num_frames and span.start_frame is not None:
            span = replace(span, end_frame=int(num_frames))
        videos.append(
            MetaVideo(
                video_id=video_id,
                record=rec,
                **parse.source(name),
                duration_s=duration,
                spans=[span],
            )
        )
    return videos


def optional_number(where: parse.Where, rec: str, row: dict[str, str], name: str) -> float | None:
    text = row.get(name, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise where.error(rec, name, f"expected a number, got {parse.one_line(text)}") from None
    if not math.isfinite(value) or value < 0:
        raise where.error(rec, name, f"expected a number ≥ 0, got {parse.one_line(text)}")
    return value
