"""Hub image and text encoders: CLIP, SigLIP and the SDXL VAE, loaded one way for every scorer.

Aesthetics, text-video matching, transitions and clip embeddings all turn frames into vectors
with a published backbone. This module is the one place that knows how: it resolves the weights
through :func:`clipsieve.models.registry.resolve_model` (a local path, ``$CLIPSIEVE_MODELS/<id>``
or the hub, honouring ``HF_HUB_OFFLINE``), builds the network with the library that owns the
architecture (``transformers`` for CLIP/SigLIP, ``diffusers`` for the VAE), picks the device
(``auto``: CUDA when present, float16 there) and preprocesses frames in numpy, batched, without
PIL round trips.

Preprocessing follows the published processors: CLIP resizes the short side to the model's input
size and centre-crops (OpenAI CLIP and Open-Sora's aesthetic scorer do this); SigLIP squashes
the whole frame to a square (``SiglipImageProcessor``). Mean/std come from the checkpoint's
``preprocessor_config.json`` when it has one, otherwise from the family's published values.

Encoders load once per worker process (:func:`load_hub_encoder` is cached) and are shared by
every scorer that names the same model, so aesthetics and matching on ViT-L/14 cost one model
and one forward pass per frame (:func:`batch_features` caches features on ``Frames.cache``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import torch

from clipsieve.media.frames import Frames
from clipsieve.models.registry import ModelUnavailable, resolve_model

Family = Literal["clip", "siglip", "sdxl-vae"]
FAMILIES: tuple[str, ...] = ("clip", "siglip", "sdxl-vae")
DEFAULT_CLIP = "openai/clip-vit-large-patch14"
DEFAULT_SIGLIP = "google/siglip-so400m-patch14-384"
DEFAULT_SDXL_VAE = "stabilityai/sdxl-vae"
# Published normalisation constants (RGB, 0-1 scale).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
SIGLIP_MEAN = (0.5, 0.5, 0.5)
SIGLIP_STD = (0.5, 0.5, 0.5)


def model_unavailable(scorer: str, spec: str, reason: object) -> ModelUnavailable:
    """The one-line message every learned scorer gives when its weights cannot be had."""
    hint = "set CLIPSIEVE_MODELS or run with network once"
    text = " ".join(str(reason).split()).replace(f"; {hint}", "")
    # The registry says "model 'X' unavailable (why)"; X is already named, keep the why.
    text = re.sub(r"^model '[^']*' unavailable \((.*)\)$", r"\1", text)
    return ModelUnavailable(f"{scorer} scorer needs {spec}; {hint} ({text})")


def pick_device(device: str = "auto") -> torch.device:
    """``auto`` means CUDA when a GPU is visible, else CPU; anything else is passed to torch."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _quiet_hub_libraries() -> None:
    """Load reports and progress bars would interleave with the run's own progress display."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _preprocessor_stats(
    path: Path, mean: tuple[float, ...], std: tuple[float, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Mean/std from the checkpoint's ``preprocessor_config.json``, else the family defaults."""
    config = path / "preprocessor_config.json" if path.is_dir() else None
    if config is not None and config.is_file():
        data = json.loads(config.read_text(encoding="utf-8"))
        mean = tuple(data.get("image_mean", mean))
        std = tuple(data.get("image_std", std))
    return np.asarray(mean, np.float32), np.asarray(std, np.float32)


