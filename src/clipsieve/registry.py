"""Name → class, one way for scorers, shot detectors, caption backends and export formats.

Each kind keeps a table of its built-in implementations as ``"module:Class"`` strings, imported
only when used (an unused scorer's dependencies never load). A user may also name any class
directly as ``"package.module:Class"``, and other packages add names through the Python entry
point group of the kind (``clipsieve.scorers``, ``clipsieve.shot_detectors``,
``clipsieve.caption_backends``, ``clipsieve.exporters``). An unknown name, a class that cannot be
imported or parameters the class does not take are one :class:`~clipsieve.errors.UserError`
naming the valid names.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Mapping
from typing import Any

from clipsieve.errors import UserError


class Registry:
    """The implementations of one kind (``"scorer"``, ``"shot detector"``, ...)."""

    def __init__(self, kind: str, builtins: Mapping[str, str], group: str) -> None:
        self.kind = kind
        self.builtins = builtins  # live: a test may add to the module's table
        self.group = group

    def _plugins(self) -> dict[str, str]:
        """Names other installed packages register (``[project.entry-points."<group>"]``)."""
        return {ep.name: ep.value for ep in importlib.metadata.entry_points(group=self.group)}

    def names(self) -> list[str]:
        """Every name this kind answers to: built-ins first, then plugins."""
        return [*self.builtins, *(n for n in self._plugins() if n not in self.builtins)]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (":" in name or name in self.names())

    def target(self, name: str) -> str:
        """``"module:Class"`` of ``name`` (a built-in, a plugin, or a target given as is)."""
        if name in self.builtins:
            return self.builtins[name]
        if ":" in name:
            return name
        plugins = self._plugins()
        if name in plugins:
            return plugins[name]
        raise UserError(
            f"unknown {self.kind} '{name}' (known: {', '.join(self.names())}; or give "
            "package.module:Class)"
        )

    def load(self, name: str) -> Any:
        """The class (or factory) ``name`` stands for."""
        module_name, _, attribute = self.target(name).partition(":")
        try:
            found: Any = importlib.import_module(module_name)
            for part in attribute.split("."):
                found = getattr(found, part)
        except (ImportError, AttributeError) as exc:
            raise UserError(
                f"{self.kind} '{name}': cannot load {self.target(name)} ({exc})"
            ) from None
        return found

    def create(self, name: str, **params: Any) -> Any:
        """An instance of ``name`` built with ``params``."""
        cls = self.load(name)
        try:
            return cls(**params)
        except TypeError as exc:
            raise UserError(f"{self.kind} '{name}': {exc}") from None
