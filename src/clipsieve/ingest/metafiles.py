"""Readers for dataset metafiles: which videos to fetch and which spans of them matter.

Every public text-to-video dataset ships its list of videos in its own shape. Each reader here
turns one shape into the same objects, :class:`MetaVideo` (a source video: URL or local path) with
its :class:`Span` list (time ranges with their dataset caption), so downloading and ingesting
never care which dataset a row came from.

Formats (``--format`` names):

* ``hdvg`` — HD-VG-130M json ``{video_id: {"url", "clip": {"<id>.<k>.mp4": {"span": [t0, t1],
  "fps", "scene_split": [{"scene_cut": [a, b], "clip_id", "caption"}]}}}}``. ``scene_cut`` frames
  are relative to the clip span at the clip's ``fps``; ``[0, -1]`` is the whole clip. Each clip is
  a download *section*: fetching only the sections is what makes HD-VG affordable.
* ``panda70m`` — Panda-70M csv ``videoID,url,timestamp,caption,matching_score,...`` with Python
  list literals per video (parsed with :func:`ast.literal_eval`, never ``eval``).
* ``webvid`` — WebVid csv ``videoid,name,...,duration,contentUrl`` (one whole video per row).
* ``msrvtt`` — MSR-VTT/MSVD caption json ``[{"video": "video7010.mp4", "caption": [...]}]``; the
  entries are file names, found with ``--videos DIR``.
* ``opensora`` — Open-Sora csv ``path,text,num_frames,...`` (also OpenVid's ``video,caption``).
* ``vtt`` — a WebVTT file of one video's captioned scenes (Panda-70M's long-video output).
* ``urls`` — a plain list, one URL or path per line (``#`` comments and blank lines skipped).

Times are always seconds on the *source* video's timeline. ``video_id`` is the dataset's own id
when it is already a safe file name (YouTube ids, WebVid ids), the YouTube id of a YouTube URL,
else a readable slug plus a hash of the URL/path, so ids never depend on the machine.

A malformed metafile raises :class:`MetafileError`: one line naming the file, the record and the
field.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from clipsieve.errors import UserError
from clipsieve.ingest.folder import _slug

FORMATS: tuple[str, ...] = ("hdvg", "panda70m", "webvid", "msrvtt", "opensora", "vtt", "urls")
HDVG_ANCHORS: tuple[str, ...] = ("start", "end")
MERGE_GAP_S = 1.0  # spans closer than this share one download section (Panda-70M)
_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_YOUTUBE_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")
_CLOCK = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:\.\d*)?)$")
_ISO_DURATION = re.compile(r"^PT(?:(\d+(?:\.\d*)?)H)?(?:(\d+(?:\.\d*)?)M)?(?:(\d+(?:\.\d*)?)S)?$")


class MetafileError(UserError):
    """A metafile that cannot be read; the message names the file, the record and the field."""


@dataclass(frozen=True)
class Span:
    """A time range of a source video that the dataset describes (seconds, source timeline).

    ``end_s`` None means "to the end of the video". ``section`` is the number of the download
    section that contains the span (None: the span lives in the whole-video file). Frames are
    given when the metafile states the fps (``end_frame`` exclusive).
    """

    span_id: str
    start_s: float
    end_s: float | None
    caption: str | None = None
    caption_dataset: str | None = None  # which dataset the caption comes from
    section: int | None = None
    fps: float | None = None
    start_frame: int | None = None
    end_frame: int | None = None
    captions: tuple[str, ...] = ()
    match_score: float | None = None

    def to_row(self) -> dict[str, Any]:
        """The span as a plain dict (a struct in the ``spans`` list column)."""
        return {
            "span_id": self.span_id,
            "start_s": self.start_s,
            "end_s": self.end_s,
            "start_frame": self.start_frame,
            "end_frame": self.end_frame,
            "fps": self.fps,
            "section": self.section,
            "caption": self.caption,
            "caption_dataset": self.caption_dataset,
            "captions": list(self.captions),
            "match_score": self.match_score,
        }


@dataclass(frozen=True)
class Section:
    """A time range fetched as one file (``{video_id}.{number}.mp4``)."""

    number: int
    start_s: float
    end_s: float


@dataclass
class MetaVideo:
    """One source video of a metafile with the spans that matter in it."""

    video_id: str
    record: str  # where it came from, for error messages: "row 4", "key 'abc'"
    url: str | None = None
    path: str | None = None  # a local file named by the metafile (absolute or as written)
    title: str | None = None
    duration_s: float | None = None
    spans: list[Span] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)  # empty: fetch the whole video


@dataclass
class Metafile:
    path: Path
    format: str
    videos: list[MetaVideo]
    total_videos: int  # before --range

    def spans(self) -> list[tuple[MetaVideo, Span]]:
        return [(video, span) for video in self.videos for span in video.spans]


# ---------------------------------------------------------------------------- small parsers


def _one_line(value: object, limit: int = 60) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Where:
    """Builds the one-line error for a file, a record and a field."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def error(self, record: str, field_name: str | None, problem: str) -> MetafileError:
        where = f"{record}, field '{field_name}'" if field_name else record
        return MetafileError(f"{self.path}: {where}: {problem}")


