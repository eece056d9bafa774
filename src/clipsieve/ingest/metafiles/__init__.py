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

One module per format (``hdvg.py``, ``panda70m.py``, ...), ``sniff.py`` guesses the format,
``model.py`` holds what readers produce, ``parse.py`` what they share.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from clipsieve.ingest.metafiles.hdvg import read_hdvg
from clipsieve.ingest.metafiles.model import (
    FORMATS,
    HDVG_ANCHORS,
    Metafile,
    MetafileError,
    MetaVideo,
    Section,
    Span,
)
from clipsieve.ingest.metafiles.msrvtt import read_msrvtt
from clipsieve.ingest.metafiles.opensora import read_opensora
from clipsieve.ingest.metafiles.panda70m import read_panda70m
from clipsieve.ingest.metafiles.parse import (
    assign_sections,
    make_meta_video_id,
    merge_sections,
    parse_range,
    parse_time,
    youtube_id,
)
from clipsieve.ingest.metafiles.sniff import sniff_format
from clipsieve.ingest.metafiles.urls import read_urls
from clipsieve.ingest.metafiles.vtt import read_vtt
from clipsieve.ingest.metafiles.webvid import read_webvid

READERS: dict[str, Callable[[Path], list[MetaVideo]]] = {
    "hdvg": read_hdvg,
    "panda70m": read_panda70m,
    "webvid": read_webvid,
    "msrvtt": read_msrvtt,
    "opensora": read_opensora,
    "vtt": read_vtt,
    "urls": read_urls,
}


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
            first.sections = merge_sections(spans)
            first.spans = assign_sections(spans, first.sections)
        else:
            first.spans.extend(video.spans)
    return out


__all__ = [
    "FORMATS",
    "HDVG_ANCHORS",
    "READERS",
    "MetaVideo",
    "Metafile",
    "MetafileError",
    "Section",
    "Span",
    "make_meta_video_id",
    "parse_range",
    "parse_time",
    "read_metafile",
    "sniff_format",
    "youtube_id",
]
