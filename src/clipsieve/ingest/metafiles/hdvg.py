"""HD-VG-130M json: clips as download sections, scene cuts as spans."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from clipsieve.ingest.metafiles import parse
from clipsieve.ingest.metafiles.model import HDVG_ANCHORS, MetafileError, MetaVideo, Section, Span


def read_hdvg(path: Path, anchor: str = "start") -> list[MetaVideo]:
    """HD-VG-130M json: one video per key, its clips as sections, scenes as spans.

    ``anchor`` says where scene frames count from (see :func:`_hdvg_clip`).
    """
    if anchor not in HDVG_ANCHORS:
        raise MetafileError(f"--hdvg-anchor {anchor!r}: choose one of {', '.join(HDVG_ANCHORS)}")
    where = parse.Where(path)
    data = parse.load_json(path)
    if not isinstance(data, dict):
        raise MetafileError(f"{path}: HD-VG metafile must be a JSON object {{video_id: {{...}}}}")
    videos = []
    for key, record in data.items():
        rec_name = f"video {key!r}"
        if not isinstance(record, dict):
            raise where.error(rec_name, None, "expected an object with 'url' and 'clip'")
        url = record.get("url")
        if not isinstance(url, str) or not url.strip():
            raise where.error(rec_name, "url", f"expected a URL string, got {parse.one_line(url)}")
        clips = record.get("clip")
        if not isinstance(clips, dict):
            raise where.error(rec_name, "clip", "expected an object of clips")
        video = MetaVideo(
            video_id=parse.make_meta_video_id(str(key), url), record=rec_name, url=url
        )
        for index, (clip_name, clip) in enumerate(clips.items()):
            section, spans = _hdvg_clip(
                where, f"{rec_name} clip {clip_name!r}", clip_name, clip, anchor
            )
            number = section.number if section.number >= 0 else index
            video.sections.append(replace(section, number=number))
            video.spans.extend(replace(s, section=number) for s in spans)
        numbers = [s.number for s in video.sections]
        if len(set(numbers)) != len(numbers):
            raise where.error(rec_name, "clip", "two clips have the same clip number")
        videos.append(video)
    return videos


def _hdvg_clip(
    where: parse.Where, rec: str, clip_name: str, clip: Any, anchor: str = "start"
) -> tuple[Section, list[Span]]:
    """One HD-VG clip: its section and its scenes as spans.

    The real metafile's scene cuts partition the clip *file* the original project cut, and in
    a third of the scenes that file was longer than ``span`` (the last scene ends past the span
    end: a stream-copy cut starting at the keyframe before the span start would do that).
    ``anchor='start'`` counts scene frames from the span start (the documented format);
    ``anchor='end'`` makes the last scene end at the span end. Either way the section is widened
    to hold every scene, so nothing a scene covers is left out of the download.
    """
    if not isinstance(clip, dict):
        raise where.error(rec, None, "expected an object with 'span', 'fps', 'scene_split'")
    start, end = parse.time_pair(where, rec, "span", clip.get("span"))
    fps = clip.get("fps")
    if fps is not None and (
        isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps < 1000
    ):
        raise where.error(rec, "fps", f"expected a positive number, got {parse.one_line(fps)}")
    stem = clip_name[:-4] if clip_name.lower().endswith(".mp4") else clip_name
    tail = stem.rsplit(".", 1)[-1]
    number = int(tail) if tail.isdigit() and "." in stem else -1
    scenes = clip.get("scene_split")
    if scenes is None:
        scenes = [{"scene_cut": [0, -1], "clip_id": stem, "caption": None}]
    if not isinstance(scenes, list):
        raise where.error(rec, "scene_split", "expected a list of scenes")
    cuts = [_hdvg_cut(where, f"{rec} scene {j}", scene, fps) for j, scene in enumerate(scenes)]
    last = max((b for _, b in cuts if b != -1), default=0)
    base = start
    if anchor == "end" and fps and last:
        base = max(0.0, end - last / fps)
    files_end = base + last / fps if fps and last else end
    section = Section(number, min(start, base), max(end, files_end))
    spans = []
    for j, (scene, (a, b)) in enumerate(zip(scenes, cuts, strict=True)):
        start_s = base + (a / fps if fps else 0.0)
        end_s = section.end_s if b == -1 or not fps else base + b / fps
        spans.append(_hdvg_span(where, f"{rec} scene {j}", scene, stem, j, start_s, end_s, fps))
    return section, spans


def _hdvg_cut(where: parse.Where, rec: str, scene: Any, fps: float | None) -> tuple[int, int]:
    if not isinstance(scene, dict):
        raise where.error(rec, None, "expected an object with 'scene_cut'")
    cut = scene.get("scene_cut")
    if (
        not isinstance(cut, (list, tuple))
        or len(cut) != 2
        or not all(isinstance(c, int) and not isinstance(c, bool) for c in cut)
    ):
        raise where.error(
            rec, "scene_cut", f"expected [start, end] frames, got {parse.one_line(cut)}"
        )
    a, b = cut
    if a < 0 or (b != -1 and b <= a):
        raise where.error(rec, "scene_cut", f"expected 0 ≤ start < end (or end -1): {list(cut)}")
    if fps is None and (a != 0 or b != -1):
        raise where.error(rec, "fps", "scene_cut frames need the clip's fps")
    return a, b


def _hdvg_span(
    where: parse.Where,
    rec: str,
    scene: dict[str, Any],
    stem: str,
    j: int,
    start_s: float,
    end_s: float,
    fps: float | None,
) -> Span:
    if end_s <= start_s:
        raise where.error(rec, "scene_cut", f"scene is empty: {scene.get('scene_cut')}")
    caption = scene.get("caption")
    if caption is not None and not isinstance(caption, str):
        raise where.error(rec, "caption", f"expected a string, got {parse.one_line(caption)}")
    span_id = scene.get("clip_id")
    if span_id is None:
        span_id = f"{stem}_{j}"
    if not isinstance(span_id, str) or not span_id:
        raise where.error(rec, "clip_id", f"expected a string, got {parse.one_line(span_id)}")
    start_frame, end_frame = parse.span_frames(start_s, end_s, fps)
    return Span(
        span_id=span_id,
        start_s=start_s,
        end_s=end_s,
        caption=caption,
        caption_dataset="hdvg" if caption is not None else None,
        fps=fps,
        start_frame=start_frame,
        end_frame=end_frame,
    )
