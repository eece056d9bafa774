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

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from clipsieve.errors import UserError
from clipsieve.export.easyanimate import write_easyanimate_json
from clipsieve.export.jsonl import write_clips_jsonl
from clipsieve.export.kept import kept_clips
from clipsieve.export.opensora import write_opensora_csv
from clipsieve.export.webdataset import make_sample, sample_key, write_webdataset
from clipsieve.table import caption_of, write_json, write_parquet

TRAINING_FORMATS = ("webdataset", "jsonl", "opensora-csv", "easyanimate-json", "parquet")
LINK_MODES = ("copy", "hard", "sym")
MARKER = "export.json"
MANIFESTS = {
    "jsonl": "clips.jsonl",
    "opensora-csv": "clips.csv",
    "easyanimate-json": "easyanimate.json",
    "parquet": "clips.parquet",
}


class ExportError(UserError):
    """An export that cannot be done as asked (one line naming the thing and the fix)."""


@dataclass
class ExportSummary:
    format: str
    out: Path
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


def _prepare_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} is a file: choose a folder for --out")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise ExportError(
                f"{out} is not empty and was not made by `clipsieve export`: choose a new --out"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def _source_file(row: dict[str, Any], run_dir: Path) -> Path:
    path = Path(row["path"])
    path = path if path.is_absolute() else run_dir / path
    if not path.is_file():
        raise ExportError(
            f"clip file {path} of {row['clip_id']} is missing: re-run `clipsieve run` on this "
            "run folder to cut it again"
        )
    return path


def _place(source: Path, target: Path, link: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if link == "copy":
        shutil.copyfile(source, target)
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


def _keyed_rows(clips: pa.Table) -> list[dict[str, Any]]:
    rows = kept_clips(clips).to_pylist()
    seen: dict[str, str] = {}
    for row in rows:
        key = sample_key(str(row["clip_id"]))
        if key in seen:
            raise ExportError(
                f"clip ids '{seen[key]}' and '{row['clip_id']}' give the same export key '{key}': "
                "make clip ids unique"
            )
        seen[key] = str(row["clip_id"])
    return sorted(rows, key=lambda r: sample_key(str(r["clip_id"])))


def export_training_set(
    run_dir: str | Path,
    clips: pa.Table,
    out: str | Path,
    fmt: str,
    *,
    link: str = "copy",
    shard_bytes: int = 1 << 30,
    shard_count: int | None = None,
) -> ExportSummary:
    """Write the kept clips of ``clips`` (the table of ``run_dir``) to ``out`` as ``fmt``."""
    if fmt not in TRAINING_FORMATS:
        raise ExportError(f"unknown format '{fmt}': choose from {', '.join(TRAINING_FORMATS)}")
    if link not in LINK_MODES:
        raise ExportError(f"unknown --link '{link}': choose from {', '.join(LINK_MODES)}")
    if fmt == "webdataset" and link != "copy":
        raise ExportError("--link does not apply to webdataset: clips are stored in the shards")
    run_dir, out = Path(run_dir), Path(out)
    rows = _keyed_rows(clips)
    sources = [_source_file(row, run_dir) for row in rows]  # fail before touching ``out``
    _prepare_out(out)
    summary = ExportSummary(format=fmt, out=out, count=len(rows))
    if fmt == "webdataset":
        samples = [make_sample(r, s, caption_of(r)) for r, s in zip(rows, sources, strict=True)]
        summary.index = write_webdataset(
            samples, out, shard_bytes=shard_bytes, shard_count=shard_count
        )
        summary.files = [s["name"] for s in summary.index["shards"]] + ["index.json"]
    else:
        exported = []
        for row, source in zip(rows, sources, strict=True):
            relative = f"clips/{sample_key(str(row['clip_id']))}{source.suffix or '.mp4'}"
            _place(source, out / relative, link)
            exported.append({**row, "path": relative})
        table = (
            pa.Table.from_pylist(exported, schema=clips.schema) if exported else clips.slice(0, 0)
        )
        target = out / MANIFESTS[fmt]
        if fmt == "jsonl":
            write_clips_jsonl(table, target)
        elif fmt == "opensora-csv":
            write_opensora_csv(table, target, root=out)
        elif fmt == "easyanimate-json":
            write_easyanimate_json([(r["path"], caption_of(r)) for r in exported], target)
        else:
            write_parquet(table, target)
        summary.files = [r["path"] for r in exported] + [MANIFESTS[fmt]]
    write_json(
        {
            "format": fmt,
            "count": summary.count,
            "link": link if fmt != "webdataset" else None,
            "run_dir": str(run_dir.resolve()),
            "files": summary.files,
        },
        out / MARKER,
    )
    return summary