def prepare_images(
    images: np.ndarray, size: int, crop: bool, mean: np.ndarray, std: np.ndarray
) -> np.ndarray:
    """uint8 (n, h, w, 3) or grey (n, h, w) -> normalised float32 (n, 3, size, size).

    ``crop``: resize the short side to ``size`` (bicubic) and take the centre square, as CLIP's
    processor does; otherwise squash the whole frame to ``size`` x ``size`` (SigLIP).
    """
    if images.ndim == 3:
        images = np.repeat(images[..., None], 3, axis=-1)
    out = np.empty((len(images), size, size, 3), np.uint8)
    for i, image in enumerate(images):
        h, w = image.shape[:2]
        if crop:
            scale = size / min(h, w)
            nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
            if (nw, nh) != (w, h):
                image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_CUBIC)
            top, left = (nh - size) // 2, (nw - size) // 2
            out[i] = image[top : top + size, left : left + size]
        else:
            out[i] = (
                image
                if (w, h) == (size, size)
                else cv2.resize(image, (size, size), interpolation=cv2.INTER_CUBIC)
            )
    x = (out.astype(np.float32) / 255.0 - mean) / std
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def _pooled(output: Any) -> torch.Tensor:
    """transformers 4 returns a tensor from ``get_*_features``; 5 returns an output object."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


@contextlib.contextmanager
def _loading(model_id: str, family: str) -> Iterator[None]:
    """Build a transformers model quietly; a folder that is not a ``family`` checkpoint is one
    :class:`ModelUnavailable` line with the library's first line of reason."""
    _quiet_hub_libraries()
    try:
        yield
    except (OSError, ValueError, KeyError, TypeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelUnavailable(f"'{model_id}' is not a {family} checkpoint: {first}") from None


class HubEncoder(ABC):
    """A frozen backbone that maps frames (and, for CLIP, texts) to vectors.

    ``spec`` is the provenance name (``clip:openai/clip-vit-large-patch14``); ``model_id`` is
    what was resolved. Subclasses set ``size``/``crop``/``mean``/``std`` and implement
    :meth:`_encode`.
    """

    family: str = ""
    crop: bool = True

    def __init__(self, model_id: str, device: str = "auto", max_batch: int = 256) -> None:
        self.model_id = model_id
        self.spec = f"{self.family}:{model_id}"
        self.device = pick_device(device)
        self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        self.max_batch = max_batch
        self.path = resolve_model(model_id).path
        self.size = 224
        self.mean = np.asarray(CLIP_MEAN, np.float32)
        self.std = np.asarray(CLIP_STD, np.float32)

    def prepare(self, images: np.ndarray) -> np.ndarray:
        """Frames of any size -> the model's normalised input batch (numpy, float32)."""
        return prepare_images(images, self.size, self.crop, self.mean, self.std)

    @abstractmethod
    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's features for a prepared batch already on the device."""

    def encode_prepared(self, x: np.ndarray) -> np.ndarray:
        """Features for prepared inputs, in chunks of ``max_batch``, as float32 numpy."""
        out = []
        with torch.inference_mode():
            for start in range(0, len(x), self.max_batch):
                chunk = torch.from_numpy(x[start : start + self.max_batch])
                chunk = chunk.to(self.device, self.dtype, non_blocking=True)
                out.append(self._encode(chunk).float().flatten(1).cpu())
        if not out:
            return np.zeros((0, self.dim), np.float32)
        return torch.cat(out).numpy()

    def features(self, images: np.ndarray) -> np.ndarray:
        """One feature row per frame (not normalised)."""
        return self.encode_prepared(self.prepare(images))

    @property
    @abstractmethod
    def dim(self) -> int:
        """Length of one feature vector."""


class ClipEncoder(HubEncoder):
    """transformers ``CLIPModel``: projected image and text embeddings in one shared space."""

    family = "clip"
    crop = True

    def __init__(self, model_id: str, device: str = "auto", max_batch: int = 256) -> None:
        super().__init__(model_id, device, max_batch)
        from transformers import AutoTokenizer, CLIPModel

        with _loading(model_id, "CLIP"):
            self.model = CLIPModel.from_pretrained(self.path, dtype=self.dtype)
            self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.model.eval().to(self.device)
        self.size = int(self.model.config.vision_config.image_size)
        self.max_text = int(self.model.config.text_config.max_position_embeddings)
        self.mean, self.std = _preprocessor_stats(self.path, CLIP_MEAN, CLIP_STD)

    @property
    def dim(self) -> int:
        return int(self.model.config.projection_dim)

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        return _pooled(self.model.get_image_features(pixel_values=x))

    def text_features(self, texts: Sequence[str]) -> np.ndarray:
        """Projected text embeddings (not normalised); long texts are truncated to the model's
        context (77 tokens for OpenAI/LAION CLIP), as every CLIP-score implementation does."""
        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.max_batch):
                tokens = self.tokenizer(
                    list(texts[start : start + self.max_batch]),
                    padding=True,
                    truncation=True,
                    max_length=self.max_text,
                    return_tensors="pt",
                ).to(self.device)
                out.append(_pooled(self.model.get_text_features(**tokens)).float().cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, self.dim), np.float32)


class SiglipEncoder(HubEncoder):
    """transformers ``SiglipVisionModel``: the pooled (attention-pooling head) image embedding.

    Only the vision tower is loaded, as aesthetic-predictor-v2.5 does; a full SigLIP checkpoint's
    text weights are skipped.
    """

    family = "siglip"
    crop = False

    def __init__(self, model_id: str, device: str = "auto", max_batch: int = 256) -> None:
        super().__init__(model_id, device, max_batch)
        from transformers import SiglipVisionModel

        with _loading(model_id, "SigLIP"):
            self.model = SiglipVisionModel.from_pretrained(self.path, dtype=self.dtype)
        self.model.eval().to(self.device)
        self.size = int(self.model.config.image_size)
        self.mean, self.std = _preprocessor_stats(self.path, SIGLIP_MEAN, SIGLIP_STD)

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=x).pooler_output


