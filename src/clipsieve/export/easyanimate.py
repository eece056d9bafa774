"""EasyAnimate's training metadata: a JSON list of ``{"file_path", "text", "type": "video"}``.

EasyAnimate reads this file with ``--train_data_meta`` and joins each ``file_path`` to
``--train_data_dir``, so paths are written relative to the export folder (``clips/<key>.mp4``)
and the folder can be moved as a whole. Clips without a caption get ``"text": ""``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from clipsieve.table import atomic_path


def easyanimate_entries(items: Iterable[tuple[str, str | None]]) -> list[dict[str, str]]:
    """``(relative file path, caption)`` pairs as EasyAnimate entries, in the given order."""
    return [{"file_path": path, "text": text or "", "type": "video"} for path, text in items]


def write_easyanimate_json(
    items: Iterable[tuple[str, str | None]], path: str | os.PathLike[str]
) -> Path:
    """Write the entries atomically as one indented JSON list."""
    entries = easyanimate_entries(items)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(entries, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return Path(path)


class EasyAnimateWriter:
    """The same JSON list written entry by entry (an export of millions of clips holds one
    batch); atomic like every export file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.count = 0

    def __enter__(self) -> EasyAnimateWriter:
        self._atomic = atomic_path(self.path)
        self._fh = open(self._atomic.__enter__(), "w", encoding="utf-8")  # noqa: SIM115
        self._fh.write("[")
        return self

    def write(self, items: Iterable[tuple[str, str | None]]) -> None:
        for entry in easyanimate_entries(items):
            text = json.dumps(entry, indent=2, ensure_ascii=False).replace("\n", "\n  ")
            self._fh.write(("," if self.count else "") + "\n  " + text)
            self.count += 1

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                self._fh.write("\n]\n" if self.count else "]\n")
        finally:
            self._fh.close()
            self._atomic.__exit__(*exc)
