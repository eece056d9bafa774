"""The optional LLM rewrite pass (EasyAnimate style), through the same backend as captioning.

The rewrite prompt asks the model to drop subjective and invisible content and to answer JSON
``{"caption": "..."}``. Models wrap JSON in code fences, add a sentence before it, use single
quotes or other key names; :func:`parse_rewrite` accepts all of that and fails only when no
caption can be found, in which case the row keeps its pre-rewrite caption and records why.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from typing import Any

from clipsieve.caption.prompts import PromptTemplate

_KEYS = ("caption", "rewritten_caption", "rewritten", "text", "description", "new_caption")
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_KEY_VALUE = re.compile(
    r"[\"']?(?:" + "|".join(_KEYS) + r")[\"']?\s*:\s*\"((?:[^\"\\]|\\.)*)\"", re.DOTALL
)


def _objects(text: str) -> list[str]:
    """Balanced ``{...}`` substrings of ``text``, outermost first."""
    found, depth, start = [], 0, -1
    in_string, escape = False, False
    for i, char in enumerate(text):
        if in_string:
            if escape:
                escape = False
            elif char == "\\":
                escape = True
            elif char == '"':
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char == "{":
            if depth == 0:
                start = i
            depth += 1
        elif char == "}" and depth:
            depth -= 1
            if depth == 0:
                found.append(text[start : i + 1])
    return found


def _caption_from(obj: Any) -> str | None:
    if isinstance(obj, str):
        return obj
    if isinstance(obj, dict):
        for key in _KEYS:
            if isinstance(obj.get(key), str):
                return obj[key]
        strings = [v for v in obj.values() if isinstance(v, str)]
        if len(strings) == 1:
            return strings[0]
    return None


def json_values(text: str) -> Iterator[Any]:
    """The JSON-ish values a model put in ``text``, most likely first: code-fenced blocks, the
    whole text, then each balanced ``{...}``; read as JSON, else as a Python literal (models
    answer with single quotes too). Used by every pass that asks for structured answers."""
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for candidate in candidates:
        for blob in [candidate.strip(), *_objects(candidate)]:
            for loader in (json.loads, ast.literal_eval):
                try:
                    value = loader(blob)
                except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError):
                    continue
                yield value
                break


def parse_rewrite(answer: str) -> str:
    """The caption inside a model's JSON-ish answer; ValueError if there is none."""
    for value in json_values(answer):
        caption = _caption_from(value)
        if caption and caption.strip():
            return " ".join(caption.split())
    match = _KEY_VALUE.search(answer)
    if match:
        try:
            return " ".join(json.loads(f'"{match.group(1)}"').split())
        except ValueError:
            return " ".join(match.group(1).split())
    raise ValueError(f"no caption in the rewrite answer: {' '.join(answer.split())[:80]!r}")


def rewrite_prompt(template: PromptTemplate, caption: str) -> str:
    """The rewrite prompt for one caption."""
    return template.render({"caption_src": caption})