def parse_time(value: object) -> float:
    """Seconds from ``HH:MM:SS.mmm``, ``H:MM:SS``, ``MM:SS.mmm`` or a number; ValueError else."""
    if isinstance(value, bool):
        raise ValueError("not a time")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        match = _CLOCK.match(text)
        if match:
            hours, minutes, secs = match.groups()
            if int(minutes) >= 60 or float(secs) >= 60:
                raise ValueError("minutes and seconds must be below 60")
            seconds = int(hours or 0) * 3600 + int(minutes) * 60 + float(secs)
        else:
            try:
                seconds = float(text)
            except ValueError:
                raise ValueError("not a time like HH:MM:SS.mmm or seconds") from None
    else:
        raise ValueError("not a time")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("time must be a finite number of seconds ≥ 0")
    return seconds


def parse_iso_duration(text: str) -> float | None:
    """Seconds of a WebVid ``PT00H00M17S`` duration; None for an empty cell."""
    text = text.strip()
    if not text:
        return None
    match = _ISO_DURATION.match(text)
    if not match or not any(match.groups()):
        raise ValueError("expected an ISO 8601 duration like PT00H00M17S")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def parse_range(text: str | None) -> slice | None:
    """``START:END`` (either side may be empty; END exclusive) as a slice of the video list."""
    if text is None or text.strip() == "":
        return None
    match = re.fullmatch(r"\s*(\d*)\s*:\s*(\d*)\s*", text)
    if not match:
        raise MetafileError(f"--range {text!r}: expected START:END with whole numbers, e.g. 0:100")
    start = int(match.group(1)) if match.group(1) else None
    end = int(match.group(2)) if match.group(2) else None
    if start is not None and end is not None and end < start:
        raise MetafileError(f"--range {text!r}: END must not be smaller than START")
    return slice(start, end)


def youtube_id(url: str) -> str | None:
    """The 11-character id of a YouTube watch/short/embed/youtu.be URL, else None."""
    try:
        parsed = urlparse(url.strip())
    except ValueError:
        return None
    host = (parsed.hostname or "").lower()
    candidate: str | None = None
    if host == "youtu.be":
        candidate = parsed.path.strip("/").split("/")[0]
    elif host.endswith("youtube.com") or host.endswith("youtube-nocookie.com"):
        if parsed.path == "/watch":
            candidate = (parse_qs(parsed.query).get("v") or [None])[0]
        else:
            parts = parsed.path.strip("/").split("/")
            if len(parts) >= 2 and parts[0] in ("shorts", "embed", "v", "live"):
                candidate = parts[1]
    return candidate if candidate and _YOUTUBE_ID.match(candidate) else None


def _hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:10]


def make_meta_video_id(source_id: str | None = None, url: str | None = None) -> str:
    """A stable, file-name-safe ``video_id`` from a dataset id and/or a URL or path."""
    if source_id and _SAFE_ID.match(source_id):
        return source_id
    if url:
        yt = youtube_id(url)
        if yt:
            return yt
    key = source_id or url or ""
    stem = source_id or ""
    if not stem and url:
        parsed = urlparse(url)
        stem = Path(parsed.path).stem or (parsed.hostname or "")
    return f"{_slug(stem)}-{_hash(key)}"


