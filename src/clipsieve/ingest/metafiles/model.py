"""What every metafile reader produces: videos, their spans and download sections, and the
one error type of a malformed metafile."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clipsieve.errors import UserError

FORMATS: tuple[str, ...] = ("hdvg", "panda70m", "webvid", "msrvtt", "opensora", "vtt", "urls")
HDVG_ANCHORS: tuple[str, ...] = ("start", "end")
MERGE_GAP_S = 1.0  # spans closer than this share one download section (Panda-70M)
SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
YOUTUBE_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")
CLOCK = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:\.\d*)?)$")
ISO_DURATION = re.compile(r"^PT(?:(\d+(?:\.\d*)?)H)?(?:(\d+(?:\.\d*)?)M)?(?:(\d+(?:\.\d*)?)S)?$")


class MetafileError(UserError):
    """A metafile that cannot be read; the message names the file, the record and the field."""


# the struct fields of a ``spans`` entry, in their stored order
SPAN_ROW = (
    "span_id", "start_s", "end_s", "start_frame", "end_frame", "fps", "section", "caption",
    "caption_dataset", "captions", "match_score",
)  # fmt: skip


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
        row = {name: getattr(self, name) for name in SPAN_ROW}
        row["captions"] = list(self.captions)
        return row


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
