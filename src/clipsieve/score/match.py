"""Text-video matching: does the caption describe what the frames show?

CLIP embeds the caption and a few frames into one space; the score is ``100 * cosine`` between
the normalised text embedding and each frame's normalised image embedding (the "CLIP score"
scale: roughly, unrelated pairs land in the low tens and well-matched ones in the high twenties
to thirties; the spread depends on the model, so thresholds come from the data's histogram).

Columns:

* ``match``: mean over the frames; ``match_max``: the best frame, which forgives captions that
  describe only part of the clip. Text comes from ``text_column`` when given, otherwise from
  ``caption`` (a new caption) when it is present and non-empty, else ``caption_src`` (the caption
  that came with the source). A clip with no text gets null, never 0, so an allow-list filter
  fails it rather than judging it.
* ``match_<option>`` for every entry of ``prompts``: the mean score of the frames against
  ``template`` filled with the option ("a photo of animal"): the category filter of the MindSpore
  (mindone) data pipeline, ``--option animal`` there, ``prompts: [animal]`` here. The option is
  lower-cased with non-alphanumerics replaced by ``_`` in the column name.

The default model is OpenAI's ViT-L/14, the backbone of the LAION aesthetic scorer, so with both
scorers in a run the frames pass through CLIP once (same frames, same cached features). The
original filtering project evaluated with LAION's ViT-g-14
(``laion/CLIP-ViT-g-14-laion2B-s12B-b42K``); any transformers CLIP checkpoint works. After
re-captioning, run this scorer again: it then reads the new ``caption``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from clipsieve.models.encoders import (
    DEFAULT_CLIP,
    ClipEncoder,
    batch_features,
    load_hub_encoder,
    model_unavailable,
)
from clipsieve.models.registry import ModelUnavailable
from clipsieve.score.base import BatchScorer, Frames, FrameSpec

TEXT_COLUMNS = ("caption", "caption_src")  # preferred first


def option_column(option: str) -> str:
    """``match_<option>`` with the option made a safe column name."""
    slug = re.sub(r"[^0-9a-z]+", "_", option.strip().lower()).strip("_")
    return f"match_{slug or 'option'}"


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def row_text(row: Mapping[str, Any], text_column: str | None) -> str | None:
    """The text to match for ``row``: the named column, else caption, else caption_src."""
    for column in (text_column,) if text_column else TEXT_COLUMNS:
        value = row.get(column)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


@dataclass
class MatchScorer(BatchScorer):
    """``match``/``match_max`` (caption vs frames) and ``match_<option>`` (category prompts)."""

    name: ClassVar[str] = "match"
    columns: ClassVar[tuple[str, ...]] = ("match", "match_max")
    gpu: ClassVar[bool] = True

    model: str = DEFAULT_CLIP
    text_column: str | None = None
    prompts: list[str] = field(default_factory=list)
    template: str = "a photo of {option}"
    fractions: tuple[float, ...] = (0.1, 0.5, 0.9)
    device: str = "auto"
    _encoder: ClipEncoder | None = field(default=None, init=False, repr=False, compare=False)
    _prompt_feats: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.prompts, str):  # `prompts: animal` in YAML, `--option animal`
            self.prompts = [self.prompts]
        self.prompts = [str(p) for p in self.prompts if str(p).strip()]
        if "{option}" not in self.template:
            raise TypeError("template must contain '{option}'")
        option_columns = tuple(dict.fromkeys(option_column(p) for p in self.prompts))
        if len(option_columns) != len(self.prompts):
            raise TypeError(f"prompts {self.prompts} map to the same column name twice")
        self.columns = ("match", "match_max", *option_columns)  # type: ignore[misc]

    def frame_spec(self) -> FrameSpec:
        # Same frames as the aesthetic scorer by default, so their CLIP features are shared.
        return FrameSpec(positions="fractions", fractions=tuple(self.fractions), short_side=224)

    def setup(self) -> None:
        if self._encoder is not None:
            return
        try:
            encoder = load_hub_encoder("clip", self.model, self.device)
        except ModelUnavailable as exc:
            raise model_unavailable(self.name, self.model, exc) from None
        assert isinstance(encoder, ClipEncoder)
        texts = [self.template.format(option=p) for p in self.prompts]
        self._prompt_feats = _unit(encoder.text_features(texts)) if texts else None
        self._encoder = encoder

    def score_rows(
        self, clips: Sequence[Frames], rows: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """Scores for many clips: one image pass over all frames, one text pass over all texts."""
        self.setup()
        assert self._encoder is not None
        images = [_unit(f) if len(f) else f for f in batch_features(self._encoder, clips)]
        texts = [row_text(row, self.text_column) for row in rows]
        unique = list(dict.fromkeys(t for t, f in zip(texts, images, strict=True) if t and len(f)))
        text_feats = (
            dict(zip(unique, _unit(self._encoder.text_features(unique)), strict=True))
            if unique
            else {}
        )
        out = []
        for text, feats in zip(texts, images, strict=True):
            values: dict[str, Any] = dict.fromkeys(self.columns)
            if len(feats):
                if text is not None:
                    sims = 100.0 * feats.astype(np.float64) @ text_feats[text].astype(np.float64)
                    values["match"], values["match_max"] = float(sims.mean()), float(sims.max())
                if self._prompt_feats is not None:
                    per_prompt = 100.0 * feats.astype(np.float64) @ self._prompt_feats.T
                    for column, sims in zip(self.columns[2:], per_prompt.T, strict=True):
                        values[column] = float(sims.mean())
            out.append(values)
        return out


__all__ = ["MatchScorer", "option_column", "row_text"]