def _is_url(text: str) -> bool:
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text))


def _merge_sections(spans: Sequence[Span], gap_s: float = MERGE_GAP_S) -> list[Section]:
    """Sections covering ``spans``: overlapping or near spans share one (fewer requests)."""
    ranges = sorted((s.start_s, s.end_s) for s in spans if s.end_s is not None)
    merged: list[list[float]] = []
    for start, end in ranges:
        if merged and start <= merged[-1][1] + gap_s:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [Section(k, a, b) for k, (a, b) in enumerate(merged)]


def _assign_sections(spans: list[Span], sections: list[Section]) -> list[Span]:
    out = []
    for span in spans:
        number = next(
            (
                s.number
                for s in sections
                if span.end_s is not None and s.start_s <= span.start_s and span.end_s <= s.end_s
            ),
            None,
        )
        out.append(replace(span, section=number))
    return out


def _frames(start_s: float, end_s: float | None, fps: float | None) -> tuple[int | None, ...]:
    if not fps:
        return None, None
    return round(start_s * fps), (None if end_s is None else round(end_s * fps))


def _whole_span(
    span_id: str,
    caption: str | None,
    caption_dataset: str,
    duration_s: float | None = None,
    fps: float | None = None,
    captions: tuple[str, ...] = (),
) -> Span:
    start_frame, end_frame = _frames(0.0, duration_s, fps)
    return Span(
        span_id=span_id,
        start_s=0.0,
        end_s=duration_s,
        caption=caption,
        caption_dataset=caption_dataset if caption is not None else None,
        fps=fps,
        start_frame=start_frame,
        end_frame=end_frame,
        captions=captions,
    )


# ---------------------------------------------------------------------------- file loading


