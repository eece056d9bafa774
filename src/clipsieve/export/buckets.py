"""Buckets of alike clips (resolution, aspect ratio, duration) for batching in training.

A video training loader batches clips of the same shape and similar length; writing each bucket
to its own shards lets it stream one bucket at a time. Buckets are coarse on purpose:

* resolution: the short side snapped down to 144/240/360/480/720/1080/1440/2160 ("360p"),
* aspect ratio: width/height nearest of 9:16, 3:4, 1:1, 4:3, 16:9, 21:9 ("16x9"),
* duration: [0, 2), [2, 4), [4, 8), [8, 16), [16, 32), >= 32 seconds ("4-8s").

The bucket name joins the three (``360p_16x9_4-8s``) and is safe in file names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SHORT_SIDES = (144, 240, 360, 480, 720, 1080, 1440, 2160)
ASPECTS = {"9x16": 9 / 16, "3x4": 3 / 4, "1x1": 1.0, "4x3": 4 / 3, "16x9": 16 / 9, "21x9": 21 / 9}
DURATION_EDGES = (2, 4, 8, 16, 32)


def resolution_bucket(width: int | None, height: int | None) -> str:
    if not width or not height:
        return "unknown"
    short = min(width, height)
    below = [s for s in SHORT_SIDES if s <= short]
    return f"{below[-1]}p" if below else f"lt{SHORT_SIDES[0]}p"


def aspect_bucket(width: int | None, height: int | None) -> str:
    if not width or not height:
        return "unknown"
    ratio = width / height
    return min(ASPECTS, key=lambda name: (abs(ASPECTS[name] - ratio), name))


def duration_bucket(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    low = 0
    for edge in DURATION_EDGES:
        if seconds < edge:
            return f"{low}-{edge}s"
        low = edge
    return f"ge{low}s"


def clip_duration(row: Mapping[str, Any]) -> float | None:
    """``duration_s``, else frames / fps."""
    if row.get("duration_s") is not None:
        return float(row["duration_s"])
    if row.get("num_frames") and row.get("fps"):
        return row["num_frames"] / row["fps"]
    return None


def bucket_of(row: Mapping[str, Any]) -> dict[str, str]:
    """``{"name", "resolution", "aspect", "duration"}`` of one clip row."""
    width, height = row.get("width"), row.get("height")
    parts = {
        "resolution": resolution_bucket(width, height),
        "aspect": aspect_bucket(width, height),
        "duration": duration_bucket(clip_duration(row)),
    }
    return {"name": "_".join(parts.values()), **parts}
