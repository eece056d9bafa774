"""Open-Sora ``datautil``-style flags as filter-expression conditions.

Open-Sora's ``python -m tools.datasets.datautil meta.csv --fmin 51 --aesmin 5 ...`` filters a CSV
by fixed flags. Its users can keep their recipes: each flag maps to one condition on our
column, and the conditions are and-ed with ``--where`` and any preset, so the funnel shows them
like any other step. Unlike datautil, an unscored clip fails (allow-list).

Column notes (where our column differs from Open-Sora's):

* ``--hwmax`` compares ``resolution`` (height x width, as Open-Sora).
* ``--flowmin/--flowmax`` compare ``flow_mean``: mean optical-flow magnitude in pixels of a
  240-px-short-side frame per 0.25 s step. Open-Sora's ``flow`` is UniMatch flow on frames resized
  to 320x576 and spread over the whole clip, so the numbers are of the same kind (pixels moved
  between sampled frames) but not identical; check the histogram in the report before copying a
  threshold.
* ``--ocrmax`` compares ``text_boxes`` (most text boxes detected in one sampled frame), the
  count Open-Sora's ``ocr`` column holds; ``--text-area-max`` is the area form (EasyAnimate's).
* ``--remove-empty-caption`` uses the caption column ``text`` or ``caption``, whichever exists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from clipsieve.table import CAPTION_COLUMNS


@dataclass(frozen=True)
class Flag:
    """One numeric flag: ``--name VALUE`` means ``column op VALUE``."""

    name: str
    column: str
    op: str
    help: str


FLAGS: tuple[Flag, ...] = (
    Flag("fmin", "num_frames", ">=", "Minimum number of frames."),
    Flag("fmax", "num_frames", "<=", "Maximum number of frames."),
    Flag("fpsmax", "fps", "<=", "Maximum frame rate."),
    Flag("hwmax", "resolution", "<=", "Maximum height x width."),
    Flag("hmin", "height", ">=", "Minimum height in pixels."),
    Flag("wmin", "width", ">=", "Minimum width in pixels."),
    Flag("armin", "aspect_ratio", ">=", "Minimum aspect ratio (height / width)."),
    Flag("armax", "aspect_ratio", "<=", "Maximum aspect ratio (height / width)."),
    Flag("durmin", "duration_s", ">=", "Minimum duration in seconds."),
    Flag("durmax", "duration_s", "<=", "Maximum duration in seconds."),
    Flag("aesmin", "aes", ">=", "Minimum LAION aesthetic score (column aes)."),
    Flag("flowmin", "flow_mean", ">=", "Minimum motion (column flow_mean)."),
    Flag("flowmax", "flow_mean", "<=", "Maximum motion (column flow_mean)."),
    Flag("matchmin", "match", ">=", "Minimum text-video match score (column match)."),
    Flag("ocrmax", "text_boxes", "<=", "Maximum number of text boxes (column text_boxes)."),
    Flag("text-area-max", "text_area_ratio", "<=", "Maximum text area ratio (0-1)."),
)
FLAG_BY_NAME = {f.name: f for f in FLAGS}


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def flag_conditions(
    values: Mapping[str, float | int | None],
    lang: Sequence[str] = (),
    remove_empty_caption: bool = False,
    columns: Sequence[str] = (),
) -> list[str]:
    """Conditions for the flags that were given, in :data:`FLAGS` order.

    ``values`` maps flag names (``fmin``, ``text-area-max`` or ``text_area_max``) to numbers;
    ``columns`` is the table's column list, used to pick the caption column.
    """
    normal = {k.replace("_", "-"): v for k, v in values.items()}
    unknown = sorted(set(normal) - set(FLAG_BY_NAME))
    if unknown:
        raise ValueError(f"unknown datautil flags: {', '.join(unknown)}")
    out: list[str] = []
    for flag in FLAGS:
        value = normal.get(flag.name)
        if value is not None:
            out.append(f"{flag.column} {flag.op} {value!r}")
    langs = [code.strip() for item in lang for code in item.split(",") if code.strip()]
    if langs:
        out.append(f"lang in ({', '.join(_quote(code) for code in langs)})")
    if remove_empty_caption:
        present = [c for c in CAPTION_COLUMNS if c in columns] or ["caption"]
        tests = [f"{c} is not null and {c} != ''" for c in present]
        out.append(tests[0] if len(tests) == 1 else " or ".join(f"({t})" for t in tests))
    return out


def flags_help() -> list[dict[str, Any]]:
    """The flag table for the docs: flag, condition, help."""
    return [
        {"flag": f"--{f.name}", "condition": f"{f.column} {f.op} VALUE", "help": f.help}
        for f in FLAGS
    ]
