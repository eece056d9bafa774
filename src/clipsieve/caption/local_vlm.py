"""A local transformers VLM (Qwen2.5-VL and other image-text-to-text models) for GPU machines.

The model is found through :func:`clipsieve.models.registry.resolve_model` (local path,
``CLIPSIEVE_MODELS`` or the hub cache, honouring ``HF_HUB_OFFLINE``) and built with
``AutoProcessor`` plus ``AutoModelForImageTextToText``, so any chat VLM with a processor chat
template loads the same way.
Frames are handed over as arrays (no JPEG round trip). One model serves the stage's worker threads
through a lock: decoding still overlaps across threads, generation runs one clip at a time.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from clipsieve.caption.backends import CaptionReply, CaptionRequest
from clipsieve.caption.errors import BackendUnavailable, CaptionFailed
from clipsieve.media.frames import FrameSpec
from clipsieve.models.registry import ModelUnavailable, resolve_model


def chat_messages(prompt: str, num_images: int) -> list[dict[str, Any]]:
    """The chat turn for a processor's template: image entries first, then the prompt."""
    content: list[dict[str, Any]] = [{"type": "image"} for _ in range(num_images)]
    content.append({"type": "text", "text": prompt})
    return [{"role": "user", "content": content}]


@dataclass
class LocalVLMBackend:
    """Captions with a transformers VLM on this machine (``device`` None: CUDA when present)."""

    name: ClassVar[str] = "local"
    wants_jpeg: ClassVar[bool] = False
    max_concurrency: ClassVar[int | None] = 2  # one decoding ahead while the model generates

    model: str = "Qwen/Qwen2.5-VL-7B-Instruct"
    device: str | None = None
    dtype: str = "auto"
    max_tokens: int = 256
    temperature: float = 0.2
    _processor: Any = field(default=None, init=False, repr=False)
    _model: Any = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def default_frames(self, count: int | None, size: int | None) -> FrameSpec:
        return FrameSpec(count=count or 4, positions="uniform", short_side=size or 448)

    def describe(self) -> dict[str, Any]:
        described = ("model", "dtype", "max_tokens", "temperature")
        return {"backend": self.name, **{k: getattr(self, k) for k in described}}

    def check(self) -> None:
        self.load()

    def load(self) -> None:
        """Resolve and build processor and model once (a missing model is one line)."""
        if self._model is not None:
            return
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        try:
            ref = resolve_model(self.model)
        except ModelUnavailable as exc:
            raise BackendUnavailable(f"local caption backend: {exc}") from None
        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype: Any = self.dtype if self.dtype == "auto" else getattr(torch, self.dtype)
        self._processor = AutoProcessor.from_pretrained(str(ref.path))
        self._model = (
            AutoModelForImageTextToText.from_pretrained(str(ref.path), dtype=dtype)
            .to(device)
            .eval()
        )

    def close(self) -> None:
        self._model = None
        self._processor = None

    def inputs(self, request: CaptionRequest) -> Any:
        """Processor outputs (token ids, pixel values, ...) for ``request``, on the model device."""
        from PIL import Image

        images = [
            Image.fromarray(f) for f in (request.frames if request.frames is not None else [])
        ]
        text = self._processor.apply_chat_template(
            chat_messages(request.prompt, len(images)), add_generation_prompt=True, tokenize=False
        )
        batch = self._processor(
            text=[text], images=images or None, return_tensors="pt", padding=True
        )
        return batch.to(self._model.device)

    def caption(self, request: CaptionRequest) -> CaptionReply:
        import torch

        self.load()
        started = time.perf_counter()
        with self._lock:
            try:
                batch = self.inputs(request)
                sample = self.temperature > 0
                with torch.inference_mode():
                    output = self._model.generate(
                        **batch,
                        max_new_tokens=int(self.max_tokens),
                        do_sample=sample,
                        **({"temperature": float(self.temperature)} if sample else {}),
                    )
            except torch.cuda.OutOfMemoryError:
                raise CaptionFailed(
                    "out of GPU memory (use fewer --frames or a smaller model)"
                ) from None
        prompt_len = int(batch["input_ids"].shape[1])
        new_tokens = output[0, prompt_len:]
        text = self._processor.decode(new_tokens, skip_special_tokens=True)
        return CaptionReply(
            text=text.strip(),
            model=self.model,
            tokens_in=prompt_len,
            tokens_out=int(new_tokens.shape[0]),
            latency_s=time.perf_counter() - started,
            truncated=int(new_tokens.shape[0]) >= int(self.max_tokens),
        )
