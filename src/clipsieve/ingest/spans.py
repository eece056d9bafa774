"""Metafile spans → files → clip rows, with no shot detection.

A metafile already says where its clips are (HD-VG scenes, Panda-70M timestamps, a whole WebVid
video). This module maps those spans onto the files on disk and plans one ``clips`` row per span:

* :func:`file_targets` — which files a source video becomes: one per download *section*
  (``{video_id}.{k}.mp4``, holding only that time range) or one whole file (``{video_id}.mp4``);
* :func:`target_row` — the ``videos`` row of such a file: ``section_start_s`` says where the
  file's t=0 lies on the source timeline, ``spans`` (a list of structs) carries the spans inside;
* :func:`plan_clips_from_spans` — a probed ``videos`` row → ``clips`` rows with start/end frames
  and seconds *relative to the file*, plus ``span_id``, ``caption_src`` (the metafile's caption),
  ``caption_dataset`` and the
  original ``source_start_s``/``source_end_s``;
* :class:`SpanPlanStage` — the same as a pipeline stage (``videos`` → ``clips``): it takes the
  place of shot detection + length policy when a run starts from a metafile;
* :func:`ingest_metafile` — the whole ``clipsieve ingest-meta``: resolve files, probe, plan.

Every span gets a row: a span whose video failed (download, probe) gets ``status='error'`` with the
video's error; a span that falls outside the file gets ``keep=False,
drop_reason='span_outside_video'``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

from clipsieve.ingest.folder import VIDEO_EXTENSIONS, _slug
from clipsieve.ingest.metafiles import Metafile, MetaVideo, Section, Span
from clipsieve.runfolder import CLIPS_FILE, VIDEOS_FILE
from clipsieve.stage import RowStage
from clipsieve.storage import is_url
from clipsieve.table import (
    CLIP_SCHEMA,
    STATUS_ERROR,
    STATUS_OK,
    VIDEO_SCHEMA,
    concat_tables,
    read_parquet,
    rows_to_table,
    table_to_rows,
    write_parquet,
)

DROP_OUTSIDE = "span_outside_video"

SPAN_TYPE = pa.struct(
    [
        pa.field("span_id", pa.string()),
        pa.field("start_s", pa.float64()),
        pa.field("end_s", pa.float64()),
        pa.field("start_frame", pa.int64()),
        pa.field("end_frame", pa.int64()),
        pa.field("fps", pa.float64()),
        pa.field("section", pa.int64()),
        pa.field("caption", pa.string()),
        pa.field("caption_dataset", pa.string()),
        pa.field("captions", pa.list_(pa.string())),
        pa.field("match_score", pa.float64()),
    ]
)
# Columns a metafile adds; typed here so an all-null batch still has the right types.
META_VIDEO_FIELDS: list[pa.Field] = [
    pa.field("source_video_id", pa.string()),
    pa.field("url", pa.string()),
    pa.field("title", pa.string()),
    pa.field("section", pa.int64()),
    pa.field("section_start_s", pa.float64()),
    pa.field("section_end_s", pa.float64()),
    pa.field("spans", pa.list_(SPAN_TYPE)),
    pa.field("download_mode", pa.string()),
    pa.field("download_reason", pa.string()),
    pa.field("download_note", pa.string()),
    pa.field("download_attempts", pa.int64()),
    pa.field("download_skipped", pa.bool_()),
]
META_CLIP_FIELDS: list[pa.Field] = [
    pa.field("span_id", pa.string()),
    pa.field("span_group", pa.string()),
    pa.field("caption_src", pa.string()),  # the metafile's caption (``caption`` is a VLM's)
    pa.field("caption_dataset", pa.string()),
    pa.field("source_video_id", pa.string()),
    pa.field("source_start_s", pa.float64()),
    pa.field("source_end_s", pa.float64()),
]


def cast_meta_columns(table: pa.Table, fields: Sequence[pa.Field]) -> pa.Table:
    """``table`` with the metafile columns it has cast to their declared types."""
    for f in fields:
        index = table.schema.get_field_index(f.name)
        if index >= 0 and table.schema.field(index).type != f.type:
            table = table.set_column(index, f, table.column(index).cast(f.type))
    return table


_SAFE_CLIP_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,119}$")


@dataclass(frozen=True)
class FileTarget:
    """One file a source video becomes, and the spans inside it."""

    file_id: str
    video: MetaVideo
    section: Section | None
    spans: tuple[Span, ...]


def file_targets(video: MetaVideo, use_sections: bool = True) -> list[FileTarget]:
    """The files for ``video``: one per section when sections are used, else one whole file."""
    if not use_sections or not video.sections:
        return [FileTarget(video.video_id, video, None, tuple(video.spans))]
    targets = [
        FileTarget(
            f"{video.video_id}.{section.number}",
            video,
            section,
            tuple(s for s in video.spans if s.section == section.number),
        )
        for section in video.sections
    ]
    loose = tuple(s for s in video.spans if s.section is None)
    if loose:  # spans no section holds (open-ended): they need the whole video
        targets.append(FileTarget(video.video_id, video, None, loose))
    return targets


def target_row(target: FileTarget, path: str | Path) -> dict[str, Any]:
    """The ``videos`` row of one file target (status unset: probe or download decides)."""
    section = target.section
    return {
        "video_id": target.file_id,
        "path": str(path),
        "status": None,
        "error": None,
        "source_video_id": target.video.video_id,
        "url": target.video.url,
        "title": target.video.title,
        "section": None if section is None else section.number,
        "section_start_s": 0.0 if section is None else section.start_s,
        "section_end_s": None if section is None else section.end_s,
        "spans": [s.to_row() for s in target.spans],
    }


def clip_id_for_span(span_id: str) -> str:
    """The dataset's span id when it is a safe file name, else a slug plus a hash."""
    if _SAFE_CLIP_ID.match(span_id):
        return span_id
    digest = hashlib.sha1(span_id.encode("utf-8", "surrogateescape")).hexdigest()[:10]
    return f"{_slug(span_id)}-{digest}"


