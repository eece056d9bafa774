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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from clipsieve.export.kept import kept_clips
from clipsieve.storage import is_url
from clipsieve.table import (
    CAPTION_COLUMNS,
    CLIP_SCHEMA,
    VIDEO_SCHEMA,
    has_captions,
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


def _column(table: pa.Table, name: str, kind: pa.DataType) -> pa.Array:
    if name not in table.column_names:
        return pa.nulls(table.num_rows, kind)
    return table.column(name).combine_chunks().cast(kind)


def _path_columns(paths: pa.Array, root: str | Path) -> tuple[pa.Array, pa.Array]:
    """``(path, relpath)`` for every clip: a clean absolute path under a local ``root`` is
    cut with one vectorised slice; anything else (URLs, relative or unnormalised paths) goes
    through :func:`_paths` row by row."""
    if not is_url(str(root)):
        prefix = os.path.abspath(root).rstrip("/") + "/"
        fast = pc.and_(
            pc.starts_with(paths, prefix),
            pc.invert(pc.match_substring_regex(paths, r"//|/\./|/\.\./|/\.\.?$")),
        )
        fast = pc.fill_null(fast, False)
    else:
        fast = pa.array(np.zeros(len(paths), bool))
        prefix = ""
    relpath = pc.utf8_slice_codeunits(paths, len(prefix))
    slow = np.flatnonzero(~fast.to_numpy(zero_copy_only=False))
    if len(slow) == 0:
        return paths, relpath
    full_list, rel_list = paths.to_pylist(), relpath.to_pylist()
    folders: dict[str, tuple[str, str]] = {}  # a table has few distinct clip folders
    for i in slow.tolist():
        folder, _, name = full_list[i].rpartition("/")
        if is_url(full_list[i]) or not folder or name in ("", ".", ".."):
            full_list[i], rel_list[i] = _paths(full_list[i], root)
            continue
        if folder not in folders:
            full, rel = _paths(folder + "/_", root)
            folders[folder] = (full[:-1], rel[:-1])
        full, rel = folders[folder]
        full_list[i], rel_list[i] = full + name, rel + name
    return pa.array(full_list, pa.string()), pa.array(rel_list, pa.string())


def _timestamps(table: pa.Table) -> pa.Array:
    """:func:`clip_timestamp` for every row (frames and fps first, else seconds)."""
    fps = _column(table, "fps", pa.float64()).to_numpy(zero_copy_only=False)
    starts = _column(table, "start_frame", pa.float64()).to_numpy(zero_copy_only=False)
    ends = _column(table, "end_frame", pa.float64()).to_numpy(zero_copy_only=False)
    start_s = _column(table, "start_s", pa.float64()).to_numpy(zero_copy_only=False)
    end_s = _column(table, "end_s", pa.float64()).to_numpy(zero_copy_only=False)
    with np.errstate(divide="ignore", invalid="ignore"):
        by_frames = (fps > 0) & ~np.isnan(starts) & ~np.isnan(ends)
        start = np.where(by_frames, starts / fps, start_s)
        end = np.where(by_frames, ends / fps, end_s)
    known = ~np.isnan(start) & ~np.isnan(end)
    out: list[str | None] = [None] * table.num_rows
    for i in np.flatnonzero(known).tolist():
        out[i] = str((timecode(float(start[i])), timecode(float(end[i]))))
    return pa.array(out, pa.string())


def _captions(table: pa.Table) -> pa.Array:
    """:func:`~clipsieve.table.caption_of` for every row: the first non-blank caption column."""
    result = pa.nulls(table.num_rows, pa.string())
    for name in reversed(CAPTION_COLUMNS):
        if name not in table.column_names:
            continue
        values = _column(table, name, pa.string())
        blank = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(values), ""), True)
        result = pc.if_else(blank, result, values)
    return result


def opensora_table(
    clips: pa.Table, root: str | Path, scores: Sequence[str] | None = None
) -> pa.Table:
    """The kept clips as a table in Open-Sora's column layout (see the module docs).

    ``root``: the folder (or run folder URL) that ``relpath`` is relative to. Vectorised (a
    view of millions of clips is written batch by batch through this).
    """
    scores = list(score_columns(clips) if scores is None else scores)
    caption = has_captions(clips)
    kept = kept_clips(clips)
    height = _column(kept, "height", pa.int32())
    width = _column(kept, "width", pa.int32())
    valid_size = pc.and_(pc.greater(height, 0), pc.greater(width, 0))
    aspect = pc.coalesce(
        _column(kept, "aspect_ratio", pa.float64()),
        pc.if_else(valid_size, pc.divide(height.cast(pa.float64()), width), None),
    )
    resolution = pc.coalesce(
        _column(kept, "resolution", pa.int64()),
        pc.if_else(valid_size, pc.multiply(height.cast(pa.int64()), width), None),
    )
    path, relpath = _path_columns(_column(kept, "path", pa.string()), root)
    arrays = {
        "path": path,
        "id": _column(kept, "clip_id", pa.string()),
        "relpath": relpath,
        "num_frames": _column(kept, "num_frames", pa.int64()),
        "height": height,
        "width": width,
        "aspect_ratio": aspect,
        "fps": _column(kept, "fps", pa.float64()),
        "resolution": resolution,
        "timestamp": _timestamps(kept),
    }
    for name in scores:
        arrays[name] = kept.column(name).combine_chunks()
    if caption:
        arrays["text"] = _captions(kept)
    return pa.table(arrays)


def write_opensora_csv(
    clips: pa.Table, path: str | os.PathLike[str], root: str | Path | None = None
) -> Path:
    """Write the kept clips as an Open-Sora CSV; ``relpath`` is relative to ``root``.

    ``root`` defaults to the CSV's folder (the run directory when called by ``export_run``).
    """
    path = Path(path)
    table = opensora_table(clips, root if root is not None else path.parent)
    return write_csv(table, path)
