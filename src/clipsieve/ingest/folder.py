"""Ingest files and folders into the ``videos`` table.

``video_id`` must be stable across runs and machines, so it cannot depend on absolute paths or
mtimes. It is the file's readable stem plus a short hash of a content fingerprint (size and three
64 KiB samples: head, middle, tail), which costs three small reads even for a 10 GB file. Two
byte-identical files with the same stem get ``-2``, ``-3`` … in sorted path order so ids stay unique
and deterministic.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clipsieve.errors import UserError

VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".ts", ".m2ts"}
)
_SAMPLE = 64 * 1024


class IngestError(UserError):
    """A user-caused ingest problem (missing path, nothing to ingest)."""


def _slug(stem: str, limit: int = 48) -> str:
    """ASCII-only, filesystem- and URL-safe version of a file stem."""
    ascii_stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", ascii_stem).strip("_")
    return slug[:limit] or "video"


def content_fingerprint(path: Path) -> str:
    """A cheap content hash: size + head/middle/tail samples. Unreadable files hash their name."""
    digest = hashlib.sha1()
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            # a named pipe blocks open() forever, a device never ends: never opened here, the
            # probe records "not a regular file" as the row's error
            raise OSError("not a regular file")
        size = st.st_size
        digest.update(str(size).encode())
        with open(path, "rb") as fh:
            for offset in sorted({0, max(0, size // 2 - _SAMPLE // 2), max(0, size - _SAMPLE)}):
                fh.seek(offset)
                digest.update(fh.read(_SAMPLE))
    except OSError:
        # Probe will record why the file can't be read; the id still has to be deterministic.
        digest.update(b"unreadable:" + path.name.encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def make_video_id(path: Path) -> str:
    return f"{_slug(path.stem)}-{content_fingerprint(path)[:10]}"


def find_videos(inputs: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Video files under ``inputs`` (files taken as given, folders searched recursively).

    Symlinked folders are not followed (a symlink loop cannot hang the walk). The result is sorted
    and de-duplicated so the order never depends on the file system.
    """
    found: dict[str, Path] = {}
    for raw in inputs:
        path = Path(raw).expanduser()
        if path.is_dir():
            for root, dirs, files in os.walk(path, followlinks=False):
                dirs.sort()
                for name in files:
                    candidate = Path(root) / name
                    if candidate.suffix.lower() in VIDEO_EXTENSIONS:
                        found[str(candidate.absolute())] = candidate.absolute()
        elif path.exists() or path.is_symlink():
            found[str(path.absolute())] = path.absolute()
        else:
            raise IngestError(f"input not found: {raw} (give a video file or a folder of videos)")
    return [found[key] for key in sorted(found)]


def ingest_rows(inputs: Sequence[str | os.PathLike[str]]) -> list[dict[str, Any]]:
    """One ``videos`` row per input file, with ``video_id``, ``path`` and ``size_bytes``."""
    paths = find_videos(inputs)
    rows: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for path in paths:
        video_id = make_video_id(path)
        count = seen.get(video_id, 0) + 1
        seen[video_id] = count
        if count > 1:
            video_id = f"{video_id}-{count}"
        try:
            size: int | None = path.stat().st_size
        except OSError:
            size = None
        rows.append({"video_id": video_id, "path": str(path), "size_bytes": size, "status": None})
    return rows
