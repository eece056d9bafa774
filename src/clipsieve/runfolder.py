"""Read and rewrite the clip table of a finished run folder.

Where a run's tables are and how to read them whole (for small runs, the library and tests).
Commands after ``run`` never load the whole table: they are post-run steps applied by the
streaming runner in :mod:`clipsieve.steps`. :func:`clipsieve.steps.runner.save_clips` replaces the
table with one held in memory, keeping the same provenance chain as the runner.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from clipsieve.errors import UserError
from clipsieve.table import read_parquet

# the names of a run folder's files, in one place
CLIPS_FILE = "clips.parquet"
VIDEOS_FILE = "videos.parquet"
RUN_JSON = "run.json"
INPUTS_FILE = "inputs.parquet"  # each video's plan digest (engine/replan.py)
CLIPS_DIR = "clips"


class RunFolderError(UserError):
    """The folder is not a finished clipsieve run (one line saying what is missing)."""


def clips_path(run_dir: str | Path) -> Path:
    """``RUN_DIR/clips.parquet``, or a :class:`RunFolderError` saying how to make it."""
    path = Path(run_dir) / CLIPS_FILE
    if not path.is_file():
        raise RunFolderError(
            f"{run_dir} has no {CLIPS_FILE}: run `clipsieve run INPUT --out {run_dir}` first"
        )
    return path


def load_clips(run_dir: str | Path, vectors: bool = False) -> pa.Table:
    """The run's clip table (all rows, all columns, with its schema metadata); ``vectors``
    joins the vector columns from ``vectors/`` too."""
    table = read_parquet(clips_path(run_dir))
    if vectors:
        from clipsieve.vectors import VECTOR_DIR, attach_vectors

        for path in sorted((Path(run_dir) / VECTOR_DIR).glob("*.parquet")):
            table = attach_vectors(table, run_dir, path.stem)
    return table


def load_videos(run_dir: str | Path) -> pa.Table:
    """The run's videos table."""
    path = Path(run_dir) / VIDEOS_FILE
    if not path.is_file():
        raise RunFolderError(f"{run_dir} has no {VIDEOS_FILE}: it is not a finished clipsieve run")
    return read_parquet(path)


def inside(path: Path, root: Path) -> bool:
    """Whether ``path`` lies under ``root`` (both resolved)."""
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def resolve_clip_file(root: Path, stored: str) -> tuple[str, Path] | None:
    """``(key, real_path)`` of a clip file inside ``root`` (already resolved), or None.

    The stored path is tried first; a run folder that was copied or moved still finds its cut
    clips under ``clips/`` by file name. Every candidate is resolved with symlinks followed and
    must end up inside the run folder.
    """
    path = Path(stored)
    candidates = [path if path.is_absolute() else root / path, root / CLIPS_DIR / path.name]
    for candidate in candidates:
        real = candidate.resolve()
        if not real.is_file() or not inside(real, root):
            continue
        try:
            key = candidate.relative_to(root).as_posix()
        except ValueError:
            key = real.relative_to(root).as_posix()
        if ".." in key.split("/"):
            continue
        return key, real
    return None
