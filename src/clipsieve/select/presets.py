"""Filter presets: published recipes shipped as YAML files inside the package.

A preset file holds ``name``, ``description``, ``where`` (a list of conditions, and-ed in order,
so each becomes one funnel step) and optionally ``top_n`` (``by``, ``n``, ``ascending``), applied
after the filter. ``--preset NAME`` picks a shipped file (``select/presets/NAME.yaml``); a path
to a YAML file of the same shape works too, so teams can keep their own recipes.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from clipsieve.errors import UserError
from clipsieve.select.expr import ExpressionError, parse


class PresetError(UserError):
    """Unknown preset name or a malformed preset file."""


@dataclass(frozen=True)
class TopNSpec:
    by: str
    n: int | None = 1
    ascending: bool = False


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    where: tuple[str, ...]
    top_n: TopNSpec | None = None
    source: str = ""


def _preset_dir() -> Any:
    return resources.files("clipsieve.select").joinpath("presets")


def available_presets() -> list[str]:
    """Names of the presets shipped with the package."""
    return sorted(
        p.name[: -len(".yaml")] for p in _preset_dir().iterdir() if p.name.endswith(".yaml")
    )


def _parse_preset(data: Any, origin: str) -> Preset:
    if not isinstance(data, dict):
        raise PresetError(f"preset {origin} must be a YAML mapping with 'where'")
    where = data.get("where")
    if isinstance(where, str):
        where = [where]
    if not isinstance(where, list) or not all(isinstance(w, str) for w in where) or not where:
        raise PresetError(f"preset {origin}: 'where' must be a non-empty list of conditions")
    for condition in where:
        try:
            parse(condition)
        except ExpressionError as exc:
            raise PresetError(f"preset {origin}: {exc}") from None
    top = data.get("top_n")
    top_n = None
    if top is not None:
        if not isinstance(top, dict) or not isinstance(top.get("by"), str):
            raise PresetError(f"preset {origin}: 'top_n' needs 'by: COLUMN' (and optional 'n')")
        n = top.get("n", 1)
        if n is not None and (not isinstance(n, int) or n < 1):
            raise PresetError(f"preset {origin}: top_n.n must be a positive integer or null")
        top_n = TopNSpec(by=top["by"], n=n, ascending=bool(top.get("ascending", False)))
    return Preset(
        name=str(data.get("name") or origin),
        description=str(data.get("description") or ""),
        where=tuple(where),
        top_n=top_n,
        source=origin,
    )


def load_preset(name_or_path: str) -> Preset:
    """A shipped preset by name, or a preset YAML file by path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        text, origin = path.read_text(encoding="utf-8"), str(path)
    else:
        entry = _preset_dir().joinpath(f"{name_or_path}.yaml")
        if not entry.is_file():
            raise PresetError(
                f"unknown preset '{name_or_path}' (shipped: {', '.join(available_presets())}; "
                "or pass a path to a .yaml preset file)"
            )
        text, origin = entry.read_text(encoding="utf-8"), name_or_path
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        first = str(exc).strip().splitlines()[0]
        raise PresetError(f"preset {origin} is not valid YAML: {first}") from None
    return _parse_preset(data, origin)
