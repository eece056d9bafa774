"""``clipsieve report RUN_DIR``: rebuild ``report.html`` from the run's tables.

Selection commands (filter, dedup, cluster, ...) change the clip table after the run; this
command re-renders the page from ``clips.parquet``, ``videos.parquet``, ``run.json``,
``funnel.json`` and ``clusters.json`` without touching anything else.
"""

from __future__ import annotations

from pathlib import Path

import typer

from clipsieve.cli.common import console, keep_text, run_folder_command, user_errors


@run_folder_command
def report(
    run_dir: Path = typer.Argument(..., parser=keep_text, help="A finished run folder."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Default RUN_DIR/report.html."),
    max_thumbs: int = typer.Option(
        200, "--max-thumbs", help="Thumbnails of kept clips shown in the gallery."
    ),
) -> None:
    """Rebuild the HTML report of a run from its tables (opens from disk, no server)."""
    from clipsieve.report.html import ReportStep
    from clipsieve.steps import apply_step

    with user_errors():
        step = ReportStep(out, max_thumbs)
        with console.status("rendering report …"):
            apply_step(run_dir, step)
    console.print(f"report: {step.path}")


def register_report(app: typer.Typer) -> None:
    """Add the ``report`` command to ``app``."""
    app.command("report")(report)
