"""Open-Sora CSV export: the clip list in the column layout Open-Sora's data tools read.

Layout: ``path,id,relpath,num_frames,height,width,aspect_ratio,fps,resolution,timestamp``, then
every score column the table carries (numeric columns that are not bookkeeping), then ``text``
when a caption column exists. ``aspect_ratio`` is height / width and ``resolution`` is
height * width, as Open-Sora's ``datautil --info`` computes them.

``timestamp`` follows Open-Sora's scene-cut tools: ``scene_detect.py`` stores a video's scenes
as ``str([(start, end), ...])`` of PySceneDetect timecodes (``HH:MM:SS.mmm``), and the per-clip
meta (``process_meta.append_cut``) holds one element of that list, which pandas writes as
``('00:00:01.000', '00:00:05.040')``. We write the same text for each clip: its start and
(exclusive) end in the source video, from the frame indices when known.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa

from clipsieve.export.kept import kept_clips
from clipsieve.storage import is_url
from clipsieve.table import (
    CAPTION_COLUMNS,
    CLIP_SCHEMA,
    VIDEO_SCHEMA,
    caption_of,
    has_captions,
    rows_to_table,
    write_csv,
)

OPENSORA_COLUMNS = [
    "path",
    "id",
    "relpath",
    "num_frames",
    "height",
    "width",
    "aspect_ratio",
    "fps",
    "resolution",
    "timestamp",
]

# numeric columns that describe files and positions, not clip quality
_BOOKKEEPING = (
    frozenset(CLIP_SCHEMA.names)
    | frozenset(VIDEO_SCHEMA.names)
    | {"id", "relpath", "piece", "requested_start_frame", "requested_end_frame"}  # cut/policy
    | {"cluster_id", "dup_group"}  # selection ids, not scores
)


def timecode(seconds: float) -> str:
    """PySceneDetect's ``FrameTimecode.get_timecode()`` text: ``HH:MM:SS.mmm`` (rounded ms)."""
    millis = round(max(0.0, seconds) * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def clip_timestamp(row: dict) -> str | None:
    """Open-Sora's per-clip ``timestamp``: ``"('HH:MM:SS.mmm', 'HH:MM:SS.mmm')"``."""
    fps = row.get("fps")
    if fps and row.get("start_frame") is not None and row.get("end_frame") is not None:
        start, end = row["start_frame"] / fps, row["end_frame"] / fps
    elif row.get("start_s") is not None and row.get("end_s") is not None:
        start, end = row["start_s"], row["end_s"]
    else:
        return None
    return str((timecode(start), timecode(end)))


def score_columns(clips: pa.Table | pa.Schema) -> list[str]:
    """Numeric extra columns (scores added by scoring stages), in table order."""
    out = []
    schema = clips if isinstance(clips, pa.Schema) else clips.schema
    for field in schema:
        numeric = pa.types.is_integer(field.type) or pa.types.is_floating(field.type)
        if numeric and field.name not in _BOOKKEEPING:
            out.append(field.name)
    return out


def _url_relpath(url: str, root: str) -> str:
    """``url`` relative to the URL ``root`` (the run folder), else its last two parts."""
    prefix = root.rstrip("/") + "/"
    return url[len(prefix) :] if url.startswith(prefix) else "/".join(url.split("/")[-2:])


def _paths(path: str, root: str | Path) -> tuple[str, str]:
    """``(path, relpath)`` columns for one clip; URLs (a URL run folder) stay URLs."""
    if is_url(path):
        return path, _url_relpath(path, str(root))
    # absolute but not resolved: a symlinked clip keeps its own path in the export folder
    local_root = Path(os.path.abspath(root))
    clip_path = Path(path)
    if not clip_path.is_absolute():
        clip_path = local_root / clip_path
    clip_path = Path(os.path.abspath(clip_path))
    return str(clip_path), os.path.relpath(clip_path, local_root)


def opensora_columns(schema: pa.Schema) -> list[str]:
    """The csv's header for a clip table of ``schema`` (the columns :func:`opensora_table`
    gives any part of it)."""
    caption = any(c in schema.names for c in CAPTION_COLUMNS)
    return [*OPENSORA_COLUMNS, *score_columns(schema), *(["text"] if caption else [])]


def opensora_table(
    clips: pa.Table, root: str | Path, scores: Sequence[str] | None = None
) -> pa.Table:
    """The kept clips as a table in Open-Sora's column layout (see the module docs).

    ``root``: the folder (or run folder URL) that ``relpath`` is relative to.
    """
    scores = list(score_columns(clips) if scores is None else scores)
    caption = has_captions(clips)
    rows = []
    for row in kept_clips(clips).to_pylist():
        clip_path, relpath = _paths(row["path"], root)
        height, width = row.get("height"), row.get("width")
        aspect = row.get("aspect_ratio")
        if aspect is None and height and width:
            aspect = height / width
        resolution = row.get("resolution")
        if resolution is None and height and width:
            resolution = height * width
        out = {
            "path": clip_path,
            "id": row["clip_id"],
            "relpath": relpath,
            "num_frames": row.get("num_frames"),
            "height": height,
            "width": width,
            "aspect_ratio": aspect,
            "fps": row.get("fps"),
            "resolution": resolution,
            "timestamp": clip_timestamp(row),
        }
        out.update({name: row.get(name) for name in scores})
        if caption:
            out["text"] = caption_of(row)
        rows.append(out)
    schema = pa.schema(
        [
            pa.field("path", pa.string()),
            pa.field("id", pa.string()),
            pa.field("relpath", pa.string()),
            pa.field("num_frames", pa.int64()),
            pa.field("height", pa.int32()),
            pa.field("width", pa.int32()),
            pa.field("aspect_ratio", pa.float64()),
            pa.field("fps", pa.float64()),
            pa.field("resolution", pa.int64()),
            pa.field("timestamp", pa.string()),
            *[clips.schema.field(name) for name in scores],
            *([pa.field("text", pa.string())] if caption else []),
        ]
    )
    return rows_to_table(rows, schema) if rows else schema.empty_table()


def write_opensora_csv(
    clips: pa.Table, path: str | os.PathLike[str], root: str | Path | None = None
) -> Path:
    """Write the kept clips as an Open-Sora CSV; ``relpath`` is relative to ``root``.

    ``root`` defaults to the CSV's folder (the run directory when called by ``export_run``).
    """
    path = Path(path)
    table = opensora_table(clips, root if root is not None else path.parent)
    return write_csv(table, path)
