"""An example clipsieve plugin: what docs/plugins.md walks through."""

from __future__ import annotations

import contextlib
import csv
from typing import Any, ClassVar

import numpy as np

from clipsieve.export.manifests import ManifestWriter
from clipsieve.media.frames import Frames, FrameSpec
from clipsieve.score.base import Scorer


class BrightnessTrendScorer(Scorer):
    """Does the clip get brighter or darker? Mean grey level of the last frame minus the
    first, and the mean level over the clip (0-255)."""

    name: ClassVar[str] = "brightness_trend"
    columns: ClassVar[tuple[str, ...]] = ("brightness_change", "brightness_level")

    def frame_spec(self) -> FrameSpec:
        # five grey frames, 64 px short side: decoded once with every other scorer's frames
        return FrameSpec(count=5, positions="uniform", short_side=64, color="gray")

    def score(self, frames: Frames) -> dict[str, Any]:
        if len(frames.images) == 0:
            return {"brightness_change": None, "brightness_level": None}
        levels = frames.images.reshape(len(frames.images), -1).mean(axis=1)
        return {
            "brightness_change": float(levels[-1] - levels[0]),
            "brightness_level": float(np.mean(levels)),
        }


class TsvManifest(ManifestWriter):
    """clips.tsv: clip file and caption per line (a format some loaders read)."""

    file_name = "clips.tsv"

    def open(self, stack: contextlib.ExitStack) -> None:
        # the export's stack closes it when the manifest is done
        handle = stack.enter_context(open(self.target, "w", newline="", encoding="utf-8"))  # noqa: SIM115
        self._writer = csv.writer(handle, delimiter="\t")
        self._writer.writerow(["path", "caption"])

    def write(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self._writer.writerow([row["path"], row.get("caption") or ""])
