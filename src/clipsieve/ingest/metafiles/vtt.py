"""A WebVTT file of one video's captioned scenes (Panda-70M's long-video output)."""

from __future__ import annotations

import re
from pathlib import Path

from clipsieve.ingest.metafiles import parse
from clipsieve.ingest.metafiles.model import YOUTUBE_ID, MetafileError, MetaVideo, Span

_VTT_CUE = re.compile(r"^(\S+)\s+-->\s+(\S+)")
_SCENE_TAG = re.compile(r"^\[Scene \d+\]\s*")


def read_vtt(path: Path) -> list[MetaVideo]:
    """A WebVTT file of one video's captioned scenes (Panda-70M's long-video splitting output).

    The file stem names the video (a YouTube id gives its URL); each cue is a span, its text the
    caption without the ``[Scene k]`` tag.
    """
    where = parse.Where(path)
    lines = parse.read_lines(path, "a WebVTT file")
    if not lines or not lines[0].strip().startswith("WEBVTT"):
        raise MetafileError(f"{path}: not a WebVTT file (the first line must be WEBVTT)")
    stem = path.stem
    url = f"https://www.youtube.com/watch?v={stem}" if YOUTUBE_ID.match(stem) else None
    video_id = parse.make_meta_video_id(stem, url)
    spans: list[Span] = []
    i = 1
    while i < len(lines):
        match = _VTT_CUE.match(lines[i].strip())
        if not match:
            i += 1
            continue
        rec = f"cue at line {i + 1}"
        try:
            start, end = parse.parse_time(match.group(1)), parse.parse_time(match.group(2))
        except ValueError as exc:
            raise where.error(rec, "timing", f"{exc}: {parse.one_line(lines[i])}") from None
        if end <= start:
            raise where.error(rec, "timing", f"end must be after start: {parse.one_line(lines[i])}")
        i += 1
        text = []
        while i < len(lines) and lines[i].strip():
            text.append(lines[i].strip())
            i += 1
        caption = _SCENE_TAG.sub("", " ".join(text)) or None
        spans.append(
            Span(
                span_id=f"{video_id}_{len(spans)}",
                start_s=start,
                end_s=end,
                caption=caption,
                caption_dataset="vtt" if caption else None,
            )
        )
    if not spans:
        raise MetafileError(f"{path}: no cues (lines like 0:00:01.000 --> 0:00:04.000)")
    sections = parse.merge_sections(spans)
    video = MetaVideo(
        video_id=video_id,
        record=path.name,
        url=url,
        spans=parse.assign_sections(spans, sections),
        sections=sections,
    )
    return [video]
