"""How many threads one FFmpeg decoder or encoder may use in this process.

FFmpeg's default gives every decoder (and x264) a thread per core. That is right for one process
working alone, and wasteful when the engine already runs one worker per core: frame threads add
work (a 2 s 640x360 H.264 clip costs 21 ms of CPU single-threaded and 25-28 ms with frame
threads) and the workers then fight over cores. The engine's workers therefore set
``CLIPSIEVE_CODEC_THREADS`` to their share of the cores (``cores // workers``), and everything that
decodes or encodes reads it here. Unset or 0 means FFmpeg decides (one process alone).

The same goes for ONNX Runtime's thread pool: :func:`worker_cpu_threads`.
"""

from __future__ import annotations

import os

import av

CODEC_THREADS_ENV = "CLIPSIEVE_CODEC_THREADS"


def codec_threads() -> int:
    """Threads per decoder/encoder for this process; 0 = FFmpeg's default (one per core)."""
    try:
        return max(0, int(os.environ.get(CODEC_THREADS_ENV, "0")))
    except ValueError:
        return 0


def worker_cpu_threads() -> int:
    """The CPU threads this worker's own thread pools may use; 0 when nobody said.

    The local engine's workers set ``OMP_NUM_THREADS`` to their share of the cores, and Ray to a
    task's CPUs. PyTorch, OpenCV and BLAS read it; ONNX Runtime does not (its default is a
    thread per core), so the ONNX scorers ask here: on both cores of this machine the text
    detector costs 34 ms of CPU per frame against 30 ms on one, and two workers doing that
    would fight over the cores besides.
    """
    try:
        return max(0, int(os.environ.get("OMP_NUM_THREADS", "0")))
    except ValueError:
        return 0


def configure_decoder(stream: av.video.stream.VideoStream, threads: int | None = None) -> None:
    """Threaded decoding (frame + slice; PyAV's default is far slower) capped at ``threads``.

    ``threads`` None reads :func:`codec_threads`; 1 decodes on the calling thread only.
    """
    count = codec_threads() if threads is None else threads
    stream.thread_type = "AUTO"
    if count > 0:
        stream.codec_context.thread_count = count


def ffmpeg_input_thread_args() -> list[str]:
    """Input options for an ffmpeg command line: decoder threads capped like PyAV's."""
    count = codec_threads()
    return ["-threads", str(count)] if count > 0 else []


def ffmpeg_output_thread_args() -> list[str]:
    """Output options: a single-threaded encoder, filter threads capped like the decoder's.

    The encoder runs on one thread whatever the worker count: x264's output depends on its
    thread count (frame threads limit motion search), and a clip must be the same bytes whether
    the run used 1 worker, 2 workers or a Ray cluster, on this machine or another. Parallelism
    comes from the workers.
    """
    count = codec_threads()
    return ["-threads", "1"] + (["-filter_threads", str(count)] if count > 0 else [])


__all__ = [
    "CODEC_THREADS_ENV",
    "codec_threads",
    "configure_decoder",
    "worker_cpu_threads",
    "ffmpeg_input_thread_args",
    "ffmpeg_output_thread_args",
]
