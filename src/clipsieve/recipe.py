"""Recipes: a whole curation workflow as a list of clipsieve commands in a YAML file.

A recipe is what a user would type, step by step, with ``{variables}``; ``clipsieve recipe NAME
--out RUN --set metafile=hdvg.json`` replays it. The packaged recipes live in
``clipsieve/recipes/`` (``hdvg-supershy``: the original HD-VG filtering workflow); any YAML file
with the same shape works::

    name: my-recipe
    description: what it does
    vars:                        # defaults; --set KEY=VALUE overrides; null = must be given
      metafile: null
      n: 1
    steps:
      - [run, --metafile, "{metafile}", --out, "{out}"]
      - when: labels             # only when the variable is set (non-empty)
        run: [train-classifier, "{out}", --labels, "{labels}"]

``{out}`` (the run folder) and ``{recipe_dir}`` (the recipe file's folder, for files that come
with it, such as a run config) are always defined. Steps run in order through the same command-line
app, so each prints and records exactly what the command would on its own, and a failed step
stops the recipe with that command's one-line error.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from clipsieve.errors import UserError

RECIPES_PACKAGE = "clipsieve.recipes"


class RecipeError(UserError):
    """A recipe file or a --set value is wrong (one line naming the field)."""


@dataclass
class Recipe:
    """A parsed recipe: its name, variables with defaults, and the steps as argument templates."""

    name: str
    description: str = ""
    vars: dict[str, Any] = field(default_factory=dict)
    steps: list[tuple[str | None, list[str]]] = field(default_factory=list)  # (when, args)
    folder: Path = Path(".")  # where the recipe file lives: {recipe_dir}

    def values(self, out: Path, sets: dict[str, str]) -> dict[str, Any]:
        """Variables for :meth:`commands`: defaults, then ``sets``, then out and recipe_dir."""
        unknown = sorted(set(sets) - set(self.vars))
        if unknown:
            raise RecipeError(
                f"recipe '{self.name}' has no variable {', '.join(unknown)} "
                f"(it has: {', '.join(self.vars) or 'none'})"
            )
        return {**self.vars, **sets, "out": str(out), "recipe_dir": str(self.folder)}

    def commands(self, values: dict[str, Any]) -> list[list[str]]:
        """The steps whose condition holds, with every ``{variable}`` filled in."""
        missing = sorted(k for k, v in values.items() if v is None)
        if missing:
            raise RecipeError(
                f"recipe '{self.name}' needs {', '.join(missing)}: pass --set "
                + " --set ".join(f"{k}=..." for k in missing)
            )
        out = []
        for when, args in self.steps:
            if when is not None and values.get(when) in (None, "", False):
                continue
            out.append([_fill(arg, values, self.name) for arg in args])
        return out


def _fill(arg: str, values: dict[str, Any], recipe: str) -> str:
    try:
        return arg.format_map(values)
    except KeyError as exc:
        raise RecipeError(f"recipe '{recipe}': step uses undefined variable {exc}") from None
    except (ValueError, IndexError):
        raise RecipeError(f"recipe '{recipe}': bad braces in step argument {arg!r}") from None


def packaged_recipes() -> list[str]:
    """Names of the recipes that ship with clipsieve."""
    folder = resources.files(RECIPES_PACKAGE)
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def _recipe_file(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    resource = resources.files(RECIPES_PACKAGE) / f"{name_or_path}.yaml"
    if not resource.is_file():
        raise RecipeError(
            f"no recipe '{name_or_path}' (packaged: {', '.join(packaged_recipes())}; "
            "or give a .yaml file)"
        )
    return Path(str(resource))


def load_recipe(name_or_path: str) -> Recipe:
    """A packaged recipe by name, or a recipe YAML file; malformed ones fail in one line."""
    file = _recipe_file(name_or_path)
    where = str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"cannot read recipe {file}: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        raise RecipeError(f"recipe {where} is not valid YAML") from None
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
        raise RecipeError(f"recipe {where}: needs a mapping with a 'steps' list")
    variables = data.get("vars") or {}
    if not isinstance(variables, dict):
        raise RecipeError(f"recipe {where}: 'vars' must be a mapping")
    steps: list[tuple[str | None, list[str]]] = []
    for i, step in enumerate(data["steps"], start=1):
        when = None
        if isinstance(step, dict):
            when, step = step.get("when"), step.get("run")
        if (
            not isinstance(step, list)
            or not step
            or not all(isinstance(a, (str, int, float)) for a in step)
        ):
            raise RecipeError(f"recipe {where}: step {i} must be a list of command words")
        steps.append((None if when is None else str(when), [str(a) for a in step]))
    return Recipe(
        name=str(data.get("name") or Path(where).stem),
        description=str(data.get("description") or ""),
        vars={str(k): v for k, v in variables.items()},
        steps=steps,
        folder=file.resolve().parent,
    )


def parse_sets(items: list[str]) -> dict[str, str]:
    """``["metafile=a.json", "n=2"]`` → ``{"metafile": "a.json", "n": "2"}``."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise RecipeError(f"--set {item!r}: write it as KEY=VALUE")
        out[key.strip()] = value
    return out


def describe(commands: list[list[str]]) -> str:
    """The commands as shell lines (for printing and for docs)."""
    return "\n".join("clipsieve " + shlex.join(args) for args in commands)
