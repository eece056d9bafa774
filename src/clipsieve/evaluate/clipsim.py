"""CLIP text–frame similarity for evaluation, with the frame average done right.

The original filtering project scored a clip against its caption on every second frame,
clamping each frame's ``100 * cos`` at 0 (the CLIPScore convention) and summing, but divided the
sum by the number of *all* frames of the clip. With every second frame scored that is half the
true mean (a little more than half for odd frame counts). Here the sum is divided by the number
of frames actually scored: :func:`clip_score` is the corrected value and
:func:`original_clip_score` the old formula, kept so a result can be compared with numbers from
the old project (they differ by the factor ``scored / total``).

Frames come from the clip file (or the source span) through :class:`FrameSampler`, at the
CLIP input's short side, so the encoder sees the same pixels as the ``match`` scorer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clipsieve.media.frames import FrameSampler, FrameSpec, SampleError
from clipsieve.models.encoders import ClipEncoder, load_hub_encoder

SHORT_SIDE = 224


def clip_score(sims: np.ndarray) -> float:
    """Mean of ``max(100·cos, 0)`` over the frames that were scored."""
    sims = np.asarray(sims, np.float64)
    if sims.size == 0:
        raise ValueError("no frames were scored")
    return float(np.maximum(sims, 0.0).mean())


def original_clip_score(sims: np.ndarray, total_frames: int) -> float:
    """The original project's value: the same sum divided by all frames of the clip."""
    sims = np.asarray(sims, np.float64)
    return float(np.maximum(sims, 0.0).sum() / max(int(total_frames), 1))


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


@dataclass
class ClipFrames:
    """A clip's normalised frame features, and how many frames it has in all."""

    features: np.ndarray  # (scored frames, dim), unit length
    total_frames: int


def load_clip(model: str, device: str = "auto") -> ClipEncoder:
    """The CLIP encoder through the model registry (raises ``ModelUnavailable`` in one line)."""
    encoder = load_hub_encoder("clip", model, device)
    assert isinstance(encoder, ClipEncoder)
    return encoder


def _clip_file(row: Mapping[str, Any], run_dir: Path | None) -> Path | None:
    path = row.get("path")
    if not path:
        return None
    file = Path(path)
    if not file.is_absolute() and run_dir is not None:
        file = run_dir / file
    return file if file.is_file() else None


def frame_features(
    encoder: ClipEncoder,
    row: Mapping[str, Any],
    frame_step: int = 2,
    run_dir: Path | None = None,
) -> ClipFrames:
    """Features of every ``frame_step``-th frame of the clip (frames 0, step, 2·step, ...)."""
    fps = float(row.get("fps") or 0) or 25.0
    # Sampling is in seconds; a hair over ``step`` frames keeps float rounding from adding a
    # frame at the end (indices are rounded back to whole frames).
    spec = FrameSpec(every_s=(frame_step + 1e-6) / fps, short_side=SHORT_SIDE)
    sampler = FrameSampler({"clip": spec})
    file = _clip_file(row, run_dir)
    if file is not None:
        frames = sampler.sample(file, fps=fps)
    elif row.get("source_path") and row.get("start_frame") is not None:
        frames = sampler.sample(
            row["source_path"],
            start_frame=int(row["start_frame"]),
            end_frame=int(row["end_frame"]),
            fps=fps,
        )
    else:
        raise SampleError("row has neither a clip file nor a source path")
    got = frames["clip"]
    if not len(got.images):
        raise SampleError("no frames decoded")
    total = row.get("num_frames")
    if not total and row.get("start_frame") is not None and row.get("end_frame") is not None:
        total = int(row["end_frame"]) - int(row["start_frame"])
    total = int(total or (int(got.indices.max()) + 1))
    return ClipFrames(_unit(encoder.features(got.images).astype(np.float64)), total)


def text_features(encoder: ClipEncoder, texts: Sequence[str]) -> dict[str, np.ndarray]:
    """Unit text embeddings, one model pass for the distinct texts."""
    unique = list(dict.fromkeys(texts))
    if not unique:
        return {}
    feats = _unit(encoder.text_features(unique).astype(np.float64))
    return dict(zip(unique, feats, strict=True))


def similarities(frames: ClipFrames, text: np.ndarray) -> np.ndarray:
    """``100 * cos`` of each scored frame with one unit text embedding."""
    return 100.0 * frames.features @ text


__all__ = [
    "ClipFrames",
    "clip_score",
    "frame_features",
    "load_clip",
    "original_clip_score",
    "similarities",
    "text_features",
]
