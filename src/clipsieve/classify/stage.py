"""The classify stage: the caption stage asking a fixed, structured question instead of a caption.

Columns (null until set):

* ``content_type``: the one type of the label set the answer chose;
* ``content_flags``: the flags that apply (a list), and one boolean column per flag of the set,
  ``content_<flag>``, so filters can say ``not content_watermark``;
* ``content_conf``: the model's own confidence (0-1) when it gave one;
* ``content_raw``: the answer as received; ``content_model``, ``content_labels`` (the label
  set's name and digest): what produced it;
* ``content_error``: why the last attempt failed or could not be read (a re-run asks again).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import pyarrow as pa

from clipsieve.caption.backends import CaptionReply, CaptionRequest
from clipsieve.caption.frames import ClipFrames
from clipsieve.caption.stage import CaptionStage
from clipsieve.classify.labels import LabelSet, load_label_set

_TYPES = {
    "content_type": pa.string(), "content_flags": pa.list_(pa.string()),
    "content_conf": pa.float64(), "content_raw": pa.string(), "content_model": pa.string(),
    "content_labels": pa.string(), "content_error": pa.string(),
}  # fmt: skip
CONTENT_FIELDS: tuple[pa.Field, ...] = tuple(pa.field(n, t) for n, t in _TYPES.items())
CONTENT_COLUMNS: tuple[str, ...] = tuple(f.name for f in CONTENT_FIELDS)
DEFAULT_FRAMES = 4  # enough to see whether anything moves


def flag_column(flag: str) -> str:
    return f"content_{flag}"


@dataclass
class ClassifyStage(CaptionStage):
    """Ask a VLM which type of ``labels`` (a preset or a YAML file) each selected clip is."""

    name: ClassVar[str] = "classify"
    output_columns: ClassVar[tuple[str, ...]] = CONTENT_COLUMNS
    error_column: ClassVar[str] = "content_error"
    answer_column: ClassVar[str] = "content_raw"

    labels: str = "broad"
    _labels: LabelSet | None = field(default=None, init=False, repr=False)
    _question: tuple[str, dict[str, Any]] | None = field(default=None, init=False, repr=False)

    @property
    def label_set(self) -> LabelSet:
        if self._labels is None:
            self._labels = load_label_set(self.labels)
        return self._labels

    def outputs(self) -> tuple[str, ...]:
        return (*CONTENT_COLUMNS, *(flag_column(f) for f in self.label_set.flags))

    def params(self) -> dict[str, Any]:
        return {
            "backend": self.backend_instance.describe(),
            "labels": self.label_set.source,
            "label_set": self.label_set.name,
            "label_digest": self.label_set.digest,
            "frames": self.frame_spec_params(),
            "concurrency": self.concurrency,
            "all_rows": self.all_rows,
            "overwrite": self.overwrite,
        }

    def setup(self) -> None:
        """Build the backend, read the label set and the frame sampler (no request yet)."""
        backend = self.backend_instance
        # the question and its schema are the same for every clip: built once per worker
        self._question = (self.label_set.prompt(), self.label_set.schema())
        count = self.frames or DEFAULT_FRAMES
        spec = backend.default_frames(count, self.frame_size)
        self._frames = ClipFrames(spec, exact=self.exact_frames)

    def frame_spec_params(self) -> dict[str, Any]:
        spec = self.backend_instance.default_frames(self.frames or DEFAULT_FRAMES, self.frame_size)
        return {"count": spec.count, "positions": spec.positions, "size": spec.size,
                "short_side": spec.short_side, "exact": self.exact_frames}  # fmt: skip

    def prepare_rows(self, rows: list[dict[str, Any]]) -> None:
        """Rows are read as the table has them."""

    def selection_view(self, rows: list[dict[str, Any]]) -> None:
        """Classify never marks rows: nothing to undo."""

    def request_for(
        self, row: dict[str, Any], images: Any, jpegs: tuple[bytes, ...]
    ) -> CaptionRequest:
        prompt, schema = self._question or (self.label_set.prompt(), self.label_set.schema())
        return CaptionRequest(prompt, images, jpegs, schema)

    def answer_columns(self, reply: CaptionReply) -> dict[str, Any]:
        labels = self.label_set
        answer = labels.parse(reply.text)
        columns: dict[str, Any] = {
            "content_type": answer.content_type,
            "content_flags": list(answer.flags),
            "content_conf": answer.confidence,
            "content_raw": reply.text,
            "content_model": reply.model,
            "content_labels": f"{labels.name}:{labels.digest}",
            "content_error": answer.error and f"classify: {answer.error}",
        }
        for flag in labels.flags:
            columns[flag_column(flag)] = flag in answer.flags if answer.content_type else None
        return columns
