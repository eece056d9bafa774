"""What an executor hands back to :mod:`clipsieve.run`, whichever executor it was.

The merged tables are files (``videos.parquet``, ``clips.parquet``), written by streaming the
shards; :class:`RunResult` reads them only when someone asks for a whole table, so a run over
millions of clips does not hold its table in memory just to print a summary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pyarrow as pa

from clipsieve.engine.checkpoint import MergeCounts
from clipsieve.engine.tasks import StatsByStage
from clipsieve.table import read_parquet


@dataclass
class RunResult:
    videos_path: Path
    clips_path: Path
    processed: int  # videos processed in this invocation
    skipped: int  # videos already finished by an earlier invocation
    stats: StatsByStage
    counts: MergeCounts = field(default_factory=MergeCounts)
    engine: str = "local"
    workers: int = 1
    startup_s: float = 0.0  # engine start-up inside the engine time (Ray: joining/starting Ray)

    @cached_property
    def videos(self) -> pa.Table:
        """The merged ``videos`` table (read from ``videos.parquet`` on first use)."""
        return read_parquet(self.videos_path)

    @cached_property
    def clips(self) -> pa.Table:
        """The merged ``clips`` table (read from ``clips.parquet`` on first use)."""
        return read_parquet(self.clips_path)
