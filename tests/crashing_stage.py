"""A stage that kills its own worker process on chosen videos (to test crash isolation).

It lives in its own module so the engine's spawned workers can import it by name.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from clipsieve.stage import RowStage


@dataclass
class CrashOnName(RowStage):
    """SIGKILLs the process processing a video whose file name contains ``marker``.

    The crash happens in the clip stages' place of a real decoder crash: inside a worker, with
    other videos in flight on the other workers.
    """

    name: ClassVar[str] = "crash_on_name"
    table: ClassVar[str] = "clips"
    inputs: ClassVar[tuple[str, ...]] = ("source_path",)

    marker: str = "poison"

    def process_row(self, row: dict[str, Any]) -> dict[str, Any]:
        if self.marker in Path(str(row.get("source_path") or "")).name:
            os.kill(os.getpid(), signal.SIGKILL)
        return row


@dataclass
class CrashInSetup(CrashOnName):
    """Kills every worker while it sets up: no task can ever finish (a broken install)."""

    name: ClassVar[str] = "crash_in_setup"

    def setup(self) -> None:
        os.kill(os.getpid(), signal.SIGKILL)
