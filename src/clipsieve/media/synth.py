"""The built-in sample set: small synthetic videos with known ground truth.

``clipsieve demo`` and the end-to-end tests need videos whose right answers are known exactly,
without downloading anything. Every video here is rendered by ffmpeg from its own ``lavfi``
sources (colorchart, SMPTE bars, mandelbrot, life, cellauto, gradients, perlin, ...), so:

- hard cuts join *different* sources, which any reasonable shot detector must find, and the cut
  frame is exact because every shot is trimmed by frame count at a constant 25 fps;
- the encoder uses a fixed GOP with scene-cut keyframes disabled, so cuts are not all keyframes
  (a detector or cutter that only looks at keyframes is caught out);
- there is a fade through black, a cross-dissolve, a still frame held for seconds, burned-in text
  (rendered with Pillow and overlaid, so no system font is needed), shots shorter than 2 s and a
  long take longer than 20 s (``demo``) or 10 s (``test``) for the length policy, a near-duplicate
  re-encode, an empty file and a truncated file;
- every random source gets a fixed seed, so the same frames come out every time.

``expected.json`` beside the videos records, per file name::

    kind                 "hard_cuts" | "long_take" | "gradual" | "static" | "text"
                         | "near_duplicate" | "empty" | "truncated"
    fps, width, height   stream properties (null for the broken files)
    num_frames           decoded frame count
    duration_s           num_frames / fps
    shots                [{"start": s, "end": e, "source": name}]  frames [s, e); two shots
                         joined by a dissolve overlap by the dissolve's frames
    hard_cuts            [frame]  first frame of the new shot
    gradual_transitions  [[first, last]]  frames where a fade/dissolve is in progress (inclusive)
    static_ranges        [[first, last]]  identical (frozen) frames, inclusive
    text_ranges          [[first, last]]  frames with burned-in text, inclusive
    texts                [str]  the text shown in each text range
    near_duplicate_of    file name of the original, or null
    expected_error       null for good files; "empty file" / "truncated file" for broken ones
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from clipsieve.media.ffmpeg import run_ffmpeg

Scale = Literal["demo", "test"]

SYNTH_VERSION = 1
FPS = 25
EXPECTED_NAME = "expected.json"

# lavfi sources, formatted with the frame size and rate.
# - Same frames on every run: every random source has a fixed seed and explicit colours
#   (gradients picks random colours otherwise; perlin needs random_mode=seed).
# - No glyphs: testsrc/testsrc2 burn in counters, which would be text that text_ranges miss.
# - Calm within a shot: life and cellauto change a lot from frame to frame, so they are smoothed
#   (temporal mix, blur) to keep a shot's frame difference far below the difference at a cut.
SOURCES: dict[str, str] = {
    "chart": (
        "colorchart=r={r}:patch_size=52x52:preset=reference,scale={w}x{h}"
        ",rotate=a=0.02*n:fillcolor=0x202020"
    ),
    "bars": "smptehdbars=s={w}x{h}:r={r},scroll=h=0.004",
    "mandelbrot": "mandelbrot=s={w}x{h}:r={r}",
    "mandel_deep": (
        "mandelbrot=s={w}x{h}:r={r}:start_x=-0.743643887037158:start_y=-0.131825904205312"
        ":start_scale=0.3:end_scale=0.01:end_pts=400:inner=period"
    ),
    "life": (
        "life=s={lw}x{lh}:r={r}:seed=7:mold=10:ratio=0.3:life_color=#00ff80"
        ":death_color=#802000:mold_color=#402060,scale={w}x{h}:flags=bicubic,tmix=frames=6"
    ),
    "cellauto": (
        "cellauto=s={w}x{h}:r={r}:rule=110:seed=3,gblur=sigma=3"
        ",colorchannelmixer=rr=0.15:gg=0.3:bb=1.0"
    ),
    "gradients": (
        "gradients=s={w}x{h}:r={r}:seed=5:speed=0.02:c0=#0a2a2a:c1=#40c080:c2=#f0a0c0:n=3"
    ),
    "gradients_warm": (
        "gradients=s={w}x{h}:r={r}:seed=11:speed=0.015:c0=#ff4000:c1=#ffd000:c2=#800040:n=3"
    ),
    "spiral": (
        "gradients=s={w}x{h}:r={r}:seed=21:speed=0.03:type=spiral"
        ":c0=#1020ff:c1=#ffff40:c2=#ff2080:c3=#20ff40:n=4"
    ),
    "perlin": (
        "perlin=s={w}x{h}:r={r}:random_mode=seed:seed=4,colorchannelmixer=rr=1.2:gg=1.0:bb=0.2"
    ),
    "smptebars": "smptebars=s={w}x{h}:r={r}",
    "grain": "color=c=0xb03020:s={w}x{h}:r={r},noise=alls=12:allf=t:all_seed=9",
}
# sources that render the same picture in every frame: their shots are static ranges
STILL_SOURCES = frozenset({"smptebars"})


@dataclass(frozen=True)
class Shot:
    """One shot: ``frames`` frames of a source, then ``hold`` copies of its last frame.

    ``text`` is ``(text, first, last)`` with frame indices inside the shot (inclusive).
    """

    source: str
    frames: int
    hold: int = 0
    text: tuple[str, int, int] | None = None

    @property
    def length(self) -> int:
        return self.frames + self.hold


@dataclass(frozen=True)
class Join:
    """How a shot is joined to the previous one: a hard cut, a fade through black, a dissolve.

    For ``fade`` the previous shot fades out over its last ``frames`` frames and this shot fades
    in over its first ``frames``; for ``dissolve`` the two overlap by ``frames`` frames.
    """

    kind: Literal["cut", "fade", "dissolve"] = "cut"
    frames: int = 0


CUT = Join()


@dataclass(frozen=True)
class VideoSpec:
    name: str
    kind: str
    shots: tuple[Shot, ...]
    joins: tuple[Join, ...]  # one per shot after the first

    def __post_init__(self) -> None:
        if len(self.joins) != len(self.shots) - 1:
            raise ValueError(f"{self.name}: need one join per shot boundary")


@dataclass
class SampleSet:
    """The generated files and their ground truth (the content of ``expected.json``)."""

    root: Path
    expected: dict[str, Any]
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def expected_path(self) -> Path:
        return self.root / EXPECTED_NAME

    def video(self, name: str) -> dict[str, Any]:
        return self.expected["videos"][name]

    def good(self) -> list[Path]:
        """Files that decode (expected_error is null), in name order."""
        return [p for n, p in sorted(self.paths.items()) if not self.video(n)["expected_error"]]

    def broken(self) -> list[Path]:
        """Files a probe must flag (empty or truncated), in name order."""
        return [p for n, p in sorted(self.paths.items()) if self.video(n)["expected_error"]]


def load_sample_set(root: Path) -> SampleSet:
    """Read a set written by :func:`make_sample_set` back from its ``expected.json``."""
    root = Path(root)
    expected = json.loads((root / EXPECTED_NAME).read_text(encoding="utf-8"))
    paths = {name: root / name for name in expected["videos"]}
    return SampleSet(root=root, expected=expected, paths=paths)


# ---------------------------------------------------------------------------- the two scales


def _specs(scale: Scale) -> list[VideoSpec]:
    """The videos of each scale: same structure, ``test`` is shorter (frame counts at 25 fps)."""
    demo = scale == "demo"

    def n(demo_frames: int, test_frames: int) -> int:
        return demo_frames if demo else test_frames

    return [
        VideoSpec(
            "cuts.mp4",
            "hard_cuts",
            (
                Shot("chart", n(100, 40)),
                Shot("mandelbrot", n(40, 30)),  # shorter than 2 s
                Shot("life", n(150, 50)),
                Shot("gradients", n(125, 45)),
                Shot("cellauto", n(110, 40)),
                Shot("bars", n(75, 35)),
            ),
            (CUT,) * 5,
        ),
        VideoSpec(
            "long_take.mp4",
            "long_take",
            (
                Shot("gradients_warm", n(600, 275)),  # 24 s / 11 s: longer than a 10 s maximum
                Shot("chart", n(150, 50)),
            ),
            (CUT,),
        ),
        VideoSpec(
            "fades.mp4",
            "gradual",
            (
                Shot("chart", n(125, 50)),
                Shot("spiral", n(150, 60)),
                Shot("life", n(150, 50)),
                Shot("bars", n(75, 40)),
            ),
            (Join("fade", n(20, 15)), Join("dissolve", n(25, 15)), CUT),
        ),
        VideoSpec(
            "static.mp4",
            "static",
            (
                Shot("mandelbrot", n(75, 25), hold=n(125, 100)),  # still frame held 5 s / 4 s
                Shot("perlin", n(100, 40)),
                Shot("chart", n(100, 40)),
            ),
            (CUT, CUT),
        ),
        VideoSpec(
            "text.mp4",
            "text",
            (
                Shot("gradients", n(150, 60), text=("SUMMER SALE 50% OFF", n(25, 10), n(124, 49))),
                Shot("mandelbrot", n(100, 40)),
                Shot("cellauto", n(150, 50), text=("clipsieve demo 2024", 0, n(149, 49))),
            ),
            (CUT, CUT),
        ),
        VideoSpec(
            "mixed.mp4",
            "hard_cuts",
            (
                Shot("spiral", n(125, 50)),
                Shot("grain", n(60, 30)),
                Shot("smptebars", n(50, 30)),
                Shot("life", n(200, 50)),
                Shot("perlin", n(60, 30)),
                Shot("mandel_deep", n(130, 40)),
            ),
            (CUT,) * 5,
        ),
    ]


SCALES = ("demo", "test")
SIZE = (320, 180)  # both scales: big enough for OCR and detectors, small enough to be quick
NEAR_DUP_OF = "cuts.mp4"
NEAR_DUP_NAME = "cuts_reencoded.mp4"
NEAR_DUP_SIZE = (256, 144)
TRUNCATE_FROM = "text.mp4"
TRUNCATE_FRACTION = 0.4
EMPTY_NAME = "empty.mp4"
TRUNCATED_NAME = "truncated.mp4"


def _encode_args(crf: int = 20, gop: int = 50) -> list[str]:
    """H.264 at constant 25 fps with a fixed GOP and no scene-cut keyframes, so cuts land
    mid-GOP; bitexact flags keep the bytes the same from run to run."""
    return [
        "-c:v", "libx264", "-preset", "veryfast", "-crf", str(crf),
        "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0",
        "-pix_fmt", "yuv420p", "-r", str(FPS), "-fps_mode", "cfr",
        "-an", "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact",
    ]  # fmt: skip


# ---------------------------------------------------------------------------- ground truth


def _ground_truth(spec: VideoSpec, width: int, height: int) -> dict[str, Any]:
    """Frame-exact truth for a spec, computed from the same numbers the filter graph uses."""
    shots: list[dict[str, Any]] = []
    cuts: list[int] = []
    gradual: list[list[int]] = []
    static: list[list[int]] = []
    text_ranges: list[list[int]] = []
    texts: list[str] = []
    start = 0
    for i, shot in enumerate(spec.shots):
        if i > 0:
            join = spec.joins[i - 1]
            if join.kind == "dissolve":
                start -= join.frames  # the two shots overlap
                gradual.append([start, start + join.frames - 1])
            elif join.kind == "fade":
                gradual.append([start - join.frames, start + join.frames - 1])
            else:
                cuts.append(start)
        if shot.source in STILL_SOURCES:
            static.append([start, start + shot.length - 1])
        elif shot.hold:
            # the last moving frame and its held copies are identical
            static.append([start + shot.frames - 1, start + shot.length - 1])
        if shot.text:
            text, first, last = shot.text
            text_ranges.append([start + first, start + last])
            texts.append(text)
        shots.append({"start": start, "end": start + shot.length, "source": shot.source})
        start += shot.length
    return {
        "kind": spec.kind,
        "fps": float(FPS),
        "width": width,
        "height": height,
        "num_frames": start,
        "duration_s": start / FPS,
        "shots": shots,
        "hard_cuts": cuts,
        "gradual_transitions": gradual,
        "static_ranges": static,
        "text_ranges": text_ranges,
        "texts": texts,
        "near_duplicate_of": None,
        "expected_error": None,
    }


def _broken_truth(kind: str, error: str) -> dict[str, Any]:
    return {
        "kind": kind,
        "fps": None,
        "width": None,
        "height": None,
        "num_frames": None,
        "duration_s": None,
        "shots": [],
        "hard_cuts": [],
        "gradual_transitions": [],
        "static_ranges": [],
        "text_ranges": [],
        "texts": [],
        "near_duplicate_of": None,
        "expected_error": error,
    }


# ---------------------------------------------------------------------------- rendering


def text_png(text: str, width: int, height: int, path: Path) -> None:
    """White text with a black outline on transparency, as wide as 80 % of the frame."""
    from PIL import Image, ImageDraw, ImageFont

    target_w = int(width * 0.8)
    size = max(8, height // 7)
    try:
        font = ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the small bitmap font
        font = ImageFont.load_default()
    draw = ImageDraw.Draw(Image.new("RGBA", (1, 1)))
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font, stroke_width=2)
    img = Image.new("RGBA", (right - left + 4, bottom - top + 4), (0, 0, 0, 0))
    ImageDraw.Draw(img).text(
        (2 - left, 2 - top), text, font=font, fill=(255, 255, 255, 255),
        stroke_width=2, stroke_fill=(0, 0, 0, 255),
    )  # fmt: skip
    if img.width > target_w:
        img = img.resize((target_w, max(1, img.height * target_w // img.width)))
    img.save(path)


def _filter_graph(spec: VideoSpec, width: int, height: int, text_inputs: dict[int, int]) -> str:
    """One ffmpeg filter graph that renders the whole video from lavfi sources."""
    chains: list[str] = []
    labels: list[str] = []
    for i, shot in enumerate(spec.shots):
        chain = SOURCES[shot.source].format(
            w=width, h=height, r=FPS, lw=max(8, width // 5), lh=max(8, height // 5)
        )
        chain += f",trim=end_frame={shot.frames},setpts=PTS-STARTPTS"
        if shot.hold:
            chain += f",tpad=stop_mode=clone:stop={shot.hold}"
        chain += ",format=yuv420p,setsar=1"
        if i > 0 and spec.joins[i - 1].kind == "fade":
            chain += f",fade=t=in:start_frame=0:nb_frames={spec.joins[i - 1].frames}"
        if i < len(spec.joins) and spec.joins[i].kind == "fade":
            nb = spec.joins[i].frames
            chain += f",fade=t=out:start_frame={shot.length - nb}:nb_frames={nb}"
        label = f"s{i}"
        if shot.text:
            _, first, last = shot.text
            chains.append(f"{chain}[b{i}]")
            chain = (
                f"[b{i}][{text_inputs[i]}:v]overlay=x=(W-w)/2:y=H-h-{height // 12}"
                f":enable='between(n,{first},{last})',format=yuv420p"
            )
        chains.append(f"{chain}[{label}]")
        labels.append(label)

    # dissolves merge neighbouring segments with xfade; the rest is one concat
    segments: list[str] = [labels[0]]
    seg_len = spec.shots[0].length
    for i in range(1, len(spec.shots)):
        join = spec.joins[i - 1]
        if join.kind == "dissolve":
            offset = (seg_len - join.frames) / FPS
            out = f"x{i}"
            chains.append(
                f"[{segments[-1]}][{labels[i]}]xfade=transition=fade"
                f":duration={join.frames / FPS}:offset={offset}[{out}]"
            )
            segments[-1] = out
            seg_len += spec.shots[i].length - join.frames
        else:
            segments.append(labels[i])
            seg_len = spec.shots[i].length
    if len(segments) > 1:
        joined = "".join(f"[{s}]" for s in segments)
        chains.append(f"{joined}concat=n={len(segments)}:v=1:a=0[out]")
    else:
        chains.append(f"[{segments[0]}]null[out]")
    return ";".join(chains)


def _render(spec: VideoSpec, out: Path, width: int, height: int, tmp: Path) -> None:
    inputs: list[str] = []
    text_inputs: dict[int, int] = {}
    for i, shot in enumerate(spec.shots):
        if shot.text:
            png = tmp / f"{out.stem}_text{i}.png"
            text_png(shot.text[0], width, height, png)
            text_inputs[i] = len(text_inputs)
            inputs += ["-i", str(png)]
    graph = _filter_graph(spec, width, height, text_inputs)
    total = sum(s.length for s in spec.shots) - sum(
        j.frames for j in spec.joins if j.kind == "dissolve"
    )
    run_ffmpeg(
        [*inputs, "-filter_complex", graph, "-map", "[out]", "-frames:v", str(total),
         *_encode_args(), str(out)],
        timeout_s=300, what=f"rendering sample {out.name}",
    )  # fmt: skip


def _reencode(src: Path, out: Path, size: tuple[int, int]) -> None:
    """A near-duplicate: same frames, other size and quality, other GOP."""
    run_ffmpeg(
        ["-i", str(src), "-vf", f"scale={size[0]}:{size[1]},setsar=1",
         *_encode_args(crf=34, gop=75), str(out)],
        timeout_s=300, what=f"re-encoding sample {out.name}",
    )  # fmt: skip


def make_sample_set(
    out_dir: Path, *, scale: Scale = "demo", workers: int | None = None
) -> SampleSet:
    """Write the sample videos and ``expected.json`` into ``out_dir``; return the set.

    ``demo``: 7 decodable videos, 154 s in all, plus an empty and a truncated file.
    ``test``: the same structure with shorter shots (about 57 s of video) for end-to-end tests.
    Existing files of the same names are overwritten.
    """
    if scale not in SCALES:
        raise ValueError(f"unknown sample scale {scale!r}: use 'demo' or 'test'")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    width, height = SIZE
    specs = _specs(scale)
    videos: dict[str, dict[str, Any]] = {}
    workers = workers or max(1, min(len(specs), os.cpu_count() or 1))

    with tempfile.TemporaryDirectory(prefix="clipsieve-synth-") as tmp_name:
        tmp = Path(tmp_name)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            jobs = [pool.submit(_render, s, out_dir / s.name, width, height, tmp) for s in specs]
            for job in jobs:
                job.result()
    for spec in specs:
        videos[spec.name] = _ground_truth(spec, width, height)

    _reencode(out_dir / NEAR_DUP_OF, out_dir / NEAR_DUP_NAME, NEAR_DUP_SIZE)
    dup = dict(videos[NEAR_DUP_OF])
    dup.update(
        kind="near_duplicate", width=NEAR_DUP_SIZE[0], height=NEAR_DUP_SIZE[1],
        near_duplicate_of=NEAR_DUP_OF,
    )  # fmt: skip
    videos[NEAR_DUP_NAME] = dup

    (out_dir / EMPTY_NAME).write_bytes(b"")
    videos[EMPTY_NAME] = _broken_truth("empty", "empty file")

    # the mp4 muxer writes the moov atom last, so the first 40 % has no index: undecodable
    data = (out_dir / TRUNCATE_FROM).read_bytes()
    (out_dir / TRUNCATED_NAME).write_bytes(data[: int(len(data) * TRUNCATE_FRACTION)])
    videos[TRUNCATED_NAME] = _broken_truth("truncated", "truncated file")

    expected = {
        "version": SYNTH_VERSION,
        "scale": scale,
        "fps": float(FPS),
        "videos": dict(sorted(videos.items())),
    }
    (out_dir / EXPECTED_NAME).write_text(json.dumps(expected, indent=2) + "\n", encoding="utf-8")
    return SampleSet(root=out_dir, expected=expected, paths={n: out_dir / n for n in videos})


def sample_names(scale: Scale = "demo") -> Sequence[str]:
    """File names a set of this scale contains (without generating it)."""
    names = [s.name for s in _specs(scale)] + [NEAR_DUP_NAME, EMPTY_NAME, TRUNCATED_NAME]
    return sorted(names)