def _load_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except OSError as exc:
        raise MetafileError(f"cannot read metafile {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise MetafileError(f"{path}: not UTF-8 text (is it really a metafile?)") from None
    except json.JSONDecodeError as exc:
        raise MetafileError(
            f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None


def _load_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            sample = fh.read(65536)
            fh.seek(0)
            delimiter = "\t" if sample.count("\t") > sample.count(",") else ","
            reader = csv.DictReader(fh, delimiter=delimiter)
            header = [h.strip() for h in (reader.fieldnames or [])]
            rows = []
            for row in reader:
                if None in row:
                    raise MetafileError(
                        f"{path}: row {len(rows) + 1}: more cells than the header has columns"
                    )
                rows.append({(k or "").strip(): (v or "") for k, v in row.items()})
    except OSError as exc:
        raise MetafileError(f"cannot read metafile {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise MetafileError(f"{path}: not UTF-8 text (is it really a metafile?)") from None
    except csv.Error as exc:
        raise MetafileError(f"{path}: malformed CSV: {exc}") from None
    return header, rows


def _need_columns(where: _Where, header: Sequence[str], *groups: Sequence[str]) -> list[str]:
    """For each group of accepted names, the one the header has; a one-line error otherwise."""
    chosen = []
    for names in groups:
        found = next((n for n in names if n in header), None)
        if found is None:
            raise MetafileError(
                f"{where.path}: missing column {' or '.join(repr(n) for n in names)} "
                f"(header: {', '.join(header) or 'empty'})"
            )
        chosen.append(found)
    return chosen


def _literal_list(where: _Where, record: str, field_name: str, text: str) -> list[Any]:
    """A Python/JSON list literal from a csv cell, parsed without ``eval``."""
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        raise where.error(record, field_name, f"not a list literal: {_one_line(text)}") from None
    if not isinstance(value, (list, tuple)):
        raise where.error(record, field_name, f"expected a list, got {_one_line(text)}")
    return list(value)


# ---------------------------------------------------------------------------- readers


def read_hdvg(path: Path, anchor: str = "start") -> list[MetaVideo]:
    """HD-VG-130M json: one video per key, its clips as sections, scenes as spans.

    ``anchor`` says where scene frames count from (see :func:`_hdvg_clip`).
    """
    if anchor not in HDVG_ANCHORS:
        raise MetafileError(f"--hdvg-anchor {anchor!r}: choose one of {', '.join(HDVG_ANCHORS)}")
    where = _Where(path)
    data = _load_json(path)
    if not isinstance(data, dict):
        raise MetafileError(f"{path}: HD-VG metafile must be a JSON object {{video_id: {{...}}}}")
    videos = []
    for key, record in data.items():
        rec_name = f"video {key!r}"
        if not isinstance(record, dict):
            raise where.error(rec_name, None, "expected an object with 'url' and 'clip'")
        url = record.get("url")
        if not isinstance(url, str) or not url.strip():
            raise where.error(rec_name, "url", f"expected a URL string, got {_one_line(url)}")
        clips = record.get("clip")
        if not isinstance(clips, dict):
            raise where.error(rec_name, "clip", "expected an object of clips")
        video = MetaVideo(video_id=make_meta_video_id(str(key), url), record=rec_name, url=url)
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
    where: _Where, rec: str, clip_name: str, clip: Any, anchor: str = "start"
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
    start, end = _time_pair(where, rec, "span", clip.get("span"))
    fps = clip.get("fps")
    if fps is not None and (
        isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps < 1000
    ):
        raise where.error(rec, "fps", f"expected a positive number, got {_one_line(fps)}")
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


def _hdvg_cut(where: _Where, rec: str, scene: Any, fps: float | None) -> tuple[int, int]:
    if not isinstance(scene, dict):
        raise where.error(rec, None, "expected an object with 'scene_cut'")
    cut = scene.get("scene_cut")
    if (
        not isinstance(cut, (list, tuple))
        or len(cut) != 2
        or not all(isinstance(c, int) and not isinstance(c, bool) for c in cut)
    ):
        raise where.error(rec, "scene_cut", f"expected [start, end] frames, got {_one_line(cut)}")
    a, b = cut
    if a < 0 or (b != -1 and b <= a):
        raise where.error(rec, "scene_cut", f"expected 0 ≤ start < end (or end -1): {list(cut)}")
    if fps is None and (a != 0 or b != -1):
        raise where.error(rec, "fps", "scene_cut frames need the clip's fps")
    return a, b


def _hdvg_span(
    where: _Where,
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
        raise where.error(rec, "caption", f"expected a string, got {_one_line(caption)}")
    span_id = scene.get("clip_id")
    if span_id is None:
        span_id = f"{stem}_{j}"
    if not isinstance(span_id, str) or not span_id:
        raise where.error(rec, "clip_id", f"expected a string, got {_one_line(span_id)}")
    start_frame, end_frame = _frames(start_s, end_s, fps)
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


def read_panda70m(path: Path) -> list[MetaVideo]:
    """Panda-70M csv: one row per video with list literals of timestamps and captions."""
    where = _Where(path)
    header, rows = _load_csv(path)
    id_col, url_col, ts_col = _need_columns(
        where, header, ("videoID", "videoid", "video_id"), ("url",), ("timestamp",)
    )
    videos = []
    for i, row in enumerate(rows, start=1):
        rec = f"row {i}"
        source_id = row[id_col].strip()
        url = row[url_col].strip() or None
        if not source_id and not url:
            raise where.error(rec, id_col, "empty video id and url")
        stamps = _literal_list(where, rec, ts_col, row[ts_col])
        captions = (
            _literal_list(where, rec, "caption", row["caption"])
            if row.get("caption", "").strip()
            else [None] * len(stamps)
        )
        scores = (
            _literal_list(where, rec, "matching_score", row["matching_score"])
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
        video_id = make_meta_video_id(source_id or None, url)
        spans = []
        for k, (stamp, caption, score) in enumerate(zip(stamps, captions, scores, strict=True)):
            spans.append(_panda_span(where, f"{rec} clip {k}", video_id, k, stamp, caption, score))
        sections = _merge_sections(spans)
        video = MetaVideo(
            video_id=video_id,
            record=rec,
            url=url or f"https://www.youtube.com/watch?v={source_id}",
            spans=_assign_sections(spans, sections),
            sections=sections,
        )
        videos.append(video)
    return videos


def _time_pair(where: _Where, rec: str, field: str, value: Any) -> tuple[float, float]:
    """``[start, end]`` time stamps in seconds, end after start, or a one-line error."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise where.error(rec, field, f"expected [start, end], got {_one_line(value)}")
    try:
        start, end = parse_time(value[0]), parse_time(value[1])
    except ValueError as exc:
        raise where.error(rec, field, f"{exc}: {_one_line(value)}") from None
    if end <= start:
        raise where.error(rec, field, f"end must be after start: {_one_line(value)}")
    return start, end


def _panda_span(
    where: _Where, rec: str, video_id: str, k: int, stamp: Any, caption: Any, score: Any
) -> Span:
    start, end = _time_pair(where, rec, "timestamp", stamp)
    if caption is not None and not isinstance(caption, str):
        raise where.error(rec, "caption", f"expected a string, got {_one_line(caption)}")
    if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))):
        raise where.error(rec, "matching_score", f"expected a number, got {_one_line(score)}")
    return Span(
        span_id=f"{video_id}_{k}",
        start_s=start,
        end_s=end,
        caption=caption,
        caption_dataset="panda70m" if caption is not None else None,
        match_score=None if score is None else float(score),
    )


def read_webvid(path: Path) -> list[MetaVideo]:
    """WebVid csv: one whole video per row, ``name`` is its caption."""
    where = _Where(path)
    header, rows = _load_csv(path)
    id_col, url_col = _need_columns(
        where, header, ("videoid", "videoID", "video_id"), ("contentUrl", "url")
    )
    videos = []
    for i, row in enumerate(rows, start=1):
        rec = f"row {i}"
        source_id, url = row[id_col].strip(), row[url_col].strip()
        if not url:
            raise where.error(rec, url_col, "empty URL")
        if not _is_url(url):
            raise where.error(rec, url_col, f"not a URL: {_one_line(url)}")
        try:
            duration = parse_iso_duration(row.get("duration", ""))
        except ValueError as exc:
            raise where.error(rec, "duration", f"{exc}, got {_one_line(row['duration'])}") from None
        caption = row.get("name", "").strip() or None
        video_id = make_meta_video_id(source_id or None, url)
        videos.append(
            MetaVideo(
                video_id=video_id,
                record=rec,
                url=url,
                title=caption,
                duration_s=duration,
                spans=[_whole_span(video_id, caption, "webvid", duration)],
            )
        )
    return videos


def read_msrvtt(path: Path) -> list[MetaVideo]:
    """MSR-VTT/MSVD caption json: a file name and its (usually 20) reference captions."""
    where = _Where(path)
    data = _load_json(path)
    if not isinstance(data, list):
        raise MetafileError(f"{path}: MSR-VTT metafile must be a JSON list of {{video, caption}}")
    videos = []
    for i, record in enumerate(data):
        rec = f"entry {i}"
        if not isinstance(record, dict):
            raise where.error(rec, None, "expected an object with 'video' and 'caption'")
        name = record.get("video")
        if not isinstance(name, str) or not name.strip():
            raise where.error(rec, "video", f"expected a file name, got {_one_line(name)}")
        captions = record.get("caption")
        if isinstance(captions, str):
            captions = [captions]
        if not isinstance(captions, list) or not all(isinstance(c, str) for c in captions):
            raise where.error(rec, "caption", f"expected a list of strings: {_one_line(captions)}")
        stem = Path(name).stem
        video_id = make_meta_video_id(stem, name)
        videos.append(
            MetaVideo(
                video_id=video_id,
                record=rec,
                url=name if _is_url(name) else None,
                path=None if _is_url(name) else name,
                spans=[
                    _whole_span(
                        video_id,
                        captions[0] if captions else None,
                        "msrvtt",
                        captions=tuple(captions),
                    )
                ],
            )
        )
    return videos


def read_opensora(path: Path) -> list[MetaVideo]:
    """Open-Sora csv (``path,text,...``) or OpenVid csv (``video,caption,...``): local files."""
    where = _Where(path)
    header, rows = _load_csv(path)
    (path_col,) = _need_columns(where, header, ("path", "video"))
    text_col = next((c for c in ("text", "caption") if c in header), None)
    videos = []
    for i, row in enumerate(rows, start=1):
        rec = f"row {i}"
        name = row[path_col].strip()
        if not name:
            raise where.error(rec, path_col, "empty path")
        fps = _optional_number(where, rec, row, "fps")
        num_frames = _optional_number(where, rec, row, "num_frames") or _optional_number(
            where, rec, row, "frame"
        )
        seconds = _optional_number(where, rec, row, "seconds")
        duration = seconds if seconds else (num_frames / fps if num_frames and fps else None)
        caption = row.get(text_col, "").strip() or None if text_col else None
        video_id = make_meta_video_id(None, name)
        span = _whole_span(video_id, caption, "opensora", duration, fps)
        if num_frames and span.start_frame is not None:
            span = replace(span, end_frame=int(num_frames))
        videos.append(
            MetaVideo(
                video_id=video_id,
                record=rec,
                url=name if _is_url(name) else None,
                path=None if _is_url(name) else name,
                duration_s=duration,
                spans=[span],
            )
        )
    return videos


def _optional_number(where: _Where, rec: str, row: dict[str, str], name: str) -> float | None:
    text = row.get(name, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise where.error(rec, name, f"expected a number, got {_one_line(text)}") from None
    if not math.isfinite(value) or value < 0:
        raise where.error(rec, name, f"expected a number ≥ 0, got {_one_line(text)}")
    return value


def read_urls(path: Path) -> list[MetaVideo]:
    """A plain list: one URL or local path per line; ``#`` starts a comment."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except OSError as exc:
        raise MetafileError(f"cannot read metafile {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise MetafileError(f"{path}: not UTF-8 text (is it really a URL list?)") from None
    videos = []
    for i, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if any(ch.isspace() for ch in text):
            raise _Where(path).error(f"line {i}", None, f"one URL per line: {_one_line(text)}")
        video_id = make_meta_video_id(None, text)
        videos.append(
            MetaVideo(
                video_id=video_id,
                record=f"line {i}",
                url=text if _is_url(text) else None,
                path=None if _is_url(text) else text,
                spans=[_whole_span(video_id, None, "urls")],
            )
        )
    return videos


_VTT_CUE = re.compile(r"^(\S+)\s+-->\s+(\S+)")
_SCENE_TAG = re.compile(r"^\[Scene \d+\]\s*")


def read_vtt(path: Path) -> list[MetaVideo]:
    """A WebVTT file of one video's captioned scenes (Panda-70M's long-video splitting output).

    The file stem names the video (a YouTube id gives its URL); each cue is a span, its text the
    caption without the ``[Scene k]`` tag.
    """
    where = _Where(path)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except OSError as exc:
        raise MetafileError(f"cannot read metafile {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise MetafileError(f"{path}: not UTF-8 text (is it really a WebVTT file?)") from None
    if not lines or not lines[0].strip().startswith("WEBVTT"):
        raise MetafileError(f"{path}: not a WebVTT file (the first line must be WEBVTT)")
    stem = path.stem
    url = f"https://www.youtube.com/watch?v={stem}" if _YOUTUBE_ID.match(stem) else None
    video_id = make_meta_video_id(stem, url)
    spans: list[Span] = []
    i = 1
    while i < len(lines):
        match = _VTT_CUE.match(lines[i].strip())
        if not match:
            i += 1
            continue
        rec = f"cue at line {i + 1}"
        try:
            start, end = parse_time(match.group(1)), parse_time(match.group(2))
        except ValueError as exc:
            raise where.error(rec, "timing", f"{exc}: {_one_line(lines[i])}") from None
        if end <= start:
            raise where.error(rec, "timing", f"end must be after start: {_one_line(lines[i])}")
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
    sections = _merge_sections(spans)
    video = MetaVideo(
        video_id=video_id,
        record=path.name,
        url=url,
        spans=_assign_sections(spans, sections),
        sections=sections,
    )
    return [video]


READERS: dict[str, Callable[[Path], list[MetaVideo]]] = {
    "hdvg": read_hdvg,
    "panda70m": read_panda70m,
    "webvid": read_webvid,
    "msrvtt": read_msrvtt,
    "opensora": read_opensora,
    "vtt": read_vtt,
    "urls": read_urls,
}


# ---------------------------------------------------------------------------- dispatch


def sniff_format(path: Path) -> str:
    """The format of ``path`` from its extension and its first bytes."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(65536)
    except OSError as exc:
        raise MetafileError(f"cannot read metafile {path}: {exc.strerror or exc}") from None
    text = head.decode("utf-8", "replace").lstrip("\ufeff").lstrip()
    suffix = path.suffix.lower()
    if suffix == ".vtt" or text.startswith("WEBVTT"):
        return "vtt"
    if suffix == ".json" or text[:1] in "[{":
        if text.startswith("["):
            return "msrvtt"
        if text.startswith("{"):
            return "hdvg"
        raise MetafileError(f"{path}: unknown JSON layout; pass --format ({', '.join(FORMATS)})")
    if suffix in (".csv", ".tsv") or ("," in text.split("\n", 1)[0] and not _is_url(text)):
        first = text.split("\n", 1)[0]
        header = {c.strip().strip('"') for c in re.split(r"[,\t]", first)}
        if "timestamp" in header or "videoID" in header:
            return "panda70m"
        if "contentUrl" in header or ({"videoid", "name"} <= header):
            return "webvid"
        if "path" in header or ({"video", "caption"} <= header):
            return "opensora"
        raise MetafileError(
            f"{path}: unknown csv columns ({', '.join(sorted(header))[:120]}); "
            f"pass --format ({', '.join(FORMATS)})"
        )
    return "urls"


def read_metafile(
    path: str | Path,
    format: str | None = None,
    select: slice | str | None = None,
    hdvg_anchor: str = "start",
) -> Metafile:
    """Read any supported metafile; ``select`` (a slice or ``"START:END"``) picks videos."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise MetafileError(f"metafile not found: {path} (give a .json, .csv or URL list file)")
    fmt = (format or "").strip().lower() or sniff_format(path)
    if fmt not in READERS:
        raise MetafileError(
            f"unknown metafile format {format!r}; choose one of {', '.join(FORMATS)}"
        )
    raw = read_hdvg(path, hdvg_anchor) if fmt == "hdvg" else READERS[fmt](path)
    videos = _merge_duplicates(path, raw)
    chosen = parse_range(select) if isinstance(select, str) or select is None else select
    total = len(videos)
    if chosen is not None:
        videos = videos[chosen]
    return Metafile(path=path, format=fmt, videos=videos, total_videos=total)


def _merge_duplicates(path: Path, videos: list[MetaVideo]) -> list[MetaVideo]:
    """One entry per ``video_id``: rows of the same source merge; different sources clash."""
    by_id: dict[str, MetaVideo] = {}
    out = []
    for video in videos:
        first = by_id.get(video.video_id)
        if first is None:
            by_id[video.video_id] = video
            out.append(video)
            continue
        if (first.url, first.path) != (video.url, video.path):
            raise MetafileError(
                f"{path}: {first.record} and {video.record} share video id {video.video_id!r} "
                "but name different sources"
            )
        seen = {s.span_id for s in first.spans}
        clash = next((s.span_id for s in video.spans if s.span_id in seen), None)
        if clash is not None and video.sections == first.sections:
            continue  # the same record twice: nothing new
        if clash is not None:
            raise MetafileError(f"{path}: {video.record}: span id {clash!r} appears twice")
        if first.sections or video.sections:
            spans = [*first.spans, *video.spans]
            first.sections = _merge_sections(spans)
            first.spans = _assign_sections(spans, first.sections)
        else:
            first.spans.extend(video.spans)
    return out
