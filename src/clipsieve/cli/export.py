"""``clipsieve export RUN_DIR --format ...``: write the kept clips as a training set.

Registered on the main app by :func:`register_export`; the work is in
:mod:`clipsieve.export.training`.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from clipsieve.cli.common import at_least, console, keep_text, run_folder_command, user_errors
from clipsieve.cli.ray_options import address_option, engine_option, workers_option
from clipsieve.export.manifests import training_formats
from clipsieve.export.training import LINK_MODES


@run_folder_command
def export(
    run_dir: Path = typer.Argument(..., parser=keep_text, help="A finished run folder."),
    fmt: str = typer.Option(
        ...,
        "--format",
        "-f",
        help=f"One of: {', '.join(training_formats())}; or views (RUN_DIR/clips.csv, clips.jsonl).",
    ),
    out: str | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Export folder (default RUN_DIR/export/FORMAT); webdataset also takes a URL "
        "(s3://bucket/wds).",
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
    engine: str = engine_option("webdataset shards written by Ray workers"),
    address: str | None = address_option(),
    workers: int | None = workers_option("shard writers"),
) -> None:
    """Export the kept clips (filters, dedup and balance applied) as a training set.

    ``--format views`` rewrites the run folder's own clips.csv and clips.jsonl (kept rows,
    clip files in place), which post-run steps remove when they change the table.
    """
    from clipsieve.engine.ray_pool import ray_options
    from clipsieve.export.training import ExportStep, export_target, parse_size
    from clipsieve.steps import apply_step

    with user_errors():
        at_least("--shard-count", shard_count, 1)
        ray = ray_options(engine, address, workers)
        if fmt == VIEWS:
            _write_views(run_dir)
            return
        target = export_target(run_dir, fmt, out)
        step = ExportStep(
            target, fmt, link=link, shard_bytes=parse_size(shard_size), shard_count=shard_count,
            ray=ray,
        )  # fmt: skip
        apply_step(run_dir, step)
        summary = step.result
        assert summary is not None
    console.print(f"exported {summary.count} clips as {summary.format} → {summary.out}")
    if summary.index:
        table = Table(title="buckets")
        for column in ("bucket", "clips", "shards"):
            table.add_column(column, justify="left" if column == "bucket" else "right")
        for name, bucket in summary.index["buckets"].items():
            table.add_row(name, str(bucket["count"]), str(len(bucket["shards"])))
        console.print(table)


VIEWS = "views"


def _write_views(run_dir: Path) -> None:
    from clipsieve.export import export_run
    from clipsieve.runfolder import clips_path

    written = export_run(run_dir, clips_path(run_dir), formats=("csv", "jsonl"))
    console.print(f"views: {', '.join(str(p) for p in written.values())}")


def register_export(app: typer.Typer) -> None:
    """Add the ``export`` command to ``app``."""
    app.command("export")(export)
