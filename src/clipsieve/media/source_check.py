"""Decode a source span only while the source is still the video the run cut from.

When a clip file is gone, `score` and `caption` decode the clip's span from ``source_path``.
If that file was replaced since the run (re-downloaded, re-encoded, another video under the
same name) the span shows other frames, and scores or captions would be silently wrong. A
folder run's ``video_id`` ends with a hash of the file's content (``<name>-<10 hex>``,
:func:`clipsieve.ingest.folder.make_video_id`): the source is checked against it first, once
per file (an object in a store is read in place). Metafile videos are named by the dataset and
cannot be checked this way.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

from clipsieve.media.sources import SourceUnavailable, content_fingerprint, url_fingerprint
from clipsieve.storage import is_url

_HASHED_ID = re.compile(r"-(?P<hash>[0-9a-f]{10})(?:-\d+)?$")


def _fingerprint(path: str) -> str:
    if is_url(path):
        return url_fingerprint(path)[0][:10]
    return content_fingerprint(Path(path))[:10]


class SourceChanged(Exception):
    """The source file is not the video the clip was cut from (message for the row's error)."""


class SourceCheck:
    """Checks sources against their rows' ``video_id`` hash; thread-safe, one hash per file
    (keyed by path, size and modification time, so a file replaced later is hashed again)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hashes: dict[tuple[str, int, int], str] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {}  # stages travel to worker processes: a lock does not, the cache need not

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()  # type: ignore[misc]

    def source(self, row: dict[str, Any]) -> str:
        """``row["source_path"]``, or :class:`SourceChanged` when its content changed."""
        path = str(row["source_path"])
        found = _HASHED_ID.search(str(row.get("video_id") or ""))
        if found is None:
            return path
        if is_url(path):  # an object in a store: its fingerprint read in place, once
            key: tuple[str, int, int] = (path, 0, 0)
        else:
            try:
                st = Path(path).stat()
            except OSError:
                return path  # the decoder says why it cannot open it
            key = (path, st.st_size, st.st_mtime_ns)
        with self._lock:
            digest = self._hashes.get(key)
        if digest is None:
            try:
                digest = _fingerprint(path)
            except SourceUnavailable:
                return path  # the decoder says why it cannot open it
            with self._lock:
                self._hashes[key] = digest
        if digest != found["hash"]:
            raise SourceChanged(
                f"the clip file is gone and its source {Path(path).name} changed since the run "
                f"(content no longer matches video_id {row.get('video_id')}): run `clipsieve "
                "run` again to cut it from the new file"
            )
        return path
