"""clipsieve against its peers on the jobs users compare first, measured in one run.

Usage::

    python benchmarks/peers.py [--data ../shared/data/videos] [--jobs j1,j2] [--videos a,b]

Jobs, on the same real videos (13 by default: 1080p, 720p and 640x360 with cuts), the same
x264 settings everywhere (veryfast, crf 18, video only):

* **J1**: detect shots and cut every shot into its own file;
* **J2**: J1 plus a motion (optical flow) score per clip.

Tools:

* ``clipsieve run`` with the default (hybrid) detector, every shot one clip (no length
  policy), 2 workers; J2 adds the ``motion`` scorer (Farneback flow on the decoded clip);
* the **PySceneDetect CLI** (``scenedetect -i V detect-adaptive split-video``), two files at a
  time as a user scripts it on 2 cores; J2 adds a Farneback script (OpenCV, the clips decoded
  once each, two at a time), as the notebooks it replaces did;
* J1 only: **PySceneDetect's API** in one process with 2 worker processes, as Data-Juicer's
  ``video_split_by_scene_mapper`` calls it (``detect`` with a ``ContentDetector`` at its
  defaults, ``split_video_ffmpeg``): Data-Juicer's J1 without its dataset machinery.

Data-Juicer and video2dataset are not installed in this environment (their pins conflict with
it); their numbers from the issue are quoted, not measured.

Reported per job and tool: CPU seconds (the command and every process it waited for, from
``getrusage``), wall seconds, and peak memory of the process tree (PSS). Read the ratios: the
machine is shared. Results go to ``benchmarks/results/peers.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

from engine import TreeRss  # noqa: E402 - the benchmarks folder is on the path above

X264 = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18"]
SPLIT_ARGS = f"-map 0:v:0 {' '.join(X264)} -an"  # PySceneDetect's ffmpeg arguments for a clip
DEFAULT_VIDEOS = [
    "counter.mp4", "laion_talk_slides.mp4", "issue-236-split-copy.mkv", "testvideo.mp4",
    "issue-195-aspect-ratio.mp4", "panda70m/8glWcEuxw3U.1.mp4", "panda70m/a3B-hWLnsTM.7.mp4",
    "panda70m/YYPLi7kGUdU.12.mp4", "panda70m/H2y15JUfSIQ.0.mp4", "panda70m/mPRA4vBnxx0.12.mp4",
    "panda70m/Kb8ON0iCs38.97.mp4", "panda70m/lxoDR1ud464.8.mp4", "panda70m/MJao9o7ROs0.1.mp4",
]  # fmt: skip
QUOTED = {  # from the issue (same videos, settings and machine kind), CPU s / peak GB
    "j1": {"Data-Juicer": (89.5, 0.7), "video2dataset": (158.0, 2.1)},
    "j2": {"Data-Juicer": (393.0, 9.9), "video2dataset": (209.5, 11.6)},
}


class Measured:
    """CPU seconds, wall seconds and peak tree memory of the commands run inside it."""

    def __enter__(self) -> Measured:
        self.cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.wall0 = time.perf_counter()
        self.peak = 0
        return self

    def watch(self, proc: subprocess.Popen[Any]) -> TreeRss:
        return TreeRss(proc.pid)

    def __exit__(self, *exc: object) -> None:
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.cpu = (cpu1.ru_utime - self.cpu0.ru_utime) + (cpu1.ru_stime - self.cpu0.ru_stime)
        self.wall = time.perf_counter() - self.wall0

    def row(self, **extra: Any) -> dict[str, Any]:
        return {
            "cpu_s": round(self.cpu, 1),
            "wall_s": round(self.wall, 1),
            "peak_mb": round(self.peak / 2**20),
            **extra,
        }


def _run(cmd: list[str], measured: Measured, env: dict[str, str] | None = None) -> None:
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
    )
    rss = measured.watch(proc)
    _, err = proc.communicate()
    measured.peak = max(measured.peak, rss.stop())
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} … failed: {err[-1500:]}")


def _ffmpeg_path(tmp: Path) -> dict[str, str]:
    """The environment with imageio-ffmpeg's binary on PATH as ``ffmpeg`` (for scenedetect)."""
    from clipsieve.media.ffmpeg import ffmpeg_exe

    folder = tmp / "bin"
    folder.mkdir(exist_ok=True)
    link = folder / "ffmpeg"
    if not link.exists():
        link.symlink_to(ffmpeg_exe())
    return dict(os.environ, PATH=f"{folder}{os.pathsep}{os.environ['PATH']}")


