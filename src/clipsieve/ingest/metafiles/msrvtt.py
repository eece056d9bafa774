"""MSR-VTT / MSVD caption json: file names with their captions."""

from __future__ import annotations

from pathlib import Path

from clipsieve.ingest.metafiles import parse
from clipsieve.ingest.metafiles.model import MetafileError, MetaVideo


def read_msrvtt(path: Path) -> list[MetaVideo]:
    """MSR-VTT/MSVD caption json: a file name and its (usually 20) reference captions."""
    where = parse.Where(path)
    data = parse.load_json(path)
    if not isinstance(data, list):
        raise MetafileError(f"{path}: MSR-VTT metafile must be a JSON list of {{video, caption}}")
    videos = []
    for i, record in enumerate(data):
        rec = f"entry {i}"
        if not isinstance(record, dict):
            raise where.error(rec, None, "expected an object with 'video' and 'caption'")
        name = record.get("video")
        if not isinstance(name, str) or not name.strip():
            raise where.error(rec, "video", f"expected a file name, got {parse.one_line(name)}")
        captions = record.get("caption")
        if isinstance(captions, str):
            captions = [captions]
        if not isinstance(captions, list) or not all(isinstance(c, str) for c in captions):
            raise where.error(
                rec, "caption", f"expected a list of strings: {parse.one_line(captions)}"
            )
        stem = Path(name).stem
        video_id = parse.make_meta_video_id(stem, name)
        videos.append(
            MetaVideo(
                video_id=video_id,
                record=rec,
                **parse.source(name),
                spans=[
                    parse.whole_span(
                        video_id,
                        captions[0] if captions else None,
                        "msrvtt",
                        captions=tuple(captions),
                    )
                ],
            )
        )
    return videos
