"""The label store: an append-only SQLite (WAL) log of label events.

Why an event log rather than one row per clip: two browsers labelling at once must lose nothing,
and ``undo`` must take back exactly the last thing *this* page did. Every key press appends one
row (``label`` 0/1, or a ``skip``) with the labeller's name, the page session and the time; undo
marks the session's latest live event as undone instead of deleting it. The current label of a
clip is its latest live ``label`` event. WAL mode lets readers (the classifier, an export) run
while the page writes; each call opens its own short connection, so the server needs no lock.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from clipsieve.errors import UserError

LABELS_FILE = "labels.sqlite"
ACTIONS = ("label", "skip")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    clip_id   TEXT    NOT NULL,
    action    TEXT    NOT NULL CHECK (action IN ('label', 'skip')),
    label     INTEGER CHECK (label IN (0, 1)),
    labeller  TEXT    NOT NULL,
    session   TEXT    NOT NULL DEFAULT '',
    created   REAL    NOT NULL,
    undone    REAL
);
CREATE INDEX IF NOT EXISTS events_clip ON events (clip_id, id);
CREATE INDEX IF NOT EXISTS events_session ON events (session, id);
"""


@dataclass(frozen=True)
class LabelEvent:
    """One stored event (a label or a skip)."""

    id: int
    clip_id: str
    action: str
    label: int | None
    labeller: str
    session: str
    created: float


def labels_path(run_dir: str | Path) -> Path:
    """Where a run keeps its labels: ``RUN_DIR/labels.sqlite``."""
    return Path(run_dir) / LABELS_FILE


def is_label_store(path: str | Path) -> bool:
    """True when ``path`` is an SQLite file (checked by its header, not its name)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


class LabelStore:
    """Labels of one run, kept in an SQLite file in WAL mode."""

    def __init__(self, path: str | Path, create: bool = True) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise UserError(
                f"{self.path} does not exist: label clips with `clipsieve annotate RUN_DIR` first"
            )
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA synchronous=NORMAL")
            yield conn
        finally:
            conn.close()

    def add(
        self,
        clip_id: str,
        action: str,
        label: int | None,
        labeller: str,
        session: str = "",
        created: float | None = None,
    ) -> int:
        """Append one event and return its id (committed before returning)."""
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}, not {action!r}")
        if (action == "label") != (label in (0, 1)):
            raise ValueError("a 'label' event needs label 0 or 1; a 'skip' event none")
        with self._connect() as conn:
            cur = conn.execute(
                "INSERT INTO events (clip_id, action, label, labeller, session, created) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (clip_id, action, label, labeller, session, created or time.time()),
            )
            return int(cur.lastrowid or 0)

    def undo(self, session: str) -> LabelEvent | None:
        """Mark the session's latest live event undone; returns it, or None if nothing is left."""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute(
                "SELECT id, clip_id, action, label, labeller, session, created FROM events "
                "WHERE session = ? AND undone IS NULL ORDER BY id DESC LIMIT 1",
                (session,),
            ).fetchone()
            if row is not None:
                conn.execute("UPDATE events SET undone = ? WHERE id = ?", (time.time(), row[0]))
            conn.execute("COMMIT")
        return LabelEvent(*row) if row is not None else None

    def events(self, include_undone: bool = False) -> list[LabelEvent]:
        """All events in the order they happened."""
        where = "" if include_undone else "WHERE undone IS NULL"
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT id, clip_id, action, label, labeller, session, created FROM events "
                f"{where} ORDER BY id"
            ).fetchall()
        return [LabelEvent(*r) for r in rows]

    def current(self, labeller: str | None = None) -> dict[str, int]:
        """``{clip_id: 0|1}``: each clip's latest live label (optionally by one labeller)."""
        out: dict[str, int] = {}
        for event in self.events():
            if event.action == "label" and (labeller is None or event.labeller == labeller):
                out[event.clip_id] = int(event.label)  # type: ignore[arg-type]
        return out

    def seen(self) -> set[str]:
        """Clips with any live event (labelled or skipped): the page starts after them."""
        return {event.clip_id for event in self.events()}
