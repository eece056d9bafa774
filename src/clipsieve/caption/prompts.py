"""Caption prompt templates: shipped ones by name, or the user's own file.

Templates are plain text with ``$name`` fields (``string.Template``), so JSON examples in a
prompt need no escaping. Placeholders: ``$caption`` (the clip's existing caption, ``caption_src``)
and ``$camera_motion`` (the measured camera motion, in words). A field whose column is
missing or null is filled with a neutral phrase rather than left as ``$name``.

Shipped: ``recaption`` (the original filtering project's prompt: improve the given caption, all
lowercase, at most 100 words, only what is visible, english), ``detailed`` (a fresh detailed
description), ``camera`` (existing caption plus measured camera motion) and ``rewrite`` (the
text-only rewrite pass, answering JSON).
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from clipsieve.errors import UserError

CAMERA_WORDS: dict[str, str] = {
    "static": "the camera is static",
    "pan_left": "the camera pans left",
    "pan_right": "the camera pans right",
    "tilt_up": "the camera tilts up",
    "tilt_down": "the camera tilts down",
    "zoom_in": "the camera zooms in",
    "zoom_out": "the camera zooms out",
    "dynamic": "the camera moves freely (handheld or complex motion)",
}
MISSING_CAPTION = "(no caption yet)"
MISSING_CAMERA = "unknown (not measured)"


def shipped_prompts() -> list[str]:
    """Names of the templates that ship with clipsieve."""
    folder = resources.files("clipsieve.caption") / "templates"
    return sorted(p.name.rsplit(".", 1)[0] for p in folder.iterdir() if p.name.endswith(".txt"))


@dataclass(frozen=True)
class PromptTemplate:
    """A loaded template: ``name`` (shipped name or file path, for provenance) and its text."""

    name: str
    text: str

    @property
    def fields(self) -> set[str]:
        """The ``$name`` fields the template uses."""
        found = set()
        for match in string.Template.pattern.finditer(self.text):
            name = match.group("named") or match.group("braced")
            if name:
                found.add(name)
        return found

    def render(self, row: dict[str, Any]) -> str:
        """The prompt for one clip row."""
        return string.Template(self.text).safe_substitute(prompt_values(row)).strip()


def prompt_values(row: dict[str, Any]) -> dict[str, str]:
    """Placeholder values from a clip row."""
    caption = row.get("caption_src")
    if caption is None and "caption_src" not in row:
        caption = row.get("caption")
    caption = " ".join(str(caption).split()) if caption else MISSING_CAPTION
    motion = row.get("camera_motion")
    camera = CAMERA_WORDS.get(str(motion), str(motion)) if motion else MISSING_CAMERA
    return {"caption": caption, "camera_motion": camera}


def load_prompt(spec: str) -> PromptTemplate:
    """A shipped template by name, or a text file by path; anything else is a one-line error."""
    names = shipped_prompts()
    if spec in names:
        text = (resources.files("clipsieve.caption") / "templates" / f"{spec}.txt").read_text(
            encoding="utf-8"
        )
        return PromptTemplate(spec, text)
    path = Path(spec).expanduser()
    if path.is_file():
        text = path.read_text(encoding="utf-8")
        if not text.strip():
            raise UserError(f"prompt file {path} is empty: write the prompt text into it")
        return PromptTemplate(str(path), text)
    raise UserError(
        f"unknown prompt '{spec}': use one of {', '.join(names)} or the path of a text file"
    )
