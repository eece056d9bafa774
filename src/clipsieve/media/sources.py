"""Source videos at URLs (``s3://``, ``gs://``, ``https://``, any fsspec URL).

Listing and hashing read objects in place through fsspec (a video's id hashes the same sampled
bytes as for a local file, so a video has the same ``video_id`` wherever it lives). The stages
that hand a source to FFmpeg's command line or decode it end to end (probe, shot detection,
cut) get a local copy from :class:`SourceCache`, a per-node cache shared by the workers of that
node:

- **bounded**: past its size limit (``$CLIPSIEVE_SOURCE_CACHE_GB``, default 20) the least
  recently used entries are deleted;
- **safe for concurrent workers**: an entry is fetched under an exclusive ``flock`` (one
  download per object, however many workers want it) and used under a shared one, and eviction
  only takes entries nobody holds;
- **cleaned**: :meth:`SourceCache.clear` (called when a `run` ends) deletes every entry not in
  use; the temp files of a killed download are never used and are swept by the next fetch.

An object that is missing, unreadable or vanishes mid-run becomes a one-line error for its row.
Frame readers (scorers, captioning) open URLs directly (:func:`clipsieve.storage.av_source`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from clipsieve.errors import UserError
from clipsieve.storage import StorageError, error_line, is_url, url_filesystem

CACHE_ENV = "CLIPSIEVE_SOURCE_CACHE"  # the cache folder (default: <temp>/clipsieve-sources-UID)
CACHE_GB_ENV = "CLIPSIEVE_SOURCE_CACHE_GB"
DEFAULT_CACHE_GB = 20.0
STALE_PART_S = 3600.0  # a download's temp file untouched this long belongs to a dead worker
SAMPLE_BYTES = 64 * 1024  # the fingerprint's samples (head, middle, tail), as for local files


class SourceUnavailable(Exception):
    """A source object cannot be read (message: one line for the row's error)."""


def source_name(source: str) -> str:
    """The file name of a local path or URL (``s3://b/dir/v.mp4`` → ``v.mp4``)."""
    if is_url(source):
        return PurePosixPath(source.split("://", 1)[1].split("?", 1)[0]).name
    return Path(source).name


def fingerprint(size: int, read: Callable[[int, int], bytes]) -> str:
    """The content hash of a video: its size and three samples (``read(start, end)``)."""
    digest = hashlib.sha1()
    digest.update(str(size).encode())
    for offset in sorted({0, max(0, size // 2 - SAMPLE_BYTES // 2), max(0, size - SAMPLE_BYTES)}):
        digest.update(read(offset, min(size, offset + SAMPLE_BYTES)))
    return digest.hexdigest()


def content_fingerprint(path: Path) -> str:
    """A cheap content hash: size + head/middle/tail samples. Unreadable files hash their name."""
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            # a named pipe blocks open() forever, a device never ends: never opened here, the
            # probe records "not a regular file" as the row's error
            raise OSError("not a regular file")
        with open(path, "rb") as fh:

            def read(start: int, end: int) -> bytes:
                fh.seek(start)
                return fh.read(end - start)

            return fingerprint(st.st_size, read)
    except OSError:
        # Probe will record why the file can't be read; the id still has to be deterministic.
        digest = hashlib.sha1()
        digest.update(b"unreadable:" + path.name.encode("utf-8", "surrogateescape"))
        return digest.hexdigest()


def _unavailable(url: str, exc: BaseException) -> SourceUnavailable:
    if isinstance(exc, FileNotFoundError):
        return SourceUnavailable(f"object not found: {url}")
    if isinstance(exc, PermissionError):
        return SourceUnavailable(f"access denied to {url}: check the credentials")
    return SourceUnavailable(f"cannot read {url}: {error_line(exc)}")


def url_fingerprint(url: str) -> tuple[str, int]:
    """``(fingerprint, size)`` of an object, read in place (three ranged reads)."""
    fs, inner = url_filesystem(url)
    try:
        size = int(fs.size(inner))
        # keywords: s3fs puts version_id before start and end
        return fingerprint(size, lambda a, b: fs.cat_file(inner, start=a, end=b)), size
    except Exception as exc:  # every backend raises its own errors: one line for the row
        raise _unavailable(url, exc) from None


class ListingError(UserError):
    """A URL input cannot be listed (one line: missing, credentials, unknown protocol)."""


def list_videos(url: str, extensions: frozenset[str] | set[str]) -> list[str]:
    """The video URLs under ``url`` (a prefix is searched recursively; a file is itself).

    ``http(s)://`` URLs name files (web servers do not list folders reliably)."""
    try:
        fs, inner = url_filesystem(url)
    except StorageError as exc:
        raise ListingError(str(exc)) from None
    protocol = url.split("://", 1)[0].lower()
    if protocol in ("http", "https"):
        return [url]
    try:
        info = fs.info(inner)
        if info.get("type") != "directory":
            return [url]
        found = fs.find(inner)
    except FileNotFoundError:
        raise ListingError(
            f"input not found: {url} (give a video object or a prefix holding videos)"
        ) from None
    except Exception as exc:
        raise ListingError(
            f"cannot list {url}: {error_line(exc)} (check the credentials, e.g. AWS_* variables)"
        ) from None
    return sorted(
        fs.unstrip_protocol(p) for p in found if PurePosixPath(p).suffix.lower() in extensions
    )


def _cache_bytes() -> int:
    try:
        gb = float(os.environ.get(CACHE_GB_ENV) or DEFAULT_CACHE_GB)
    except ValueError:
        gb = DEFAULT_CACHE_GB
    return int(max(gb, 0.0) * 2**30)


class SourceCache:
    """Local copies of URL sources on this node (see the module docstring)."""

    def __init__(self, root: Path | None = None, max_bytes: int | None = None) -> None:
        # per user: another user's cache folder would not be writable
        default = Path(tempfile.gettempdir()) / f"clipsieve-sources-{os.getuid()}"
        self.root = Path(root or os.environ.get(CACHE_ENV) or default)
        self.max_bytes = _cache_bytes() if max_bytes is None else max_bytes

    def __getstate__(self) -> dict[str, Any]:
        return {"root": str(self.root), "max_bytes": self.max_bytes}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.root, self.max_bytes = Path(state["root"]), int(state["max_bytes"])

    def entry_for(self, url: str) -> Path:
        key = hashlib.sha256(url.encode("utf-8", "surrogateescape")).hexdigest()[:32]
        suffix = PurePosixPath(source_name(url)).suffix.lower()[:8]
        return self.root / f"{key}{suffix}"

    @staticmethod
    def _lock_path(entry: Path) -> Path:
        return entry.with_name(f".{entry.name}.lock")

    @contextlib.contextmanager
    def local(self, source: str) -> Iterator[str]:
        """A local path for ``source`` while the ``with`` block runs (a local path is itself);
        :class:`SourceUnavailable` when the object cannot be fetched."""
        if not is_url(source):
            yield source
            return
        self.root.mkdir(parents=True, exist_ok=True)
        entry = self.entry_for(source)
        fd = os.open(self._lock_path(entry), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # one download per object
            if not entry.is_file():
                self._fetch(source, entry)
            os.utime(entry)  # most recently used
            fcntl.flock(fd, fcntl.LOCK_SH)  # readers share; eviction cannot take it now
            self._evict(keep=entry)
            yield str(entry)
        finally:
            os.close(fd)

    def _fetch(self, url: str, entry: Path) -> None:
        fs, inner = url_filesystem(url)
        tmp = entry.with_name(f".{entry.name}.{os.getpid()}.part")
        try:
            fs.get_file(inner, str(tmp))
            os.replace(tmp, entry)
        except Exception as exc:
            tmp.unlink(missing_ok=True)
            raise _unavailable(url, exc) from None

    def _entries(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return [p for p in self.root.iterdir() if not p.name.startswith(".") and p.is_file()]

    def _evict(self, keep: Path | None = None, limit: int | None = None) -> int:
        """Delete least recently used entries nobody holds until the cache is under ``limit``
        (default: its size limit); the number deleted."""
        limit = self.max_bytes if limit is None else limit
        entries = []
        for path in self._entries():
            with contextlib.suppress(FileNotFoundError):
                st = path.stat()
                entries.append((st.st_mtime_ns, st.st_size, path))
        total = sum(size for _, size, _ in entries)
        removed = 0
        for _, size, path in sorted(entries):
            if total <= limit:
                break
            if path == keep:
                continue
            fd = os.open(self._lock_path(path), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # in use by a worker
                os.close(fd)
                continue
            try:
                path.unlink(missing_ok=True)
                total -= size
                removed += 1
            finally:
                os.close(fd)
        for stale in self.root.glob(".*.part") if self.root.is_dir() else []:
            with contextlib.suppress(OSError):  # a killed download's leftovers (not a live one)
                if time.time() - stale.stat().st_mtime > STALE_PART_S:
                    stale.unlink()
        return removed

    def clear(self) -> int:
        """Delete every entry nobody holds (the end of a run)."""
        return self._evict(limit=0)

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self._entries())
