"""``clipsieve export RUN_DIR --format ...``: write the kept clips as a training set.

Registered on the main app by :func:`register_export`; the work is in
:mod:`clipsieve.export.training`.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from clipsieve.cliutil import console, keep_text, run_folder_command, user_errors
from clipsieve.export.training import LINK_MODES, TRAINING_FORMATS


@run_folder_command
def export(
    run_dir: Path = typer.Argument(..., parser=keep_text, help="A finished run folder."),
    fmt: str = typer.Option(..., "--format", "-f", help=f"One of: {', '.join(TRAINING_FORMATS)}."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Export folder (default RUN_DIR/export/FORMAT)."
    ),
    link: str = typer.Option(
        "copy", "--link", help=f"How clip files get there: {', '.join(LINK_MODES)}."
    ),
    shard_size: str = typer.Option(
        "1GiB", "--shard-size", help="webdataset: largest shard, e.g. 500MB, 1GiB."
    ),
    shard_count: int | None = typer.Option(
        None, "--shard-count", help="webdataset: at most this many clips per shard."
    ),
) -> None:
    """Export the kept clips (filters, dedup and balance applied) as a training set."""
    from clipsieve.export.training import export_training_set, parse_size
    from clipsieve.runfolder import load_clips

    with user_errors():
        target = out if out is not None else run_dir / "export" / fmt
        summary = export_training_set(
            run_dir,
            load_clips(run_dir),
            target,
            fmt,
            link=link,
            shard_bytes=parse_size(shard_size),
            shard_count=shard_count,
        )
    console.print(f"exported {summary.count} clips as {summary.format} → {summary.out}")
    if summary.index:
        table = Table(title="buckets")
        for column in ("bucket", "clips", "shards"):
            table.add_column(column, justify="left" if column == "bucket" else "right")
        for name, bucket in summary.index["buckets"].items():
            table.add_row(name, str(bucket["count"]), str(len(bucket["shards"])))
        console.print(table)


def register_export(app: typer.Typer) -> None:
    """Add the ``export`` command to ``app``."""
    app.command("export")(export)
