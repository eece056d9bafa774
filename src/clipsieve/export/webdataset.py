"""WebDataset export: tar shards of ``{key}.mp4`` + ``{key}.json`` + ``{key}.txt`` per clip.

Layout of the output folder::

    {bucket}-{n:06d}.tar   one bucket per shard (see export/buckets.py), n from 0 per bucket
    index.json             counts per bucket, shards with sample count, bytes and sha256

Inside a shard the samples of the bucket follow in ``key`` order and each sample's members are
``.mp4`` (the cut clip file), ``.json`` (every column of the row, keys sorted) and ``.txt`` (the
caption; empty when the clip has none, so ``to_tuple("mp4", "txt")`` never misses a member).
A key is the clip id with every character other than letters, digits, ``-`` and ``_`` replaced
by ``_`` (WebDataset splits a member name at its first dot).

A shard is closed before a sample would push it past ``shard_bytes`` (tar bytes, headers and
padding included) or when it holds ``shard_count`` samples; a single clip bigger than the limit
gets a shard of its own. Every header field that could vary between two exports (mtime, uid,
gid, user and group names, mode) is fixed, so exporting the same table twice gives
byte-identical shards and the same sha256 in ``index.json``.

Which shard a sample goes to is decided by :class:`ShardPlanner` from the clip file sizes alone,
so the same shards come out whether they are written here as the rows stream past
(:class:`WebDatasetWriter`) or each by a Ray worker from its list of samples
(:mod:`clipsieve.export.ray_exec`). Clip files are read from their paths or URLs.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from clipsieve.export.buckets import bucket_of
from clipsieve.storage import av_source
from clipsieve.table import atomic_path, write_json

INDEX_FILE = "index.json"
FIXED_MTIME = 0
BLOCK = 512


def sample_key(clip_id: str) -> str:
    """A WebDataset key for ``clip_id`` (no dots, no path separators)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", clip_id)


def _padded(size: int) -> int:
    return BLOCK + (size + BLOCK - 1) // BLOCK * BLOCK  # header + data rounded to 512


def row_json(row: Mapping[str, Any]) -> bytes:
    """The ``.json`` member: every column of the row, sorted keys, no spaces."""
    return json.dumps(
        row, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str
    ).encode("utf-8")


@dataclass
class Sample:
    """One clip as a WebDataset sample; ``video`` is the clip file's path or URL and
    ``video_bytes`` its size (what shard planning needs without opening it)."""

    key: str
    video: str
    video_bytes: int
    meta: bytes
    text: bytes
    bucket: dict[str, str]

    def tar_bytes(self) -> int:
        return _padded(self.video_bytes) + _padded(len(self.meta)) + _padded(len(self.text))


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = FIXED_MTIME
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def _sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _open_clip(video: str) -> BinaryIO:
    source = av_source(video)
    return open(source, "rb") if isinstance(source, str) else source  # noqa: SIM115


