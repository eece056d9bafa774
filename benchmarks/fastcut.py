"""Fast-cut footage: the hybrid detector against one full TransNetV2 pass, on a montage.

Usage::

    python benchmarks/fastcut.py [--data ../shared/data/videos] [--frames 1500] [--seed 0]

Music videos, trailers and ads cut every few frames, so nearly every frame is near a cut and the
hybrid detector's model windows could cover the whole video. This builds such a video from the
shared real videos with ffmpeg: shots of 4 to 40 frames (uniformly drawn), each from a random
place in a random video other than the previous shot's, scaled to 640x360 at 25 fps and encoded
with x264 (veryfast, crf 18). The cuts are known by construction (the first frame of each shot).

Then, in this process, each detector built once (model load not timed, as in a stage):

* ``clipsieve hybrid`` (the default detector);
* ``clipsieve transnet``: TransNetV2 over the whole video in the package's windows.

Printed: CPU seconds (this process, all threads), wall seconds, F1 (+-2 frames, as
``benchmarks/shots.py``), and the hybrid/transnet CPU ratio. Targets (issue 19): the ratio at
most 1.2 and the hybrid's F1 at least the full pass's. Results go to
``benchmarks/results/fastcut.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

WIDTH, HEIGHT, FPS = 640, 360, 25


def sources(data: Path) -> list[Path]:
    """The shared videos long enough to take shots from (at least 2 s)."""
    truth = json.loads((data / "ground_truth.json").read_text())["videos"]
    return [data / name for name, v in truth.items() if int(v.get("decoded_frames") or 0) >= 50]


def build_montage(data: Path, out: Path, frames: int, seed: int) -> list[int]:
    """Write the montage to ``out``; return its cuts (first frame of every shot but the first)."""
    import numpy as np

    from clipsieve.media.ffmpeg import ffmpeg_exe
    from clipsieve.shots.decode import FrameReader

    rng = random.Random(seed)
    videos = sources(data)
    lengths = {v: len(list(FrameReader(str(v), size=(16, 9)))) for v in videos}
    cmd = [ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24"]
    cmd += ["-s", f"{WIDTH}x{HEIGHT}", "-r", str(FPS), "-i", "-", "-c:v", "libx264"]
    cmd += ["-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", str(out)]
    encoder = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    assert encoder.stdin is not None
    cuts: list[int] = []
    written, previous = 0, None
    while written < frames:
        video = rng.choice([v for v in videos if v != previous])
        length = min(rng.randint(4, 40), frames - written)
        start = rng.randint(0, lengths[video] - length)
        reader = FrameReader(
            str(video), size=(WIDTH, HEIGHT), start_frame=start, end_frame=start + length
        )
        shot = [np.ascontiguousarray(image) for _, image in reader]
        if len(shot) < length:
            continue
        if written:
            cuts.append(written)
        for image in shot:
            encoder.stdin.write(image.tobytes())
        written += length
        previous = video
    encoder.stdin.close()
    if encoder.wait() != 0:
        raise SystemExit("ffmpeg could not encode the montage")
    return cuts


def detect(name: str, video: Path) -> tuple[list[int], float, float]:
    """``(cuts, CPU seconds, wall seconds)`` of a clipsieve detector built once."""
    from clipsieve.shots.detectors import get_detector

    detector = get_detector(name)
    load = getattr(detector, "load", None)
    if callable(load):
        load()
    cpu, wall = time.process_time(), time.perf_counter()
    result = detector.detect(video)
    return list(result.cuts), time.process_time() - cpu, time.perf_counter() - wall


def main(argv: list[str] | None = None) -> int:
    from shots import Truth, score_video

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared/data/videos")
    parser.add_argument("--frames", type=int, default=1500, help="montage length in frames")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/fastcut.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "montage.mp4"
        cuts = build_montage(args.data, video, args.frames, args.seed)
        truth = Truth(name="montage", frames=args.frames, height=HEIGHT, cuts=cuts, gradual=[])
        rows: dict[str, Any] = {}
        for name in ("hybrid", "transnet"):
            found, cpu, wall = detect(name, video)
            score = score_video(truth, found)
            rows[name] = {
                "cpu_s": round(cpu, 2),
                "wall_s": round(wall, 2),
                "precision": round(score.precision, 3),
                "recall": round(score.recall, 3),
                "f1": round(score.f1, 3),
                "cuts": len(found),
            }
    ratio = rows["hybrid"]["cpu_s"] / rows["transnet"]["cpu_s"]
    print(f"montage: {args.frames} frames, {len(cuts)} cuts (shots of 4-40), seed {args.seed}")
    print("| detector | CPU s | wall s | P | R | F1 | cuts |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        print(
            f"| clipsieve {name} | {r['cpu_s']} | {r['wall_s']} | {r['precision']} | "
            f"{r['recall']} | {r['f1']} | {r['cuts']} |"
        )
    print(f"hybrid / full TransNetV2 pass, CPU: {ratio:.2f}x (target <= 1.2x)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {"frames": args.frames, "cuts": len(cuts), "seed": args.seed, "detectors": rows}
    args.out.write_text(json.dumps({**result, "cpu_ratio": round(ratio, 3)}, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
