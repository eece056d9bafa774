"""``clipsieve export``: the kept clips of a run as a training set in one folder.

Only the rows :func:`~clipsieve.export.kept.kept_clips` selects leave (``keep`` true, status ok,
a cut file), so filters, dedup and balancing are applied here. Formats:

* ``webdataset``: bucketed tar shards + ``index.json`` (see export/webdataset.py);
* ``jsonl``: ``clips.jsonl``, every column of each kept row;
* ``opensora-csv``: ``clips.csv`` in Open-Sora's layout (see export/opensora.py);
* ``easyanimate-json``: ``easyanimate.json`` (see export/easyanimate.py);
* ``parquet``: ``clips.parquet``, the kept rows with every column.

For all but ``webdataset`` the clip files land in ``clips/<key>.mp4`` (copied, hard-linked or
symlinked: ``link``) and the rows' ``path`` is rewritten relative to the export folder, so the
folder is a self-contained training set. ``export.json`` records what was written; a folder that
holds one is replaced as a whole by the next export, any other non-empty folder is refused so an
export never deletes files it did not make.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from clipsieve.engine.ray_pool import RayOptions
from clipsieve.export.destination import (
    MARKER,
    ExportError,
    LocalDestination,
    UrlDestination,
    destination_for,
)
from clipsieve.export.manifests import MANIFEST_REGISTRY, ManifestWriter, training_formats
from clipsieve.export.webdataset import (
    INDEX_FILE,
    ShardedExport,
    WebDatasetWriter,
    make_sample,
    sample_key,
)
from clipsieve.steps.base import PostRunStep, StepContext
from clipsieve.steps.sql import connection, text
from clipsieve.storage import copy_file, file_sizes, is_url
from clipsieve.table import caption_of, write_json

LINK_MODES = ("copy", "hard", "sym")


@dataclass
class ExportSummary:
    format: str
    out: Path | str  # a folder, or a URL
    count: int
    files: list[str] = field(default_factory=list)  # relative to ``out``
    index: dict[str, Any] | None = None  # webdataset only


def parse_size(text: str) -> int:
    """``"500MB"``, ``"1GiB"``, ``"2G"``, ``"1048576"`` → bytes (decimal and binary units)."""
    units = {
        "": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2,
        "mib": 1024**2, "g": 1000**3, "gb": 1000**3, "gib": 1024**3,
    }  # fmt: skip
    cleaned = text.strip().lower().replace(" ", "")
    number = cleaned.rstrip("kmgib")
    unit = cleaned[len(number) :]
    try:
        value = float(number) * units[unit]
    except (ValueError, KeyError):
        raise ExportError(f"cannot read size '{text}': use bytes or e.g. 500MB, 1GiB") from None
    if value < 1:
        raise ExportError(f"size '{text}' must be positive")
    return int(value)


@dataclass(frozen=True)
class ClipRow:
    """An exported row with its sample key and its clip file (a path or URL) and size."""

    row: dict[str, Any]
    key: str
    video: str
    video_bytes: int


def _clip_rows(batches: Iterator[pa.Table], run_dir: Path) -> Iterator[ClipRow]:
    """The rows of :func:`_keyed_rows` with their clip files found and sized, a batch at a
    time (clips at URLs are sized in parallel); a missing clip file is one line."""
    rows = _keyed_rows(batches)
    while chunk := list(itertools.islice(rows, SIZE_BATCH)):
        videos = [_clip_location(row, run_dir) for row, _key in chunk]
        for (row, key), video, size in zip(chunk, videos, file_sizes(videos), strict=True):
            if size is None:
                raise ExportError(
                    f"clip file {video} of {row['clip_id']} is missing: run `clipsieve run` "
                    "again with the same inputs and --out (it cuts missing clip files again)"
                )
            yield ClipRow(row, key, video, size)


def _clip_location(row: dict[str, Any], run_dir: Path) -> str:
    """The clip file of ``row``: its URL, or its path (relative paths are under ``run_dir``)."""
    path = str(row["path"])
    if is_url(path) or Path(path).is_absolute():
        return path
    return str(run_dir / path)


SIZE_BATCH = 1024


def _place(source: str, target: Path, link: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if link == "copy":
        copy_file(source, target)
    elif is_url(source):
        raise ExportError(
            f"clip {source} is at a URL and cannot be {'hard-' if link == 'hard' else 'sym'}"
            "linked: use --link copy"
        )
    elif link == "hard":
        try:
            os.link(source, target)
        except OSError as exc:
            raise ExportError(
                f"cannot hard-link {source} into {target.parent} ({exc.strerror}): use "
                "--link copy or --link sym"
            ) from None
    else:
        os.symlink(os.path.abspath(source), target)


def sorted_kept_batches(clips: pa.Table | Path, batch_rows: int = 8192) -> Iterator[pa.Table]:
    """The exported rows (``keep`` true, status ok, a clip file) in sample-key order.

    DuckDB sorts them (spilling to disk past its memory cap), so a 10-million-clip table is
    exported in one pass with memory for a batch; types are cast back to the table's own.
    """
    schema = clips.schema if isinstance(clips, pa.Table) else pq.read_schema(clips)
    plain = schema.remove_metadata()
    with connection() as con:
        if isinstance(clips, pa.Table):
            con.register("source", clips)
            source = "source"
        else:
            source = f"read_parquet({text(str(clips))})"
        missing = [c for c in ("keep", "status", "path", "clip_id") if c not in schema.names]
        if missing:
            raise ExportError(f"clip table lacks column(s) {', '.join(missing)}: cannot export")
        query = (
            f"SELECT * FROM {source} WHERE keep AND status = 'ok' AND path IS NOT NULL "
            "ORDER BY regexp_replace(clip_id, '[^A-Za-z0-9_-]', '_', 'g')"
        )
        for batch in con.sql(query).to_arrow_reader(batch_rows):
            yield pa.Table.from_batches([batch]).cast(plain)


def _keyed_rows(batches: Iterator[pa.Table]) -> Iterator[tuple[dict[str, Any], str]]:
    """``(row, sample key)`` in key order; two clip ids with one key are an error."""
    last_key = last_id = None
    for part in batches:
        for row in part.to_pylist():
            key = sample_key(str(row["clip_id"]))
            if key == last_key:
                raise ExportError(
                    f"clip ids '{last_id}' and '{row['clip_id']}' give the same export key "
                    f"'{key}': make clip ids unique"
                )
            last_key, last_id = key, row["clip_id"]
            yield row, key


def export_training_set(
    run_dir: str | Path,
    clips: pa.Table | Path,
    out: str | Path,
    fmt: str,
    *,
    link: str = "copy",
    shard_bytes: int = 1 << 30,
    shard_count: int | None = None,
    ray: RayOptions | None = None,
) -> ExportSummary:
    """Write the kept clips of ``clips`` (the table of ``run_dir``) to ``out`` as ``fmt``;
    ``ray``: write the webdataset shards on Ray workers."""
    if fmt != "webdataset" and fmt not in MANIFEST_REGISTRY:
        raise ExportError(f"unknown format '{fmt}': choose from {', '.join(training_formats())}")
    if link not in LINK_MODES:
        raise ExportError(f"unknown --link '{link}': choose from {', '.join(LINK_MODES)}")
    if fmt == "webdataset" and link != "copy":
        raise ExportError("--link does not apply to webdataset: clips are stored in the shards")
    if ray is not None and fmt != "webdataset":
        raise ExportError(
            f"--engine ray writes webdataset shards; {fmt} only lists or copies the clips: "
            "leave --engine out"
        )
    destination = destination_for(out)
    if isinstance(destination, UrlDestination) and fmt != "webdataset":
        raise ExportError(
            f"--out {out}: only webdataset exports go to a URL (the shards hold the clips); "
            "export to a local folder and upload it"
        )
    run_dir = Path(run_dir)
    staging = destination.prepare()
    try:
        summary = _write_export(
            run_dir, clips, staging, destination, fmt, link, shard_bytes, shard_count, ray
        )
        write_json(
            {
                "format": fmt,
                "count": summary.count,
                "link": link if fmt != "webdataset" else None,
                "run_dir": str(run_dir.resolve()),
                "files": summary.files,
            },
            staging / MARKER,
        )
        destination.publish(summary.files)
        summary.out = destination.final
    finally:
        destination.cleanup()
    return summary


def _write_export(
    run_dir: Path,
    clips: pa.Table | Path,
    out: Path,
    destination: LocalDestination | UrlDestination,
    fmt: str,
    link: str,
    shard_bytes: int,
    shard_count: int | None,
    ray: RayOptions | None = None,
) -> ExportSummary:
    """Stream the kept rows, in key order, into the (empty) folder ``out``, which becomes
    ``destination`` (whose folder absolute manifest paths name)."""
    rows = _clip_rows(sorted_kept_batches(clips), run_dir)
    summary = ExportSummary(format=fmt, out=out, count=0)
    if fmt == "webdataset":
        target = destination.shard_target
        summary.index = _write_shards(rows, out, target, shard_bytes, shard_count, ray)
        summary.count = summary.index["total"]
        summary.files = [s["name"] for s in summary.index["shards"]] + [INDEX_FILE]
        return summary
    schema = clips.schema if isinstance(clips, pa.Table) else pq.read_schema(clips)
    writer: type[ManifestWriter] = MANIFEST_REGISTRY.load(fmt)
    with writer(out / writer.file_name, schema, root=Path(destination.final)) as manifest:
        batch: list[dict[str, Any]] = []
        for clip in rows:
            relative = f"clips/{clip.key}{Path(clip.video).suffix or '.mp4'}"
            _place(clip.video, out / relative, link)
            batch.append({**clip.row, "path": relative})
            if len(batch) >= MANIFEST_BATCH:
                manifest.write(batch)
                summary.count += len(batch)
                batch = []
        manifest.write(batch)
        summary.count += len(batch)
    summary.files = [writer.file_name, "clips/"]
    return summary


MANIFEST_BATCH = 4096
EXPORT_DIR = "export"


def export_target(run_dir: str | Path, fmt: str, out: str | Path | None = None) -> str | Path:
    """Where an export goes: ``out`` when given (a folder or URL), else ``RUN/export/FORMAT``."""
    return out if out is not None else Path(run_dir) / EXPORT_DIR / fmt


def _write_shards(
    rows: Iterator[ClipRow],
    out: Path,
    target: str,
    shard_bytes: int,
    shard_count: int | None,
    ray: RayOptions | None,
) -> dict[str, Any]:
    """The webdataset shards of ``rows`` in ``out``: written here as the rows stream past,
    or each by a Ray worker once its samples are planned, into ``target`` (``out``, or the
    export's URL); the same bytes either way. ``index.json`` goes to ``out``."""
    with contextlib.ExitStack() as stack:
        if ray is None:
            writer: ShardedExport = WebDatasetWriter(out, shard_bytes, shard_count)
        else:
            from clipsieve.export.ray_exec import RayShardExport

            writer = stack.enter_context(RayShardExport(out, target, ray, shard_bytes, shard_count))
        try:
            for clip in rows:
                caption = caption_of(clip.row)
                writer.add(make_sample(clip.row, clip.video, clip.video_bytes, caption))
        except BaseException:
            writer.abort()
            raise
        return writer.close()


class ExportStep(PostRunStep):
    """``clipsieve export`` as a read-only post-run step: the runner records it in
    ``run.json``; the table is streamed (sorted by DuckDB), never loaded."""

    name = "export"
    reads = ("clip_id", "keep", "status", "path")

    def __init__(self, out: Path | str, fmt: str, **options: Any) -> None:
        """``options``: the keyword options of :func:`export_training_set` (link, shard_bytes,
        shard_count, ray)."""
        self.out = out if is_url(str(out)) else Path(out)
        self.fmt = fmt
        self.options = options
        self.result: ExportSummary | None = None

    def consume(self, ctx: StepContext) -> None:
        self.result = export_training_set(
            ctx.run_dir, ctx.clips_file, self.out, self.fmt, **self.options
        )

    def params(self) -> dict[str, Any]:
        get = self.options.get
        sharded = self.fmt == "webdataset"
        return {
            "format": self.fmt,
            "out": str(self.out),
            "link": None if sharded else get("link", "copy"),
            "shard_bytes": get("shard_bytes", 1 << 30) if sharded else None,
            "shard_count": get("shard_count") if sharded else None,
            "engine": "ray" if get("ray") is not None else "local",
        }

    def summary(self) -> dict[str, Any]:
        return {"count": self.result.count} if self.result is not None else {}
