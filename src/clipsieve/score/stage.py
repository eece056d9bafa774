"""The ``score`` stage: decode each clip once, run every requested scorer on it.

Scorers are registered by name (``SCORERS``). Every scorer's columns are always present in the
output (null when not computed), so tables from different runs line up. A scorer that fails on
one clip leaves its columns null and records ``"<scorer>: <reason>"`` in ``score_errors``; the
other scorers' values are kept. A clip that cannot be decoded at all gets ``status='error'``.
Rows dropped by the length policy (``keep == False``) are not scored: they have no clip file.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from clipsieve.errors import UserError
from clipsieve.score.base import Scorer
from clipsieve.score.frames import FrameSampler, SampleError
from clipsieve.stage import Resources, RowStage, StageError, merge_row
from clipsieve.table import error_text

# name -> "module:Class"; imported on use so an unused scorer's dependencies never load.
SCORERS: dict[str, str] = {
    "static": "clipsieve.score.static:RgbDiffScorer",
    "motion": "clipsieve.score.motion:FlowScorer",
    "camera": "clipsieve.score.camera:CameraMotionScorer",
    "quality": "clipsieve.score.quality:QualityScorer",
    "phash": "clipsieve.score.phash:PHashScorer",
    "ocr": "clipsieve.score.ocr:TextScorer",
    "nsfw": "clipsieve.score.nsfw:NsfwScorer",
    "transition": "clipsieve.score.embed:TransitionScorer",
    "embed": "clipsieve.score.embed:EmbeddingScorer",
}
DEFAULT_SCORERS: tuple[str, ...] = ("static", "motion", "camera", "quality", "phash")


def make_scorer(name: str, **params: Any) -> Scorer:
    """Build a registered scorer; unknown names and parameters are one-line UserErrors."""
    if name not in SCORERS:
        raise UserError(f"unknown scorer '{name}' (known: {', '.join(SCORERS)})")
    module_name, class_name = SCORERS[name].split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    try:
        return cls(**params)
    except TypeError as exc:
        raise UserError(f"scorer '{name}': {exc}") from None


@dataclass
class ScoreStage(RowStage):
    """Run scorers over clip rows, decoding each clip once for all of them."""

    name: ClassVar[str] = "score"
    version: ClassVar[str] = "1"
    table: ClassVar[str] = "clips"
    inputs: ClassVar[tuple[str, ...]] = ("path", "source_path", "start_frame", "end_frame", "fps")
    resources: ClassVar[Resources] = Resources(cpus=1.0)

    scorers: list[str] = field(default_factory=lambda: list(DEFAULT_SCORERS))
    scorer_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    _scorers: list[Scorer] = field(default_factory=list, init=False, repr=False, compare=False)
    _sampler: FrameSampler | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._scorers = [make_scorer(n, **self.scorer_params.get(n, {})) for n in self.scorers]
        self._sampler = FrameSampler({s.name: s.frame_spec() for s in self._scorers})

    @property
    def outputs(self) -> tuple[str, ...]:  # type: ignore[override]
        return (*[c for s in self._scorers for c in s.columns], "score_errors")

    def params(self) -> dict[str, Any]:
        return {
            "scorers": [
                {"name": s.name, "version": s.version, "params": s.params()} for s in self._scorers
            ]
        }

    def setup(self) -> None:
        for scorer in self._scorers:
            scorer.setup()

    def _empty(self) -> dict[str, Any]:
        return {column: None for column in self.outputs}

    def process_row(self, row: dict[str, Any]) -> dict[str, Any]:
        if row.get("keep") is False:
            return merge_row(row, **{k: row.get(k) for k in self.outputs})
        assert self._sampler is not None
        clip_file = row.get("path")
        try:
            if clip_file and Path(clip_file).is_file():
                frames = self._sampler.sample(clip_file, fps=row.get("fps"))
            elif row.get("source_path"):
                frames = self._sampler.sample(
                    row["source_path"],
                    start_frame=int(row["start_frame"]),
                    end_frame=int(row["end_frame"]),
                    fps=row.get("fps"),
                )
            else:
                raise StageError("row has neither a clip file nor a source path")
        except SampleError as exc:
            raise StageError(str(exc)) from None
        values = self._empty()
        errors = []
        for scorer in self._scorers:
            try:
                result = scorer.score(frames[scorer.name])
            except Exception as exc:  # one scorer's failure must not lose the others' values
                errors.append(error_text(scorer.name, exc))
                continue
            values.update({c: result.get(c) for c in scorer.columns})
        values["score_errors"] = "; ".join(errors) or None
        return merge_row(row, **values)
