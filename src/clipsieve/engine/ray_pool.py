"""Post-run work on a pool of Ray actors: the options a command takes and the session around it.

``score``, ``caption``, ``dedup`` (its embedding pass) and ``export --format webdataset`` move
their heavy part onto Ray the same way: the driver streams the table through the step runner,
hands slices to a pool of actors that each set their stage up once, and writes what comes back.
:class:`RayOptions` is what the user chose (``--engine ray``, ``--address``, ``--workers``,
``--gpus-per-worker``); :class:`RaySession` joins or starts Ray, says how many actors fit, and
stops a Ray it started.
"""

from __future__ import annotations

from dataclasses import dataclass

from clipsieve.errors import UserError

MAX_GPU_SHARE = 8.0


@dataclass(frozen=True)
class RayOptions:
    """Where a post-run command's work runs on Ray: ``address`` (None: a Ray started here),
    ``workers`` (None: one per cluster CPU) and the GPU share of each worker (0.25 packs four
    actors on one GPU)."""

    address: str | None = None
    workers: int | None = None
    gpus: float = 0.0


def ray_options(
    engine: str, address: str | None, workers: int | None, gpus: float = 0.0
) -> RayOptions | None:
    """The Ray options of a post-run command, or None when it runs here (``--engine local``
    and no ``--address``); a bad ``--engine``, ``--workers`` or GPU share is one line."""
    if engine not in ("local", "ray"):
        raise UserError(f"--engine must be 'local' or 'ray', not {engine!r}")
    if workers is not None and workers < 1:
        raise UserError(f"--workers must be at least 1, not {workers}")
    if not 0 <= gpus <= MAX_GPU_SHARE:
        raise UserError(f"--gpus-per-worker {gpus}: give a share between 0 and {MAX_GPU_SHARE:g}")
    if engine != "ray" and address is None:
        return None
    return RayOptions(address, workers, gpus)


class RaySession:
    """Joins (or starts) Ray for one command; ``size`` is how many one-CPU actors to make."""

    def __init__(self, options: RayOptions) -> None:
        self.options = options
        self.started = False
        self.size = 1

    def __enter__(self) -> RaySession:
        import ray

        from clipsieve.engine.ray import connect

        self.started = connect(self.options.address, self.options.workers)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.size = max(1, min(self.options.workers or cpus, cpus))
        return self

    def __exit__(self, *exc: object) -> None:
        if self.started:
            import ray

            ray.shutdown()
