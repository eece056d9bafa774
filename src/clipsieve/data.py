"""``ClipDataset``: the curated clips straight into a training loop (PyTorch IterableDataset).

Reads an export folder (WebDataset shards, ``index.json``; or the Parquet manifest of
``export --format parquet`` with its ``clips/``) or a run folder (its kept clips). Each sample is
a dict: ``frames`` (uint8 tensor ``T x C x H x W``, RGB), ``clip_id``, ``caption`` ("" when the
clip has none, so the default collate batches it) and any
``columns`` asked for (from the clip table: ``aes``, ``flow_mean``, ...).

* **Frames**: ``num_frames`` spread evenly over the clip, or every ``stride``-th frame from the
  start; a clip shorter than that repeats its last frame (``frames`` always has ``num_frames``
  frames). ``size``: ``(height, width)``, or an int for the short side (aspect kept; width
  rounded to even). Decoded once per clip with PyAV, stopping after the last needed frame,
  resized in swscale.
* **Workers**: with a multi-worker DataLoader each worker takes its own shards (or its own
  slice of the manifest rows): no sample twice, none missed. ``shuffle`` shuffles the shard
  (or row) order per epoch with ``seed`` + ``epoch`` (:meth:`set_epoch`).
* **Bounded**: shards are streamed member by member (a tar is never loaded whole), the manifest
  is read in row batches, and every container is closed after its clip.
"""

from __future__ import annotations

import io
import json
import random
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow.parquet as pq

from clipsieve.errors import UserError
from clipsieve.export.webdataset import INDEX_FILE
from clipsieve.runfolder import CLIPS_FILE, RUN_JSON, resolve_clip_file
from clipsieve.table import CAPTION_COLUMNS, caption_of

try:  # torch is a dependency; the import is here so the error says what is missing
    import torch
    from torch.utils.data import IterableDataset, get_worker_info
except ImportError as exc:  # pragma: no cover
    raise ImportError("clipsieve.data needs PyTorch (pip install torch)") from exc


@dataclass(frozen=True)
class _Source:
    kind: str  # "webdataset" | "manifest"
    parts: tuple[str, ...]  # shard files, or the manifest file
    root: Path  # where relative clip paths start


def _source(path: Path) -> _Source:
    if (path / INDEX_FILE).is_file():
        index = json.loads((path / INDEX_FILE).read_text(encoding="utf-8"))
        shards = tuple(str(path / s["name"]) for s in index.get("shards", []))
        return _Source("webdataset", shards, path)
    if (path / CLIPS_FILE).is_file():
        return _Source("manifest", (str(path / CLIPS_FILE),), path)
    raise UserError(
        f"{path} is neither an export (index.json or clips.parquet) nor a run folder: give "
        "`clipsieve export RUN --format webdataset` output, a parquet export or a run folder"
    )


