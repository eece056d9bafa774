"""Which step produces which column, so a missing column fails with the way to get it.

A filter or preset that names a column the table lacks should not just say "unknown column":
when the column is one clipsieve knows (a scorer output, a model score, the learned classifier),
the one-line error names the scorer or command that adds it and the model it needs.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

_SCORE = "run `clipsieve score RUN --scorers {scorer}`"

# column -> (what produces it, how to get it)
PRODUCERS: dict[str, tuple[str, str]] = {}


def _add(columns: Sequence[str], producer: str, how: str) -> None:
    for column in columns:
        PRODUCERS[column] = (producer, how)


# the offline scorers: their columns, and what they run
_OFFLINE = {
    "static": (("rgb_diff_mean", "rgb_diff_max"), ""),
    "motion": (("flow_mean", "flow_max"), ""),
    "camera": (("camera_motion", "camera_motion_conf"), ""),
    "quality": (
        ("sharpness", "brightness", "contrast", "colorfulness", "border_frac", "frozen_ratio"),
        "",
    ),
    "phash": (("phash",), ""),
    "ocr": (("text_area_ratio", "text_boxes", "ocr_text"), " (PP-OCR in rapidocr-onnxruntime)"),
    "nsfw": (("nsfw_score", "nsfw_labels"), " (NudeNet)"),
    "transition": (
        ("embed_cos_mean", "embed_cos_min", "embed_mse_mean", "transition_suspect"),
        " (EfficientNet-Lite0)",
    ),
    "embed": (("embedding", "embed_model"), " (EfficientNet-Lite0)"),
}
for _scorer, (_columns, _model) in _OFFLINE.items():
    _offline = f"{_model[:-1]}, offline)" if _model else ""
    _add(_columns, f"scorer '{_scorer}'{_offline}", _SCORE.format(scorer=_scorer))
_add(
    ("aes",),
    "the LAION aesthetic scorer (CLIP ViT-L/14 + aesthetic MLP, as Open-Sora)",
    "run `clipsieve score RUN --scorers aesthetic` (needs CLIP ViT-L/14 weights; set "
    "CLIPSIEVE_MODELS or run with network once)",
)
_add(
    ("aes_siglip",),
    "the SigLIP aesthetic scorer (aesthetic-predictor v2.5 on SigLIP, as EasyAnimate)",
    "run `clipsieve score RUN --scorers aesthetic_siglip` (needs the SigLIP so400m and predictor "
    "weights; set CLIPSIEVE_MODELS or run with network once)",
)
_add(
    ("match", "match_max"),
    "the text-video match scorer (CLIP ViT-L/14 similarity x100 of caption and frames)",
    "caption the clips, then run `clipsieve score RUN --scorers match` (needs CLIP ViT-L/14 "
    "weights; set CLIPSIEVE_MODELS or run with network once)",
)
_add(
    ("quality_prob",),
    "the learned quality classifier",
    "train one on labels with `clipsieve train-classifier`, then run `clipsieve predict RUN`",
)
_add(
    ("caption", "text"),
    "captioning",
    "run `clipsieve caption RUN` first",
)
_add(("lang",), "caption language detection", "caption the clips first (`clipsieve caption RUN`)")


def missing_column_message(name: str, available: Sequence[str]) -> str:
    """One line for a column the table lacks: who makes it and how, else the closest names."""
    if name in PRODUCERS:
        producer, how = PRODUCERS[name]
        return f"column '{name}' missing: it comes from {producer}; {how}"
    close = difflib.get_close_matches(name, list(available), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else "no similar column in the table"
    return f"unknown column '{name}' ({hint})"
