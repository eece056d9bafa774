"""A one-line description of each cluster, in words, from the captions of its nearest clips.

Two ways, both offline-capable:

* ``llm``: a language model through the caption backends (an OpenAI-compatible server, Gemini or
  a local model) is shown the captions and asked for one short line (as JSON; a plain answer is
  read too);
* ``bart``: a summarisation model through transformers (``facebook/bart-large-cnn`` by default,
  as the MSR-VTT clustering study summarised its clusters), found through the model registry
  (local path, ``$CLIPSIEVE_MODELS`` or the hub cache).

Keywords (``cluster_keywords.py``) are kept as well; the description comes first in
``clusters.json`` and the report.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from clipsieve.caption.rewrite import json_values
from clipsieve.errors import UserError

DEFAULT_SUMMARIZER = "facebook/bart-large-cnn"
MAX_CAPTIONS = 20  # captions shown per cluster
MAX_WORDS = 16  # a description longer than this is cut

PROMPT = """These are captions of video clips that form one group:
{captions}

Describe in one short line (at most 12 words) what the clips of this group show.
Answer with JSON only: {{"description": "..."}}"""

Describer = Callable[[Sequence[str]], str | None]


@dataclass
class DescribeOptions:
    """How clusters are described: ``method`` llm or bart; ``model`` the model id or path;
    for llm the caption backend and its parameters (server URL, key variable, ...)."""

    method: str
    model: str | None = None
    backend: str = "openai"
    backend_params: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        return {"method": self.method, "model": self.model, "backend": self.backend,
                "backend_params": self.backend_params}  # fmt: skip


def make_describer(options: DescribeOptions) -> tuple[Describer, str]:
    """The describer and the name recorded as each description's source."""
    if options.method == "llm":
        return _llm(options), f"llm:{options.model or options.backend}"
    if options.method == "bart":
        model = options.model or DEFAULT_SUMMARIZER
        return _bart(model), f"bart:{model}"
    raise UserError(f"--describe {options.method!r}: choose llm or bart")


def _lines(captions: Sequence[str]) -> list[str]:
    seen = dict.fromkeys(" ".join(c.split()) for c in captions if c and c.strip())
    return list(seen)[:MAX_CAPTIONS]


def _one_line(text: str) -> str | None:
    """The description in an answer: a JSON string value, else the first line; short."""
    value = next((v for v in json_values(text) if isinstance(v, dict)), None)
    if value is not None:
        text = next((v for v in value.values() if isinstance(v, str) and v.strip()), "")
    line = next((ln.strip(" \"'`*-") for ln in text.splitlines() if ln.strip(" `")), "")
    words = line.split()
    return " ".join(words[:MAX_WORDS]) or None


def _llm(options: DescribeOptions) -> Describer:
    from clipsieve.caption.backend_registry import make_backend
    from clipsieve.caption.backends import CaptionRequest
    from clipsieve.caption.errors import CaptionFailed

    backend = make_backend(options.backend, **options.backend_params)
    backend.check()

    def describe(captions: Sequence[str]) -> str | None:
        lines = _lines(captions)
        if not lines:
            return None
        prompt = PROMPT.format(captions="\n".join(f"- {line}" for line in lines))
        try:
            return _one_line(backend.caption(CaptionRequest(prompt)).text)
        except CaptionFailed:
            return None

    return describe


def _bart(spec: str) -> Describer:
    from clipsieve.models.registry import ModelUnavailable, resolve_model

    try:
        path = resolve_model(spec).path
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSeq2SeqLM.from_pretrained(path).eval()
    except ModelUnavailable as exc:
        raise UserError(
            f"--describe bart needs the summariser '{spec}': {exc}; or use --describe llm"
        ) from None
    except (OSError, ValueError) as exc:
        raise UserError(f"'{spec}' is not a summarisation checkpoint: {exc}") from None

    def describe(captions: Sequence[str]) -> str | None:
        import torch

        lines = _lines(captions)
        if not lines:
            return None
        document = " ".join(line.rstrip(".") + "." for line in lines)
        inputs = tokenizer([document], return_tensors="pt", truncation=True, max_length=1024)
        with torch.inference_mode():
            ids = model.generate(**inputs, max_new_tokens=32, min_new_tokens=4, num_beams=2)
        return _one_line(tokenizer.decode(ids[0], skip_special_tokens=True))

    return describe
