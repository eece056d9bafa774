"""Precision and recall of the offline content detectors, and what they cost.

    python benchmarks/content.py [--data ../shared/data/videos] [--cases DIR] [--json OUT]

Two sets:

* **synthetic**: the ffmpeg-made cases of :mod:`clipsieve.testing.content_cases` (split screens,
  picture-in-picture, subtitles, scene text panned with the picture, stills with a moving sticker
  or caption, Ken Burns zoom and pan, corner logos, and natural-looking negatives);
* **real**: the 46 shared dev videos, one window each (the middle of its longest shot, at most
  6 s), labelled by looking (``benchmarks/content_labels.json`` says how).

A detector "fires" by the rule in :data:`RULES` (the booleans as they are; ratios above a small
area). Labels that are null for a case are left out of that detector's scores. Cost, on each
set: the seconds of ``--scorers content`` alone, of the default scorer set, and of both together
(one decode) on the same clips, interleaved and repeated (``--repeats``, medians), as wall time
and as CPU time of the process (every thread: the text detector's ONNX Runtime uses all cores).
The ratios are what to read on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from clipsieve.score.names import DEFAULT_SCORERS  # noqa: E402
from clipsieve.score.stage import ScoreStage  # noqa: E402
from clipsieve.table import CLIP_SCHEMA, rows_to_table  # noqa: E402
from clipsieve.testing.content_cases import CASES, DETECTORS, make_content_cases  # noqa: E402

HERE = Path(__file__).resolve().parent
LABELS = HERE / "content_labels.json"
DEFAULT_DATA = HERE.parents[1] / "shared" / "data" / "videos"

RULES: dict[str, Callable[[dict[str, Any]], bool]] = {
    "overlay_text": lambda r: (r["overlay_text_ratio"] or 0) >= 0.002,
    "scene_text": lambda r: (r["scene_text_ratio"] or 0) >= 0.002,
    "split_screen": lambda r: bool(r["split_screen"]),
    "pip": lambda r: bool(r["pip"]),
    "still_image": lambda r: (r["still_area_frac"] or 0) >= 0.5,
    "ken_burns": lambda r: bool(r["ken_burns"]),
    "logo": lambda r: (r["logo_area"] or 0) >= 0.001,
}


def score_rows(rows: list[dict[str, Any]], scorers: list[str]) -> tuple[list[dict], float, float]:
    """Score ``rows`` one at a time; the rows back, the wall and the CPU seconds it took."""
    stage = ScoreStage(scorers=scorers)
    stage.setup()
    out, started, cpu = [], time.perf_counter(), time.process_time()
    for row in rows:
        out.append(stage.process(rows_to_table([row], CLIP_SCHEMA)).to_pylist()[0])
    return out, time.perf_counter() - started, time.process_time() - cpu


def cost(rows: list[dict[str, Any]], repeats: int) -> dict[str, Any]:
    """What the detectors cost on ``rows``: content alone, the default set, both (one decode),
    the three interleaved and each timed ``repeats`` times (medians), wall and CPU."""
    configs = {"content": ["content"], "default": list(DEFAULT_SCORERS),
               "both": [*DEFAULT_SCORERS, "content"]}  # fmt: skip
    wall: dict[str, list[float]] = {name: [] for name in configs}
    cpu: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(repeats):
        for name, scorers in configs.items():
            _, seconds, cpu_seconds = score_rows(rows, scorers)
            wall[name].append(seconds)
            cpu[name].append(cpu_seconds)
    out: dict[str, Any] = {"clips": len(rows)}
    for kind, times in (("wall", wall), ("cpu", cpu)):
        content_s, default_s, both_s = (statistics.median(times[n]) for n in configs)
        out[kind] = {
            "content_s": round(content_s, 2), "default_s": round(default_s, 2),
            "with_default_s": round(both_s, 2), "alone_ratio": round(content_s / default_s, 3),
            "added_ratio": round((both_s - default_s) / default_s, 3),
        }  # fmt: skip
    return out


def show_cost(title: str, measured: dict[str, Any]) -> None:
    for kind in ("wall", "cpu"):
        c = measured[kind]
        print(
            f"{kind} cost on the {measured['clips']} {title} clips: default scorers "
            f"{c['default_s']} s; content alone {c['content_s']} s ({c['alone_ratio']:.2f}x, its "
            f"own decode); default + content {c['with_default_s']} s: the detectors add "
            f"{c['added_ratio']:.2f}x (one decode for all)"
        )


def metrics(truths: list[dict[str, bool | None]], rows: list[dict[str, Any]]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for name in DETECTORS:
        tp = fp = fn = tn = 0
        misses: list[str] = []
        for truth, row in zip(truths, rows, strict=True):
            want = truth.get(name)
            if want is None:
                continue
            got = RULES[name](row)
            tp += want and got
            fp += got and not want
            fn += want and not got
            tn += not want and not got
            if want != got:
                misses.append(f"{row['clip_id']} ({'missed' if want else 'false alarm'})")
        table[name] = {
            "tp": tp, "fp": fp, "fn": fn, "tn": tn,
            "precision": tp / (tp + fp) if tp + fp else None,
            "recall": tp / (tp + fn) if tp + fn else None,
            "misses": misses,
        }  # fmt: skip
    return table


def synthetic(cases_dir: Path, repeats: int = 3) -> tuple[dict[str, Any], dict[str, Any]]:
    paths = make_content_cases(cases_dir)
    rows = [
        {"clip_id": c.name, "path": str(p), "status": "ok", "keep": True, "fps": 25.0}
        for c, p in zip(CASES, paths, strict=True)
    ]
    scored = score_rows(rows, ["content"])[0]
    return metrics([c.truth for c in CASES], scored), cost(rows, repeats)


def real(data: Path, repeats: int = 3) -> tuple[dict[str, Any], dict[str, Any]] | None:
    if not (data / "ground_truth.json").is_file():
        return None
    labels = json.loads(LABELS.read_text())["videos"]
    rows, truths = [], []
    for name, entry in sorted(labels.items()):
        start, end = entry["window"]
        rows.append({
            "clip_id": name, "source_path": str(data / name), "start_frame": start,
            "end_frame": end, "status": "ok", "keep": True,
        })  # fmt: skip
        truths.append(entry["kinds"])
    scored = score_rows(rows, ["content"])[0]
    return metrics(truths, scored), cost(rows, repeats)


def show(title: str, table: dict[str, Any]) -> None:
    print(f"\n{title}")
    print(f"{'detector':<14}{'tp':>4}{'fp':>4}{'fn':>4}{'tn':>4}  precision  recall  misses")
    for name in DETECTORS:
        m = table[name]

        def fmt(x: float | None) -> str:
            return "   n/a" if x is None else f"{x:6.2f}"

        print(
            f"{name:<14}{m['tp']:>4}{m['fp']:>4}{m['fn']:>4}{m['tn']:>4}  {fmt(m['precision'])}"
            f"     {fmt(m['recall'])}  {', '.join(m['misses'][:4])}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cases", type=Path, default=None, help="Folder for the synthetic cases.")
    parser.add_argument("--json", type=Path, default=None, help="Write the results here.")
    parser.add_argument("--repeats", type=int, default=3, help="Timings per configuration.")
    args = parser.parse_args()
    cases = args.cases or Path(tempfile.mkdtemp(prefix="clipsieve-content-cases-"))
    synth, synth_cost = synthetic(cases, args.repeats)
    show(f"synthetic cases ({len(CASES)})", synth)
    print()
    show_cost("synthetic", synth_cost)
    found = real(args.data, args.repeats)
    if found is None:
        print(f"\nreal set: {args.data} has no ground_truth.json; skipped")
    else:
        show("real dev videos (46, benchmarks/content_labels.json)", found[0])
        print()
        show_cost("real", found[1])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak memory {peak:.0f} MB")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "synthetic": synth,
                    "cost": synth_cost,
                    "real": found and found[0],
                    "real_cost": found and found[1],
                },
                indent=1,
            )  # fmt: skip
        )


if __name__ == "__main__":
    main()
