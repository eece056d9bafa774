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
