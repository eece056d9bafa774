"""Post-run commands at dataset scale: wall time and peak memory per command.

Builds a synthetic run folder (``--clips`` rows, default 1M) with the scalar columns a real run
has (ids, frames, sizes, status/keep marks, the usual scores, per-frame pHashes) and, with
``--embeddings N``, a ``vectors/embedding.parquet`` of N 768-d float16 vectors. The table is
generated and written in blocks, so building a 10M-row folder holds one block.

Each command then runs as ``clipsieve ...`` in its own process on a fresh copy of the folder;
its peak memory is the PSS of the whole process tree, sampled from /proc (``engine.TreeRss``).
With ``--baseline REV`` the same commands also run from a git worktree of REV (the previous
version) on their own copies, and the table prints the ratio new/old for time and memory: the
machine is shared, so only numbers measured in the same run are compared.

Run: ``.venv/bin/python benchmarks/scale.py`` (1M clips, as ``make bench``);
``--clips 10000000 --embeddings 1000000`` for the 10M scale; ``--only filter,topn``.
Results: ``benchmarks/results/scale-<clips>.json``.

`predict` applies a classifier trained once (``clipsieve train-classifier``) on a small
synthetic folder with the same columns, copied into the source folder.

``--caption 10000,100000`` instead measures ``clipsieve caption`` against the zero-latency
stand-in server (``tests/caption_server.py``, its own process) on run folders of that many
clips (rows cycling over 16 small generated clip files, one frame each): clips/s at each size
shows whether saving answers costs more as the run grows (the previous version rewrote the
whole table every 256 answers). Results: ``benchmarks/results/scale-caption.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))
from engine import TreeRss  # noqa: E402  (the benchmark folder's own helper)

ROOT = Path(__file__).resolve().parents[1]
BLOCK = 200_000
CLIPS_PER_VIDEO = 20

COMMANDS: dict[str, list[str]] = {
    "filter": ["filter", "{run}", "--where", "flow_mean >= 0.5 and aes >= 4.5"],
    "topn": ["topn", "{run}", "--by", "aes", "-n", "3"],
    "export views": ["export", "{run}", "--format", "views"],
    "dedup exact+phash": ["dedup", "{run}", "--method", "exact,phash"],
    "report": ["report", "{run}", "--max-thumbs", "0"],
    "predict": ["predict", "{run}"],
}
CLASSIFIER_CLIPS = 20_000  # the classifier `predict` applies is trained on a small folder
FEATURES = "aes,flow_mean,flow_max,sharpness,brightness,text_area_ratio,rgb_diff_mean,duration_s"
EMBEDDING_COMMANDS: dict[str, list[str]] = {
    "dedup semantic": ["dedup", "{run}", "--method", "semantic"],
    "cluster": ["cluster", "{run}", "--k", "16"],
}


def synthetic_block(start: int, rows: int, rng: np.random.Generator) -> pa.Table:
    """``rows`` clip rows numbered from ``start``, shaped like a real run's table."""
    index = np.arange(start, start + rows)
    video = index // CLIPS_PER_VIDEO
    shot = (index % CLIPS_PER_VIDEO).astype(np.int32)
    fps = np.full(rows, 30.0)
    start_frame = shot.astype(np.int64) * 150
    num_frames = rng.integers(48, 300, rows)
    width = rng.choice([640, 1280, 1920], rows).astype(np.int32)
    height = (width * 9 // 16).astype(np.int32)
    status = np.where(rng.random(rows) < 0.01, "error", "ok")
    frames = 4
    phash = rng.integers(0, 2**63 - 1, (rows, frames), dtype=np.int64)
    phash_values = pa.FixedSizeListArray.from_arrays(pa.array(phash.reshape(-1)), frames)
    ids = [f"v{v:08d}-{s:04d}" for v, s in zip(video.tolist(), shot.tolist(), strict=True)]
    return pa.table(
        {
            "clip_id": ids,
            "video_id": [f"v{v:08d}" for v in video.tolist()],
            "path": [f"/data/clips/{i}.mp4" for i in ids],
            "source_path": [f"/data/videos/v{v:08d}.mp4" for v in video.tolist()],
            "shot_index": shot,
            "start_frame": start_frame,
            "end_frame": start_frame + num_frames,
            "start_s": start_frame / fps,
            "end_s": (start_frame + num_frames) / fps,
            "duration_s": num_frames / fps,
            "fps": fps,
            "num_frames": num_frames,
            "width": width,
            "height": height,
            "aspect_ratio": height / width,
            "resolution": (height.astype(np.int64) * width),
            "status": status,
            "error": np.where(status == "error", "cut: synthetic failure", None),
            "keep": status == "ok",
            "drop_reason": pa.nulls(rows, pa.string()),
            "rgb_diff_mean": rng.gamma(2.0, 3.0, rows),
            "flow_mean": rng.gamma(2.0, 1.0, rows),
            "flow_max": rng.gamma(3.0, 2.0, rows),
            "sharpness": rng.gamma(2.0, 50.0, rows),
            "brightness": rng.uniform(0, 255, rows),
            "aes": rng.normal(5.0, 0.8, rows),
            "text_area_ratio": rng.beta(1.0, 30.0, rows),
            "phash": phash_values.cast(pa.list_(pa.int64())),
            "embed_model": pa.array(["efficientnet-lite0"] * rows),
        }
    )


def build_run(folder: Path, clips: int, embeddings: int, seed: int = 0) -> None:
    """Write ``folder`` as a finished run with ``clips`` rows (and ``embeddings`` vectors)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    writer = None
    for start in range(0, clips, BLOCK):
        block = synthetic_block(start, min(BLOCK, clips - start), rng)
        if writer is None:
            writer = pq.ParquetWriter(folder / "clips.parquet", block.schema, compression="zstd")
        writer.write_table(block, 65_536)
    assert writer is not None
    writer.close()
    videos = (clips + CLIPS_PER_VIDEO - 1) // CLIPS_PER_VIDEO
    pq.write_table(
        pa.table(
            {
                "video_id": [f"v{v:08d}" for v in range(videos)],
                "path": [f"/data/videos/v{v:08d}.mp4" for v in range(videos)],
                "status": ["ok"] * videos,
                "duration_s": np.full(videos, 60.0),
            }
        ),
        folder / "videos.parquet",
    )
    (folder / "run.json").write_text(json.dumps({"stages": [], "inputs": ["synthetic"]}))
    if embeddings:
        (folder / "vectors").mkdir(exist_ok=True)
        dim = 768
        vec_writer = None
        for start in range(0, embeddings, 50_000):
            n = min(50_000, embeddings - start)
            # clustered unit vectors, a few near-copies: a realistic similarity structure
            centres = rng.normal(size=(64, dim)).astype(np.float32)
            v = centres[rng.integers(0, 64, n)] + 0.6 * rng.normal(size=(n, dim))
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            # 1 % near-copies of another clip of the block (cosine ~0.999): what dedup finds
            copies = rng.choice(n, n // 100, replace=False)
            v[copies] = v[rng.integers(0, n, len(copies))] + 0.001 * rng.normal(
                size=(len(copies), dim)
            )
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            index = np.arange(start, start + n)
            ids = [f"v{i // CLIPS_PER_VIDEO:08d}-{i % CLIPS_PER_VIDEO:04d}" for i in index]
            values = pa.FixedSizeListArray.from_arrays(
                pa.array(v.astype(np.float16).reshape(-1)), dim
            )
            table = pa.table({"clip_id": ids, "embedding": values})
            if vec_writer is None:
                path = folder / "vectors" / "embedding.parquet"
                vec_writer = pq.ParquetWriter(path, table.schema, compression="zstd")
            vec_writer.write_table(table, 8192)
        assert vec_writer is not None
        vec_writer.close()


def ensure_classifier(source: Path, scratch: Path) -> None:
    """Give ``source`` a ``classifier/`` for `predict`: trained (``clipsieve train-classifier``)
    on a small synthetic folder with the same columns, labelled by a rule on ``aes``; training
    is set-up, not what is measured."""
    if (source / "classifier" / "model.json").is_file():
        return
    small = scratch / "classifier-source"
    shutil.rmtree(small, ignore_errors=True)
    build_run(small, CLASSIFIER_CLIPS, 0, seed=1)
    table = pq.read_table(small / "clips.parquet", columns=["clip_id", "status", "aes"])
    rows = [r for r in table.to_pylist() if r["status"] == "ok"][:2000]
    labels = small / "labels.json"
    labels.write_text(json.dumps({r["clip_id"]: int(r["aes"] > 5.0) for r in rows}))
    subprocess.run(
        [sys.executable, "-m", "clipsieve", "train-classifier", str(small), "--labels",
         str(labels), "--folds", "3", "--features", FEATURES],
        check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )  # fmt: skip
    shutil.copytree(small / "classifier", source / "classifier")
    shutil.rmtree(small, ignore_errors=True)


def run_command(args: list[str], run: Path, env: dict[str, str], timeout: float) -> dict[str, Any]:
    """One command in its own process: wall seconds, peak PSS of its tree, exit code."""
    words = [a.replace("{run}", str(run)) for a in args]
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "clipsieve", *words],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    sampler = TreeRss(proc.pid, interval=0.1)
    try:
        _, err = proc.communicate(timeout=timeout)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        code = "timeout"
    peak = sampler.stop()
    seconds = time.perf_counter() - started
    tail = (err or "").strip().splitlines()[-1:] if code != 0 else []
    return {"seconds": round(seconds, 2), "peak_mb": round(peak / 2**20), "exit": code,
            "error": tail[0][:200] if tail else None}  # fmt: skip


def build_caption_run(folder: Path, clips: int, files: list[Path]) -> None:
    """A finished run of ``clips`` kept rows whose clip files cycle over ``files``."""
    folder.mkdir(parents=True, exist_ok=True)
    ids = [f"c{i:08d}" for i in range(clips)]
    table = pa.table(
        {
            "clip_id": ids,
            "video_id": [f"v{i // CLIPS_PER_VIDEO:07d}" for i in range(clips)],
            "path": [str(files[i % len(files)]) for i in range(clips)],
            "fps": np.full(clips, 25.0),
            "num_frames": np.full(clips, 25, np.int64),
            "status": ["ok"] * clips,
            "keep": np.ones(clips, bool),
            "drop_reason": pa.nulls(clips, pa.string()),
        }
    )
    pq.write_table(table, folder / "clips.parquet")
    (folder / "run.json").write_text(json.dumps({"stages": [], "inputs": ["synthetic"]}))


def caption_scale(
    sizes: list[int], versions: dict[str, str], scratch: Path, engines: list[str]
) -> dict[str, Any]:
    """clips/s of ``clipsieve caption`` at each run size, per version and engine (``ray``: a
    private Ray of 2 workers started by the command, its start-up included)."""
    from caption import make_clips, start_server  # the caption benchmark's helpers

    (scratch / "files").mkdir(parents=True, exist_ok=True)
    files = make_clips(scratch / "files", 16)
    server, url = start_server()
    results: dict[str, Any] = {}
    try:
        for size in sizes:
            for label, src in versions.items():
                for engine in engines:
                    run = scratch / f"caption-{label}-{engine}-{size}"
                    shutil.rmtree(run, ignore_errors=True)
                    build_caption_run(run, size, files)
                    env = {**os.environ, "PYTHONPATH": src, "RAY_USAGE_STATS_ENABLED": "0"}
                    words = ["caption", "{run}", "--base-url", url, "--model", "echo", "-j", "16",
                             "--frames", "1", "--frame-size", "64"]  # fmt: skip
                    if engine == "ray":
                        words += ["--engine", "ray", "--workers", "2"]
                    outcome = run_command(words, run, env, timeout=7200)
                    outcome["clips_per_s"] = round(size / outcome["seconds"], 1)
                    name = label if engine == "local" else f"{label} {engine}"
                    results.setdefault(str(size), {})[name] = outcome
                    print(f"caption {size:>8} {name}: {outcome}", flush=True)
    finally:
        server.terminate()
    return results


def baseline_tree(rev: str, scratch: Path) -> Path:
    """A git worktree of ``rev`` (its ``src`` goes first on PYTHONPATH for the old runs)."""
    target = scratch / "baseline"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(target), rev],
        check=True,
        capture_output=True,
    )
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=1_000_000)
    parser.add_argument("--embeddings", type=int, default=0, help="768-d vectors (0: none)")
    parser.add_argument("--baseline", help="git revision to measure side by side (e.g. HEAD~5)")
    parser.add_argument("--only", help="comma-separated command names")
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--scratch", type=Path, help="where run folders go (default: temp)")
    parser.add_argument("--caption", help="caption mode: run sizes, e.g. 10000,100000")
    parser.add_argument(
        "--caption-engines", default="local", help="caption mode: local, ray or local,ray"
    )
    args = parser.parse_args()

    scratch = Path(args.scratch or tempfile.mkdtemp(prefix="clipsieve-scale-"))
    scratch.mkdir(parents=True, exist_ok=True)
    if args.caption:
        versions = {"new": str(ROOT / "src")}
        worktree = baseline_tree(args.baseline, scratch) if args.baseline else None
        if worktree is not None:
            versions["old"] = str(worktree / "src")
        try:
            sizes = [int(x) for x in args.caption.split(",")]
            engines = [e.strip() for e in args.caption_engines.split(",") if e.strip()]
            results = caption_scale(sizes, versions, scratch, engines)
        finally:
            if worktree is not None:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                                str(worktree)], capture_output=True)  # fmt: skip
        out = ROOT / "benchmarks" / "results" / "scale-caption.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        earlier = json.loads(out.read_text()).get("results", {}) if out.is_file() else {}
        for size, by in results.items():
            earlier.setdefault(size, {}).update(by)
        out.write_text(json.dumps({"loadavg": os.getloadavg(), "results": earlier}, indent=2))
        print(f"→ {out}")
        return
    source = scratch / "source"
    started = time.perf_counter()
    if not (source / "clips.parquet").is_file():
        build_run(source, args.clips, args.embeddings)
    print(f"built {args.clips} clips ({args.embeddings} vectors) in "
          f"{time.perf_counter() - started:.0f} s → {source}", flush=True)  # fmt: skip

    commands = dict(COMMANDS)
    if "predict" in commands and (not args.only or "predict" in args.only):
        ensure_classifier(source, scratch)
    if args.embeddings:
        commands.update(EMBEDDING_COMMANDS)
    if args.only:
        wanted = {w.strip() for w in args.only.split(",")}
        commands = {k: v for k, v in commands.items() if k.split()[0] in wanted or k in wanted}
    versions = {"new": str(ROOT / "src")}
    worktree = None
    if args.baseline:
        worktree = baseline_tree(args.baseline, scratch)
        versions["old"] = str(worktree / "src")
    results: dict[str, dict[str, Any]] = {}
    try:
        for name, words in commands.items():
            for label, src in versions.items():
                run = scratch / f"run-{label}"
                shutil.rmtree(run, ignore_errors=True)
                shutil.copytree(source, run)
                env = {**os.environ, "PYTHONPATH": src, "HF_HUB_OFFLINE": "1"}
                outcome = run_command(words, run, env, args.timeout)
                results.setdefault(name, {})[label] = outcome
                print(f"{name:<22} {label}: {outcome}", flush=True)
    finally:
        if worktree is not None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(worktree)], capture_output=True)  # fmt: skip
        if not args.scratch:
            shutil.rmtree(scratch, ignore_errors=True)

    print(
        f"\n{'command':<22} {'new s':>8} {'new MB':>8}"
        + (f" {'old s':>8} {'old MB':>8} {'time x':>7} {'mem x':>7}" if args.baseline else "")
    )
    for name, by in results.items():
        new = by["new"]
        line = f"{name:<22} {new['seconds']:>8} {new['peak_mb']:>8}"
        if "old" in by:
            old = by["old"]
            ratio_t = new["seconds"] / old["seconds"] if old["seconds"] else float("nan")
            ratio_m = new["peak_mb"] / old["peak_mb"] if old["peak_mb"] else float("nan")
            line += f" {old['seconds']:>8} {old['peak_mb']:>8} {ratio_t:>7.2f} {ratio_m:>7.2f}"
        print(line)
    out = ROOT / "benchmarks" / "results" / f"scale-{args.clips}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    # --only runs add to (or replace) their commands' entries; the others stay
    earlier = json.loads(out.read_text()).get("results", {}) if out.is_file() else {}
    load = os.getloadavg()
    out.write_text(json.dumps({"clips": args.clips, "embeddings": args.embeddings,
                               "baseline": args.baseline, "loadavg": load,
                               "cpus": os.cpu_count(), "results": {**earlier, **results}},
                              indent=2))  # fmt: skip
    print(f"→ {out}")


if __name__ == "__main__":
    main()