def clipsieve_job(
    videos: list[Path], tmp: Path, motion: bool, precision: str = "auto"
) -> dict[str, Any]:
    """``clipsieve run`` over a folder of the videos (links), each shot one clip."""
    import yaml

    inputs = tmp / "inputs"
    if not inputs.exists():
        inputs.mkdir()
        for i, video in enumerate(videos):
            (inputs / f"{i:02d}-{video.name}").symlink_to(video)
    config = {
        "shots": {"detector": "hybrid", "params": {"precision": precision}},
        "policy": {"min_s": 0.0, "max_s": None},
        "cut": {"crf": 18, "preset": "veryfast"},
        "score": {"scorers": ["motion"] if motion else []},
        "export": {"formats": []},
        "report": {"enabled": False},
        "engine": {"workers": 2},
    }
    config_file = tmp / f"clipsieve-{motion}-{precision}.yaml"
    config_file.write_text(yaml.safe_dump(config))
    out = tmp / f"run-{motion}"
    cmd = [sys.executable, "-m", "clipsieve", "run", str(inputs), "--out", str(out)]
    with Measured() as measured:
        _run([*cmd, "--config", str(config_file)], measured)
    clips = len(list((out / "clips").rglob("*.mp4")))
    shutil.rmtree(out)
    return measured.row(clips=clips)


FARNEBACK = r"""
import sys, cv2, numpy as np
for path in sys.argv[1:]:
    cap = cv2.VideoCapture(path); prev = None; flows = []
    while True:
        ok, frame = cap.read()
        if not ok: break
        grey = cv2.cvtColor(cv2.resize(frame, (256, 144)), cv2.COLOR_BGR2GRAY)
        if prev is not None:
            f = cv2.calcOpticalFlowFarneback(prev, grey, None, 0.5, 3, 15, 3, 5, 1.2, 0)
            flows.append(float(np.linalg.norm(f, axis=2).mean()))
        prev = grey
    print(path, np.mean(flows) if flows else 0.0)
"""


SCENEDETECT_API = r"""
import sys
from concurrent.futures import ProcessPoolExecutor

from scenedetect import ContentDetector, detect, split_video_ffmpeg

def one(job):
    index, path, out, args = job
    # Data-Juicer's defaults (threshold 27, scenes of 15 frames or more); a video without a cut
    # is one scene, so that every shot becomes a clip as in the other tools' J1
    scenes = detect(path, ContentDetector(), start_in_scene=True)
    split_video_ffmpeg(path, scenes, output_dir=f"{out}/{index:02d}", arg_override=args)
    return len(scenes)

if __name__ == "__main__":
    out, args, videos = sys.argv[1], sys.argv[2], sys.argv[3:]
    with ProcessPoolExecutor(2) as pool:
        print(sum(pool.map(one, [(i, v, out, args) for i, v in enumerate(videos)])))
"""


