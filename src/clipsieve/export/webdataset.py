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
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clipsieve.export.buckets import bucket_of
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
    key: str
    video: Path
    meta: bytes
    text: bytes
    bucket: dict[str, str]

    def tar_bytes(self) -> int:
        return (
            _padded(self.video.stat().st_size) + _padded(len(self.meta)) + _padded(len(self.text))
        )


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


class _OpenShard:
    """One bucket's shard being written (a tar under a temp name, renamed when closed)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._atomic = atomic_path(path)
        self.tmp = self._atomic.__enter__()
        self.tar = tarfile.open(self.tmp, "w", format=tarfile.PAX_FORMAT)  # noqa: SIM115
        self.used = 2 * BLOCK  # the end-of-archive blocks
        self.count = 0
        self.first_key = self.last_key = ""

    def add(self, s: Sample, size: int) -> None:
        with open(s.video, "rb") as fh:
            self.tar.addfile(_info(f"{s.key}.mp4", s.video.stat().st_size), fh)
        self.tar.addfile(_info(f"{s.key}.json", len(s.meta)), io.BytesIO(s.meta))
        self.tar.addfile(_info(f"{s.key}.txt", len(s.text)), io.BytesIO(s.text))
        self.first_key = self.first_key or s.key
        self.last_key = s.key
        self.used += size
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


class WebDatasetWriter:
    """Writes samples, given in key order, into bucketed shards in one pass.

    Each bucket has one open shard; a sample that would push it past ``shard_bytes`` (tar
    bytes, headers and padding included) or beyond ``shard_count`` samples closes it first. So
    memory holds one sample per bucket, and the shards are the same bytes as sorting all
    samples first would give.
    """

    def __init__(self, out: Path, shard_bytes: int = 1 << 30, shard_count: int | None = None):
        self.out, self.shard_bytes, self.shard_count = out, shard_bytes, shard_count
        out.mkdir(parents=True, exist_ok=True)
        self._open: dict[str, _OpenShard] = {}
        self._numbers: dict[str, int] = {}
        self.buckets: dict[str, Any] = {}
        self.shards: list[dict[str, Any]] = []
        self.total = self.captioned = 0

    def add(self, sample: Sample) -> None:
        name = sample.bucket["name"]
        size = sample.tar_bytes()
        shard = self._open.get(name)
        if shard is not None:
            full = self.shard_count is not None and shard.count >= self.shard_count
            if full or shard.used + size > self.shard_bytes:
                self._close(name)
                shard = None
        if shard is None:
            n = self._numbers.get(name, 0)
            self._numbers[name] = n + 1
            shard = self._open[name] = _OpenShard(self.out / f"{name}-{n:06d}.tar")
        shard.add(sample, size)
        if name not in self.buckets:
            first = sample.bucket
            self.buckets[name] = {
                "resolution": first["resolution"],
                "aspect": first["aspect"],
                "duration": first["duration"],
                "count": 0,
                "shards": [],
            }
        self.buckets[name]["count"] += 1
        self.total += 1
        self.captioned += bool(sample.text)

    def _close(self, name: str) -> None:
        entry = self._open.pop(name).close()
        self.shards.append({"bucket": name, **entry})
        self.buckets[name]["shards"].append(entry["name"])

    def abort(self) -> None:
        for shard in self._open.values():
            shard.abort()
        self._open.clear()

    def close(self) -> dict[str, Any]:
        """Close every shard, write ``index.json``; return the index."""
        for name in list(self._open):
            self._close(name)
        index = {
            "format": "webdataset",
            "version": 1,
            "total": self.total,
            "captioned": self.captioned,
            "shard_bytes": self.shard_bytes,
            "shard_count": self.shard_count,
            "buckets": {name: self.buckets[name] for name in sorted(self.buckets)},
            "shards": sorted(self.shards, key=lambda s: (s["bucket"], s["name"])),
        }
        write_json(index, self.out / INDEX_FILE)
        return index


def write_webdataset(
    samples: list[Sample],
    out: Path,
    *,
    shard_bytes: int = 1 << 30,
    shard_count: int | None = None,
) -> dict[str, Any]:
    """Write ``samples`` as bucketed shards into ``out``; return the index (also written)."""
    writer = WebDatasetWriter(out, shard_bytes, shard_count)
    try:
        for sample in sorted(samples, key=lambda s: s.key):
            writer.add(sample)
    except BaseException:
        writer.abort()
        raise
    return writer.close()


def make_sample(row: Mapping[str, Any], video: Path, caption: str | None) -> Sample:
    """One WebDataset sample of a kept clip row whose cut file is ``video``."""
    return Sample(
        key=sample_key(str(row["clip_id"])),
        video=video,
        meta=row_json(row),
        text=(caption or "").encode("utf-8"),
        bucket=bucket_of(row),
    )
