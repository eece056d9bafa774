"""``export --format webdataset --engine ray``: each shard written by a Ray worker.

Writing shards is reading every kept clip file (from disk or a bucket) and packing it into a
tar: I/O and hashing that one machine does one shard at a time. Here the driver still streams
the sorted rows and plans the shards (:class:`~clipsieve.export.webdataset.ShardPlanner`, from
the clip sizes alone), and hands each finished plan, the list of its samples, to a pool of
actors. A worker writes the tar straight into the export folder when its node sees that folder
(one machine, or a shared disk); on a node that does not, it writes a temporary file and sends
its bytes back, and the driver writes them. An export to a URL is uploaded by the workers.
Either way the shards and ``index.json`` are the
bytes a local export writes. The driver holds at most one plan per bucket plus one per worker.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from clipsieve.engine.ray_pool import RayOptions, RaySession
from clipsieve.export.webdataset import Sample, ShardedExport, write_shard
from clipsieve.storage import is_url, upload_file
from clipsieve.table import atomic_path


def write_shard_into(
    folder: str, name: str, samples: list[Sample]
) -> tuple[dict[str, Any], bytes | None]:
    """On a worker: ``(index entry, None)`` when the shard was written into ``folder`` (a URL,
    uploaded from here, or a local folder this node sees), else ``(entry, the shard's bytes)``
    for the driver to write."""
    if not is_url(folder) and os.path.isdir(folder):
        return write_shard(samples, Path(folder) / name), None
    with tempfile.TemporaryDirectory(prefix="clipsieve-shard-") as tmp:
        path = Path(tmp) / name
        entry = write_shard(samples, path)
        if not is_url(folder):
            return entry, path.read_bytes()
        upload_file(path, f"{folder.rstrip('/')}/{name}", name, folder)
        return entry, None


def _worker_class() -> Any:
    import ray

    @ray.remote(num_cpus=1)
    class ShardWorker:
        """Writes planned shards."""

        def write(
            self, folder: str, name: str, samples: list[Sample]
        ) -> tuple[dict[str, Any], bytes | None]:
            return write_shard_into(folder, name, samples)

    return ShardWorker


class RayShardExport(ShardedExport):
    """A webdataset export whose shards are written by Ray actors (see the module docstring)."""

    def __init__(
        self,
        out: Path,
        target: str,
        options: RayOptions,
        shard_bytes: int = 1 << 30,
        shard_count: int | None = None,
    ) -> None:
        super().__init__(out, shard_bytes, shard_count)
        self.target = target  # where workers put shards: ``out``, or the export's URL
        self.session = RaySession(options)
        self.pending: dict[str, list[Sample]] = {}
        self.pool: Any = None
        self.actors: list[Any] = []

    def __enter__(self) -> RayShardExport:
        from ray.util import ActorPool

        self.session.__enter__()
        worker = _worker_class()
        self.actors = [worker.remote() for _ in range(self.session.size)]
        self.pool = ActorPool(self.actors)
        return self

    def __exit__(self, *exc: object) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.session.__exit__(*exc)

    def _add(self, name: str, sample: Sample) -> None:
        self.pending.setdefault(name, []).append(sample)

    def _close(self, name: str) -> None:
        samples = self.pending.pop(name)
        if not self.pool.has_free():
            self._collect()  # one plan per worker in flight: the driver never runs ahead
        folder = self.target
        self.pool.submit(lambda actor, plan: actor.write.remote(folder, *plan), (name, samples))

    def _collect(self) -> None:
        entry, data = self.pool.get_next_unordered()
        if data is not None:
            with atomic_path(self.out / entry["name"]) as tmp:
                tmp.write_bytes(data)
        self.entries.append(entry)

    def _finish(self) -> None:
        while self.pool.has_next():
            self._collect()

    def abort(self) -> None:
        self.pending.clear()
