"""Label sets for the classify pass: what a VLM chooses from, the JSON it answers, and reading that
answer back whatever shape it came in.

A label set is a YAML file: ``types`` (the clip is exactly one of them), ``flags`` (any number
may apply) and an optional ``question``, each label with the description the model reads::

    name: my-set
    question: These are frames from one video clip, in time order. What kind of footage is it?
    types:
      natural: real camera footage of a real scene
      slideshow: still photos shown one after another
    flags:
      watermark: a logo or watermark stays in a corner

``broad`` and ``panda70m`` ship as presets (``classify/presets/``). The answer is asked as JSON
``{"content_type": ..., "flags": [...], "confidence": 0..1}``: servers that support it are held
to the schema; otherwise the prompt says the shape and :meth:`LabelSet.parse` reads JSON inside
prose or code fences, or failing that the first label the text names.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from clipsieve.caption.rewrite import json_values
from clipsieve.errors import UserError

NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class LabelSetError(UserError):
    """A label set that cannot be used (one line naming the file and the fix)."""


@dataclass(frozen=True)
class Answer:
    """A parsed answer: the type (None when the answer named none), flags, confidence, and why
    it could not be read when it could not."""

    content_type: str | None
    flags: tuple[str, ...] = ()
    confidence: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class LabelSet:
    name: str
    types: dict[str, str]
    flags: dict[str, str]
    question: str
    source: str  # the preset name or file it came from

    @property
    def digest(self) -> str:
        """Identity of the labels and their wording (recorded: a changed set re-asks)."""
        text = json.dumps([self.types, self.flags, self.question], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def schema(self) -> dict[str, Any]:
        """The JSON schema of the answer (for structured output)."""
        return {
            "type": "object",
            "properties": {
                "content_type": {"type": "string", "enum": list(self.types)},
                "flags": {"type": "array", "items": {"type": "string", "enum": list(self.flags)}},
                "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            },
            "required": ["content_type", "flags", "confidence"],
            "additionalProperties": False,
        }

    def prompt(self) -> str:
        """The question, the labels with their descriptions, and the answer's shape."""
        types = "\n".join(f"- {name}: {text}" for name, text in self.types.items())
        lines = [self.question.strip(), "", "Types (choose exactly one):", types]
        if self.flags:
            flags = "\n".join(f"- {name}: {text}" for name, text in self.flags.items())
            lines += ["", "Flags (list every one that applies, or none):", flags]
        lines += [
            "",
            'Answer with JSON only: {"content_type": "<type>", "flags": [<flags>], '
            '"confidence": <0 to 1>}',
        ]
        return "\n".join(lines)

    def parse(self, text: str) -> Answer:
        """Read an answer: JSON (anywhere in the text), else the first type the text names."""
        found = next((v for v in json_values(text) if isinstance(v, dict)), None)
        if found is not None:
            kind = self._label(
                found.get("content_type") or found.get("type") or found.get("label"), self.types
            )
            raw_flags = found.get("flags", found.get("content_flags")) or []
            raw_flags = raw_flags if isinstance(raw_flags, list) else [raw_flags]
            flags = tuple(dict.fromkeys(f for f in map(self._flag, raw_flags) if f))
            confidence = _confidence(found.get("confidence", found.get("conf")))
            if kind is not None:
                return Answer(kind, flags, confidence)
        kind = self._first_named(text, self.types)
        if kind is None:
            shown = " ".join(text.split())[:80]
            return Answer(None, error=f"the answer names no type of {self.name}: {shown!r}")
        flags = tuple(f for f in self.flags if _mentions(text, f))
        return Answer(kind, flags, None)

    def _flag(self, value: Any) -> str | None:
        return self._label(value, self.flags)

    @staticmethod
    def _label(value: Any, names: dict[str, str]) -> str | None:
        if not isinstance(value, str):
            return None
        key = _normal(value)
        if key in names:
            return key
        return next((name for name in names if name in key), None)  # "natural_footage"

    @staticmethod
    def _first_named(text: str, names: dict[str, str]) -> str | None:
        hits = [(m.start(), name) for name in names if (m := _mention(text, name)) is not None]
        return min(hits)[1] if hits else None


def _normal(value: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", value.strip().lower()).strip("_")


def _mention(text: str, name: str) -> re.Match[str] | None:
    words = r"[\s_-]+".join(map(re.escape, name.split("_")))
    return re.search(rf"(?<![a-z0-9]){words}(?![a-z0-9])", text, re.IGNORECASE)


def _mentions(text: str, name: str) -> bool:
    return _mention(text, name) is not None


def _confidence(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if number != number:  # NaN
        return None
    return min(1.0, max(0.0, number / 100 if 1 < number <= 100 else number))


PRESET_PACKAGE = "clipsieve.classify.presets"


def preset_names() -> list[str]:
    folder = resources.files(PRESET_PACKAGE)
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_label_set(spec: str) -> LabelSet:
    """A preset by name (``broad``, ``panda70m``) or a YAML file."""
    path = Path(spec).expanduser()
    if spec in preset_names():
        text = resources.files(PRESET_PACKAGE).joinpath(f"{spec}.yaml").read_text("utf-8")
        where = f"label set '{spec}'"
    elif path.suffix in (".yaml", ".yml") and path.is_file():
        text = path.read_text(encoding="utf-8")
        where = str(path)
    else:
        raise LabelSetError(
            f"unknown label set '{spec}': give a preset ({', '.join(preset_names())}) or a "
            ".yaml file with types: and flags:"
        )
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise LabelSetError(f"{where}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return _label_set(data, where, spec)


def _label_set(data: Any, where: str, source: str) -> LabelSet:
    if not isinstance(data, dict):
        raise LabelSetError(f"{where}: expected a mapping with types: and flags:")
    groups: dict[str, dict[str, str]] = {}
    for key in ("types", "flags"):
        group = data.get(key) or {}
        if not isinstance(group, dict):
            raise LabelSetError(f"{where}: {key} must map each label to its description")
        for name, text in group.items():
            if not isinstance(name, str) or not NAME.match(name):
                raise LabelSetError(
                    f"{where}: label {name!r} must be lower-case letters, digits and _"
                )
            if not isinstance(text, str) or not text.strip():
                raise LabelSetError(f"{where}: label '{name}' needs a description")
        groups[key] = {name: " ".join(text.split()) for name, text in group.items()}
    if len(groups["types"]) < 2:
        raise LabelSetError(f"{where}: give at least two types to choose from")
    clash = set(groups["types"]) & set(groups["flags"])
    if clash:
        raise LabelSetError(f"{where}: {sorted(clash)[0]!r} is both a type and a flag")
    question = data.get("question") or "These are frames from one video clip, in time order."
    name = str(data.get("name") or Path(source).stem)
    return LabelSet(name, groups["types"], groups["flags"], str(question), source)
