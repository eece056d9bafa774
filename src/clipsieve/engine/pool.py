"""Worker processes for the local engine: stages set up once per process, SIGINT left to the parent.

Each worker receives the pickled :class:`~clipsieve.stage.Pipeline` once, calls every stage's
``setup()`` once (models stay loaded for the worker's life) and then runs video and clip tasks
(:mod:`clipsieve.engine.tasks`). Workers are started with ``spawn``: the parent may already hold
threads (the progress display, OpenMP pools of torch/OpenCV) that a ``fork`` would copy in a
broken state.

Ctrl-C reaches the whole process group. Workers ignore it, so only the parent decides what happens:
it stops scheduling, terminates the workers and leaves committed shards as they are.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import pickle
import signal
import sys
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing.util import Finalize
from typing import Any

import pyarrow as pa

from clipsieve.engine.tasks import (
    ClipTaskResult,
    SegmentPlan,
    SegmentTaskResult,
    VideoTaskResult,
    run_clip_task,
    run_segment_task,
    run_video_tail,
    run_video_task,
)
from clipsieve.media.threads import CODEC_THREADS_ENV
from clipsieve.stage import Pipeline, Stage

THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

# The pipeline of *this worker process*, set once by the pool initializer. A process pool can only
# hand per-worker state to its tasks through a module global; it never exists in the parent.
_worker_pipeline: Pipeline | None = None


def _die_with_parent(parent: int) -> None:
    """Linux: have the kernel kill this worker when the run's process dies (even by SIGKILL).

    Without it a SIGKILLed run leaves workers finishing tasks nobody will collect, using CPU
    beside the resumed run.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _cap_loaded_libraries(threads: int) -> None:
    """Cap torch's and OpenCV's thread pools, only where a stage already imported them.

    Importing torch just to cap it would cost seconds per worker for pipelines that never use it;
    a torch imported later reads ``OMP_NUM_THREADS``, which is set before anything loads.
    """
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
    cv2 = sys.modules.get("cv2")
    if cv2 is not None:
        cv2.setNumThreads(threads)


def _init_worker(blob: bytes, threads: int, parent: int) -> None:
    """Per-worker start-up: ignore Ctrl-C, cap threads, build the stages and set them up once."""
    global _worker_pipeline
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # N workers each using every core for OpenMP would oversubscribe the machine N times over.
    for name in THREAD_ENV:
        os.environ.setdefault(name, str(threads))
    # Likewise FFmpeg's decoders and encoders (see clipsieve.media.threads).
    os.environ.setdefault(CODEC_THREADS_ENV, str(threads))
    pipeline: Pipeline = pickle.loads(blob)
    for stage in pipeline.stages:
        stage.setup()
    # when the pool shuts the worker down (multiprocessing runs its finalizers on exit)
    Finalize(pipeline, _teardown, args=(pipeline.stages,), exitpriority=10)
    _cap_loaded_libraries(threads)
    _worker_pipeline = pipeline


def _teardown(stages: list[Stage]) -> None:
    for stage in stages:
        stage.teardown()


def _pipeline() -> Pipeline:
    if _worker_pipeline is None:
        raise RuntimeError("engine worker used before its initializer ran")
    return _worker_pipeline


def _video_task(row: dict[str, Any]) -> VideoTaskResult:
    return run_video_task(_pipeline(), row, split=True)


def _segment_task(
    video_id: str, plan: SegmentPlan, videos: pa.Table, index: int
) -> SegmentTaskResult:
    return run_segment_task(_pipeline(), video_id, plan, videos, index)


def _tail_task(
    video_id: str, plan: SegmentPlan, videos: pa.Table, parts: list[dict[str, Any]]
) -> VideoTaskResult:
    return run_video_tail(_pipeline(), video_id, plan, videos, parts)


def _clip_task(video_id: str, chunk: int, clips: pa.Table) -> ClipTaskResult:
    return run_clip_task(_pipeline(), video_id, chunk, clips)


class StagePool:
    """A process pool whose workers hold a set-up copy of the pipeline."""

    def __init__(self, pipeline: Pipeline, workers: int) -> None:
        self.workers = workers
        threads = max(1, (os.cpu_count() or 1) // workers)
        self._executor = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(pickle.dumps(pipeline), threads, os.getpid()),
        )

    def submit_video(self, row: dict[str, Any]) -> Future[VideoTaskResult]:
        return self._executor.submit(_video_task, row)

    def submit_segment(
        self, video_id: str, plan: SegmentPlan, videos: pa.Table, index: int
    ) -> Future[SegmentTaskResult]:
        return self._executor.submit(_segment_task, video_id, plan, videos, index)

    def submit_tail(
        self, video_id: str, plan: SegmentPlan, videos: pa.Table, parts: list[dict[str, Any]]
    ) -> Future[VideoTaskResult]:
        return self._executor.submit(_tail_task, video_id, plan, videos, parts)

    def submit_clips(self, video_id: str, chunk: int, clips: pa.Table) -> Future[ClipTaskResult]:
        return self._executor.submit(_clip_task, video_id, chunk, clips)

    def close(self) -> None:
        """Normal end: every task has finished; let the workers exit."""
        self._executor.shutdown(wait=True)

    def terminate(self) -> None:
        """Stop now (Ctrl-C or an error): drop queued tasks and kill running ones.

        ``ProcessPoolExecutor`` has no public way to stop a running task (Python 3.14 adds
        ``terminate_workers``), so the worker processes are terminated directly; their
        unfinished work was never committed and a resume redoes it.
        """
        processes = list(getattr(self._executor, "_processes", {}).values())
        self._executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
