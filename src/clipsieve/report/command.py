"""``clipsieve report RUN_DIR``: rebuild ``report.html`` from the run's tables.

Selection commands (filter, dedup, cluster, ...) change the clip table after the run; this
command re-renders the page from ``clips.parquet``, ``videos.parquet``, ``run.json``,
``funnel.json`` and ``clusters.json`` without touching anything else.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from clipsieve.cliutil import console, keep_text, run_folder_command, user_errors


@run_folder_command
def report(
    run_dir: Path = typer.Argument(..., parser=keep_text, help="A finished run folder."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Default RUN_DIR/report.html."),
    max_thumbs: int = typer.Option(
        200, "--max-thumbs", help="Thumbnails of kept clips shown in the gallery."
    ),
) -> None:
    """Rebuild the HTML report of a run from its tables (opens from disk, no server)."""
    from clipsieve.report.html import write_report
    from clipsieve.runfolder import RUN_JSON, VIDEOS_FILE, clips_path

    with user_errors():
        clips = clips_path(run_dir)
        videos = run_dir / VIDEOS_FILE if (run_dir / VIDEOS_FILE).is_file() else None
        info_path = run_dir / RUN_JSON
        info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
        with console.status("rendering report …"):
            path = write_report(run_dir, videos, clips, info, out, max_thumbs=max_thumbs)
    console.print(f"report: {path}")


def register_report(app: typer.Typer) -> None:
    """Add the ``report`` command to ``app``."""
    app.command("report")(report)
