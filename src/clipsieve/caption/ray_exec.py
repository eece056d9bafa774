"""`caption --engine ray`: frames decoded and requests sent from Ray workers.

Captioning a large run is decoding (CPU on the workers) and waiting on VLM servers. Here a pool
of Ray actors, each with the caption stage set up once (backend client, frame sampler), takes
chunks of rows; each actor keeps its own ``-j`` requests in flight per server. The driver alone
writes the answers (:class:`~clipsieve.caption.run.AnswerParts`, one part per finished chunk),
so every answer is recorded exactly once whatever happens to a worker: a chunk whose actor died
is given to another actor (once), then its rows record the failure and a later run asks again.
A fatal answer (bad key) stops the actors' work as it does locally: the rest of the rows are
marked "not attempted" without asking.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from clipsieve.caption.stage import CaptionStage
from clipsieve.engine.ray_pool import RayOptions, RaySession
from clipsieve.table import error_text

CHUNK_TRIES = 2  # a chunk whose actor dies is given to one other actor


def stage_params(stage: CaptionStage) -> dict[str, Any]:
    """The stage's parameters (what a worker needs to build the same stage)."""
    return {
        f.name: getattr(stage, f.name)
        for f in dataclasses.fields(stage)
        if f.init and f.name != "on_row"
    }


def _worker_class() -> Any:
    import ray

    @ray.remote(num_cpus=1)
    class CaptionWorker:
        """One caption stage, set up once, captioning the chunks it is given."""

        def __init__(self, params: dict[str, Any]) -> None:
            self.stage = CaptionStage(**params)
            self.stage.setup()

        def caption(
            self, rows: list[dict[str, Any]], aborted: str | None
        ) -> tuple[list[dict[str, Any]], dict[str, Any], str | None]:
            before = dataclasses.asdict(self.stage.stats)
            if aborted and not self.stage.aborted:
                self.stage.aborted = aborted  # another actor met a fatal answer
            self.stage.caption_rows(rows)
            after = dataclasses.asdict(self.stage.stats)
            delta = {k: after[k] - before[k] for k in after}
            return rows, delta, self.stage.aborted

        def close(self) -> None:
            self.stage.teardown()

    return CaptionWorker


class RayCaptioner:
    """Caption chunks on a pool of Ray actors (see the module docstring)."""

    def __init__(self, stage: CaptionStage, options: RayOptions) -> None:
        self.stage = stage
        self.session = RaySession(options)

    def __enter__(self) -> RayCaptioner:
        self.session.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.session.__exit__(*exc)

    def _actors(self) -> list[Any]:
        worker = _worker_class()
        params = stage_params(self.stage)
        return [worker.remote(params) for _ in range(self.session.size)]

    def run(
        self,
        chunks: Iterable[list[dict[str, Any]]],
        on_done: Callable[[list[dict[str, Any]]], None],
    ) -> None:
        """Caption every chunk; ``on_done(rows)`` (in the driver) for each finished chunk."""
        import ray

        started = time.perf_counter()
        actors = self._actors()
        idle = list(actors)
        running: dict[Any, tuple[Any, list[dict[str, Any]], int]] = {}
        pending: Iterator[list[dict[str, Any]]] = iter(chunks)
        retry: list[tuple[list[dict[str, Any]], int]] = []
        try:
            while True:
                while idle:
                    item = retry.pop() if retry else next(((c, 1) for c in pending), None)
                    if item is None:
                        break
                    chunk, tries = item
                    actor = idle.pop()
                    ref = actor.caption.remote(chunk, self.stage.aborted)
                    running[ref] = (actor, chunk, tries)
                if not running:
                    break
                done, _ = ray.wait(list(running), num_returns=1)
                actor, chunk, tries = running.pop(done[0])
                try:
                    rows, delta, aborted = ray.get(done[0])
                except ray.exceptions.RayActorError:
                    actors.remove(actor)
                    replacement = _worker_class().remote(stage_params(self.stage))
                    actors.append(replacement)
                    idle.append(replacement)
                    if tries < CHUNK_TRIES:
                        retry.append((chunk, tries + 1))
                    else:
                        on_done(self._failed(chunk, "a caption worker died on this chunk"))
                    continue
                idle.append(actor)
                self._count(rows, delta)
                if aborted and not self.stage.aborted:
                    self.stage.aborted = aborted
                on_done(rows)
        finally:
            for actor in actors:
                ray.kill(actor, no_restart=True)
            # the actors' seconds overlap: the rate is answers over the wall time
            self.stage.stats.seconds = time.perf_counter() - started

    def _count(self, rows: list[dict[str, Any]], delta: dict[str, Any]) -> None:
        stats = self.stage.stats
        for key, value in delta.items():
            if key != "seconds":  # wall time is set once the pool is done
                setattr(stats, key, getattr(stats, key) + value)
        if self.stage.on_row is not None:  # progress, a chunk at a time
            for row in rows:
                self.stage.on_row(not row.get("caption_error"))

    @staticmethod
    def _failed(chunk: list[dict[str, Any]], reason: str) -> list[dict[str, Any]]:
        return [{**row, "caption_error": error_text("caption", reason)} for row in chunk]
