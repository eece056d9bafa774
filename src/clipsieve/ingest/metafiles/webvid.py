"""WebVid csv: one whole video per row."""

from __future__ import annotations

from pathlib import Path

from clipsieve.ingest.metafiles import parse
from clipsieve.ingest.metafiles.model import MetaVideo


def read_webvid(path: Path) -> list[MetaVideo]:
    """WebVid csv: one whole video per row, ``name`` is its caption."""
    where = parse.Where(path)
    header, rows = parse.load_csv(path)
    id_col, url_col = parse.need_columns(
        where, header, ("videoid", "videoID", "video_id"), ("contentUrl", "url")
    )
    videos = []
    for i, row in enumerate(rows, start=1):
        rec = f"row {i}"
        source_id, url = row[id_col].strip(), row[url_col].strip()
        if not url:
            raise where.error(rec, url_col, "empty URL")
        if not parse.looks_like_url(url):
            raise where.error(rec, url_col, f"not a URL: {parse.one_line(url)}")
        try:
            duration = parse.parse_iso_duration(row.get("duration", ""))
        except ValueError as exc:
            raise where.error(
                rec, "duration", f"{exc}, got {parse.one_line(row['duration'])}"
            ) from None
        caption = row.get("name", "").strip() or None
        video_id = parse.make_meta_video_id(source_id or None, url)
        videos.append(
            MetaVideo(
                video_id=video_id,
                record=rec,
                url=url,
                title=caption,
                duration_s=duration,
                spans=[parse.whole_span(video_id, caption, "webvid", duration)],
            )
        )
    return videos
