"""A plain list of URLs or paths, one per line."""

from __future__ import annotations

from pathlib import Path

from clipsieve.ingest.metafiles import parse
from clipsieve.ingest.metafiles.model import MetaVideo


def read_urls(path: Path) -> list[MetaVideo]:
    """A plain list: one URL or local path per line; ``#`` starts a comment."""
    lines = parse.read_lines(path, "a URL list")
    videos = []
    for i, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if any(ch.isspace() for ch in text):
            raise parse.Where(path).error(
                f"line {i}", None, f"one URL per line: {parse.one_line(text)}"
            )
        video_id = parse.make_meta_video_id(None, text)
        videos.append(
            MetaVideo(
                video_id=video_id,
                record=f"line {i}",
                **parse.source(text),
                spans=[parse.whole_span(video_id, None, "urls")],
            )
        )
    return videos
