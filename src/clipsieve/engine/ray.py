"""The Ray engine: the same stage objects on Ray Data, for one machine or a cluster.

The pipeline becomes one Ray Data dataset, one ``map_batches`` per stage, over Arrow batches
(``batch_format="pyarrow"``, the format :meth:`Stage.process` takes)::

    pending videos ─▶ probe ─▶ shots ─▶ plan ─▶ cut ─▶ score ─▶ driver: commit shards per video

- Stages with ``Resources.gpus`` run in an **actor pool** (``concurrency=(1, n)``) with that many
  ``num_gpus``, so they are placed on GPU nodes; each actor calls ``setup()`` once and keeps its
  model. Every other stage runs as plain Ray **tasks** (``num_cpus`` from ``Resources.cpus``,
  capped at half the cluster's CPUs). Ray reuses its worker processes, and a task sets a stage up
  once per worker process (a per-process cache), so CPU models such as the shot detector are not
  reloaded per video either. CPU stages are not actors on purpose: an actor holds its CPUs for
  its whole life, and on a small machine two CPU actor pools hold every CPU while the task
  stages before them wait forever (seen with ``ray.init(num_cpus=2)``).
- Ray Data does the streaming, backpressure, object spilling and retries (failed tasks are
  retried, dead actors restarted), so nothing of that is rebuilt here.
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
import logging
import math
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from clipsieve.engine.base import Executor, Invocation, ProgressCallback, StageProgressCallback
from clipsieve.engine.tasks import (
    StatsByStage,
    combine_parts,
    join_chunks,
    merge_stats,
    segment_part,
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
PRIVATE = (VIDEO_COL, POS_COL, COUNT_COL)


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _from_ipc(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


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

    def __init__(self, stage: Stage, plan: bool = False, collector: Any = None) -> None:
        self.stage = stage
        self.plan = plan
        self.collector = collector
        _cap_codec_threads()
        stage.setup()

    def __call__(self, batch: pa.Table) -> pa.Table:
        return apply_stage(batch, self.stage, self.plan, self.collector)


def run_stage_task(
    batch: pa.Table, stage: Stage, plan: bool = False, collector: Any = None
) -> pa.Table:
    """A stage as a Ray task, set up once per Ray worker process."""
    return apply_stage(batch, _set_up(stage), plan, collector, original=stage)


def _segment_task(stage: Stage, row: dict[str, Any], segment: Segment) -> dict[str, Any]:
    """One segment of a long video, as a Ray task of its own."""
    ready = _set_up(stage)
    assert isinstance(ready, SegmentedStage)
    return segment_part(ready, row, segment)


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


def stats_collector() -> Any:
    """A CPU-less actor that adds up per-stage stats sent by tasks (for the run summary)."""
    import ray

    @ray.remote(num_cpus=0)
    class StatsCollector:
        def __init__(self) -> None:
            self.stats: StatsByStage = {}

        def add(self, stats: StatsByStage) -> None:
            merge_stats(self.stats, stats)

        def get(self) -> StatsByStage:
            return self.stats

    return StatsCollector.remote()


def apply_stage(
    batch: pa.Table,
    stage: Stage,
    plan: bool,
    collector: Any = None,
    original: Stage | None = None,
) -> pa.Table:
    """Run ``stage`` on a batch; the plan stage also tags its output (see module docs).

    ``original``: the stage before setup, given when a segmented stage may send segments to
    tasks of their own.
    """
    import ray

    stats: StatsByStage = {}
    out = _apply(batch, stage, plan, stats, original)
    if collector is not None and stats:
        # waited for, so the sum the driver reads at the end cannot miss a late message
        ray.get(collector.add.remote(stats))
    return out


def _apply(
    batch: pa.Table, stage: Stage, plan: bool, stats: StatsByStage, original: Stage | None = None
) -> pa.Table:
    if plan:
        return _plan(batch, stage, stats)
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


def _plan(videos: pa.Table, stage: Stage, stats: StatsByStage | None = None) -> pa.Table:
    parts = []
    for i in range(videos.num_rows):
        video = videos.slice(i, 1)
        clips = timed(stats if stats is not None else {}, stage, video)
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
    return concat_tables(parts, CLIP_SCHEMA)


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

    Ray Data spends ~0.15-0.2 s between one task of an operator finishing and the next starting
    on that CPU (its scheduling loop waits up to 0.1 s for the other running tasks), so a task
    should be seconds of work; keeping at least ~8 tasks per CPU keeps the end of the run
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


class _StatsPoller:
    """Hands the collector's per-stage stats to ``callback`` every ``interval`` seconds.

    A thread, because tasks report after each batch while the driver's loop only wakes when
    finished rows stream out (nothing does while the first videos are still in shot detection).
    """

    def __init__(
        self, collector: Any, callback: StageProgressCallback | None, interval: float = 0.5
    ) -> None:
        self.collector, self.callback, self.interval = collector, callback, interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, name="clipsieve-ray-stats", daemon=True)

    def __enter__(self) -> _StatsPoller:
        if self.callback is not None:
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()

    def _poll(self) -> None:
        import ray

        assert self.callback is not None
        while not self.stop.wait(self.interval):
            try:
                self.callback(ray.get(self.collector.get.remote(), timeout=10))
            except Exception:  # progress only: a slow or stopping Ray must not end the run
                continue


class RayRunner(Executor):
    """Runs a pipeline on Ray Data, committing shards per video on the driver."""

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

    def _map(
        self,
        ds: Any,
        stage: Stage,
        cpus_cap: float,
        collector: Any,
        batch_size: int,
        plan: bool = False,
    ) -> Any:
        import ray
        from ray.data import ActorPoolStrategy

        resources = stage.resources()
        gpus = float(ray.cluster_resources().get("GPU", 0))
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
                fn_constructor_args=(stage, plan, collector),
                compute=ActorPoolStrategy(min_size=1, max_size=max_actors),
                **options,
            )
        kwargs = {"stage": stage, "plan": plan, "collector": collector}
        return ds.map_batches(run_stage_task, fn_kwargs=kwargs, **options)

    def process(self, job: Invocation) -> int:
        import ray

        todo, skipped, stage_progress = job.todo, job.skipped, job.stage_progress
        began = time.perf_counter()
        started = connect(self.address, self.num_cpus)
        self.startup_s = time.perf_counter() - began
        try:
            # The command shows its own progress (videos committed, rows per stage); Ray Data's
            # bars, or its log lines when stderr is not a terminal, would interleave with it.
            context = ray.data.DataContext.get_current()
            context.enable_progress_bars = False
            context.print_on_execution_start = False
            cpus = float(ray.cluster_resources().get("CPU", 1))
            cpus_cap = max(1.0, cpus / 2)
            per_task = videos_per_task(len(todo), cpus)
            clip_batch = max(1, self.clips_per_task or clips_per_task(per_task))
            table = rows_to_table(todo, VIDEO_SCHEMA)
            blocks = [table.slice(i, per_task) for i in range(0, table.num_rows, per_task)]
            ds = ray.data.from_arrow(blocks)
            collector = stats_collector()
            for stage in self.pipeline.video_stages:
                ds = self._map(ds, stage, cpus_cap, collector, per_task)
            plan = self.pipeline.plan_stage
            ds = self._map(ds, plan, cpus_cap, collector, per_task, plan=True)
            if self.pipeline.clip_stages:
                # Clip rows leave the video tasks in blocks of clips_per_task and the clip
                # stages run as tasks of their own: a long video's clips spread over the
                # cluster instead of running one after another in the task that planned them.
                ds = ds.repartition(target_num_rows_per_block=clip_batch)
            for stage in self.pipeline.clip_stages:
                ds = self._map(ds, stage, cpus_cap, collector, clip_batch)
            try:
                with _StatsPoller(collector, stage_progress):
                    committed = self._collect(ds, job.total, skipped, job.progress)
            except Exception as exc:
                user_error = user_error_in(exc)
                if user_error is None:
                    raise
                raise user_error from None
            final = ray.get(collector.get.remote())
            if stage_progress is not None:
                stage_progress(final)
            merge_stats(job.stats, final)
        finally:
            if started:
                ray.shutdown()
        return committed

    def _collect(
        self,
        ds: Any,
        total: int,
        skipped: int,
        progress: ProgressCallback | None,
    ) -> int:
        """Gather rows per video as Ray streams them out; commit each complete video."""
        pending: dict[str, _Pending] = {}
        committed = 0
        for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
            ids = batch.column("video_id").to_pylist()
            positions = batch.column(POS_COL).to_pylist()
            for i, video_id in enumerate(ids):
                job = pending.get(video_id)
                if job is None:
                    videos = _from_ipc(batch.column(VIDEO_COL)[i].as_py())
                    job = _Pending(videos, int(batch.column(COUNT_COL)[i].as_py()))
                    pending[video_id] = job
                if positions[i] >= 0:
                    job.rows.append((positions[i], batch.slice(i, 1)))
                if len(job.rows) == job.count:
                    self._commit(video_id, job)
                    del pending[video_id]
                    committed += 1
                    if progress is not None:
                        progress(job.videos.column("path")[0].as_py(), skipped + committed, total)
        if pending:
            raise RuntimeError(f"Ray returned incomplete results for {sorted(pending)[:3]}")
        return committed

    def _commit(self, video_id: str, job: _Pending) -> None:
        ordered = [t for _, t in sorted(job.rows, key=lambda item: item[0])]
        clips = join_chunks(ordered)
        if clips.num_rows:
            clips = clips.drop_columns([n for n in PRIVATE if n in clips.column_names])
        self.store.write(video_id, job.videos, clips)