def scenedetect_api_job(videos: list[Path], tmp: Path) -> dict[str, Any]:
    """PySceneDetect's API in one process with 2 worker processes (J1 only): what Data-Juicer's
    ``video_split_by_scene_mapper`` runs (``detect`` with a ``ContentDetector`` at its defaults,
    then ``split_video_ffmpeg``), without Data-Juicer's dataset machinery around it, and without
    the CLI's Python process per file."""
    env = _ffmpeg_path(tmp)
    out = tmp / "scenedetect-api"
    out.mkdir()
    script = tmp / "scenedetect_api.py"
    script.write_text(SCENEDETECT_API)
    with Measured() as measured:
        cmd = [sys.executable, str(script), str(out), SPLIT_ARGS, *map(str, videos)]
        _run(cmd, measured, env)
    clips_made = len(list(out.rglob("*.mp4")))
    shutil.rmtree(out)
    return measured.row(clips=clips_made)


def scenedetect_job(videos: list[Path], tmp: Path, motion: bool) -> dict[str, Any]:
    """The PySceneDetect CLI, two files at a time; J2 adds the Farneback script."""
    env = _ffmpeg_path(tmp)
    out = tmp / f"scenedetect-{motion}"
    out.mkdir()
    exe = str(Path(sys.executable).with_name("scenedetect"))

    def one(index_video: tuple[int, Path]) -> None:
        index, video = index_video
        folder = out / f"{index:02d}"
        cmd = [exe, "-q", "-i", str(video), "-o", str(folder), "detect-adaptive"]
        _run([*cmd, "split-video", "-q", "-a", SPLIT_ARGS], measured, env)

    with Measured() as measured, ThreadPoolExecutor(2) as pool:
        list(pool.map(one, enumerate(videos)))
        if motion:
            clips = sorted(str(p) for p in out.rglob("*.mp4"))
            script = tmp / "farneback.py"
            script.write_text(FARNEBACK)
            halves = [clips[0::2], clips[1::2]]
            farneback = [[sys.executable, str(script), *part] for part in halves]
            list(pool.map(lambda cmd: _run(cmd, measured), farneback))
    clips_made = len(list(out.rglob("*.mp4")))
    shutil.rmtree(out)
    return measured.row(clips=clips_made)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared/data/videos")
    parser.add_argument("--jobs", default="j1,j2")
    parser.add_argument("--videos", default=",".join(DEFAULT_VIDEOS))
    parser.add_argument(
        "--precision", default="auto", help="clipsieve's TransNetV2 precision (its default: auto)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/peers.json")
    args = parser.parse_args(argv)
    videos = [args.data / name for name in args.videos.split(",") if name]
    missing = [str(v) for v in videos if not v.is_file()]
    if missing:
        raise SystemExit(f"videos not found: {', '.join(missing)}")
    results: dict[str, Any] = {"videos": [v.name for v in videos]}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for job in [j.strip() for j in args.jobs.split(",") if j.strip()]:
            motion = job == "j2"
            rows = {
                "clipsieve": clipsieve_job(videos, tmp, motion, args.precision),
                "PySceneDetect CLI": scenedetect_job(videos, tmp, motion),
            }
            if not motion:
                rows["PySceneDetect API (Data-Juicer's mapper)"] = scenedetect_api_job(videos, tmp)
            cheapest = min(r["cpu_s"] for r in rows.values())
            quoted = QUOTED.get(job, {})
            cheapest_all = min([cheapest, *(cpu for cpu, _ in quoted.values())])
            print(f"\n## {job.upper()} ({'shots + cut + flow' if motion else 'shots + cut'})")
            print("| tool | CPU s | wall s | peak MB | clips |")
            print("|---|---:|---:|---:|---:|")
            for tool, r in rows.items():
                print(f"| {tool} | {r['cpu_s']} | {r['wall_s']} | {r['peak_mb']} | {r['clips']} |")
            for tool, (cpu, gb) in quoted.items():
                print(f"| {tool} (quoted, not measured) | {cpu} | - | {gb * 1024:.0f} | - |")
            ratio = rows["clipsieve"]["cpu_s"] / cheapest_all
            print(f"clipsieve CPU / cheapest peer: {ratio:.2f}x (quoted peers counted)")
            results[job] = {"rows": rows, "quoted": quoted, "ratio_to_cheapest": round(ratio, 3)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
