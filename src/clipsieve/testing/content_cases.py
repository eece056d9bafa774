"""Synthetic clips with known content kinds, rendered by ffmpeg, for the content detectors.

Each case is one short clip made from lavfi sources with ``hstack``/``vstack`` (split screen),
``overlay`` (picture-in-picture, opaque and see-through logos, burned-in subtitles),
``zoompan``/``crop`` over a still (Ken Burns, scene text that moves with the picture) and a
frozen frame with something small moving on it (a still image with motion). ``truth`` says,
per detector, whether the case shows that kind (None: not a fair question for that detector,
left out of its scores).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from clipsieve.media.ffmpeg import ffmpeg_exe
from clipsieve.media.synth import SOURCES, text_png

W, H, FPS = 640, 360, 25
DETECTORS = (
    "overlay_text",
    "scene_text",
    "split_screen",
    "pip",
    "still_image",
    "ken_burns",
    "logo",
)


@dataclass(frozen=True)
class ContentCase:
    name: str
    graph: str  # filter graph; [0] and [1] are the text and logo pictures; ends in [out]
    positive: tuple[str, ...] = ()  # detectors that must fire
    unfair: tuple[str, ...] = ()  # detectors this case says nothing about
    truth: dict[str, bool | None] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        for name in DETECTORS:
            value = None if name in self.unfair else name in self.positive
            self.truth[name] = value


def _src(name: str, w: int = W, h: int = H, seconds: float = 4.0) -> str:
    chain = SOURCES[name].format(w=w, h=h, r=FPS, lw=max(8, w // 4), lh=max(8, h // 4))
    return f"{chain},trim=duration={seconds},setpts=PTS-STARTPTS,format=yuv420p"


def _still(name: str, w: int = W, h: int = H, seconds: float = 4.0) -> str:
    """The source's first frame, held."""
    chain = SOURCES[name].format(w=w, h=h, r=FPS, lw=max(8, w // 4), lh=max(8, h // 4))
    frames = int(seconds * FPS)
    return f"{chain},trim=end_frame=1,loop=loop={frames}:size=1,setpts=N/{FPS}/TB,format=yuv420p"


CASES: tuple[ContentCase, ...] = (
    ContentCase("natural_life", f"{_src('life')}[out]"),
    ContentCase("natural_gradients", f"{_src('gradients')}[out]"),
    ContentCase("natural_spiral", f"{_src('spiral')}[out]"),
    ContentCase(
        "split_hstack",
        f"{_src('life', 320)}[a];{_src('spiral', 320)}[b];[a][b]hstack[out]",
        ("split_screen",),
    ),
    ContentCase(
        "split_vstack",
        f"{_src('cellauto', W, 180)}[a];{_src('gradients_warm', W, 180)}[b];[a][b]vstack[out]",
        ("split_screen",),
    ),
    ContentCase(
        "pip_corner",
        f"{_src('perlin')}[bg];{_src('life', 192, 108)},pad=200:116:4:4:white[in];"
        "[bg][in]overlay=416:24[out]",
        ("pip",),
    ),
    ContentCase(
        "subtitles_bottom",
        f"{_src('life')}[bg];[bg][0]overlay=(W-w)/2:H-h-16[out]",
        ("overlay_text",),
        ("logo",),
    ),
    ContentCase(
        "subtitles_top",
        f"{_src('spiral')}[bg];[bg][0]overlay=(W-w)/2:16[out]",
        ("overlay_text",),
        ("logo",),
    ),
    ContentCase(
        "scene_text_pan",
        f"{_still('perlin', 832, 468)}[bg];[bg][0]overlay=(W-w)/2:(H-h)/2,"
        f"crop={W}:{H}:x='min(180,t*45)':y='min(100,t*25)'[out]",
        ("scene_text", "ken_burns"),
    ),
    ContentCase(
        "still_with_sticker",
        f"{_still('perlin')}[bg];{_src('life', 120, 68)}[s];[bg][s]overlay=x='40+t*100':y=250[out]",
        ("still_image",),
        ("overlay_text", "scene_text"),
    ),
    ContentCase(
        "still_with_moving_caption",
        f"{_still('mandelbrot')}[bg];[bg][0]overlay=x='(W-w)/2':y='H-h-10-t*30'[out]",
        ("still_image",),
        ("overlay_text", "scene_text"),
    ),
    ContentCase(
        "ken_burns_zoom",
        f"{_still('mandelbrot', 1280, 720)},zoompan=z='1+0.0025*on':d=1:"
        f"x='iw/2-(iw/zoom/2)':y='ih/2-(ih/zoom/2)':s={W}x{H}:fps={FPS},"
        "trim=duration=4[out]",
        ("ken_burns",),
    ),
    ContentCase(
        "ken_burns_pan",
        f"{_still('mandelbrot', 960, 540)},crop={W}:{H}:x='t*60':y='t*30'[out]",
        ("ken_burns",),
    ),
    ContentCase(
        "logo_top_right",
        f"{_src('life')}[bg];[bg][1]overlay=W-w-14:12[out]",
        ("logo",),
        ("overlay_text", "scene_text"),
    ),
    ContentCase(
        "logo_bottom_left",
        f"{_src('spiral')}[bg];[bg][1]overlay=14:H-h-12[out]",
        ("logo",),
        ("overlay_text", "scene_text"),
    ),
    # see-through logos (35 % opaque): their pixels change with the picture behind them
    ContentCase(
        "logo_see_through_smooth",
        f"[1]format=rgba,colorchannelmixer=aa=0.35[lg];{_src('gradients')}[bg];"
        "[bg][lg]overlay=W-w-14:12[out]",
        ("logo",),
        ("overlay_text", "scene_text"),
    ),
    ContentCase(
        "logo_see_through_busy",
        f"[1]format=rgba,colorchannelmixer=aa=0.35[lg];{_src('life')}[bg];"
        "[bg][lg]overlay=14:H-h-12[out]",
        ("logo",),
        ("overlay_text", "scene_text"),
    ),
)


def make_content_cases(out_dir: Path, cases: tuple[ContentCase, ...] = CASES) -> list[Path]:
    """Render ``cases`` into ``out_dir`` as ``<name>.mp4`` (existing files are kept)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    subtitle = out_dir / "_subtitle.png"
    logo = out_dir / "_logo.png"
    if not subtitle.is_file():
        text_png("the quick brown fox jumps", W, H, subtitle)
    if not logo.is_file():
        text_png("TV 24", W // 4, H // 2, logo)
    paths = []
    for case in cases:
        path = out_dir / f"{case.name}.mp4"
        paths.append(path)
        if path.is_file():
            continue
        command = [
            ffmpeg_exe(), "-v", "error", "-y", "-loop", "1", "-i", str(subtitle),
            "-loop", "1", "-i", str(logo), "-filter_complex",
            f"{case.graph.replace('[out]', ',format=yuv420p[out]')}", "-map", "[out]",
            "-t", "4", "-r", str(FPS), "-c:v", "libx264", "-preset", "veryfast", "-crf", "20",
            "-pix_fmt", "yuv420p", str(path),
        ]  # fmt: skip
        subprocess.run(command, check=True, capture_output=True, timeout=120)
    return paths
