"""Engine benchmark: scaling with workers, Ray's overhead, memory, SIGKILL faults, s3:// output.

Usage::

    python benchmarks/engine.py [--videos 16] [--memory 20,200] [--kills 5] [--seed 0]
                                [--parts scaling,ray,memory,faults,long,storage] [--keep DIR]

Inputs are generated here: a few distinct small videos (320x180, 25 fps, a hard cut in each),
rendered once by ffmpeg and copied under new names, so inputs of any size cost no rendering time.
Every run is a real ``clipsieve run`` command line in its own process group, with the CPU scoring
pipeline (``content`` shot detector, cut, the default scorers; no report) and its own run folder.

* **scaling**: engine seconds (``run.json`` → ``invocations[-1].engine_seconds``) for 1 and 2
  workers on the same input, local engine and Ray (``--engine ray --workers N`` starts a local
  Ray with N CPUs). Target: 2 workers ≥ 1.7× the throughput of 1.
* **ray**: Ray's overhead vs the local engine at 2 workers, from the same runs (target ≤ 15 %).
* **memory**: peak memory (PSS) of the whole process tree (driver + workers, summed from
  ``/proc`` every 50 ms) for the smallest and the largest input size (target: within 20 %).
* **long**: one long video alone (``--long-minutes``) with 2 workers, shot detection only
  (hybrid): read whole (one task) vs in ``--segment-s`` segments on both workers; same cuts.
* **faults**: an uninterrupted reference run, then one run that is SIGKILLed (whole process
  group) ``--kills`` times, each at a random moment of what is left of its work (after a random
  number of further videos are committed, plus a random part of one video's time), and resumed
  each time; the final tables must equal the reference row by row. Recomputed work = total wall
  time of all attempts / the reference's wall time − 1, also shown with each attempt's
  start-up (imports, pool start) taken out, which leaves the video work done twice.

Numbers are ratios within one invocation of this script. On a shared machine they are noisy:
read them with the load average, the cores each run actually got (CPU seconds / wall seconds,
printed per run) and the machine's own 2-vs-1 process ceiling measured first with a pure CPU
loop: a speed-up cannot show when the other processes leave no second core.
Results: stdout and ``benchmarks/results/engine.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from clipsieve.media.ffmpeg import run_ffmpeg  # noqa: E402
from clipsieve.table import read_parquet  # noqa: E402

CONFIG_YAML = """\
shots: {detector: content}
cut: {preset: veryfast}
export: {formats: [parquet]}
report: {enabled: false}
"""
SOURCES = (
    ("mandelbrot=size=320x180:rate=25", "smptebars=size=320x180:rate=25"),
    ("cellauto=size=320x180:rate=25:rule=110:seed=1", "rgbtestsrc=size=320x180:rate=25"),
    ("life=size=320x180:rate=25:seed=3:mold=10", "gradients=size=320x180:rate=25:seed=4"),
    ("colorchart=rate=25:patch_size=32x32", "smptehdbars=size=320x180:rate=25"),
)
SECONDS_PER_SHOT = 2.5


def render_bases(folder: Path) -> list[Path]:
    """A few distinct 5 s videos with one hard cut each."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, (a, b) in enumerate(SOURCES):
        path = folder / f"base{i}.mp4"
        if not path.exists():
            run_ffmpeg(
                [
                    "-f", "lavfi", "-t", str(SECONDS_PER_SHOT), "-i", a,
                    "-f", "lavfi", "-t", str(SECONDS_PER_SHOT), "-i", b,
                    "-filter_complex",
                    "[0:v]scale=320:180,setsar=1,format=yuv420p[x];"
                    "[1:v]scale=320:180,setsar=1,format=yuv420p[y];[x][y]concat=n=2:v=1[v]",
                    "-map", "[v]", "-c:v", "libx264", "-preset", "veryfast", "-g", "50",
                    "-y", str(path),
                ]
            )  # fmt: skip
        out.append(path)
    return out


