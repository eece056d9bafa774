"""The inputs are part of a run's identity: what changed is planned again, nothing twice.

A resumed `run` used to skip every video it had finished, whatever changed since: an edited
metafile (new captions, moved cue times) was ignored, a different input list silently replaced
the run, and a video that failed because its file was missing stayed failed once the file came.
Before the engine starts, :func:`replan` compares the inputs with ``inputs.parquet`` (each
video's id, path and *plan digest*, a hash of what its row asks for: spans, captions, section
times; not where the file is) and with the last merged ``videos.parquet``:

- a finished video whose plan digest changed is discarded and planned again (its old clip rows
  go with it: never two rows for one ``clip_id``);
- a finished video that failed as a whole because its file was missing or could not be
  accessed is tried again (a broken file is not: it would fail the same way, and a second run
  of an unchanged folder redoes nothing);
- a finished video with a kept clip whose file is gone is cut again;
- a finished video that is not among the inputs any more is refused in one line (the run would
  otherwise lose it from its tables without a word): list it again, use another ``--out``, or
  ``--restart``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from clipsieve.engine.checkpoint import ShardStore
from clipsieve.errors import UserError
from clipsieve.runfolder import CLIPS_FILE, INPUTS_FILE, VIDEOS_FILE
from clipsieve.table import STATUS_ERROR, stream_parquet, write_parquet

# what does not change what a video's rows are: where the file is, and what a run found
_NOT_PLAN = frozenset({"video_id", "path", "status", "error", "size_bytes"})


class InputsChanged(UserError):
    """Finished videos are missing from the inputs (one line saying what to do)."""


def plan_digest(row: Mapping[str, Any]) -> str:
    """A hash of what a video's row asks the run to make (spans, captions, section times)."""
    plan = {k: v for k, v in row.items() if k not in _NOT_PLAN}
    text = json.dumps(plan, sort_keys=True, default=str)
    return hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:16]


@dataclass
class Replan:
    changed: list[str] = field(default_factory=list)  # planned again: their row changed
    retried: list[str] = field(default_factory=list)  # tried again: they failed as a whole
    recut: list[str] = field(default_factory=list)  # cut again: a kept clip's file is gone


def _recorded(run_dir: Path) -> dict[str, str]:
    path = run_dir / INPUTS_FILE
    if not path.is_file():
        return {}
    table = pq.read_table(path, columns=["video_id", "plan_digest"])
    return dict(zip(*(table.column(i).to_pylist() for i in (0, 1)), strict=True))


# errors a later run can heal: the file was not there (yet) or could not be opened
RETRYABLE = ("file not found", "cannot access file", "permission denied")


def _failed(run_dir: Path) -> set[str]:
    """Videos whose whole row failed for a reason a later run can heal (:data:`RETRYABLE`)."""
    path = run_dir / VIDEOS_FILE
    if not path.is_file() or not {"status", "error"} <= set(pq.read_schema(path).names):
        return set()
    table = pq.read_table(path, columns=["video_id", "status", "error"])
    return {
        video_id
        for video_id, status, error in zip(
            *(table.column(i).to_pylist() for i in range(3)), strict=True
        )
        if status == STATUS_ERROR and any(r in (error or "").lower() for r in RETRYABLE)
    }


def _clips_missing(run_dir: Path) -> set[str]:
    """Videos with a kept, cut clip whose file is gone (from the merged table, streamed; a
    moved folder's clips are looked for in its own ``clips/``)."""
    path = run_dir / CLIPS_FILE
    wanted = ["video_id", "path", "keep", "status"]
    if not path.is_file() or not set(wanted) <= set(pq.read_schema(path).names):
        return set()
    found: set[str] = set()
    for batch in stream_parquet(path).iter_batches(columns=wanted):
        for video_id, clip, keep, status in zip(
            *(batch.column(i).to_pylist() for i in range(4)), strict=True
        ):
            if not clip or not keep or status != "ok" or video_id in found or "://" in clip:
                continue
            if not Path(clip).is_file() and not (run_dir / "clips" / Path(clip).name).is_file():
                found.add(video_id)
    return found


def replan(run_dir: Path, rows: Sequence[Mapping[str, Any]]) -> Replan:
    """Discard the finished videos the inputs changed or that failed; refuse lost ones; record
    the inputs (see the module docstring)."""
    store = ShardStore(run_dir)
    done = store.done_ids()
    digests = {str(row["video_id"]): plan_digest(row) for row in rows}
    gone = sorted(done - set(digests))
    if gone:
        raise InputsChanged(
            f"{run_dir} holds {len(gone)} finished video(s) that are not among these inputs "
            f"(e.g. {gone[0]}): give the earlier inputs too (new ones are added), use another "
            "--out, or pass --restart to start over"
        )
    outcome = Replan()
    recorded = _recorded(run_dir)
    for video_id in sorted(done):
        before = recorded.get(video_id)
        if before is not None and before != digests[video_id]:
            store.discard(video_id)
            outcome.changed.append(video_id)
    for video_id in sorted((_failed(run_dir) & done) - set(outcome.changed)):
        store.discard(video_id)
        outcome.retried.append(video_id)
    handled = {*outcome.changed, *outcome.retried}
    for video_id in sorted((_clips_missing(run_dir) & done) - handled):
        store.discard(video_id)
        outcome.recut.append(video_id)
    table = pa.table(
        {
            "video_id": list(digests),
            "path": [str(row.get("path")) for row in rows],
            "plan_digest": list(digests.values()),
        }
    )
    write_parquet(table, run_dir / INPUTS_FILE)
    return outcome
