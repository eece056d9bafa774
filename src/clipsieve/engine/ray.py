"""The Ray engine: the same stage objects on Ray, for one machine or a cluster.

The pending videos go out in blocks (Arrow tables, the format :meth:`Stage.process` takes), and
each block runs every stage in one Ray task::

    pending videos ─▶ probe ─▶ shots ─▶ plan + cut + score ─▶ driver: commit shards per video
                                         │ chunks of clips_per_task clips: the first in this
                                         └▶ task, the others as Ray tasks of their own

- **Plain Ray tasks when no stage wants a GPU** (:meth:`RayRunner._task_batches`): two tasks per
  CPU out at a time, results taken as they finish (``ray.wait``). Ray Data's machinery (a
  stats actor and an autoscaling coordinator per run, a CPU share reserved per operator, a
  scheduling loop that waits between tasks) cost 4-6 s on 24 half-second tasks on 2 CPUs,
  and was most of this engine's overhead over the local one (``docs/speed.md``).
- **Ray Data when a clip stage wants a GPU** (:meth:`RayRunner._dataset_batches`): the stages
  before it as above, fused into one operator, then ``repartition`` and an actor pool per GPU
  stage, which is what Ray Data is for (placement on GPU nodes, a model loaded once per actor,
  streaming between the CPU and GPU parts).
- **The clip stages run from the plan task** (:func:`_plan`), the planned clips in chunks: a
  few short videos' clips cost no second task, and a long video's chunks spread over the
  cluster while the plan task waits (``ray.get`` gives its CPU back), like the shot segments
  of a long video. Measured on 192 short videos with 2 CPUs: clip stages as an operator of
  their own cost 0.15-0.2 s of idle CPU per task (Ray Data's scheduling between two tasks) and
  held one of the two CPUs while the shot detection waited for it (each operator keeps a
  share), see ``docs/speed.md``.
- Clip stages with ``Resources.gpus`` (and every clip stage after the first of them) run in an
  **actor pool** (``concurrency=(1, n)``) with that many ``num_gpus``, on blocks of
  ``clips_per_task`` clip rows, so they are placed on GPU nodes; each actor calls ``setup()``
  once and keeps its model. Every other stage runs in Ray **tasks** (``num_cpus`` from
  ``Resources.cpus``, capped at half the cluster's CPUs). Ray reuses its worker processes, and
  a task sets a stage up once per worker process (a per-process cache), so CPU models such as
  the shot detector are not reloaded per video either. CPU stages are not actors on purpose: an
  actor holds its CPUs for its whole life, and on a small machine two CPU actor pools hold every
  CPU while the task stages before them wait forever (seen with ``ray.init(num_cpus=2)``).
- Per-stage stats travel in the rows (:func:`attach_stats`); the driver adds them up as
  batches arrive.
- Ray does the object spilling and the retries (a task whose worker dies is retried, a dead
  actor restarted); backpressure is the bounded number of tasks out (or Ray Data's, on the
  GPU path), so nothing of that is rebuilt here.
- **Exactly once, like the local engine.** The plan step tags each clip row with its video's
  finished ``videos`` row (as Arrow IPC bytes), its position in the plan and the plan's size; a
  video with no clips emits one marker row. The driver collects rows per video and commits the
  video's shard pair (:class:`~clipsieve.engine.checkpoint.ShardStore`) as soon as all of its
  rows are back, so a run killed half-way resumes with the unfinished videos only, and the
  merged tables are built by the same streaming merge.
- The run folder is a path every node sees (a shared filesystem) or a URL such as
  ``s3://bucket/run`` (:mod:`clipsieve.storage`): then each node cuts into its own staging
  folder and uploads its clips, and the driver uploads the shards it commits. Source videos
  are read by path, so they must be on a filesystem every node sees.
"""

from __future__ import annotations

