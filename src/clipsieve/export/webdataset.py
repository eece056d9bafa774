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


def _write_shard(path: Path, samples: list[Sample]) -> dict[str, Any]:
    with atomic_path(path) as tmp:
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            for s in samples:
                with open(s.video, "rb") as fh:
                    tar.addfile(_info(f"{s.key}.mp4", s.video.stat().st_size), fh)
                tar.addfile(_info(f"{s.key}.json", len(s.meta)), io.BytesIO(s.meta))
                tar.addfile(_info(f"{s.key}.txt", len(s.text)), io.BytesIO(s.text))
        digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
        size = tmp.stat().st_size
    return {
        "name": path.name,
        "count": len(samples),
        "bytes": size,
        "sha256": digest,
        "first_key": samples[0].key,
        "last_key": samples[-1].key,
    }


def _split(samples: list[Sample], shard_bytes: int, shard_count: int | None) -> list[list[Sample]]:
    shards: list[list[Sample]] = []
    current: list[Sample] = []
    used = 2 * BLOCK  # the end-of-archive blocks
    for sample in samples:
        size = sample.tar_bytes()
        full = shard_count is not None and len(current) >= shard_count
        if current and (full or used + size > shard_bytes):
            shards.append(current)
            current, used = [], 2 * BLOCK
        current.append(sample)
        used += size
    if current:
        shards.append(current)
    return shards


def write_webdataset(
    samples: list[Sample],
    out: Path,
    *,
    shard_bytes: int = 1 << 30,
    shard_count: int | None = None,
) -> dict[str, Any]:
    """Write ``samples`` as bucketed shards into ``out``; return the index (also written)."""
    out.mkdir(parents=True, exist_ok=True)
    by_bucket: dict[str, list[Sample]] = {}
    for sample in sorted(samples, key=lambda s: s.key):
        by_bucket.setdefault(sample.bucket["name"], []).append(sample)
    buckets: dict[str, Any] = {}
    shards: list[dict[str, Any]] = []
    for name in sorted(by_bucket):
        members = by_bucket[name]
        names = []
        for n, part in enumerate(_split(members, shard_bytes, shard_count)):
            entry = _write_shard(out / f"{name}-{n:06d}.tar", part)
            shards.append({"bucket": name, **entry})
            names.append(entry["name"])
        first = members[0].bucket
        buckets[name] = {
            "resolution": first["resolution"],
            "aspect": first["aspect"],
            "duration": first["duration"],
            "count": len(members),
            "shards": names,
        }
    index = {
        "format": "webdataset",
        "version": 1,
        "total": len(samples),
        "captioned": sum(1 for s in samples if s.text),
        "shard_bytes": shard_bytes,
        "shard_count": shard_count,
        "buckets": buckets,
        "shards": shards,
    }
    write_json(index, out / INDEX_FILE)
    return index


def make_sample(row: Mapping[str, Any], video: Path, caption: str | None) -> Sample:
    """One WebDataset sample of a kept clip row whose cut file is ``video``."""
    return Sample(
        key=sample_key(str(row["clip_id"])),
        video=video,
        meta=row_json(row),
        text=(caption or "").encode("utf-8"),
        bucket=bucket_of(row),
    )
