"""How well perceptual (pHash) and semantic (embedding) dedup separate real near-duplicates.

Data: ``../shared/data/videos`` (or ``--data``) with ``ground_truth.json``. Near-duplicate pairs
are the ``near_duplicate_of`` entries plus pairs the ``kind`` text names "near-duplicate of X"
(e.g. a copy with every 3rd frame dropped). Every other pair of videos is a non-duplicate.

Each whole video is scored once through the real scorers (``clipsieve.score`` ``phash`` and
``embed`` via the frame sampler, frames placed uniformly), then for every pair:

* pHash, as ``clipsieve dedup`` computes it: mean Hamming distance over frame positions where
  both frames are informative (degenerate flat/black-frame hashes ignored), and, for comparison,
  the naive mean over all frames;
* the same, smallest over the four quarter turns of one side's hashes
  (:func:`clipsieve.select.dedup.rotate_hashes`; ``clipsieve dedup``'s default), which catches
  copies stored with a different display rotation;
* semantic: cosine similarity of the mean-pooled EfficientNet-Lite0 embeddings.

Reported per measure: the near-duplicate values, the distribution of all other pairs
(min/percentiles), the margin between the worst near-duplicate and the closest other pair
(separable when > 0), and the best threshold (midpoint of the gap when separable, else the
threshold with the fewest errors). Results go to ``benchmarks/results/dedup.json``.

Run: ``.venv/bin/python benchmarks/dedup.py [--data DIR] [--frames 8]``
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from clipsieve.score.phash import to_unsigned
from clipsieve.score.stage import ScoreStage
from clipsieve.select.dedup import (
    MIN_INFORMATIVE_BITS,
    hash_matrix,
    phash_distances,
    rotate_hashes,
)

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "videos"


def near_duplicate_pairs(gt: dict[str, Any]) -> set[frozenset[str]]:
    """Pairs from ``near_duplicate_of`` and from "near-duplicate of X" in the ``kind`` text."""
    names = set(gt)
    pairs: set[frozenset[str]] = set()
    for name, entry in gt.items():
        other = entry.get("near_duplicate_of")
        if other in names:
            pairs.add(frozenset((name, other)))
        m = re.search(r"near-duplicate of ([\w./-]+\.\w+)", str(entry.get("kind", "")))
        if m and m.group(1).rstrip(".") in names:
            pairs.add(frozenset((name, m.group(1).rstrip("."))))
    return pairs


def score_videos(data: Path, names: list[str], frames: int) -> dict[str, dict[str, Any]]:
    """pHash list and embedding of each whole video through the real scorers."""
    stage = ScoreStage(
        scorers=["phash", "embed"],
        scorer_params={"phash": {"count": frames}, "embed": {"count": frames}},
    )
    stage.setup()
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        row = {"clip_id": name, "video_id": name, "path": str(data / name), "fps": None}
        start = time.perf_counter()
        result = stage.process_row(row)
        result["seconds"] = time.perf_counter() - start
        out[name] = result
        print(f"  scored {name} in {result['seconds']:.1f}s", file=sys.stderr)
    return out


def separation(
    dups: dict[str, float], others: dict[str, float], higher_is_closer: bool
) -> dict[str, Any]:
    """Margin and best threshold between near-duplicate values and all other pairs."""
    sign = -1.0 if higher_is_closer else 1.0  # work in "distance" direction
    d = np.array([sign * v for v in dups.values()])
    o = np.array([sign * v for v in others.values() if np.isfinite(v)])
    worst_dup, closest_other = float(d.max()), float(o.min())
    margin = closest_other - worst_dup
    if margin > 0:
        threshold, errors = (worst_dup + closest_other) / 2, 0
    else:
        candidates = np.unique(np.concatenate([d, o]))
        errs = [int((d > t).sum() + (o <= t).sum()) for t in candidates]
        best = int(np.argmin(errs))
        threshold, errors = float(candidates[best]), errs[best]
    closest = sorted(others.items(), key=lambda kv: sign * kv[1])[:5]
    return {
        "near_duplicates": dups,
        "others_count": len(o),
        "others_percentiles": {
            f"p{p}": float(sign * np.percentile(o, p)) for p in (0, 1, 5, 25, 50)
        },
        "closest_others": dict(closest),
        "margin": float(margin),
        "separable": bool(margin > 0),
        "best_threshold": float(sign * threshold),
        "errors_at_best": errors,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--frames", type=int, default=8, help="frames per video for both hashes")
    parser.add_argument("--cache", type=Path, help="reuse/save the per-video scores (JSON)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "dedup.json")
    args = parser.parse_args()
    gt = json.loads((args.data / "ground_truth.json").read_text())["videos"]
    names = sorted(gt)
    dup_pairs = near_duplicate_pairs(gt)
    if args.cache and args.cache.is_file():
        scores = json.loads(args.cache.read_text())
    else:
        scores = score_videos(args.data, names, args.frames)
        if args.cache:
            args.cache.write_text(json.dumps(scores))
    usable = [n for n in names if scores[n].get("phash") and scores[n].get("embedding")]
    for n in names:
        if n not in usable:
            print(f"  skipped {n}: {scores[n].get('score_errors')}", file=sys.stderr)

    hashes, mask = hash_matrix([scores[n]["phash"] for n in usable], args.frames)
    informative = phash_distances(hashes, mask, hashes, mask)
    turned = np.min(
        [phash_distances(hashes, mask, rotate_hashes(hashes, k), mask) for k in range(4)], axis=0
    )
    full = np.ones_like(mask)
    naive = phash_distances(hashes, full, hashes, full)
    vectors = np.array([scores[n]["embedding"] for n in usable], dtype=np.float64)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    cosine = vectors @ vectors.T

    measures: dict[str, tuple[np.ndarray, bool]] = {
        "phash_informative": (informative, False),
        "phash_informative_any_rotation": (np.minimum(turned, turned.T), False),
        "phash_naive": (naive, False),
        "semantic_cosine": (cosine, True),
    }
    results: dict[str, Any] = {}
    for label, (matrix, higher) in measures.items():
        dups, others = {}, {}
        for (i, a), (j, b) in itertools.combinations(enumerate(usable), 2):
            key = f"{a} ~ {b}"
            (dups if frozenset((a, b)) in dup_pairs else others)[key] = float(matrix[i, j])
        results[label] = separation(dups, others, higher)

    degenerate = {n: int((~mask[k]).sum()) for k, n in enumerate(usable) if (~mask[k]).any()}
    bits = [(to_unsigned(h)).bit_count() for n in usable for h in scores[n]["phash"]]
    report = {
        "videos": len(usable),
        "frames_per_video": args.frames,
        "near_duplicate_pairs": sorted(" ~ ".join(sorted(p)) for p in dup_pairs),
        "pairs_total": len(usable) * (len(usable) - 1) // 2,
        "min_informative_bits": MIN_INFORMATIVE_BITS,
        "degenerate_frames": degenerate,
        "hash_set_bits": {str(k): bits.count(k) for k in sorted(set(bits))},
        "seconds_per_video": float(np.mean([scores[n]["seconds"] for n in usable])),
        "measures": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print_report(report)
    return 0


def print_report(report: dict[str, Any]) -> None:
    print(f"# dedup separation on {report['videos']} videos ({report['pairs_total']} pairs)")
    print(f"near-duplicate pairs: {', '.join(report['near_duplicate_pairs'])}")
    print(f"degenerate (flat) frame hashes ignored: {report['degenerate_frames'] or 'none'}")
    print(
        "| measure | near-dup values | closest other | p1 / p5 / p50 others | margin | "
        "best threshold | errors |"
    )
    print("|---|---|---|---|---|---|---|")
    for label, r in report["measures"].items():
        dups = ", ".join(f"{v:.3f}" for v in r["near_duplicates"].values())
        closest_key, closest = next(iter(r["closest_others"].items()))
        pct = r["others_percentiles"]
        print(
            f"| {label} | {dups} | {closest:.3f} ({closest_key}) | {pct['p1']:.3f} / "
            f"{pct['p5']:.3f} / {pct['p50']:.3f} | {r['margin']:.3f} | "
            f"{r['best_threshold']:.3f} | {r['errors_at_best']} |"
        )


if __name__ == "__main__":
    sys.exit(main())
