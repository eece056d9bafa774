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
import unicodedata
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from clipsieve.errors import UserError
from clipsieve.media.sources import (
    ListingError,
    SourceUnavailable,
    content_fingerprint,
    list_videos,
    source_name,
    url_fingerprint,
)
from clipsieve.storage import is_url

VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".ts", ".m2ts"}
)


class IngestError(UserError):
    """A user-caused ingest problem (missing path, nothing to ingest)."""


def _slug(stem: str, limit: int = 48) -> str:
    """ASCII-only, filesystem- and URL-safe version of a file stem."""
    ascii_stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", ascii_stem).strip("_")
    return slug[:limit] or "video"


def make_video_id(path: Path | str) -> str:
    """``<stem>-<10 hex of the content fingerprint>``; a URL hashes the same sampled bytes (read
    in place), so a video keeps its id wherever it is stored. An object that cannot be read
    hashes its name (its probe records why)."""
    return _identity(path)[0]


def _identity(path: Path | str) -> tuple[str, int | None]:
    """``(video_id, size in bytes or None)`` of a file or URL (one read of its samples)."""
    if isinstance(path, str) and is_url(path):
        stem = _slug(PurePosixPath(source_name(path)).stem)
        try:
            digest, size = url_fingerprint(path)
        except SourceUnavailable:
            unread = hashlib.sha1(b"unreadable:" + path.encode("utf-8", "surrogateescape"))
            return f"{stem}-{unread.hexdigest()[:10]}", None
        return f"{stem}-{digest[:10]}", size
    path = Path(path)
    try:
        size: int | None = path.stat().st_size
    except OSError:
        size = None
    return f"{_slug(path.stem)}-{content_fingerprint(path)[:10]}", size


def find_videos(inputs: Sequence[str | os.PathLike[str]]) -> list[Path | str]:
    """Video files under ``inputs`` (files taken as given, folders searched recursively; URLs
    listed through fsspec and kept as URL strings).

    Symlinked folders are not followed (a symlink loop cannot hang the walk). The result is sorted
    and de-duplicated so the order never depends on the file system.
    """
    found: dict[str, Path | str] = {}
    for raw in inputs:
        if is_url(str(raw)):
            try:
                urls = list_videos(str(raw), VIDEO_EXTENSIONS)
            except ListingError as exc:
                raise IngestError(str(exc)) from None
            found.update({url: url for url in urls})
            continue
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
        video_id, size = _identity(path)
        count = seen.get(video_id, 0) + 1
        seen[video_id] = count
        if count > 1:
            video_id = f"{video_id}-{count}"
        rows.append({"video_id": video_id, "path": str(path), "size_bytes": size, "status": None})
    return rows