import functools
import importlib
import itertools
import logging
import math
import os
import pickle
import re
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from clipsieve.engine.base import Executor, Invocation
from clipsieve.engine.tasks import (
    StatsByStage,
    combine_parts,
    join_chunks,
    merge_stats,
    segment_part,
    split_rows,
    timed,
)
from clipsieve.errors import UserError
from clipsieve.media.threads import CODEC_THREADS_ENV
from clipsieve.stage import Pipeline, RowStage, Segment, SegmentedStage, Stage
from clipsieve.storage import RunLocation
from clipsieve.table import (
    CLIP_SCHEMA,
    STATUS_ERROR,
    VIDEO_SCHEMA,
    concat_tables,
    rows_to_table,
)

VIDEO_COL = "_cs_video"  # the finished videos row of the clip's video (Arrow IPC bytes)
POS_COL = "_cs_pos"  # the clip's position in its video's plan (-1: the marker of an empty plan)
COUNT_COL = "_cs_count"  # how many clip rows the video's plan has
STATS_COL = "_cs_stats"  # per-stage stats of the tasks that made the batch (first row; pickled)
PRIVATE = (VIDEO_COL, POS_COL, COUNT_COL, STATS_COL)


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _from_ipc(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


def split_clip_stages(
    stages: list[Stage], cluster_gpus: float
) -> tuple[tuple[Stage, ...], tuple[Stage, ...]]:
    """(the clip stages run from the plan task, those from the first actor-pool stage on)."""
    for i, stage in enumerate(stages):
        if uses_actors(stage, cluster_gpus):
            return tuple(stages[:i]), tuple(stages[i:])
    return tuple(stages), ()


def has_setup(stage: Stage) -> bool:
    """Whether the stage loads something once per worker."""
    return type(stage).setup is not Stage.setup


def uses_actors(stage: Stage, cluster_gpus: float) -> bool:
    """GPU stages get an actor pool (see the module docs for why CPU stages do not).

    On a cluster without GPUs a stage that would like one runs as CPU tasks: asking Ray for a
    GPU that does not exist would leave it pending forever.
    """
    return stage.resources().gpus > 0 and cluster_gpus > 0


# Stages already set up in *this Ray worker process*, by stage identity. Ray hands a task a fresh
# copy of the stage each time; the cache is what keeps setup() to once per worker process.
_worker_stages: dict[tuple[str, str, str], Stage] = {}


def _cap_codec_threads() -> None:
    """FFmpeg threads of this Ray worker: the CPUs Ray gave the task (see media/threads.py).

    Ray already sets ``OMP_NUM_THREADS`` to the task's CPUs; FFmpeg's decoders and x264 would
    otherwise start a thread per core of the node in every worker.
    """
    if CODEC_THREADS_ENV in os.environ:
        return
    import ray

    context = ray.get_runtime_context()
    if context.worker.mode != ray.WORKER_MODE:  # called in the driver (tests): leave it be
        return
    cpus = context.get_assigned_resources().get("CPU", 1.0)
    os.environ[CODEC_THREADS_ENV] = str(max(1, int(cpus)))


def _set_up(stage: Stage) -> Stage:
    _cap_codec_threads()
    if not has_setup(stage):
        return stage
    key = (type(stage).__qualname__, stage.version, repr(stage.params()))
    cached = _worker_stages.get(key)
    if cached is None:
        stage.setup()
        cached = _worker_stages[key] = stage
    return cached


def _strip(batch: pa.Table) -> tuple[pa.Table, pa.Table]:
    """Split a batch into the stage's own columns and the private bookkeeping columns."""
    own = [n for n in batch.column_names if n not in PRIVATE]
    tags = [n for n in batch.column_names if n in PRIVATE]
    return batch.select(own), batch.select(tags)


class StageActor:
    """An actor of a stage's pool: ``setup()`` once, then ``process`` per batch."""

    def __init__(self, stage: Stage, plan: bool = False) -> None:
        self.stage = stage
        self.plan = plan
        _cap_codec_threads()
        stage.setup()

    def __call__(self, batch: pa.Table) -> pa.Table:
        return apply_stage(batch, self.stage, self.plan)


def run_stage_task(
    batch: pa.Table,
    stage: Stage,
    plan: bool = False,
    clip_stages: tuple[Stage, ...] = (),
    clips_per_task: int = 0,
) -> pa.Table:
    """A stage as a Ray task, set up once per Ray worker process.

    ``clip_stages``, ``clips_per_task``: the plan task's clip work, see :func:`_plan`.
    """
    return apply_stage(
        batch, _set_up(stage), plan, original=stage,
        clip_stages=clip_stages, clips_per_task=clips_per_task,
    )  # fmt: skip


def _video_block_task(
    stages: tuple[tuple[Stage, ...], Stage, tuple[Stage, ...]], clips_per_task: int, block: pa.Table
) -> pa.Table:
    """The video stages, the plan and the CPU clip stages (``stages``) over one block of
    videos, as one plain Ray task (see :meth:`RayRunner._task_batches`); the per-stage stats
    are added up here and ride on the result's rows once."""
    video_stages, plan, clip_stages = stages
    stats: StatsByStage = {}
    for stage in video_stages:
        block = _apply(block, _set_up(stage), stats, original=stage)
    out = _plan(block, _set_up(plan), stats, clip_stages, clips_per_task)
    return attach_stats(out, stats)


@functools.cache
def _remote_video_block_task() -> Any:
    """``_video_block_task`` as a Ray remote function (registered with Ray once per process)."""
    import ray

    return ray.remote(max_retries=2)(_video_block_task)


def _segment_task(stage: Stage, row: dict[str, Any], segment: Segment) -> dict[str, Any]:
    """One segment of a long video, as a Ray task of its own."""
    ready = _set_up(stage)
    assert isinstance(ready, SegmentedStage)
    return segment_part(ready, row, segment)


def _clip_chunk_task(stages: tuple[Stage, ...], clips: pa.Table) -> tuple[pa.Table, StatsByStage]:
    """Clip stages over one chunk of a plan, as a Ray task of its own (see :func:`_plan`)."""
    stats: StatsByStage = {}
    for stage in stages:
        clips = _apply_clip_stage(clips, _set_up(stage), stats)
    return clips, stats


@functools.cache
def _remote_clip_chunk_task() -> Any:
    """``_clip_chunk_task`` as a Ray remote function (registered with Ray once per process)."""
    import ray

    return ray.remote(num_cpus=1, max_retries=2)(_clip_chunk_task)


@functools.cache
def _remote_segment_task() -> Any:
    """``_segment_task`` as a Ray remote function (registered with Ray once per process)."""
    import ray

    return ray.remote(num_cpus=1, max_retries=2)(_segment_task)


def _segmented(stage: Stage, original: Stage, batch: pa.Table) -> pa.Table:
    """Run a :class:`SegmentedStage` with each long video's segments as parallel Ray tasks.

    The waiting task gives its CPU back to Ray while it waits (``ray.get`` releases it), so
    the segments can use every CPU. ``original`` is the stage as the driver sent it (not set
    up): that is what travels to the segment tasks, not a loaded model.
    """
    import ray

    assert isinstance(stage, RowStage) and isinstance(stage, SegmentedStage)
    remote = _remote_segment_task()

    def row_fn(row: dict[str, Any]) -> dict[str, Any] | list[dict[str, Any]]:
        segments = stage.segments(row)
        if len(segments) < 2:
            return stage.process_row(row)
        parts = ray.get([remote.remote(original, row, segment) for segment in segments])
        return combine_parts(stage, row, parts)

    return stage.map_rows(batch, row_fn)


def attach_stats(batch: pa.Table, stats: StatsByStage) -> pa.Table:
    """``batch`` (without stats) with ``stats`` on its first row (see :func:`take_stats`).

    Stats travel with the rows to the driver, which adds them up as batches arrive: no actor
    to call after every task, no process of its own, nothing to poll.
    """
    if not stats or batch.num_rows == 0:
        return batch
    values = [pickle.dumps(stats)] + [None] * (batch.num_rows - 1)
    return batch.append_column(STATS_COL, pa.array(values, pa.binary()))


def take_stats(batch: pa.Table) -> tuple[pa.Table, StatsByStage]:
    """(``batch`` without its stats column, the stats its rows carry, added up)."""
    total: StatsByStage = {}
    if STATS_COL not in batch.column_names:
        return batch, total
    for value in batch.column(STATS_COL).to_pylist():
        if value:
            merge_stats(total, pickle.loads(value))
    return batch.drop_columns([STATS_COL]), total


def apply_stage(
    batch: pa.Table,
    stage: Stage,
    plan: bool,
    original: Stage | None = None,
    clip_stages: tuple[Stage, ...] = (),
    clips_per_task: int = 0,
) -> pa.Table:
    """Run ``stage`` on a batch; the plan stage also tags its output (see module docs). The
    batch's per-stage stats ride along in its rows (:func:`attach_stats`).

    ``original``: the stage before setup, given when a segmented stage may send segments to
    tasks of their own. ``clip_stages``, ``clips_per_task``: see :func:`_plan`.
    """
    batch, stats = take_stats(batch)  # what the tasks before this one did
    if plan:
        out = _plan(batch, stage, stats, clip_stages, clips_per_task)
    else:
        out = _apply(batch, stage, stats, original)
    return attach_stats(out, stats)


def _apply(
    batch: pa.Table, stage: Stage, stats: StatsByStage, original: Stage | None = None
) -> pa.Table:
    if batch.num_rows == 0:
        return batch
    if stage.table == "videos":
        if original is not None and isinstance(stage, SegmentedStage):
            return timed(stats, stage, batch, lambda b: _segmented(stage, original, b))
        return timed(stats, stage, batch)
    real = pc.greater_equal(batch.column(POS_COL), 0)
    markers = batch.filter(pc.invert(real))
    batch = batch.filter(real)
    if batch.num_rows == 0:
        return markers
    out = _apply_clip_stage(batch, stage, stats)
    # markers of videos without clips ride along untouched (the batch order does not matter:
    # the driver orders every video's rows by their plan position)
    return concat_tables([out, markers], CLIP_SCHEMA) if markers.num_rows else out


def _apply_clip_stage(batch: pa.Table, stage: Stage, stats: StatsByStage) -> pa.Table:
    own, tags = _strip(batch)
    out = timed(stats, stage, own)
    if out.num_rows != own.num_rows:  # clip stages are 1→1; keep the tags aligned
        raise RuntimeError(f"stage {stage.name} changed the number of clip rows")
    for name in tags.column_names:
        out = out.append_column(name, tags.column(name))
    return out


def _plan(
    videos: pa.Table,
    stage: Stage,
    stats: StatsByStage | None = None,
    clip_stages: tuple[Stage, ...] = (),
    clips_per_task: int = 0,
) -> pa.Table:
    """Plan each video's clips and tag them (see the module docs); then run ``clip_stages``.

    The clip stages (CPU ones, as the driver sent them) run from this task: the planned clips
    in chunks of ``clips_per_task``, the first chunk here and every other as a Ray task of its
    own, so a long video's clips spread over the cluster while this task waits (``ray.get``
    gives its CPU back). The clips of a few short videos cost no second task: Ray Data leaves
    a CPU idle for ~0.2 s between two tasks, and an operator of their own would hold CPUs of
    a small machine that the shot detection could use (each operator keeps a share).
    """
    stats = stats if stats is not None else {}
    parts = []
    for i in range(videos.num_rows):
        video = videos.slice(i, 1)
        clips = timed(stats, stage, video)
        count = clips.num_rows
        if count == 0:  # one marker row, so the driver still hears of this video
            row = video.slice(0, 1).to_pylist()[0]
            clips = rows_to_table(
                [{"clip_id": f"{row['video_id']}#", "video_id": row["video_id"],
                  "status": STATUS_ERROR}],
                CLIP_SCHEMA,
            )  # fmt: skip
        blob = _ipc(video)
        clips = clips.append_column(VIDEO_COL, pa.array([blob] * clips.num_rows, pa.binary()))
        positions = list(range(count)) if count else [-1]
        clips = clips.append_column(POS_COL, pa.array(positions, pa.int64()))
        clips = clips.append_column(COUNT_COL, pa.array([count] * clips.num_rows, pa.int64()))
        parts.append(clips)
    planned = concat_tables(parts, CLIP_SCHEMA)
    if not clip_stages:
        return planned
    return _run_clip_chunks(planned, clip_stages, clips_per_task, stats)


def _run_clip_chunks(
    planned: pa.Table, stages: tuple[Stage, ...], size: int, stats: StatsByStage
) -> pa.Table:
    """The clip stages over ``planned`` (markers pass untouched), see :func:`_plan`."""
    import ray

    real = pc.greater_equal(planned.column(POS_COL), 0)
    markers = planned.filter(pc.invert(real))
    chunks = split_rows(planned.filter(real), size)
    if not chunks:
        return planned
    remote = _remote_clip_chunk_task()
    waiting = [remote.remote(stages, chunk) for chunk in chunks[1:]]
    results = [_clip_chunk_task(stages, chunks[0])]
    if waiting:
        results += ray.get(waiting)
    for _, chunk_stats in results:
        merge_stats(stats, chunk_stats)
    return concat_tables([clips for clips, _ in results] + [markers], CLIP_SCHEMA)


@dataclass
class _Pending:
    videos: pa.Table
    count: int
    rows: list[tuple[int, pa.Table]] = field(default_factory=list)


MAX_VIDEOS_PER_TASK = 8
MAX_CLIPS_PER_TASK = 16


USER_ERROR_LINE = re.compile(r"^(clipsieve(?:\.\w+)+)\.(\w+): (.+)$", re.MULTILINE)


def user_error_in(exc: BaseException) -> UserError | None:
    """The clipsieve :class:`UserError` a Ray task raised (e.g. a failed upload), rebuilt.

    Ray hands a task's exception to the driver as text inside its own exception types, so
    without this a user error in a task would end the command with a Ray traceback instead of
    the one line the local engine prints.
    """
    for module, name, message in USER_ERROR_LINE.findall(str(exc)):
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
        if isinstance(cls, type) and issubclass(cls, UserError):
            try:
                return cls(message)
            except TypeError:
                return UserError(message)
    return None


def videos_per_task(videos: int, cpus: float) -> int:
    """Videos probed and shot-detected per Ray task: several when there are many videos.

    A task should be seconds of work: every task pays for its arguments and result through the
    object store, and Ray Data (the GPU path) spends ~0.15-0.2 s between one task of an
    operator finishing and the next starting on that CPU (its scheduling loop waits up to 0.1 s
    for the other running tasks). Keeping at least ~8 tasks per CPU keeps the end of the run
    balanced.
    """
    return max(1, min(MAX_VIDEOS_PER_TASK, int(videos // (8 * max(cpus, 1.0)))))


def clips_per_task(per_video_task: int) -> int:
    """Clips cut and scored per Ray task when the config leaves it open: 2 per video batched.

    One 2-second clip is ~0.25 s of work, mostly gap at one clip per task; measured on 192
    videos, going from (4 videos, 8 clips) to (8, 16) per task took Ray's overhead over the
    local engine from +18 % to +14 %, while on 64 videos 16-clip tasks left one CPU idle at
    the end (+48 % vs +47 % with 8).
    """
    return max(4, min(MAX_CLIPS_PER_TASK, 2 * per_video_task))


# Ray's own lines that only repeat what the command says itself: the private instance it
# started, the token-auth default of that instance, the progress bars this engine turns off,
# and each dataset's "execution finished". Warnings from elsewhere in Ray still show.
QUIET_RAY_LOGGERS = {
    "ray._private.worker": logging.WARNING,
    "ray._private.authentication.authentication_token_setup": logging.ERROR,
    "ray.data._internal.progress": logging.ERROR,
    "ray.data._internal.execution.streaming_executor": logging.WARNING,
}


def _quiet_ray_logs() -> None:
    for name, level in QUIET_RAY_LOGGERS.items():
        logger = logging.getLogger(name)
        logger.setLevel(max(level, logger.getEffectiveLevel()))


def connect(address: str | None, num_cpus: int | None = None) -> bool:
    """Join (or start) Ray; True when this call started it (and so should stop it).

    ``num_cpus`` only applies when Ray is started here (no address): it is how ``--workers``
    limits a single-machine Ray run. A cluster's size is the cluster's business.
    """
    import ray

    _quiet_ray_logs()
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    return True


class RayRunner(Executor):
    """Runs a pipeline on Ray (tasks; Ray Data for GPU stages), committing shards per video on
    the driver."""

    name = "ray"

    def __init__(
        self,
        pipeline: Pipeline,
        run_dir: Path,
        address: str | None = None,
        num_cpus: int | None = None,
        clips_per_task: int | None = None,
        location: RunLocation | None = None,
    ) -> None:
        super().__init__(pipeline, run_dir, location)
        self.address = address
        self.num_cpus = num_cpus
        self.workers = num_cpus or 0  # reported as asked (None: the cluster's)
        self.clips_per_task = clips_per_task  # None: sized from the input (clips_per_task())
        self._stopping: threading.Thread | None = None  # the Ray this run started, stopping

    def _map(
        self,
        ds: Any,
        stage: Stage,
        cpus_cap: float,
        gpus: float,
        batch_size: int,
        plan: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> Any:
        """``stage`` as one ``map_batches``; ``gpus``: the cluster's, read once per run so every
        stage is placed by the same answer."""
        from ray.data import ActorPoolStrategy

        resources = stage.resources()
        options: dict[str, Any] = {
            "batch_format": "pyarrow",
            "batch_size": batch_size,
            "num_cpus": min(resources.cpus, cpus_cap),
        }
        if resources.memory_mb:
            options["memory"] = resources.memory_mb * 1024 * 1024
        if uses_actors(stage, gpus):
            options["num_gpus"] = resources.gpus
            max_actors = max(1, math.floor(gpus / resources.gpus))
            return ds.map_batches(
                StageActor,
                fn_constructor_args=(stage, plan),
                compute=ActorPoolStrategy(min_size=1, max_size=max_actors),
                **options,
            )
        kwargs = {"stage": stage, "plan": plan, **(extra or {})}
        return ds.map_batches(run_stage_task, fn_kwargs=kwargs, **options)

    def process(self, job: Invocation) -> int:
        import ray

        todo = job.todo
        began = time.perf_counter()
        started = connect(self.address, self.num_cpus)
        self.startup_s = time.perf_counter() - began
        try:
            cluster = ray.cluster_resources()
            cpus, gpus = float(cluster.get("CPU", 1)), float(cluster.get("GPU", 0))
            cpus_cap = max(1.0, cpus / 2)
            per_task = videos_per_task(len(todo), cpus)
            clip_batch = max(1, self.clips_per_task or clips_per_task(per_task))
            table = rows_to_table(todo, VIDEO_SCHEMA)
            blocks = [table.slice(i, per_task) for i in range(0, table.num_rows, per_task)]
            inline, pooled = split_clip_stages(self.pipeline.clip_stages, gpus)
            if pooled:
                batches = self._dataset_batches(blocks, inline, pooled, cpus_cap, gpus, clip_batch)
            else:
                batches = self._task_batches(blocks, inline, cpus, cpus_cap, clip_batch)
            try:
                committed = self._collect(batches, job)
            except Exception as exc:
                user_error = user_error_in(exc)
                if user_error is None:
                    raise
                raise user_error from None
        except BaseException:
            if started:
                ray.shutdown()
            raise
        if started:
            # Stopping Ray takes about a second: it overlaps the merge of the shards, and
            # close() waits for it.
            self._stopping = threading.Thread(target=ray.shutdown, name="clipsieve-ray-stop")
            self._stopping.start()
        return committed

    def _task_batches(
        self,
        blocks: list[pa.Table],
        clip_stages: tuple[Stage, ...],
        cpus: float,
        cpus_cap: float,
        clips_per_task: int,
    ) -> Iterator[pa.Table]:
        """A pipeline without actor-pool stages as plain Ray tasks, one per block of videos
        (:func:`_video_block_task`), each block's rows yielded as its task ends.

        Ray Data is not used for this: on this 2-CPU machine its machinery (a stats actor and
        an autoscaling coordinator started per run, a CPU share reserved per operator, a
        scheduling loop) took 10.7-12.1 s for 24 half-second tasks that plain tasks ran in
        6.4 s (6.0 s of work). Up to two tasks per CPU are out at a time: one running, one
        queued so that no CPU waits for the driver, and results do not pile up in memory.
        The stages go to the object store once, not with every task.
        """
        import ray

        plan = self.pipeline.plan_stage
        video_stages = tuple(self.pipeline.video_stages)
        every = (*video_stages, plan, *clip_stages)
        options: dict[str, Any] = {
            "num_cpus": max(min(s.resources().cpus, cpus_cap) for s in every)
        }
        memory_mb = max(s.resources().memory_mb or 0 for s in every)
        if memory_mb:
            options["memory"] = memory_mb * 1024 * 1024
        remote = _remote_video_block_task().options(**options)
        stages = ray.put((video_stages, plan, clip_stages))
        waiting = iter(blocks)

        def submit(count: int) -> list[Any]:
            return [
                remote.remote(stages, clips_per_task, b) for b in itertools.islice(waiting, count)
            ]

        running = submit(max(2, math.ceil(2 * cpus)))
        try:
            while running:
                done, running = ray.wait(running, num_returns=1)
                running += submit(1)
                yield ray.get(done[0])
        finally:  # a failed task or Ctrl-C: what is still out would only cost a cluster's CPUs
            for ref in running:
                ray.cancel(ref)

    def _dataset_batches(
        self,
        blocks: list[pa.Table],
        inline: tuple[Stage, ...],
        pooled: tuple[Stage, ...],
        cpus_cap: float,
        gpus: float,
        clips_per_task: int,
    ) -> Iterator[pa.Table]:
        """A pipeline with GPU clip stages on Ray Data: the stages before them fused into one
        operator of tasks, each GPU stage (and every stage after it) in an actor pool on blocks
        of ``clips_per_task`` clip rows."""
        import ray

        # The command shows its own progress (videos committed, rows per stage); Ray Data's
        # bars, or its log lines when stderr is not a terminal, would interleave with it.
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        per_task = max(b.num_rows for b in blocks)
        # from_blocks: block metadata from here, not from one remote task per block
        ds = ray.data.from_blocks(blocks)
        for stage in self.pipeline.video_stages:
            ds = self._map(ds, stage, cpus_cap, gpus, per_task)
        clip_work = {"clip_stages": inline, "clips_per_task": clips_per_task}
        ds = self._map(ds, self.pipeline.plan_stage, cpus_cap, gpus, per_task, True, clip_work)
        ds = ds.repartition(target_num_rows_per_block=clips_per_task)
        for stage in pooled:
            ds = self._map(ds, stage, cpus_cap, gpus, clips_per_task)
        yield from ds.iter_batches(batch_format="pyarrow", batch_size=None)

    def close(self) -> None:
        if self._stopping is not None:
            self._stopping.join()
            self._stopping = None

    def _collect(self, batches: Iterable[pa.Table], job: Invocation) -> int:
        """Gather rows per video as Ray streams them out; commit each complete video; add up
        the per-stage stats the rows carry."""
        pending: dict[str, _Pending] = {}
        committed = 0
        for batch in batches:
            batch, stats = take_stats(batch)
            if stats:
                merge_stats(job.stats, stats)
                if job.stage_progress is not None:
                    job.stage_progress(job.stats)
            ids = batch.column("video_id").to_pylist()
            positions = batch.column(POS_COL).to_pylist()
            for i, video_id in enumerate(ids):
                video = pending.get(video_id)
                if video is None:
                    videos = _from_ipc(batch.column(VIDEO_COL)[i].as_py())
                    video = _Pending(videos, int(batch.column(COUNT_COL)[i].as_py()))
                    pending[video_id] = video
                if positions[i] >= 0:
                    video.rows.append((positions[i], batch.slice(i, 1)))
                if len(video.rows) == video.count:
                    self._commit(video_id, video)
                    del pending[video_id]
                    committed += 1
                    if job.progress is not None:
                        path = video.videos.column("path")[0].as_py()
                        job.progress(path, job.skipped + committed, job.total)
        if pending:
            raise RuntimeError(f"Ray returned incomplete results for {sorted(pending)[:3]}")
        return committed

    def _commit(self, video_id: str, job: _Pending) -> None:
        ordered = [t for _, t in sorted(job.rows, key=lambda item: item[0])]
        clips = join_chunks(ordered)
        if clips.num_rows:
            clips = clips.drop_columns([n for n in PRIVATE if n in clips.column_names])
        self.store.write(video_id, job.videos, clips)