def make_inputs(bases: list[Path], folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        target = folder / f"video{i:04d}.mp4"
        if not target.exists():
            shutil.copy(bases[i % len(bases)], target)
    return folder


def _pss_bytes(pid: int) -> int | None:
    """Proportional set size: shared pages split between the processes sharing them."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


class TreeRss:
    """Peak summed memory of a process and all its descendants, sampled from /proc.

    Summed as PSS where the kernel has it: plain RSS counts every page a forked child shares
    with its parent twice, so a sample taken while a 190 MB worker forks to exec ffmpeg read
    190 MB too high (seen as a 615 vs 733 MB "difference" between two runs).
    """

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    @staticmethod
    def _tree_rss(root: int) -> int:
        parents: dict[int, int] = {}
        rss: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                fields = stat[stat.rindex(")") + 2 :].split()
                parents[int(entry)] = int(fields[1])
                rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
            except (OSError, ValueError, IndexError):
                continue
        tree, frontier = {root}, [root]
        while frontier:
            parent = frontier.pop()
            for pid, ppid in parents.items():
                if ppid == parent and pid not in tree:
                    tree.add(pid)
                    frontier.append(pid)
        total = 0
        for pid in tree:
            pss = _pss_bytes(pid)
            total += rss.get(pid, 0) if pss is None else pss
        return total

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._tree_rss(self.pid))
            time.sleep(self.interval)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def _burn(seconds: float) -> int:
    start, count = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        count += 1
    return count


def machine_speedup(seconds: float = 3.0) -> float:
    """What 2 processes get over 1 on this machine right now (pure CPU loop): the ceiling.

    On a machine shared with other work this can be far below 2; the engine's speed-up should
    be read against it.
    """
    import multiprocessing

    rates = []
    for processes in (1, 2):
        with multiprocessing.get_context("spawn").Pool(processes) as pool:
            rates.append(sum(pool.map(_burn, [seconds] * processes)))
    return rates[1] / rates[0]


def cli(inputs: Path, out: Path | str, config: Path, workers: int, engine: str) -> list[str]:
    return [
        sys.executable, "-m", "clipsieve", "run", str(inputs), "--out", str(out),
        "--config", str(config), "--workers", str(workers), "--engine", engine,
    ]  # fmt: skip


def _committed(run_dir: Path) -> int:
    shards = run_dir / "shards"
    return len(list(shards.glob("*.videos.parquet"))) if shards.exists() else 0


def run_once(
    inputs: Path,
    out: Path | str,
    config: Path,
    workers: int,
    engine: str,
    kill_at_commit: int = 0,
    kill_delay: float = 0.0,
    env_extra: dict[str, str] | None = None,
    staged: Path | None = None,
) -> dict[str, Any]:
    """One command-line run; with ``kill_at_commit`` > 0 it is SIGKILLed (all its processes)
    ``kill_delay`` seconds after that many videos of the run folder are committed.
    ``staged``: the local staging folder of a URL ``out`` (where its run.json is made)."""
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1", **(env_extra or {}))
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.Popen(
        cli(inputs, out, config, workers, engine),  # type: ignore[arg-type]
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
        start_new_session=True,
    )  # fmt: skip
    rss = TreeRss(proc.pid)
    killed = False
    try:
        if kill_at_commit > 0:
            while proc.poll() is None and _committed(Path(out)) < kill_at_commit:
                time.sleep(0.02)
            try:
                proc.wait(timeout=kill_delay)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                killed = True
        _, err = proc.communicate()
    finally:
        peak = rss.stop()
    wall = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    if not killed and proc.returncode != 0:
        raise RuntimeError(f"run failed ({proc.returncode}): {err[-2000:]}")
    # CPU seconds of the command and every process it waited for (workers, ffmpeg); on a shared
    # machine cpu_s / wall_s shows how many cores the run actually got. (Not for Ray: its
    # workers are children of the raylet, which is never waited for.)
    info: dict[str, Any] = {
        "wall_s": wall, "cpu_s": cpu, "peak_rss_mb": peak / 2**20, "killed": killed,
    }  # fmt: skip
    if not killed:
        run_json = (staged or Path(out)) / "run.json"
        last = json.loads(run_json.read_text())["invocations"][-1]
        info.update(engine_s=last["engine_seconds"], processed=last["processed"])
        info["startup_s"] = last.get("engine_startup_seconds", 0.0)
        info["skipped"] = last["skipped"]
    return info


def normalised_rows(run_dir: Path, name: str) -> list[dict]:
    rows = read_parquet(run_dir / name).to_pylist()
    for row in rows:
        if row.get("path") and str(row["path"]).startswith(str(run_dir)):
            row["path"] = os.path.relpath(row["path"], run_dir)
    return rows


def scaling(work: Path, inputs: Path, config: Path, engines: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for engine in engines:
        for workers in (1, 2):
            run = run_once(inputs, work / f"scale-{engine}-{workers}", config, workers, engine)
            out[f"{engine}_{workers}"] = run
            print(f"  {engine:5} workers={workers}: engine {run['engine_s']:.1f} s, "
                  f"wall {run['wall_s']:.1f} s, "
                  + (f"CPU {run['cpu_s']:.1f} s ({run['cpu_s'] / run['wall_s']:.2f} cores used), "
                     if engine == "local" else "")
                  + f"peak memory {run['peak_rss_mb']:.0f} MB")  # fmt: skip
        out[f"{engine}_speedup"] = out[f"{engine}_1"]["engine_s"] / out[f"{engine}_2"]["engine_s"]
        print(f"  {engine} speedup 2 vs 1 workers: {out[f'{engine}_speedup']:.2f}x (target >= 1.7)")
        if engine == "local":
            # A lone worker may use every core (FFmpeg decoder threads, ffmpeg's own pipeline
            # threads): the ratio above is then bounded by how much of the second core it
            # already took. The engine's own parallel efficiency shows against a worker held
            # to one thread, as each of 2 workers on 2 cores is.
            single = run_once(
                inputs, work / "scale-local-1-single", config, 1, engine,
                env_extra={"CLIPSIEVE_CODEC_THREADS": "1", "OMP_NUM_THREADS": "1"},
            )  # fmt: skip
            out["local_1_single_thread"] = single
            out["local_speedup_vs_single_thread"] = single["engine_s"] / out["local_2"]["engine_s"]
            print(f"  local workers=1, one codec/OpenMP thread: engine {single['engine_s']:.1f} s, "
                  f"CPU {single['cpu_s']:.1f} s ({single['cpu_s'] / single['wall_s']:.2f} cores "
                  f"used); 2 workers vs it: "
                  f"{out['local_speedup_vs_single_thread']:.2f}x")  # fmt: skip
    if {"local", "ray"} <= set(engines):
        overhead = out["ray_2"]["engine_s"] / out["local_2"]["engine_s"] - 1
        out["ray_overhead"] = overhead
        ray_work = out["ray_2"]["engine_s"] - out["ray_2"]["startup_s"]
        out["ray_overhead_after_startup"] = ray_work / out["local_2"]["engine_s"] - 1
        print(f"  Ray overhead vs local at 2 workers: {overhead * 100:+.0f} % (target <= 15 %); "
              f"without Ray's {out['ray_2']['startup_s']:.1f} s start-up: "
              f"{out['ray_overhead_after_startup'] * 100:+.0f} %")  # fmt: skip
    return out


def storage(work: Path, inputs: Path, config: Path) -> dict[str, Any]:
    """The same 2-worker run into a local folder and into s3:// (moto's S3 stand-in on
    127.0.0.1, in this process): what staging and uploading every shard and clip cost."""
    sys.path.insert(0, str(REPO / "tests"))
    from clipsieve.storage import STAGING_ENV, staging_dir_for
    from s3_server import local_s3

    local = run_once(inputs, work / "storage-local", config, 2, "local")
    with local_s3() as s3:
        url = s3.url("bench/run")
        env = {STAGING_ENV: str(work / "staging")}
        os.environ.update(env)  # staging_dir_for() below must see what the run sees
        remote = run_once(
            inputs, url, config, 2, "local", env_extra=env, staged=staging_dir_for(url)
        )
        objects = len(s3.keys("bench/run"))
    ratio = remote["engine_s"] / local["engine_s"]
    print(f"  local folder: engine {local['engine_s']:.1f} s; s3:// (loopback): engine "
          f"{remote['engine_s']:.1f} s, {objects} objects uploaded: {ratio:.2f}x")  # fmt: skip
    return {"local": local, "s3": remote, "objects": objects, "ratio": ratio}


def memory(work: Path, bases: list[Path], config: Path, sizes: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for size in sizes:
        inputs = make_inputs(bases, work / f"mem-inputs-{size}", size)
        run = run_once(inputs, work / f"mem-{size}", config, 2, "local")
        out[str(size)] = run
        print(f"  {size:4} videos: peak memory {run['peak_rss_mb']:.0f} MB, "
              f"engine {run['engine_s']:.1f} s")  # fmt: skip
    small, large = out[str(min(sizes))], out[str(max(sizes))]
    out["ratio"] = large["peak_rss_mb"] / small["peak_rss_mb"]
    print(f"  peak memory {max(sizes)} / {min(sizes)} videos: {out['ratio']:.2f} (target <= 1.2)")
    return out


def faults(work: Path, inputs: Path, config: Path, kills: int, seed: int) -> dict[str, Any]:
    reference = run_once(inputs, work / "fault-reference", config, 2, "local")
    rng = random.Random(seed)
    total = reference["processed"]
    per_video = reference["engine_s"] / total
    run_dir = work / "fault-run"
    attempts = []
    # random moments spread over the run: after a random number of commits (distinct, sorted),
    # plus a random part of one video's time, so each kill lands in the middle of tasks
    targets = sorted(rng.sample(range(1, max(2, total - 1)), min(kills, max(1, total - 2))))
    for target in targets:
        committed = _committed(run_dir)
        if target <= committed:
            continue
        delay = rng.uniform(0.0, per_video)
        attempt = run_once(inputs, run_dir, config, 2, "local", target, delay)
        done = _committed(run_dir)
        attempt.update(kill_at_commit=target, delay_s=delay, before=committed, after=done)
        attempts.append(attempt)
        print(f"  killed {delay:.2f} s after commit {target}: {done} of {total} videos committed"
              + ("" if attempt["killed"] else " (run had already finished)"))  # fmt: skip
    final = run_once(inputs, run_dir, config, 2, "local")
    attempts.append(final)
    equal = all(
        normalised_rows(run_dir, name) == normalised_rows(work / "fault-reference", name)
        for name in ("videos.parquet", "clips.parquet")
    )
    total_wall = sum(a["wall_s"] for a in attempts)
    recomputed = total_wall / reference["wall_s"] - 1
    # Every attempt pays the command's own start-up and finish (imports, pool start, export):
    # the reference's wall minus its engine seconds. Without it, what is left is video work.
    fixed = reference["wall_s"] - reference["engine_s"]
    video_work = max(0.0, max(0.0, total_wall - fixed * len(attempts)) / reference["engine_s"] - 1)
    print(f"  final resume processed {final['processed']}, skipped {final['skipped']}; "
          f"tables equal to the uninterrupted run: {equal}")  # fmt: skip
    print(
        f"  recomputed work (wall time of all attempts / reference - 1): {recomputed * 100:.0f} %"
    )
    print(f"  ... of which video work (each attempt's start-up of {fixed:.1f} s taken out): "
          f"{video_work * 100:.0f} %")  # fmt: skip
    return {
        "reference": reference, "attempts": attempts, "equal": equal,
        "recomputed": recomputed, "recomputed_video_work": video_work,
    }  # fmt: skip


LONG_CONFIG_YAML = """\
shots: {{detector: hybrid, segment_s: {segment_s}}}
cut: {{enabled: false}}
score: {{scorers: []}}
export: {{formats: [parquet]}}
report: {{enabled: false}}
"""


def long_video(work: Path, bases: list[Path], minutes: float, segment_s: float) -> dict[str, Any]:
    """One long video alone, 2 workers: shot detection whole (one task) vs in segments."""
    repeats = max(1, round(minutes * 60 / (2 * SECONDS_PER_SHOT)))
    folder = work / "long-input"
    folder.mkdir(parents=True, exist_ok=True)
    video = folder / "long.mp4"
    if not video.exists():
        listing = work / "long.txt"
        listing.write_text("".join(f"file '{bases[i % len(bases)]}'\n" for i in range(repeats)))
        run_ffmpeg(["-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(video)])
    out: dict[str, Any] = {"minutes": repeats * 2 * SECONDS_PER_SHOT / 60}
    for label, seg in (("whole", "null"), ("segments", f"{segment_s:g}")):
        config = work / f"long-{label}.yaml"
        config.write_text(LONG_CONFIG_YAML.format(segment_s=seg))
        run = out[label] = run_once(folder, work / f"long-{label}", config, 2, "local")
        print(f"  {label:8}: engine {run['engine_s']:.1f} s, CPU {run['cpu_s']:.1f} s "
              f"({run['cpu_s'] / run['wall_s']:.2f} cores used)")  # fmt: skip
    out["equal"] = normalised_rows(work / "long-whole", "videos.parquet") == normalised_rows(
        work / "long-segments", "videos.parquet"
    )
    out["speedup"] = out["whole"]["engine_s"] / out["segments"]["engine_s"]
    print(f"  segments vs whole: {out['speedup']:.2f}x; same cuts and tables: {out['equal']}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=32, help="input size for scaling and faults")
    ap.add_argument("--memory", default="20,200", help="input sizes compared for peak RSS")
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--parts", default="scaling,ray,memory,faults,long")
    ap.add_argument("--long-minutes", type=float, default=10.0, help="length for the long part")
    ap.add_argument("--segment-s", type=float, default=120.0, help="segments for the long part")
    ap.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: temp)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "engine.json")
    args = ap.parse_args()
    parts = set(args.parts.split(","))

    work = args.keep or Path(tempfile.mkdtemp(prefix="clipsieve-engine-bench-"))
    config = work / "config.yaml"
    work.mkdir(parents=True, exist_ok=True)
    config.write_text(CONFIG_YAML)
    bases = render_bases(work / "bases")
    inputs = make_inputs(bases, work / f"inputs-{args.videos}", args.videos)
    results: dict[str, Any] = {
        "videos": args.videos,
        "cpus": os.cpu_count(),
        "load_before": os.getloadavg(),
    }
    try:
        if parts & {"scaling", "ray"}:
            results["machine_speedup"] = machine_speedup()
            print(f"machine: 2 processes of a pure CPU loop get {results['machine_speedup']:.2f}x "
                  "of 1 right now (the ceiling for any 2-worker speed-up)")  # fmt: skip
            engines = ["local"] + (["ray"] if "ray" in parts else [])
            print(f"scaling ({args.videos} videos of 5 s, 320x180):")
            results["scaling"] = scaling(work, inputs, config, engines)
        if "memory" in parts:
            print("memory:")
            sizes = [int(s) for s in args.memory.split(",")]
            results["memory"] = memory(work, bases, config, sizes)
        if "long" in parts:
            print(f"one long video ({args.long_minutes:g} min), 2 workers, shot detection only:")
            results["long"] = long_video(work, bases, args.long_minutes, args.segment_s)
        if "storage" in parts:
            print(f"run folder at a URL ({args.videos} videos, 2 workers):")
            results["storage"] = storage(work, inputs, config)
        if "faults" in parts:
            print(f"faults ({args.kills} SIGKILLs, {args.videos} videos):")
            results["faults"] = faults(work, inputs, config, args.kills, args.seed)
    finally:
        results["load_after"] = os.getloadavg()
        print(f"load average before {results['load_before']}, after {results['load_after']}")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2, default=str))
        print(f"results: {args.out}")
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
