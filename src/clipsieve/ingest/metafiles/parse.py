"""Small parsers the readers share: times, ranges, ids, sections, and loading json/csv safely."""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from clipsieve.ingest.folder import _slug
from clipsieve.ingest.metafiles.model import (
    CLOCK,
    ISO_DURATION,
    MERGE_GAP_S,
    SAFE_ID,
    YOUTUBE_ID,
    MetafileError,
    Section,
    Span,
)


def load_json(path: Path) -> Any:
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


def load_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
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


def need_columns(where: Where, header: Sequence[str], *groups: Sequence[str]) -> list[str]:
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


def literal_list(where: Where, record: str, field_name: str, text: str) -> list[Any]:
    """A Python/JSON list literal from a csv cell, parsed without ``eval``."""
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        raise where.error(record, field_name, f"not a list literal: {one_line(text)}") from None
    if not isinstance(value, (list, tuple)):
        raise where.error(record, field_name, f"expected a list, got {one_line(text)}")
    return list(value)


def one_line(value: object, limit: int = 60) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Where:
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
        match = CLOCK.match(text)
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
    match = ISO_DURATION.match(text)
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
    return candidate if candidate and YOUTUBE_ID.match(candidate) else None


def short_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:10]


def make_meta_video_id(source_id: str | None = None, url: str | None = None) -> str:
    """A stable, file-name-safe ``video_id`` from a dataset id and/or a URL or path."""
    if source_id and SAFE_ID.match(source_id):
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
    return f"{_slug(stem)}-{short_hash(key)}"


def looks_like_url(text: str) -> bool:
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text))


def merge_sections(spans: Sequence[Span], gap_s: float = MERGE_GAP_S) -> list[Section]:
    """Sections covering ``spans``: overlapping or near spans share one (fewer requests)."""
    ranges = sorted((s.start_s, s.end_s) for s in spans if s.end_s is not None)
    merged: list[list[float]] = []
    for start, end in ranges:
        if merged and start <= merged[-1][1] + gap_s:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [Section(k, a, b) for k, (a, b) in enumerate(merged)]


def assign_sections(spans: list[Span], sections: list[Section]) -> list[Span]:
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


def span_frames(start_s: float, end_s: float | None, fps: float | None) -> tuple[int | None, ...]:
    if not fps:
        return None, None
    return round(start_s * fps), (None if end_s is None else round(end_s * fps))


def whole_span(
    span_id: str,
    caption: str | None,
    caption_dataset: str,
    duration_s: float | None = None,
    fps: float | None = None,
    captions: tuple[str, ...] = (),
) -> Span:
    start_frame, end_frame = span_frames(0.0, duration_s, fps)
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


def time_pair(where: Where, rec: str, field: str, value: Any) -> tuple[float, float]:
    """``[start, end]`` time stamps in seconds, end after start, or a one-line error."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise where.error(rec, field, f"expected [start, end], got {one_line(value)}")
    try:
        start, end = parse_time(value[0]), parse_time(value[1])
    except ValueError as exc:
        raise where.error(rec, field, f"{exc}: {one_line(value)}") from None
    if end <= start:
        raise where.error(rec, field, f"end must be after start: {one_line(value)}")
    return start, end


def read_lines(path: Path, kind: str) -> list[str]:
    """The lines of a UTF-8 text metafile (a BOM is dropped); ``kind`` names what it should
    be in the error when it is not text."""
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except OSError as exc:
        raise MetafileError(f"cannot read metafile {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise MetafileError(f"{path}: not UTF-8 text (is it really {kind}?)") from None


def source(name: str) -> dict[str, str | None]:
    """``url=`` or ``path=`` of a :class:`MetaVideo` for a metafile entry that may be either."""
    return {"url": name, "path": None} if looks_like_url(name) else {"url": None, "path": name}