class ClipDataset(IterableDataset):  # type: ignore[type-arg]
    """Clips of an export or a run folder as frame tensors (see the module docstring)."""

    def __init__(
        self,
        path: str | Path,
        num_frames: int = 8,
        size: int | tuple[int, int] = 224,
        stride: int | None = None,
        columns: Sequence[str] = (),
        shuffle: bool = False,
        seed: int = 0,
        batch_rows: int = 256,
    ) -> None:
        super().__init__()
        if num_frames < 1:
            raise UserError(f"num_frames must be at least 1, not {num_frames}")
        if stride is not None and stride < 1:
            raise UserError(f"stride must be at least 1, not {stride}")
        self.path = Path(path)
        self.source = _source(self.path)
        self.run_folder = (self.path / RUN_JSON).is_file()
        self.num_frames, self.size, self.stride = num_frames, size, stride
        self.columns = tuple(columns)
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0
        self.batch_rows = batch_rows

    def set_epoch(self, epoch: int) -> None:
        """A new shuffle order (with ``shuffle``) for the next pass."""
        self.epoch = epoch

    # ------------------------------------------------------------------------ iteration

    def __iter__(self) -> Iterator[dict[str, Any]]:
        worker = get_worker_info()
        index, count = (worker.id, worker.num_workers) if worker is not None else (0, 1)
        if self.source.kind == "webdataset":
            shards = list(self.source.parts)
            if self.shuffle:
                random.Random(self.seed + self.epoch).shuffle(shards)
            for shard in shards[index::count]:
                yield from self._shard(shard)
        else:
            yield from self._manifest(index, count)

    def _shard(self, shard: str) -> Iterator[dict[str, Any]]:
        """Samples of one tar, streamed: members of a key follow each other."""
        key, members = None, {}
        with tarfile.open(shard, "r|") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                name, _, ext = member.name.partition(".")
                if key is not None and name != key:
                    yield self._from_members(key, members)
                    members = {}
                key = name
                handle = tar.extractfile(member)
                members[ext] = handle.read() if handle is not None else b""
        if key is not None:
            yield self._from_members(key, members)

    def _from_members(self, key: str, members: dict[str, bytes]) -> dict[str, Any]:
        meta = json.loads(members.get("json", b"{}") or b"{}")
        video = members.get("mp4")
        if video is None:
            raise ValueError(f"webdataset sample {key} has no .mp4 member")
        caption = members["txt"].decode("utf-8") if "txt" in members else _caption(meta)
        sample = {
            "frames": self.frames(io.BytesIO(video)),
            "clip_id": meta.get("clip_id", key),
            "caption": caption or "",
        }
        sample.update({c: meta.get(c) for c in self.columns})
        return sample

    def _manifest(self, index: int, count: int) -> Iterator[dict[str, Any]]:
        """Kept rows of the Parquet manifest (or the run's table), this worker's share."""
        manifest = pq.ParquetFile(self.source.parts[0])
        names = set(manifest.schema_arrow.names)
        wanted = ["clip_id", "path", *[c for c in CAPTION_COLUMNS if c in names]]
        wanted += [c for c in self.columns if c in names and c not in wanted]
        kept_columns = [c for c in ("keep", "status") if c in names and self.run_folder]
        groups = list(range(manifest.num_row_groups))
        if self.shuffle:
            random.Random(self.seed + self.epoch).shuffle(groups)
        position = 0
        for group in groups:
            table = manifest.read_row_group(group, columns=wanted + kept_columns)
            for row in table.to_pylist():
                if kept_columns and not (row.get("keep") and row.get("status") == "ok"):
                    continue
                position += 1
                if (position - 1) % count != index or not row.get("path"):
                    continue
                clip = self._clip_file(row["path"])
                if clip is None:
                    raise ValueError(f"clip {row['clip_id']}: no file at {row['path']}")
                sample = {"frames": self.frames(clip), "clip_id": row["clip_id"],
                          "caption": _caption(row)}  # fmt: skip
                sample.update({c: row.get(c) for c in self.columns})
                yield sample

    def _clip_file(self, stored: str) -> Path | None:
        """A manifest's clip: relative to the export; a run folder's: as recorded, or in its
        ``clips/`` when the folder was copied or moved."""
        if self.run_folder:
            found = resolve_clip_file(self.source.root.resolve(), stored)
            return found[1] if found else None
        path = Path(stored)
        return path if path.is_absolute() else self.source.root / path

    # ------------------------------------------------------------------------ decoding

    def frames(self, video: str | Path | io.BytesIO) -> torch.Tensor:
        """``num_frames`` frames of one clip file (or bytes) as uint8 ``T x C x H x W``."""
        with av.open(video if isinstance(video, io.BytesIO) else str(video)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            total = stream.frames or 0
            wanted = self._indices(total)
            width, height = self._output_size(stream.codec_context.width, stream.height)
            picked: list[np.ndarray] = []
            last = wanted[-1] if wanted else 0
            targets = iter(wanted)
            target = next(targets, None)
            for i, frame in enumerate(container.decode(stream)):
                while target is not None and i == target:
                    picked.append(frame.to_ndarray(width=width, height=height, format="rgb24"))
                    target = next(targets, None)
                if i >= last and target is None:
                    break
        if not picked:
            raise ValueError(f"no frames decoded from {video}")
        while len(picked) < self.num_frames:  # a clip shorter than asked: hold the last frame
            picked.append(picked[-1])
        return torch.from_numpy(np.stack(picked[: self.num_frames])).permute(0, 3, 1, 2)

    def _indices(self, total: int) -> list[int]:
        if self.stride is not None:
            return [i * self.stride for i in range(self.num_frames)]
        if total <= 0:  # frame count unknown: the first frames
            return list(range(self.num_frames))
        step = total / self.num_frames
        return sorted({min(total - 1, int((k + 0.5) * step)) for k in range(self.num_frames)})

    def _output_size(self, width: int, height: int) -> tuple[int, int]:
        if isinstance(self.size, tuple):
            out_h, out_w = self.size
            return int(out_w), int(out_h)
        short = min(width, height)
        scale = self.size / short
        return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def _caption(row: dict[str, Any]) -> str:
    """The clip's caption, "" when it has none (so a DataLoader can batch it)."""
    return caption_of(row) or ""