class _OpenShard:
    """One shard being written (a tar under a temp name, renamed when closed)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._atomic = atomic_path(path)
        self.tmp = self._atomic.__enter__()
        self.tar = tarfile.open(self.tmp, "w", format=tarfile.PAX_FORMAT)  # noqa: SIM115
        self.count = 0
        self.first_key = self.last_key = ""

    def add(self, s: Sample) -> None:
        with _open_clip(s.video) as fh:
            self.tar.addfile(_info(f"{s.key}.mp4", s.video_bytes), fh)
        self.tar.addfile(_info(f"{s.key}.json", len(s.meta)), io.BytesIO(s.meta))
        self.tar.addfile(_info(f"{s.key}.txt", len(s.text)), io.BytesIO(s.text))
        self.first_key = self.first_key or s.key
        self.last_key = s.key
        self.count += 1

    def close(self) -> dict[str, Any]:
        self.tar.close()
        entry = {
            "name": self.path.name,
            "count": self.count,
            "bytes": self.tmp.stat().st_size,
            "sha256": _sha256(self.tmp),
            "first_key": self.first_key,
            "last_key": self.last_key,
        }
        self._atomic.__exit__(None, None, None)
        return entry

    def abort(self) -> None:
        self.tar.close()
        self._atomic.__exit__(RuntimeError, RuntimeError("aborted"), None)


def write_shard(samples: Sequence[Sample], path: Path) -> dict[str, Any]:
    """Write one planned shard at ``path`` (atomically); return its index entry."""
    shard = _OpenShard(path)
    try:
        for sample in samples:
            shard.add(sample)
    except BaseException:
        shard.abort()
        raise
    return shard.close()


@dataclass
class _Slot:
    bucket: str
    count: int = 0
    used: int = 2 * BLOCK  # the end-of-archive blocks


@dataclass
class ShardPlanner:
    """Decides the shard of each sample, given in key order: each bucket has one open shard;
    a sample that would push it past ``shard_bytes`` (tar bytes, headers and padding included)
    or beyond ``shard_count`` samples closes it first. Also counts what ``index.json`` says."""

    shard_bytes: int = 1 << 30
    shard_count: int | None = None
    buckets: dict[str, Any] = field(default_factory=dict)
    total: int = 0
    captioned: int = 0
    _open: dict[str, str] = field(default_factory=dict)  # bucket → open shard's name
    _slots: dict[str, _Slot] = field(default_factory=dict)  # shard name → its fill
    _numbers: dict[str, int] = field(default_factory=dict)

    def place(self, sample: Sample) -> tuple[str, str | None]:
        """``(shard the sample goes into, shard closed before it or None)``."""
        bucket = sample.bucket["name"]
        size = sample.tar_bytes()
        closed = self._open.get(bucket)
        if closed is not None:
            slot = self._slots[closed]
            full = self.shard_count is not None and slot.count >= self.shard_count
            if full or slot.used + size > self.shard_bytes:
                del self._open[bucket]
            else:
                closed = None
        name = self._open.get(bucket)
        if name is None:
            n = self._numbers.get(bucket, 0)
            self._numbers[bucket] = n + 1
            name = self._open[bucket] = f"{bucket}-{n:06d}.tar"
            self._slots[name] = _Slot(bucket)
        slot = self._slots[name]
        slot.used += size
        slot.count += 1
        self._count(sample)
        return name, closed

    def _count(self, sample: Sample) -> None:
        bucket = sample.bucket["name"]
        if bucket not in self.buckets:
            self.buckets[bucket] = {
                "resolution": sample.bucket["resolution"],
                "aspect": sample.bucket["aspect"],
                "duration": sample.bucket["duration"],
                "count": 0,
            }
        self.buckets[bucket]["count"] += 1
        self.total += 1
        self.captioned += bool(sample.text)

    def open_shards(self) -> list[str]:
        """The shards still open (each closes at the end)."""
        return list(self._open.values())

    def index(self, entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """``index.json`` for the written shards' ``entries`` (any order)."""
        shards = sorted(
            ({"bucket": self._slots[e["name"]].bucket, **e} for e in entries),
            key=lambda e: (e["bucket"], e["name"]),
        )
        buckets = {
            name: {
                **self.buckets[name],
                "shards": [e["name"] for e in shards if e["bucket"] == name],
            }
            for name in sorted(self.buckets)
        }
        return {
            "format": "webdataset",
            "version": 1,
            "total": self.total,
            "captioned": self.captioned,
            "shard_bytes": self.shard_bytes,
            "shard_count": self.shard_count,
            "buckets": buckets,
            "shards": shards,
        }


class ShardedExport(ABC):
    """Writes samples, given in key order, into the planned shards of ``out``; subclasses say
    how a shard is written (here as samples stream past, or on Ray from a finished plan)."""

    def __init__(self, out: Path, shard_bytes: int = 1 << 30, shard_count: int | None = None):
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.planner = ShardPlanner(shard_bytes, shard_count)
        self.entries: list[dict[str, Any]] = []

    def add(self, sample: Sample) -> None:
        name, closed = self.planner.place(sample)
        if closed is not None:
            self._close(closed)
        self._add(name, sample)

    def close(self) -> dict[str, Any]:
        """Close every shard, write ``index.json``; return the index."""
        for name in self.planner.open_shards():
            self._close(name)
        self._finish()
        index = self.planner.index(self.entries)
        write_json(index, self.out / INDEX_FILE)
        return index

    @abstractmethod
    def _add(self, name: str, sample: Sample) -> None:
        """``sample`` goes into shard ``name`` (opened by its first sample)."""

    @abstractmethod
    def _close(self, name: str) -> None:
        """Shard ``name`` is complete: write it out (its entry lands in ``entries``)."""

    @abstractmethod
    def _finish(self) -> None:
        """Wait for shards still being written (their entries land in ``entries``)."""

    @abstractmethod
    def abort(self) -> None:
        """Drop the shards not yet closed (the export folder is thrown away)."""


class WebDatasetWriter(ShardedExport):
    """Writes each sample into its open shard as it comes: memory holds one sample."""

    def __init__(self, out: Path, shard_bytes: int = 1 << 30, shard_count: int | None = None):
        super().__init__(out, shard_bytes, shard_count)
        self._open: dict[str, _OpenShard] = {}

    def _add(self, name: str, sample: Sample) -> None:
        shard = self._open.get(name)
        if shard is None:
            shard = self._open[name] = _OpenShard(self.out / name)
        shard.add(sample)

    def _close(self, name: str) -> None:
        self.entries.append(self._open.pop(name).close())

    def _finish(self) -> None:
        """Nothing in flight: each shard was written by :meth:`_close`."""

    def abort(self) -> None:
        for shard in self._open.values():
            shard.abort()
        self._open.clear()


def make_sample(
    row: Mapping[str, Any], video: str, video_bytes: int, caption: str | None
) -> Sample:
    """One WebDataset sample of a kept clip row whose cut file (path or URL) is ``video``."""
    return Sample(
        key=sample_key(str(row["clip_id"])),
        video=video,
        video_bytes=video_bytes,
        meta=row_json(row),
        text=(caption or "").encode("utf-8"),
        bucket=bucket_of(row),
    )
