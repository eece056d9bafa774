"""Panda-70M csv: Python list literals of timestamps and captions per video."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clipsieve.ingest.metafiles import parse
from clipsieve.ingest.metafiles.model import MetaVideo, Span


def read_panda70m(path: Path) -> list[MetaVideo]:
    """Panda-70M csv: one row per video with list literals of timestamps and captions."""
    where = parse.Where(path)
    header, rows = parse.load_csv(path)
    id_col, url_col, ts_col = parse.need_columns(
        where, header, ("videoID", "videoid", "video_id"), ("url",), ("timestamp",)
    )
    videos = []
    for i, row in enumerate(rows, start=1):
        rec = f"row {i}"
        source_id = row[id_col].strip()
        url = row[url_col].strip() or None
        if not source_id and not url:
            raise where.error(rec, id_col, "empty video id and url")
        stamps = parse.literal_list(where, rec, ts_col, row[ts_col])
        captions = (
            parse.literal_list(where, rec, "caption", row["caption"])
            if row.get("caption", "").strip()
            else [None] * len(stamps)
        )
        scores = (
            parse.literal_list(where, rec, "matching_score", row["matching_score"])
            if row.get("matching_score", "").strip()
            else [None] * len(stamps)
        )
        if len(captions) != len(stamps) or len(scores) != len(stamps):
            raise where.error(
                rec,
                "caption",
                f"{len(stamps)} timestamps but {len(captions)} captions and "
                f"{len(scores)} matching scores",
            )
        video_id = parse.make_meta_video_id(source_id or None, url)
        spans = []
        for k, (stamp, caption, score) in enumerate(zip(stamps, captions, scores, strict=True)):
            spans.append(_panda_span(where, f"{rec} clip {k}", video_id, k, stamp, caption, score))
        sections = parse.merge_sections(spans)
        video = MetaVideo(
            video_id=video_id,
            record=rec,
            url=url or f"https://www.youtube.com/watch?v={source_id}",
            spans=parse.assign_sections(spans, sections),
            sections=sections,
        )
        videos.append(video)
    return videos


def _panda_span(
    where: parse.Where, rec: str, video_id: str, k: int, stamp: Any, caption: Any, score: Any
) -> Span:
    start, end = parse.time_pair(where, rec, "timestamp", stamp)
    if caption is not None and not isinstance(caption, str):
        raise where.error(rec, "caption", f"expected a string, got {parse.one_line(caption)}")
    if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))):
        raise where.error(rec, "matching_score", f"expected a number, got {parse.one_line(score)}")
    return Span(
        span_id=f"{video_id}_{k}",
        start_s=start,
        end_s=end,
        caption=caption,
        caption_dataset="panda70m" if caption is not None else None,
        match_score=None if score is None else float(score),
    )
