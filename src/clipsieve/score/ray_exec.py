"""`score --engine ray`: the clips of each table batch scored on a pool of Ray actors.

The step runner still streams the table and writes it once (:class:`~clipsieve.score.rescore.
ScoreStep`); only the decoding and the scorers move to the workers. Each actor sets the score
stage up once (models loaded once), takes slices of rows and returns their score columns; the
slices of a batch come back in order, so the table is written exactly as a local run writes it.
Model scorers on GPU nodes: ``gpus`` per actor (a fraction packs several actors on one GPU).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from clipsieve.engine.ray_pool import RayOptions, RaySession


def _worker_class(gpus: float) -> Any:
    import ray

    @ray.remote(num_cpus=1, num_gpus=gpus)
    class ScoreWorker:
        """One score stage, set up once."""

        def __init__(self, scorers: list[str], scorer_params: dict[str, dict[str, Any]]) -> None:
            from clipsieve.score.stage import ScoreStage

            self.stage = ScoreStage(scorers=scorers, scorer_params=scorer_params)
            self.stage.setup()

        def process(self, rows: pa.Table) -> pa.Table:
            return self.stage.process(rows)

        def unavailable(self) -> dict[str, str]:
            return self.stage.unavailable()

    return ScoreWorker


class RayScorer:
    """Score slices of rows on Ray actors (see the module docstring)."""

    def __init__(
        self,
        scorers: list[str],
        scorer_params: dict[str, dict[str, Any]],
        options: RayOptions,
    ) -> None:
        self.scorers, self.scorer_params = scorers, scorer_params
        self.session = RaySession(options)
        self.gpus = options.gpus
        self.actors: list[Any] = []

    def __enter__(self) -> RayScorer:
        self.session.__enter__()
        worker = _worker_class(self.gpus)
        self.actors = [
            worker.remote(self.scorers, self.scorer_params) for _ in range(self.session.size)
        ]
        return self

    def __exit__(self, *exc: object) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.session.__exit__(*exc)

    def unavailable(self) -> dict[str, str]:
        """Scorers the workers could not set up (a model missing there), by name."""
        import ray

        return dict(ray.get(self.actors[0].unavailable.remote()))

    def process(self, slices: list[pa.Table]) -> list[pa.Table]:
        """The scored slices, in the order given (at most two slices queued per actor)."""
        import ray

        refs: list[Any] = []
        results: list[pa.Table] = []
        window = 2 * len(self.actors)
        for index, rows in enumerate(slices):
            refs.append(self.actors[index % len(self.actors)].process.remote(rows))
            if len(refs) - len(results) >= window:
                results.append(ray.get(refs[len(results)]))
        results.extend(ray.get(refs[len(results) :]))
        return results
