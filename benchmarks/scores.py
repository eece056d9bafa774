"""Scoring benchmark: scorer outputs against the shared ground truth, and their cost vs. decoding.

Usage::

    python benchmarks/scores.py [--data ../shared/data/videos] [--videos a.mp4,panda70m/x.mp4]
                                [--scorers static,motion,...] [--profile N]

Each video file is scored as one clip (a row ``{"clip_id", "video_id", "path", "fps",
"keep": True}`` through :class:`~clipsieve.score.stage.ScoreStage`). Every registered scorer
whose module imports is used; one that fails to import or build is skipped with its reason
printed, so the script works while scorers are still being added.

Quality checks (each is skipped, with the reason, when no scorer produces the column it needs):

* **camera**: ``camera_motion == "static"`` vs. the ground-truth ``camera`` field, on videos whose
  field clearly says static or moving/panning ("mostly static", "not determined" and
  "static ... then pans" are ambiguous and only listed);
* **text area**: a ``*text_area*`` column above 0.005 on every video with burned-in text in the
  frames that scorer samples (its own :class:`FrameSpec` placed on the video's frame count), and
  below it on videos without a ``text`` entry (watermark/logo tags are flagged, still counted;
  a video without an entry whose near-duplicate has text is listed, not scored);
* **pHash**: :func:`phash_distance` of the near-duplicate pairs (``near_duplicate_of``, plus
  pairs named "near-duplicate of X" in the ``kind`` text) vs. all other pairs, and the margin
  ``min(other) - max(near-duplicate)`` (separable when > 0);
* **transition_suspect**: recall on videos with a cut or gradual transition inside; the rate on
  videos without one is printed for context.

Performance: the default scorer set (``DEFAULT_SCORERS`` less any that fail to load) is timed per
video in CPU seconds of this process (``time.process_time``, all threads) and wall seconds, split
into decoding/sampling and each scorer. The decode floor is measured in the same run on the same
files: ``ffmpeg -i X -vf scale=-2:360 -f null -`` (child CPU from ``getrusage``) and a PyAV
decode-only pass with ``thread_type='AUTO'``. Reported per resolution group (640x360 and 1080p):
throughput in video-seconds per CPU-second and the ratio scorer-set CPU / ffmpeg-floor CPU
(targets: <= 2x on 640x360, <= 1.3x on 1080p).

Results go to stdout (markdown) and to ``benchmarks/results/scores.json``.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import io
import itertools
import json
import pstats
import re
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import av  # noqa: E402

from clipsieve.media.ffmpeg import ffmpeg_exe  # noqa: E402
from clipsieve.media.frames import spec_indices  # noqa: E402
from clipsieve.score.names import DEFAULT_SCORERS, SCORERS  # noqa: E402
from clipsieve.score.stage import ScoreStage, make_scorer  # noqa: E402

TEXT_AREA_THRESHOLD = 0.005
TARGETS = {"640x360": 2.0, "1080p": 1.3}


# ----------------------------------------------------------------------------- ground truth


@dataclass
class Video:
    """What the checks need from one ground-truth entry."""

    name: str
    width: int
    height: int
    frames: int
    duration_s: float
    gt: dict[str, Any]
    text_ranges: list[tuple[int, int]] = field(default_factory=list)

    @property
    def group(self) -> str:
        if (self.width, self.height) == (640, 360):
            return "640x360"
        if max(self.width, self.height) >= 1920 and min(self.width, self.height) >= 1080:
            return "1080p"
        return "other"

    @property
    def camera_truth(self) -> str | None:
        """'static' / 'moving' when the field is unambiguous, else None."""
        cam = str(self.gt.get("camera", "")).lower()
        if not cam or "mostly" in cam or "not determined" in cam or "then" in cam:
            return None
        if cam.startswith("static"):
            return "static"
        if cam.startswith(("moving", "panning")):
            return "moving"
        return None

    @property
    def has_transition(self) -> bool:
        cuts = self.gt.get("cuts_decoded_index", self.gt.get("cuts", []))
        gradual = [g for g in self.gt.get("gradual", []) if "uncertain" not in g.get("type", "")]
        return bool(cuts or gradual)


def _text_ranges(entry: dict[str, Any], frames: int) -> list[tuple[int, int]]:
    """Frame ranges with burned-in text, read from the free-form ``text`` entries.

    ``frames`` is either ``[a, b]`` or prose: "every frame ..." / "... present ..." mean the whole
    video, otherwise the first ``a-b`` in the prose. An entry whose text says there is no text
    (e.g. "image grid ..., no slide text") is ignored; a single-frame range whose note says the
    frame shows "many other" strings (a screen recording) counts as the whole video.
    """
    out: list[tuple[int, int]] = []
    for item in entry.get("text", []):
        words = f"{item.get('text', '')} {item.get('note', '')}".lower()
        if "no slide text" in words or "no text" in words:
            continue
        fr = item.get("frames")
        if isinstance(fr, list) and len(fr) == 2:
            a, b = int(fr[0]), int(fr[1])
            if a == b and "many other" in words:
                a, b = 0, frames - 1
            out.append((a, b))
        elif isinstance(fr, str):
            low = fr.lower()
            m = re.search(r"(\d+)\s*-\s*(\d+)", low)
            if "every frame" in low or "present" in low or not m:
                out.append((0, frames - 1))
            else:
                out.append((int(m.group(1)), int(m.group(2))))
    return out


def load_videos(data: Path, only: list[str] | None) -> list[Video]:
    raw = json.loads((data / "ground_truth.json").read_text())["videos"]
    videos = []
    for name, v in raw.items():
        if only and name not in only and Path(name).name not in only:
            continue
        frames = int(v.get("decoded_frames") or 0)
        video = Video(
            name, int(v["width"]), int(v["height"]), frames, float(v.get("duration_s", 0)), v
        )
        video.text_ranges = _text_ranges(v, frames)
        videos.append(video)
    return videos


def near_duplicate_pairs(videos: list[Video]) -> tuple[set[frozenset[str]], set[frozenset[str]]]:
    """(pairs from ``near_duplicate_of``, pairs named only in the ``kind`` prose)."""
    names = {v.name for v in videos}
    structured: set[frozenset[str]] = set()
    prose: set[frozenset[str]] = set()
    for v in videos:
        other = v.gt.get("near_duplicate_of")
        if other and other in names:
            structured.add(frozenset((v.name, other)))
        m = re.search(r"near-duplicate of ([\w./-]+\.\w+)", str(v.gt.get("kind", "")))
        if m:
            target = m.group(1).rstrip(".")
            if target in names and frozenset((v.name, target)) not in structured:
                prose.add(frozenset((v.name, target)))
    return structured, prose


def print_ground_truth(videos: list[Video]) -> None:
    print("## Ground truth found\n")
    print("| video | size | group | frames | camera | text ranges | transition | near-dup |")
    print("|---|---|---|---|---|---|---|---|")
    for v in videos:
        cam = str(v.gt.get("camera", ""))[:40]
        nd = v.gt.get("near_duplicate_of", "")
        print(
            f"| {v.name} | {v.width}x{v.height} | {v.group} | {v.frames} | {cam} | "
            f"{v.text_ranges or ''} | {'yes' if v.has_transition else ''} | {nd} |"
        )
    print()


# ----------------------------------------------------------------------------- scorers


def loadable_scorers(names: list[str]) -> list[str]:
    """The names among ``names`` that import, build and set up; the others are printed."""
    ok = []
    for name in names:
        try:
            make_scorer(name).setup()
        except Exception as exc:  # a scorer still being written must not stop the benchmark
            print(f"skipping scorer {name}: {type(exc).__name__}: {str(exc).splitlines()[0]}")
            continue
        ok.append(name)
    return ok


class Timed:
    """Scoring one video with the CPU/wall time of sampling and of each scorer."""

    def __init__(self, stage: ScoreStage) -> None:
        self.stage = stage
        self.parts: dict[str, list[float]] = {}
        sampler = stage._sampler
        assert sampler is not None
        self._wrap(sampler, "sample", "decode+sample")
        for scorer in stage._scorers:
            self._wrap(scorer, "score", scorer.name)

    def _wrap(self, obj: Any, method: str, label: str) -> None:
        inner = getattr(obj, method)
        parts = self.parts

        def timed(*args: Any, **kwargs: Any) -> Any:
            c0, w0 = time.process_time(), time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                acc = parts.setdefault(label, [0.0, 0.0])
                acc[0] += time.process_time() - c0
                acc[1] += time.perf_counter() - w0

        setattr(obj, method, timed)

    def run(self, video: Video, path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
        self.parts.clear()
        row = {
            "clip_id": video.name,
            "video_id": video.name,
            "path": str(path),
            "fps": None,
            "keep": True,
        }
        c0, w0 = time.process_time(), time.perf_counter()
        out = self.stage.process_row(row)
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        timing = {"cpu_s": cpu, "wall_s": wall}
        timing.update({f"{k}_cpu_s": v[0] for k, v in self.parts.items()})
        return out, timing


# ----------------------------------------------------------------------------- decode floor


def ffmpeg_floor(path: Path) -> dict[str, float]:
    """CPU (child user+sys) and wall seconds of ffmpeg decoding + scaling to 360 lines."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    w0 = time.perf_counter()
    cmd = [ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(path)]
    cmd += ["-vf", "scale=-2:360", "-f", "null", "-"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - w0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed on {path}: {proc.stderr.strip().splitlines()[-1:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"cpu_s": cpu, "wall_s": wall}


def pyav_floor(path: Path) -> dict[str, float]:
    """CPU and wall seconds of decoding every frame with PyAV (threaded), no conversion."""
    c0, w0 = time.process_time(), time.perf_counter()
    n = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for _ in container.decode(stream):
            n += 1
    return {"cpu_s": time.process_time() - c0, "wall_s": time.perf_counter() - w0, "frames": n}


# ----------------------------------------------------------------------------- checks


def find_column(rows: dict[str, dict[str, Any]], needle: str) -> str | None:
    for row in rows.values():
        for key in row:
            if needle in key:
                return key
    return None


def check_camera(videos: list[Video], rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    if find_column(rows, "camera_motion") is None:
        return {"skipped": "no camera_motion column"}
    items, ambiguous = [], []
    for v in videos:
        label = rows[v.name].get("camera_motion")
        entry = {
            "video": v.name,
            "truth": v.gt.get("camera"),
            "predicted": label,
            "conf": rows[v.name].get("camera_motion_conf"),
        }
        if "camera" not in v.gt:
            continue
        if v.camera_truth is None:
            ambiguous.append(entry)
            continue
        pred = None if label is None else ("static" if label == "static" else "moving")
        entry["agree"] = pred == v.camera_truth
        items.append(entry)
    agree = sum(e["agree"] for e in items)
    return {
        "agree": agree,
        "total": len(items),
        "pass": agree == len(items) and bool(items),
        "items": items,
        "ambiguous": ambiguous,
    }


def read_text(scorer: Any, path: Path) -> str:
    """The text the OCR scorer's recogniser reads on the frames it samples from ``path``."""
    from clipsieve.media.frames import FrameSampler

    reader = dataclasses.replace(scorer, recognize=True)
    frames = FrameSampler({"ocr": reader.frame_spec()}).sample(path)["ocr"]
    return reader.score(frames)["ocr_text"] or ""


def _is_words(text: str) -> bool:
    """At least one run of 3+ letters: legible text, not a stray glyph-like blob."""
    return any(sum(c.isalpha() for c in word) >= 3 for word in text.split())


def check_text(
    videos: list[Video], rows: dict[str, dict[str, Any]], stage: ScoreStage, data: Path
) -> dict[str, Any]:
    column = find_column(rows, "text_area")
    if column is None:
        return {"skipped": "no *text_area* column (no OCR scorer loaded)"}
    owner = next((s for s in stage._scorers if column in s.columns), None)
    structured, prose = near_duplicate_pairs(videos)
    dup_pairs = structured | prose
    by_name = {v.name: v for v in videos}
    items = []
    for v in videos:
        value = rows[v.name].get(column)
        if owner is not None and v.frames:
            fps = v.frames / v.duration_s if v.duration_s else 25.0
            sampled = spec_indices(owner.frame_spec(), v.frames, fps)
        else:
            sampled = []
        in_sample = any(a <= int(i) <= b for i in sampled for a, b in v.text_ranges)
        partners = [next(iter(p - {v.name}), "") for p in dup_pairs if v.name in p]
        if v.text_ranges and not in_sample:
            kind = "text outside sampled frames"
        elif not v.text_ranges and any(by_name[n].text_ranges for n in partners if n in by_name):
            kind = "no text entry, but its near-duplicate has text"
        else:
            kind = "text" if v.text_ranges else "no text"
        tags = [t for t in v.gt.get("tags", []) if "watermark" in t or "logo" in t]
        ok = None
        if value is not None and kind == "text":
            ok = value > TEXT_AREA_THRESHOLD
        elif value is not None and kind == "no text":
            ok = value < TEXT_AREA_THRESHOLD
        item = {"video": v.name, "kind": kind, column: value, "ok": ok, "watermark": tags}
        if ok is False and kind == "no text" and owner is not None:
            # What made the score: the recogniser's reading of the same frames tells a watermark
            # or shop sign (real text the ground truth does not list) from a false detection.
            item["reads"] = read_text(owner, data / v.name)
        items.append(item)
    scored = [e for e in items if e["ok"] is not None]
    missing = [
        e["video"]
        for e in items
        if e[column] is None and e["kind"] != "text outside sampled frames"
    ]
    unlisted = [e for e in scored if e["ok"] is False and _is_words(e.get("reads") or "")]
    return {
        "column": column,
        "pass": all(e["ok"] for e in scored) and not missing,
        # passes once clips whose "no text" turns out to be legible text are set aside
        "pass_except_unlisted_text": all(e["ok"] for e in scored if e not in unlisted)
        and not missing,
        "unlisted_text": [e["video"] for e in unlisted],
        "ok": sum(bool(e["ok"]) for e in scored),
        "total": len(scored),
        "null": missing,
        "items": items,
    }


def check_phash(videos: list[Video], rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    if find_column(rows, "phash") is None:
        return {"skipped": "no phash column"}
    from clipsieve.score.phash import phash_distance

    structured, prose = near_duplicate_pairs(videos)
    have = [v.name for v in videos if rows[v.name].get("phash")]
    every = {
        frozenset((a, b)): phash_distance(rows[a]["phash"], rows[b]["phash"], rotations=True)
        for a, b in itertools.combinations(have, 2)
    }
    # None: no frame position is textured in both clips (e.g. two fades to black): not compared
    dist = {p: d for p, d in every.items() if d is not None}
    result: dict[str, Any] = {
        "not_comparable": sorted(" | ".join(sorted(p)) for p, d in every.items() if d is None)
    }
    for label, dup in (("near_duplicate_of", structured), ("plus_kind_text", structured | prose)):
        dups = {" | ".join(sorted(p)): every.get(p) for p in dup if p in every}
        if any(d is None for d in dups.values()):
            result[label] = {"near_duplicates": dups, "pass": False}
            continue
        others = sorted((d, " | ".join(sorted(p))) for p, d in dist.items() if p not in dup)
        if not dups or not others:
            result[label] = {"skipped": "no pairs"}
            continue
        margin = others[0][0] - max(dups.values())
        result[label] = {
            "near_duplicates": dups,
            "closest_other": others[:3],
            "margin": margin,
            "pass": margin > 0,
        }
    result["pass"] = result["near_duplicate_of"].get("pass", False)
    return result


def check_transitions(videos: list[Video], rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    column = find_column(rows, "transition_suspect")
    if column is None:
        return {"skipped": "no transition_suspect column"}
    pos = [v for v in videos if v.has_transition]
    neg = [v for v in videos if not v.has_transition]
    hits = [v.name for v in pos if rows[v.name].get(column)]
    misses = [v.name for v in pos if not rows[v.name].get(column)]
    flagged_neg = [v.name for v in neg if rows[v.name].get(column)]
    return {
        "column": column,
        "recall": len(hits) / len(pos) if pos else None,
        "hits": len(hits),
        "positives": len(pos),
        "missed": misses,
        "flagged_without_transition": flagged_neg,
        "negatives": len(neg),
        "pass": not misses,
    }


# ----------------------------------------------------------------------------- main


def summarise_perf(videos: list[Video], perf: dict[str, dict[str, Any]]) -> dict[str, Any]:
    groups: dict[str, Any] = {}
    for group in ("640x360", "1080p", "other", "all"):
        members = [v for v in videos if v.name in perf and (group == "all" or v.group == group)]
        if not members:
            continue
        tot = {
            k: sum(perf[v.name][k] for v in members)
            for k in (
                "score_cpu_s",
                "score_wall_s",
                "ffmpeg_cpu_s",
                "ffmpeg_wall_s",
                "pyav_cpu_s",
                "pyav_wall_s",
            )
        }
        video_s = sum(v.duration_s for v in members)
        parts: dict[str, float] = {}
        for v in members:
            for k, val in perf[v.name].items():
                if k.startswith("part:"):
                    parts[k[5:]] = parts.get(k[5:], 0.0) + val
        per_video = sorted(
            perf[v.name]["score_cpu_s"] / perf[v.name]["ffmpeg_cpu_s"] for v in members
        )
        groups[group] = {
            "per_video_ratio_median": per_video[len(per_video) // 2],
            "per_video_ratio_max": per_video[-1],
            "videos": len(members),
            "video_s": video_s,
            **tot,
            "score_video_s_per_cpu_s": video_s / tot["score_cpu_s"],
            "ffmpeg_video_s_per_cpu_s": video_s / tot["ffmpeg_cpu_s"],
            "pyav_video_s_per_cpu_s": video_s / tot["pyav_cpu_s"],
            "ratio_cpu_vs_ffmpeg": tot["score_cpu_s"] / tot["ffmpeg_cpu_s"],
            "ratio_cpu_vs_pyav": tot["score_cpu_s"] / tot["pyav_cpu_s"],
            "ratio_wall_vs_ffmpeg": tot["score_wall_s"] / tot["ffmpeg_wall_s"],
            "parts_cpu_s": parts,
            "target": TARGETS.get(group),
        }
        if group in TARGETS:
            groups[group]["pass"] = groups[group]["ratio_cpu_vs_ffmpeg"] <= TARGETS[group]
    return groups


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "videos")
    ap.add_argument("--videos", default="", help="comma-separated names (path or file name)")
    ap.add_argument(
        "--scorers",
        default="",
        help="comma-separated scorers for the checks (default: every registered scorer that loads)",
    )
    ap.add_argument(
        "--profile",
        type=int,
        default=0,
        help="cProfile the default set on the first N videos and print the top",
    )
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "scores.json")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="OpenCV/torch threads, as one engine worker gets them: cores / workers, and a "
        "default run has one worker per core (default 1)",
    )
    args = ap.parse_args()
    import cv2
    import torch

    cv2.setNumThreads(args.threads)
    torch.set_num_threads(args.threads)
    print(f"OpenCV/torch threads: {args.threads} (as in an engine worker)")
    if not (args.data / "ground_truth.json").is_file():
        print(f"error: no ground_truth.json in {args.data}", file=sys.stderr)
        return 2
    only = [s.strip() for s in args.videos.split(",") if s.strip()] or None
    videos = load_videos(args.data, only)
    if not videos:
        print(f"error: none of {only} are in ground_truth.json", file=sys.stderr)
        return 2
    print_ground_truth(videos)

    usable = loadable_scorers(list(SCORERS))
    wanted = [s for s in args.scorers.split(",") if s] or list(SCORERS)
    default = [s for s in DEFAULT_SCORERS if s in usable]
    extra = [s for s in wanted if s in usable and s not in default]
    print(f"default scorer set (timed): {default}; extra scorers: {extra}\n")

    sets = {"default": default, **({"all": default + extra} if extra else {})}
    last = list(sets)[-1]  # the widest set: its rows feed the quality checks

    # Floors first, before any scorer loads: torch/onnxruntime thread pools, once created, can
    # spin and bill CPU to later measurements in this process.
    floors: dict[str, tuple[dict[str, float], dict[str, float]]] = {}
    for v in videos:
        path = args.data / v.name
        ffmpeg_floor(path)  # warm the page cache so no method pays for the first read
        floors[v.name] = (ffmpeg_floor(path), pyav_floor(path))
        ff, pa_ = floors[v.name]
        print(f"  {v.name}: ffmpeg {ff['cpu_s']:.2f} cpu-s, pyav {pa_['cpu_s']:.2f} cpu-s")

    # Sets run one after the other, the default set first, for the same reason.
    stages: dict[str, ScoreStage] = {}
    setup_cpu: dict[str, float] = {}
    rows: dict[str, dict[str, Any]] = {}
    perf: dict[str, dict[str, dict[str, Any]]] = {label: {} for label in sets}
    profile_text = ""
    for label, names in sets.items():
        stages[label] = stage = ScoreStage(scorers=names)
        c0 = time.process_time()
        stage.setup()
        setup_cpu[label] = time.process_time() - c0
        timer = Timed(stage)
        # One untimed call so first-call costs (lazy imports, ONNX/OpenCV warm-up) are not
        # billed to whichever video happens to come first.
        timer.run(videos[0], args.data / videos[0].name)
        for v in videos:
            out, timing = timer.run(v, args.data / v.name)
            if out.get("score_errors") or out.get("status") == "error":
                print(f"  {v.name} [{label}]: {out.get('score_errors') or out.get('error')}")
            if label == last:
                rows[v.name] = out
            ff, pa_ = floors[v.name]
            perf[label][v.name] = {
                "group": v.group,
                "video_s": v.duration_s,
                "score_cpu_s": timing["cpu_s"],
                "score_wall_s": timing["wall_s"],
                "ffmpeg_cpu_s": ff["cpu_s"],
                "ffmpeg_wall_s": ff["wall_s"],
                "pyav_cpu_s": pa_["cpu_s"],
                "pyav_wall_s": pa_["wall_s"],
                **{
                    f"part:{k[:-6]}": val
                    for k, val in timing.items()
                    if k.endswith("_cpu_s") and k != "cpu_s"
                },
            }
            print(
                f"  {v.name} [{label}]: {timing['cpu_s']:.2f} cpu-s / {timing['wall_s']:.2f} s",
                flush=True,
            )
        if label == "default" and args.profile:
            profile_text = profile(timer, videos[: args.profile], args.data)

    checks = {
        "camera": check_camera(videos, rows),
        "text_area": check_text(videos, rows, stages[last], args.data),
        "phash": check_phash(videos, rows),
        "transition_suspect": check_transitions(videos, rows),
    }
    report_checks(checks)
    groups = {label: summarise_perf(videos, perf[label]) for label in sets}
    for label in sets:
        report_perf(label, groups[label], sets[label], setup_cpu[label])

    if profile_text:
        print("\n## Profile (tottime, default set)\n\n```\n" + profile_text + "```")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    serial_rows = {k: {c: r.get(c) for c in stages[last].outputs()} for k, r in rows.items()}
    args.out.write_text(
        json.dumps(
            {
                "default_scorers": default,
                "scorer_sets": sets,
                "setup_cpu_s": setup_cpu,
                "checks": checks,
                "performance": groups,
                "per_video": perf,
                "scores": serial_rows,
                "profile": profile_text,
            },
            indent=1,
            default=str,
        )
    )
    print(f"\nwrote {args.out}")
    return 0


def profile(timer: Timed, videos: list[Video], data: Path) -> str:
    """cProfile text (top 15 by own time) of scoring ``videos`` with ``timer``'s stage."""
    prof = cProfile.Profile()
    prof.enable()
    for v in videos:
        timer.run(v, data / v.name)
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(15)
    return buf.getvalue()


def _verdict(check: dict[str, Any]) -> str:
    if "skipped" in check:
        return f"SKIPPED ({check['skipped']})"
    return "PASS" if check.get("pass") else "FAIL"


def report_checks(checks: dict[str, Any]) -> None:
    print("\n## Quality checks\n")
    cam = checks["camera"]
    print(f"- camera static vs moving: {_verdict(cam)}", end="")
    if "items" in cam:
        print(f" ({cam['agree']}/{cam['total']} agree)")
        for e in cam["items"] + cam["ambiguous"]:
            mark = {True: "ok", False: "WRONG"}.get(e.get("agree"), "ambiguous truth")
            print(
                f"  - {e['video']}: predicted {e['predicted']} ({e['conf']}), "
                f"truth '{str(e['truth'])[:50]}' -> {mark}"
            )
    else:
        print()
    txt = checks["text_area"]
    print(f"- text area > {TEXT_AREA_THRESHOLD} iff burned-in text: {_verdict(txt)}", end="")
    if "items" in txt:
        print(f" ({txt['ok']}/{txt['total']} correct; null: {txt['null']})")
        print(
            f"  legible text the ground truth does not list: {len(txt['unlisted_text'])} "
            f"clips; without them: {'PASS' if txt['pass_except_unlisted_text'] else 'FAIL'}"
        )
        for e in txt["items"]:
            wm = f" [{', '.join(e['watermark'])}]" if e["watermark"] else ""
            print(
                f"  - {e['video']}: {e['kind']}, {txt['column']}={e[txt['column']]}"
                f" -> {e['ok']}{wm}" + (f" reads {e['reads'][:60]!r}" if e.get("reads") else "")
            )
    else:
        print()
    ph = checks["phash"]
    print(f"- pHash near-duplicates separable: {_verdict(ph)}")
    for label in ("near_duplicate_of", "plus_kind_text"):
        sub = ph.get(label)
        if sub and "skipped" in sub:
            print(f"  - {label}: skipped ({sub['skipped']})")
        if sub and "margin" in sub:
            dups = ", ".join(f"{k}: {d:.2f}" for k, d in sub["near_duplicates"].items())
            close = ", ".join(f"{p}: {d:.2f}" for d, p in sub["closest_other"])
            print(
                f"  - {label}: near-dup {dups}; closest others {close}; "
                f"margin {sub['margin']:.2f} bits -> {'separable' if sub['pass'] else 'NOT'}"
            )
    tr = checks["transition_suspect"]
    print(f"- transition_suspect recall: {_verdict(tr)}", end="")
    if "recall" in tr:
        print(
            f" ({tr['hits']}/{tr['positives']} = {tr['recall']:.2f}; missed {tr['missed']}; "
            f"flagged on {len(tr['flagged_without_transition'])}/{tr['negatives']} without)"
        )
    else:
        print()


def report_perf(label: str, groups: dict[str, Any], names: list[str], setup_cpu: float) -> None:
    print(f"\n## Performance, {label} set ({', '.join(names)}; setup {setup_cpu:.2f} cpu-s)\n")
    print(
        "| group | videos | video s | scorers cpu s | wall s | ffmpeg floor cpu s | "
        "PyAV decode cpu s | scorers vid-s/cpu-s | ffmpeg vid-s/cpu-s | "
        "ratio cpu vs ffmpeg | per-video median / max | ratio cpu vs PyAV | "
        "ratio wall vs ffmpeg | target |"
    )
    print("|" + "---|" * 14)
    for group, g in groups.items():
        target = f"<= {g['target']}x: {'PASS' if g['pass'] else 'FAIL'}" if g["target"] else ""
        print(
            f"| {group} | {g['videos']} | {g['video_s']:.1f} | {g['score_cpu_s']:.2f} | "
            f"{g['score_wall_s']:.2f} | {g['ffmpeg_cpu_s']:.2f} | {g['pyav_cpu_s']:.2f} | "
            f"{g['score_video_s_per_cpu_s']:.1f} | {g['ffmpeg_video_s_per_cpu_s']:.1f} | "
            f"{g['ratio_cpu_vs_ffmpeg']:.2f}x | {g['per_video_ratio_median']:.2f}x / "
            f"{g['per_video_ratio_max']:.2f}x | {g['ratio_cpu_vs_pyav']:.2f}x | "
            f"{g['ratio_wall_vs_ffmpeg']:.2f}x | {target} |"
        )
    print("\nCPU seconds by part (decode+sample includes colour conversion/scaling):\n")
    for group, g in groups.items():
        parts = ", ".join(
            f"{k} {v:.2f}" for k, v in sorted(g["parts_cpu_s"].items(), key=lambda kv: -kv[1])
        )
        print(f"- {group}: {parts}")


if __name__ == "__main__":
    sys.exit(main())