class SdxlVaeEncoder(HubEncoder):
    """diffusers ``AutoencoderKL``: the mean of the latent distribution, flattened.

    The original filtering project compared consecutive frames in SDXL-VAE latent space. Frames
    are encoded at the size they arrive in (the transition scorer asks for 224x224: a 4x28x28
    latent), scaled to [-1, 1] as the VAE was trained.
    """

    family = "sdxl-vae"
    crop = False

    def __init__(self, model_id: str, device: str = "auto", max_batch: int = 64) -> None:
        super().__init__(model_id, device, max_batch)
        from diffusers import AutoencoderKL

        # The SDXL VAE overflows in float16 (NaN latents; hence the community "fp16-fix"
        # re-trains), so it stays in float32 on the GPU too.
        self.dtype = torch.float32

        path = self.path / "vae" if (self.path / "vae" / "config.json").is_file() else self.path
        try:
            self.model = AutoencoderKL.from_pretrained(path, torch_dtype=self.dtype)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ModelUnavailable(f"'{model_id}' is not an AutoencoderKL: {first}") from None
        self.model.eval().to(self.device)
        self.mean = np.full(3, 0.5, np.float32)
        self.std = np.full(3, 0.5, np.float32)
        self._latent_dim = 0

    def prepare(self, images: np.ndarray) -> np.ndarray:
        if images.ndim == 3:
            images = np.repeat(images[..., None], 3, axis=-1)
        x = (images.astype(np.float32) / 255.0 - self.mean) / self.std
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))

    @property
    def dim(self) -> int:
        return self._latent_dim

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        latent = self.model.encode(x).latent_dist.mean * self.model.config.scaling_factor
        self._latent_dim = int(np.prod(latent.shape[1:]))
        return latent


_CLASSES: dict[str, type[HubEncoder]] = {
    "clip": ClipEncoder,
    "siglip": SiglipEncoder,
    "sdxl-vae": SdxlVaeEncoder,
}


def parse_encoder(name: str) -> tuple[str, str]:
    """``clip:<model>`` / ``siglip:<model>`` / ``sdxl-vae:<model>`` (or the bare family name,
    meaning its default model) -> (family, model spec)."""
    family, _, model_id = name.strip().partition(":")
    defaults = {"clip": DEFAULT_CLIP, "siglip": DEFAULT_SIGLIP, "sdxl-vae": DEFAULT_SDXL_VAE}
    if family not in defaults:
        raise ValueError(
            f"unknown encoder '{name}' (use efficientnet-lite0, clip:<model>, "
            "siglip:<model> or sdxl-vae:<model>)"
        )
    return family, model_id.strip() or defaults[family]


@functools.lru_cache(maxsize=4)
def _cached_encoder(family: str, model_id: str, device: str) -> HubEncoder:
    return _CLASSES[family](model_id, device)


def load_hub_encoder(family: str, model_id: str, device: str = "auto") -> HubEncoder:
    """The process-wide encoder for (family, model, device): built once, shared by scorers.

    (A plain ``lru_cache`` here would key ``f(a, b)`` and ``f(a, b, "auto")`` apart and load
    the same model twice.)
    """
    return _cached_encoder(family, model_id, device)


def clear_encoder_cache() -> None:
    """Forget loaded encoders (tests that change ``CLIPSIEVE_MODELS`` between cases need it)."""
    _cached_encoder.cache_clear()


def batch_features(encoder: HubEncoder, clips: Sequence[Frames]) -> list[np.ndarray]:
    """Per-clip frame features (not normalised), cached on each ``Frames``.

    Frames of all clips that miss the cache go through the model together (one batch of up to
    ``max_batch`` frames), which is what keeps a GPU busy; clips of different sizes are fine
    because each is prepared to the model's square input first.
    """
    keys = [
        f"hub:{encoder.spec}:{f.images.shape}:{','.join(str(int(i)) for i in f.indices)}"
        for f in clips
    ]
    todo = [(f, k) for f, k in zip(clips, keys, strict=True) if k not in f.cache and len(f.images)]
    if todo:
        prepared = [encoder.prepare(f.images) for f, _ in todo]
        feats = encoder.encode_prepared(np.concatenate(prepared))
        bounds = np.cumsum([0, *[len(p) for p in prepared]])
        for (f, k), a, b in zip(todo, bounds[:-1], bounds[1:], strict=True):
            f.cache[k] = feats[a:b]
    return [f.cache.get(k, np.zeros((0, 0), np.float32)) for f, k in zip(clips, keys, strict=True)]


__all__ = [
    "DEFAULT_CLIP",
    "DEFAULT_SDXL_VAE",
    "DEFAULT_SIGLIP",
    "FAMILIES",
    "ClipEncoder",
    "HubEncoder",
    "SdxlVaeEncoder",
    "SiglipEncoder",
    "batch_features",
    "clear_encoder_cache",
    "load_hub_encoder",
    "model_unavailable",
    "parse_encoder",
    "pick_device",
    "prepare_images",
]