def _span_dict(span: Span | Mapping[str, Any]) -> dict[str, Any]:
    return span.to_row() if isinstance(span, Span) else dict(span)


def plan_clips_from_spans(
    video_row: Mapping[str, Any], spans: Sequence[Span | Mapping[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """``clips`` rows for the spans of one probed ``videos`` row (``spans`` column by default).

    Frames and seconds are relative to the file (``start_s = source_start_s -
    section_start_s``), because the file of a section download starts at the section start.
    """
    items = [_span_dict(s) for s in (spans if spans is not None else video_row.get("spans") or [])]
    fps = float(video_row.get("fps") or 0.0)
    num_frames = int(video_row.get("num_frames_decoded") or video_row.get("num_frames") or 0)
    offset = float(video_row.get("section_start_s") or 0.0)
    width = video_row.get("display_width") or video_row.get("width")
    height = video_row.get("display_height") or video_row.get("height")
    failed = video_row.get("status") == STATUS_ERROR
    rows = []
    for index, span in enumerate(items):
        row: dict[str, Any] = {
            "clip_id": clip_id_for_span(str(span["span_id"])),
            "video_id": video_row["video_id"],
            "path": None,
            "source_path": video_row.get("path"),
            "shot_index": index,
            "fps": fps or None,
            "width": width,
            "height": height,
            "aspect_ratio": (height / width) if width and height else None,
            "resolution": (height * width) if width and height else None,
            "status": STATUS_OK,
            "error": None,
            "keep": True,
            "drop_reason": None,
            "span_id": span["span_id"],
            # the original clip a scene was cut from (HD-VG: "<video>.<k>"): top-N keeps one each
            "span_group": (
                f"{video_row.get('source_video_id') or video_row['video_id']}.{span['section']}"
                if span.get("section") is not None
                else span["span_id"]
            ),
            "caption_src": span.get("caption"),
            "caption_dataset": span.get("caption_dataset"),
            "source_video_id": video_row.get("source_video_id"),
            "source_start_s": span.get("start_s"),
            "source_end_s": span.get("end_s"),
        }
        if failed or not fps or not num_frames:
            error = video_row.get("error") if failed else None
            row.update(
                status=STATUS_ERROR,
                error=error or "spans: the video has no frame rate or frame count",
                keep=False,
            )
            rows.append(row)
            continue
        rel_start = float(span.get("start_s") or 0.0) - offset
        end_s = span.get("end_s")
        rel_end = (float(end_s) - offset) if end_s is not None else num_frames / fps
        start_frame = min(max(0, round(rel_start * fps)), num_frames)
        end_frame = min(max(0, round(rel_end * fps)), num_frames)
        row.update(
            start_frame=start_frame,
            end_frame=end_frame,
            start_s=start_frame / fps,
            end_s=end_frame / fps,
            duration_s=(end_frame - start_frame) / fps,
            num_frames=end_frame - start_frame,
        )
        if end_frame <= start_frame:
            row.update(keep=False, drop_reason=DROP_OUTSIDE)
        rows.append(row)
    return rows


@dataclass
class SpanPlanStage(RowStage):
    """videos → clips from the metafile's spans (replaces shot detection and length policy)."""

    name: ClassVar[str] = "spans"
    version: ClassVar[str] = "1"
    table: ClassVar[str] = "videos"
    output_table: ClassVar[str | None] = "clips"
    inputs: ClassVar[tuple[str, ...]] = ("video_id", "path", "fps", "num_frames", "spans")
    output_columns: ClassVar[tuple[str, ...]] = (
        "clip_id",
        "span_id",
        "start_frame",
        "end_frame",
        "start_s",
        "end_s",
        "caption_src",
        "caption_dataset",
        "keep",
        "drop_reason",
    )

    def passthrough(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        # The video failed upstream: every span still gets a row carrying that error.
        return plan_clips_from_spans(row)

    def on_error(self, row: dict[str, Any], exc: BaseException) -> list[dict[str, Any]]:
        raise exc  # pure arithmetic: a failure here is a bug to surface

    def process_row(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        return plan_clips_from_spans(row)


# ---------------------------------------------------------------------------- ingest-meta


def _find_local(target: FileTarget, videos_dir: Path | None, meta_dir: Path) -> Path | None:
    candidates: list[Path] = []
    if videos_dir is not None:
        for folder in (videos_dir / "videos", videos_dir):
            candidates.extend(folder / f"{target.file_id}{ext}" for ext in sorted(VIDEO_EXTENSIONS))
    named = target.video.path
    if named and target.section is None:
        p = Path(named).expanduser()
        if videos_dir is not None:
            candidates += [videos_dir / p, videos_dir / p.name]
        candidates.append(p if p.is_absolute() else meta_dir / p)
    return next((c for c in candidates if c.is_file()), None)


def _object_url(target: FileTarget) -> str | None:
    """The store URL a whole-file target names (``s3://...``), else None."""
    if target.section is not None:
        return None
    for named in (target.video.path, target.video.url):
        text = str(named or "")
        if is_url(text) and text.split("://", 1)[0].lower() not in ("http", "https"):
            return text
    return None


def _download_table(videos_dir: Path | None) -> dict[str, dict[str, Any]]:
    if videos_dir is None or not (videos_dir / VIDEOS_FILE).is_file():
        return {}
    return {r["video_id"]: r for r in table_to_rows(read_parquet(videos_dir / VIDEOS_FILE))}


_DOWNLOAD_KEYS = ("status", "error", "download_reason", "download_mode", "path")


def resolve_rows(
    meta: Metafile, videos_dir: str | Path | None = None, use_sections: bool = True
) -> list[dict[str, Any]]:
    """``videos`` rows for a metafile's files: found on disk, or an error row saying why not.

    ``videos_dir`` is a ``clipsieve download`` folder (its ``videos.parquet`` is used, so a
    download failure is carried over with its reason) or any folder holding the files.
    """
    folder = Path(videos_dir).expanduser() if videos_dir is not None else None
    downloads = _download_table(folder)
    rows: list[dict[str, Any]] = []
    for video in meta.videos:
        targets = file_targets(video, use_sections)
        whole = downloads.get(video.video_id)
        if whole is not None and whole.get("download_mode") == "whole" and len(targets) > 1:
            # The source could not be fetched in sections; one whole file holds every span.
            targets = file_targets(video, use_sections=False)
        for target in targets:
            found = downloads.get(target.file_id)
            if found is not None:
                row = target_row(target, found["path"])
                row.update({k: found.get(k) for k in _DOWNLOAD_KEYS})
                if row["status"] == STATUS_OK:
                    row["status"] = None  # the probe decides again
                rows.append(row)
                continue
            stored = _object_url(target)
            if stored is not None:
                # a row naming an object in a store (s3://, gs://, ...): read in place, cached
                # per node by the stages (clipsieve.media.sources); a missing object is an
                # error row from its probe. http(s) URLs stay what `clipsieve download` fetches.
                rows.append(target_row(target, stored))
                continue
            path = _find_local(target, folder, meta.path.parent)
            if path is not None:
                rows.append(target_row(target, path.absolute()))
                continue
            expected = (folder or meta.path.parent) / f"{target.file_id}.mp4"
            row = target_row(target, target.video.path or expected)
            hint = "run `clipsieve download` first" if video.url else "pass --videos DIR"
            row.update(status=STATUS_ERROR, error=f"ingest: file not found ({hint})")
            rows.append(row)
    return rows


@dataclass
class MetaIngestResult:
    videos: pa.Table
    clips: pa.Table
    files: dict[str, Path]


def ingest_metafile(
    meta: Metafile,
    run_dir: str | Path,
    videos_dir: str | Path | None = None,
    *,
    use_sections: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> MetaIngestResult:
    """Probe the metafile's files and plan their clips into ``run_dir``'s two tables."""
    from clipsieve.media.probe import ProbeStage

    run_dir = Path(run_dir)
    rows = resolve_rows(meta, videos_dir, use_sections)
    probe, planner = ProbeStage(), SpanPlanStage()
    probe.setup()
    video_parts, clip_parts = [], []
    for done, row in enumerate(rows, start=1):
        probed = probe.process(rows_to_table([row], VIDEO_SCHEMA))
        video_parts.append(probed)
        clip_parts.append(planner.process(probed))
        if progress is not None:
            progress(done, len(rows))
    videos = concat_tables(
        [cast_meta_columns(t, META_VIDEO_FIELDS) for t in video_parts], VIDEO_SCHEMA
    )
    clips = concat_tables([cast_meta_columns(t, META_CLIP_FIELDS) for t in clip_parts], CLIP_SCHEMA)
    provenance = {
        "clipsieve_stages": [probe.describe(), planner.describe()],
        "clipsieve_metafile": {
            "path": str(meta.path),
            "format": meta.format,
            "videos": len(meta.videos),
            "total_videos": meta.total_videos,
        },
    }
    files = {
        VIDEOS_FILE: write_parquet(videos, run_dir / VIDEOS_FILE, provenance),
        CLIPS_FILE: write_parquet(clips, run_dir / CLIPS_FILE, provenance),
    }
    return MetaIngestResult(videos, clips, files)
