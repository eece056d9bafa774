"""Aesthetic scores: how much people would like a clip's frames, on the 1-10 rating scale.

Two published predictors, each an MLP head on a frozen image embedding, used as the recipes that
made them popular for video use them:

* :class:`LaionAestheticScorer` (``aes``): the LAION "improved aesthetic predictor",
  ``sac+logos+ava1-l14-linearMSE`` (trained on SAC, LAION-Logos and AVA ratings), on the
  L2-normalised CLIP ViT-L/14 image embedding. Open-Sora scores 3 frames at 10/50/90 % of the
  clip and stores the mean; so do we. Open-Sora's notes treat 5.5 as fair and 6.5 as good
  aesthetics.
* :class:`SiglipAestheticScorer` (``aes_siglip``): aesthetic-predictor-v2.5 (discus0434), an MLP
  head on the L2-normalised pooled SigLIP so400m-patch14-384 embedding, which rates
  illustrations and renders more sensibly than the LAION head. EasyAnimate scores 4 uniform
  frames and keeps the mean; 5.5+ counts as a great score on its scale.

Both heads are linear stacks (no activations: the original training code commented them out),
so the output is not clamped; real checkpoints give about 1-10 on natural images. The columns
are null for a clip with no decoded frames.

Frames of every clip in a batch go through the backbone together (see
:func:`clipsieve.models.encoders.batch_features`), on the GPU when there is one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from clipsieve.models.encoders import (
    DEFAULT_CLIP,
    DEFAULT_SIGLIP,
    HubEncoder,
    batch_features,
    load_hub_encoder,
    model_unavailable,
)
from clipsieve.models.registry import ModelUnavailable, load_state_dict, resolve_model
from clipsieve.score.base import BatchScorer, Frames, FrameSpec

# The published heads. The LAION head is mirrored on the Hugging Face hub as a single file; the
# v2.5 head is only published in its GitHub repository.
LAION_HEAD = "camenduru/improved-aesthetic-predictor/sac+logos+ava1-l14-linearMSE.pth"
V25_HEAD = (
    "https://github.com/discus0434/aesthetic-predictor-v2-5/raw/main/models/"
    "aesthetic_predictor_v2_5.pth"
)


def _mlp(input_size: int, dropouts: tuple[float | None, ...]) -> nn.Sequential:
    """input → 1024 → 128 → 64 → 16 → 1 linear layers with a dropout after each of the first
    four (None: none there): the shape both published aesthetic heads share. Where a dropout
    sits decides the state-dict indices, so the published weights load as they are."""
    sizes = (input_size, 1024, 128, 64, 16, 1)
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(dropouts) and dropouts[i] is not None:
            layers.append(nn.Dropout(dropouts[i]))
    return nn.Sequential(*layers)


class LaionAestheticHead(nn.Module):
    """The ``improved-aesthetic-predictor`` MLP; state-dict keys ``layers.{0,2,4,6,7}.*``."""

    def __init__(self, input_size: int = 768) -> None:
        super().__init__()
        self.layers = _mlp(input_size, (0.2, 0.2, 0.1, None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class AestheticV25Head(nn.Module):
    """aesthetic-predictor-v2.5's head; state-dict keys ``scoring_head.{0,2,4,6,8}.*``."""

    def __init__(self, input_size: int = 1152) -> None:
        super().__init__()
        self.scoring_head = _mlp(input_size, (0.5, 0.5, 0.5, 0.2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scoring_head(x)


def load_head(cls: type[nn.Module], spec: str, input_size: int) -> nn.Module:
    """Build ``cls`` for ``input_size``-d embeddings and load the checkpoint at ``spec`` strictly.

    Loaded with ``weights_only`` so a checkpoint cannot run code. A head trained for another
    embedding size (e.g. the ViT-B/32 LAION head with a ViT-L/14 backbone) is refused here with
    one line instead of producing meaningless scores.
    """
    ref = resolve_model(spec)
    state = load_state_dict(ref.path)
    weights = [v for k, v in state.items() if k.endswith(".0.weight")] if state else []
    if not weights or weights[0].ndim != 2:
        raise ModelUnavailable(f"'{spec}' is not a {cls.__name__} checkpoint")
    if int(weights[0].shape[1]) != input_size:
        raise ModelUnavailable(
            f"'{spec}' expects {int(weights[0].shape[1])}-d embeddings, the backbone gives "
            f"{input_size}-d"
        )
    head = cls(input_size)
    try:
        head.load_state_dict(state)
    except (RuntimeError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise ModelUnavailable(f"'{spec}' is not a {cls.__name__} checkpoint: {first}") from None
    return head.eval()


@dataclass
class _AestheticScorer(BatchScorer):
    """Backbone embedding (normalised) -> MLP head per frame -> mean over the clip's frames."""

    gpu: ClassVar[bool] = True
    family: ClassVar[str]
    head_class: ClassVar[type[nn.Module]]

    model: str = ""
    head: str = ""
    device: str = "auto"
    _encoder: HubEncoder | None = field(default=None, init=False, repr=False, compare=False)
    _head: nn.Module | None = field(default=None, init=False, repr=False, compare=False)

    def setup(self) -> None:
        if self._head is not None:
            return
        try:
            encoder = load_hub_encoder(self.family, self.model, self.device)
        except ModelUnavailable as exc:
            raise model_unavailable(self.name, self.model, exc) from None
        try:
            head = load_head(self.head_class, self.head, encoder.dim)
        except ModelUnavailable as exc:
            raise model_unavailable(self.name, self.head, exc) from None
        self._encoder, self._head = encoder, head.to(encoder.device)

    def score_rows(
        self, clips: Sequence[Frames], rows: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """Scores for many clips at once: one backbone pass over all their frames."""
        self.setup()
        assert self._encoder is not None and self._head is not None
        (column,) = self.columns
        feats = batch_features(self._encoder, clips)
        sizes = [len(f) for f in feats]
        if not any(sizes):
            return [{column: None} for _ in clips]
        x = np.concatenate([f for f in feats if len(f)]).astype(np.float32)
        x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        with torch.inference_mode():
            per_frame = self._head(torch.from_numpy(x).to(self._encoder.device))[:, 0]
        values = per_frame.float().cpu().numpy().astype(np.float64)
        out, start = [], 0
        for n in sizes:
            out.append({column: float(values[start : start + n].mean()) if n else None})
            start += n
        return out


@dataclass
class LaionAestheticScorer(_AestheticScorer):
    """``aes``: LAION improved aesthetic predictor on CLIP ViT-L/14, mean of frames at 10/50/90 %.

    ``model`` is any CLIP checkpoint (hub id or local folder) whose embedding size matches the
    head (768 for ViT-L/14); ``head`` is the MLP checkpoint; ``fractions`` place the frames.
    """

    name: ClassVar[str] = "aesthetic"
    columns: ClassVar[tuple[str, ...]] = ("aes",)
    family: ClassVar[str] = "clip"
    head_class: ClassVar[type[nn.Module]] = LaionAestheticHead

    model: str = DEFAULT_CLIP
    head: str = LAION_HEAD
    fractions: tuple[float, ...] = (0.1, 0.5, 0.9)

    def frame_spec(self) -> FrameSpec:
        # Short side 224 then CLIP's centre crop: the same pixels CLIP's own processor sees.
        return FrameSpec(positions="fractions", fractions=tuple(self.fractions), short_side=224)


@dataclass
class SiglipAestheticScorer(_AestheticScorer):
    """``aes_siglip``: aesthetic-predictor-v2.5 on SigLIP so400m, mean of ``count`` uniform
    frames."""

    name: ClassVar[str] = "aesthetic_siglip"
    columns: ClassVar[tuple[str, ...]] = ("aes_siglip",)
    family: ClassVar[str] = "siglip"
    head_class: ClassVar[type[nn.Module]] = AestheticV25Head

    model: str = DEFAULT_SIGLIP
    head: str = V25_HEAD
    count: int = 4

    def frame_spec(self) -> FrameSpec:
        # SigLIP's processor squashes the whole frame to 384x384 (no crop).
        return FrameSpec(count=self.count, positions="uniform", size=(384, 384))


__all__ = [
    "LAION_HEAD",
    "V25_HEAD",
    "AestheticV25Head",
    "LaionAestheticHead",
    "LaionAestheticScorer",
    "SiglipAestheticScorer",
    "load_head",
]
