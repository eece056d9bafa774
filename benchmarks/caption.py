"""Caption client throughput against the stand-in server (zero latency): is the client a bottleneck?

Usage::

    python benchmarks/caption.py [--clips 96] [--concurrency 1,4,16] [--frames 3] [--repeat 3]

It generates 640x360 H.264 clips (2 s, 25 fps) with ffmpeg, starts ``tests/caption_server.py`` in
a child process (so the server's Python does not share this process's GIL) and runs
:class:`~clipsieve.caption.stage.CaptionStage` over the clip rows at each concurrency: per clip one
decode, one JPEG encode per frame, one HTTP request with base64 data URLs. Two baselines are
measured in the same run, on the same clips: frames only (decode + JPEG, no request) and
requests only (pre-encoded frames, no decode), both at the highest concurrency. Reported: the
median of ``--repeat`` runs in clips/s. Target: >= 50 clips/s at concurrency 16.

Results go to stdout (markdown) and to ``benchmarks/results/caption.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from clipsieve.caption.backend_registry import make_backend  # noqa: E402
from clipsieve.caption.backends import CaptionRequest  # noqa: E402
from clipsieve.caption.frames import ClipFrames  # noqa: E402
from clipsieve.caption.stage import CaptionStage, run_parallel  # noqa: E402


def make_clips(folder: Path, count: int) -> list[Path]:
    """``count`` distinct 2 s 640x360 clips (ffmpeg test patterns with a moving overlay)."""
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    paths = []
    for i in range(count):
        path = folder / f"clip_{i:03d}.mp4"
        source = f"testsrc2=size=640x360:rate=25:duration=2,hue=h={i * 23 % 360}"
        subprocess.run(
            [
                ffmpeg,
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                source,
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-pix_fmt",
                "yuv420p",
                str(path),
            ],
            check=True,
        )
        paths.append(path)
    return paths


def start_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "caption_server.py")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rows_for(paths: list[Path], n: int) -> list[dict[str, Any]]:
    return [
        {
            "clip_id": f"c{i}",
            "path": str(paths[i % len(paths)]),
            "fps": 25.0,
            "keep": True,
            "status": "ok",
        }
        for i in range(n)
    ]


def time_stage(
    url: str, rows: list[dict[str, Any]], concurrency: int, frames: int, server_pid: int
) -> tuple[float, float, float]:
    """(clips per wall second, clips per client CPU second, server CPU ms per clip)."""
    stage = CaptionStage(
        backend_params={"base_url": url, "model": "echo", "max_tries": 1},
        frames=frames,
        concurrency=concurrency,
    )
    stage.setup()
    work = [dict(r) for r in rows]
    server_cpu = process_cpu_s(server_pid)
    started, cpu = time.perf_counter(), time.process_time()
    stage.caption_rows(work)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    server_cpu = process_cpu_s(server_pid) - server_cpu
    stage.teardown()
    failed = sum(1 for r in work if r.get("caption_error"))
    if failed:
        raise RuntimeError(f"{failed} clips failed: {work[0].get('caption_error')}")
    return len(rows) / seconds, len(rows) / cpu, 1000 * server_cpu / len(rows)


def time_frames_only(
    rows: list[dict[str, Any]], concurrency: int, frames: int
) -> tuple[float, float]:
    """(clips per wall second, clips per CPU second) of decode + JPEG without any request."""
    backend = make_backend("openai")
    sampler = ClipFrames(backend.default_frames(frames, None))
    started, cpu = time.perf_counter(), time.process_time()
    run_parallel(range(len(rows)), lambda i: sampler.jpegs(sampler.arrays(rows[i])), concurrency)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return len(rows) / seconds, len(rows) / cpu


def time_requests_only(
    url: str, rows: list[dict[str, Any]], concurrency: int, frames: int
) -> float:
    backend = make_backend("openai", base_url=url, model="echo", max_tries=1)
    sampler = ClipFrames(backend.default_frames(frames, None))
    jpegs = sampler.jpegs(sampler.arrays(rows[0]))
    request = CaptionRequest("describe the clip", None, jpegs)
    started = time.perf_counter()
    run_parallel(range(len(rows)), lambda i: backend.caption(request), concurrency)
    rate = len(rows) / (time.perf_counter() - started)
    backend.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=96)
    parser.add_argument("--files", type=int, default=12)
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    with tempfile.TemporaryDirectory(prefix="caption-bench-") as tmp:
        paths = make_clips(Path(tmp), args.files)
        rows = rows_for(paths, args.clips)
        proc, url = start_server()
        try:
            time_stage(url, rows[:8], 4, args.frames, proc.pid)  # warm-up: imports, connections
            results: dict[str, Any] = {
                "clips": args.clips,
                "frames": args.frames,
                "cpus": os.cpu_count(),
                "stage": {},
                "stage_per_cpu_s": {},
                "server_cpu_ms_per_clip": {},
            }
            for level in levels:
                runs = [
                    time_stage(url, rows, level, args.frames, proc.pid) for _ in range(args.repeat)
                ]
                results["stage"][str(level)] = statistics.median(r[0] for r in runs)
                results["stage_per_cpu_s"][str(level)] = statistics.median(r[1] for r in runs)
                results["server_cpu_ms_per_clip"][str(level)] = statistics.median(
                    r[2] for r in runs
                )
            top = max(levels)
            runs = [time_frames_only(rows, top, args.frames) for _ in range(args.repeat)]
            results["frames_only"] = statistics.median(r[0] for r in runs)
            results["frames_only_per_cpu_s"] = statistics.median(r[1] for r in runs)
            results["requests_only"] = statistics.median(
                time_requests_only(url, rows, top, args.frames) for _ in range(args.repeat)
            )
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print(
        f"## caption client throughput ({args.clips} clips of 640x360, "
        f"{args.frames} frames each, {results['cpus']} CPUs)\n"
    )
    print(
        "| run | clips/s (wall) | clips per client CPU-s | server CPU ms per clip |\n"
        "|---|---|---|---|"
    )
    for level, rate in results["stage"].items():
        per_cpu = results["stage_per_cpu_s"][level]
        server_ms = results["server_cpu_ms_per_clip"][level]
        print(f"| stage, concurrency {level} | {rate:.1f} | {per_cpu:.1f} | {server_ms:.1f} |")
    print(
        f"| baseline: decode + JPEG only, concurrency {top} | {results['frames_only']:.1f} "
        f"| {results['frames_only_per_cpu_s']:.1f} | |"
    )
    print(f"| baseline: requests only, concurrency {top} | {results['requests_only']:.1f} | | |")
    stage_ms = 1000 / results["stage_per_cpu_s"][str(top)]
    frames_ms = 1000 / results["frames_only_per_cpu_s"]
    print(
        f"\nclient CPU per clip at concurrency {top}: {stage_ms:.1f} ms, of which decode + JPEG "
        f"{frames_ms:.1f} ms and request handling {stage_ms - frames_ms:.1f} ms"
    )
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {results['cpus']} CPUs")
    out = REPO / "benchmarks" / "results" / "caption.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
