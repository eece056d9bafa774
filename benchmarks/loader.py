"""The training loader against the decode floor, and its memory over many clips.

    python benchmarks/loader.py [--clips 10000] [--frames 8] [--size 224]

Builds a WebDataset export of ``--clips`` samples (the cut clips of the built-in sample set,
repeated under new keys, in shards of 500), then measures in the same run:

* **decode floor**: PyAV decoding every frame of the distinct clips in one process with its
  decoder threads (on a small machine that already uses every core), no resizing (clips/s,
  frames/s);
* **loader, 2 workers**: ``ClipDataset`` through a ``DataLoader(num_workers=2)`` over the first
  2,000 samples: clips/s and frames/s delivered (``num_frames`` resized frames per clip), and
  the ratio to the floor;
* **memory over all samples**: one process reading every sample; resident memory after each
  thousand (it must stay flat: shards streamed, containers closed).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import av

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from torch.utils.data import DataLoader  # noqa: E402

from clipsieve.data import ClipDataset  # noqa: E402
from clipsieve.export.webdataset import WebDatasetWriter, make_sample  # noqa: E402
from clipsieve.media.synth import make_sample_set  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def clips_of(scratch: Path) -> list[Path]:
    """The sample set's videos cut into 2-4 s clips (ffmpeg stream copy at keyframes)."""
    import subprocess

    from clipsieve.media.ffmpeg import ffmpeg_exe

    samples = make_sample_set(scratch / "samples", scale="test")
    out = scratch / "clips"
    out.mkdir(exist_ok=True)
    clips = []
    for video in sorted(p for p in samples.paths.values() if p.suffix == ".mp4"):
        for start in (0, 3):
            clip = out / f"{video.stem}-{start}.mp4"
            done = subprocess.run(
                [ffmpeg_exe(), "-v", "error", "-y", "-ss", str(start), "-i", str(video), "-t",
                 "3", "-an", "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", str(clip)],
                capture_output=True,
            )  # fmt: skip
            if done.returncode == 0 and clip.stat().st_size > 1000:
                clips.append(clip)
    return clips


def build_export(clips: list[Path], samples: int, folder: Path) -> Path:
    writer = WebDatasetWriter(folder, shard_bytes=1 << 40, shard_count=500)
    for i in range(samples):
        clip = clips[i % len(clips)]
        row = {"clip_id": f"c{i:07d}", "keep": True, "status": "ok", "width": 320, "height": 180}
        writer.add(make_sample(row, str(clip), clip.stat().st_size, f"sample {i}"))
    writer.close()
    return folder


def decode_floor(clips: list[Path]) -> tuple[float, float]:
    frames, started = 0, time.perf_counter()
    for clip in clips:
        with av.open(str(clip)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for _ in container.decode(stream):
                frames += 1
    seconds = time.perf_counter() - started
    return len(clips) / seconds, frames / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=10_000)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--scratch", type=Path, default=None)
    args = parser.parse_args()
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="clipsieve-loader-"))
    clips = clips_of(scratch)
    export = build_export(clips, args.clips, scratch / "export")
    print(f"{len(clips)} distinct clips, {args.clips:,} samples in webdataset shards of 500")

    floor_clips, floor_frames = decode_floor(clips * 3)
    print(f"decode floor, one process: {floor_clips:.1f} clips/s ({floor_frames:.0f} frames/s)")

    dataset = ClipDataset(export, num_frames=args.frames, size=args.size)
    limit = min(2000, args.clips)
    loader = DataLoader(dataset, batch_size=None, num_workers=2, prefetch_factor=4)
    seen, started = 0, time.perf_counter()
    for _sample in loader:
        seen += 1
        if seen >= limit:
            break
    seconds = time.perf_counter() - started
    rate = seen / seconds
    print(
        f"ClipDataset, 2 workers: {rate:.1f} clips/s ({rate * args.frames:.0f} frames/s of "
        f"{args.size} px) = {rate / floor_clips:.2f}x the decode floor"
    )

    marks = []
    for i, _sample in enumerate(ClipDataset(export, num_frames=args.frames, size=args.size), 1):
        if i % 1000 == 0:
            marks.append(rss_mb())
    growth = marks[-1] - marks[0] if marks else 0.0
    print(
        "resident memory every 1,000 clips (one process): "
        + ", ".join(f"{m:.0f}" for m in marks)
        + f" MB; growth from the first thousand to the last: {growth:+.0f} MB"
    )


if __name__ == "__main__":
    main()
