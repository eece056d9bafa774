"""The ``clipsieve`` command line (typer).

User-caused errors (bad path, bad config, unwritable output) end with one red line naming the
thing and the fix, and exit code 2 — never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.table import Table

from clipsieve.cliutil import console
from clipsieve.cliutil import fail as _fail
from clipsieve.cliutil import progress_bar as _progress_bar
from clipsieve.cliutil import user_errors as _user_errors
from clipsieve.config import DEFAULT_CONFIG_YAML, load_config
from clipsieve.shots.command import register as register_detect_shots

app = typer.Typer(
    help="Turn raw video into a curated, captioned text-to-video training set.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Configuration files.", no_args_is_help=True)
app.add_typer(config_app, name="config")


def _print_summary(outputs: object) -> None:
    from clipsieve.run import RunOutputs

    assert isinstance(outputs, RunOutputs)
    result = outputs.result
    table = Table(title="stages", show_lines=False)
    for column in ("stage", "seconds", "rows in", "rows out", "errors"):
        table.add_column(column, justify="left" if column in ("stage", "errors") else "right")
    for name, stats in result.stats.items():
        errors = ", ".join(f"{reason} ×{n}" for reason, n in stats.errors.most_common(3))
        table.add_row(name, f"{stats.seconds:.1f}", str(stats.rows_in), str(stats.rows_out), errors)
    console.print(table)
    videos, clips = result.videos.to_pylist(), result.clips.to_pylist()
    bad = sum(1 for v in videos if v["status"] == "error")
    kept = sum(1 for c in clips if c["keep"] and c["status"] != "error")
    console.print(
        f"videos: {len(videos)} ({bad} with errors) · clips: {len(clips)} planned, {kept} kept · "
        f"this run processed {result.processed}, resumed past {result.skipped}"
    )
    for name, path in outputs.files.items():
        console.print(f"  {name:<15} {path}")


def _run(inputs: list[Path], out: Path, config_file: Path | None, restart: bool) -> None:
    from clipsieve.run import execute_run, prepare_run

    config = load_config(config_file)
    prepared = prepare_run(inputs, out, config, restart=restart)  # fails fast, before any bar
    with _progress_bar() as progress:
        task = progress.add_task("videos", total=len(prepared.rows), rate="", current="")

        def on_progress(path: str, done: int, total: int) -> None:
            elapsed = progress.tasks[0].elapsed or 0.0
            rate = f"{done / elapsed:.2f}/s" if elapsed > 0 else ""
            progress.update(
                task, completed=done, total=total, rate=rate, current=Path(path).name[:40]
            )

        outputs = execute_run(prepared, progress=on_progress)
    _print_summary(outputs)
    report = outputs.files.get("report.html")
    if report:
        console.print(f"[bold green]report:[/] {report}")


@app.command()
def run(
    inputs: list[Path] = typer.Argument(..., help="Video files or folders (searched recursively)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder (created; re-run to resume)."),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML config file."),
    restart: bool = typer.Option(False, help="Discard an earlier run in --out first."),
) -> None:
    """Run ingest → probe → shots → length policy → cut → export → report."""
    with _user_errors():
        _run(inputs, out, config, restart)


@app.command()
def ingest(
    inputs: list[Path] = typer.Argument(..., help="Video files or folders (searched recursively)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for videos.parquet."),
) -> None:
    """Find videos and probe them into OUT/videos.parquet (broken files get an error row)."""
    from clipsieve.ingest.folder import ingest_rows
    from clipsieve.media.probe import ProbeStage
    from clipsieve.run import prepare_run_dir
    from clipsieve.table import VIDEO_SCHEMA, concat_tables, rows_to_table, write_parquet

    with _user_errors():
        prepare_run_dir(out, restart=False)
        rows = ingest_rows([str(p) for p in inputs])
        stage = ProbeStage()
        stage.setup()
        parts = []
        with _progress_bar() as progress:
            task = progress.add_task("probe", total=len(rows), rate="", current="")
            for row in rows:
                parts.append(stage.process(rows_to_table([row], VIDEO_SCHEMA)))
                progress.update(task, advance=1, current=Path(row["path"]).name[:40])
        videos = concat_tables(parts, VIDEO_SCHEMA)
        path = write_parquet(
            videos, out / "videos.parquet", {"clipsieve_stages": [stage.describe()]}
        )
        bad = [r for r in videos.to_pylist() if r["status"] == "error"]
        console.print(f"{videos.num_rows} videos, {len(bad)} with errors → {path}")
        for row in bad:
            console.print(f"  [red]{row['path']}[/]: {row['error']}", highlight=False)


@app.command()
def score(
    run_dir: Path = typer.Argument(..., help="A run folder made by `clipsieve run`."),
    scorers: str = typer.Option(
        "static,motion,camera,quality,phash", "--scorers", "-s", help="Comma-separated scorers."
    ),
) -> None:
    """Add score columns to a run's clips (each clip decoded once for all scorers)."""
    from clipsieve.score.rescore import score_run

    names = [s.strip() for s in scorers.split(",") if s.strip()]
    with _user_errors():
        with _progress_bar() as progress:
            task = progress.add_task("score", total=None, rate="", current="")

            def on_progress(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            scored = score_run(run_dir, names, progress=on_progress)
        errors = [e for e in scored.column("score_errors").to_pylist() if e]
        console.print(f"scored {scored.num_rows} clips with {', '.join(names)} → {run_dir}")
        for message in errors[:10]:
            console.print(f"  [yellow]{message}[/]", highlight=False)


@app.command()
def demo(
    out: Path = typer.Option(Path("demo-out"), "--out", "-o", help="Folder for samples and run."),
) -> None:
    """Build a sample set with ffmpeg and run the whole pipeline on it."""
    from clipsieve.media.synth import make_sample_set

    with _user_errors():
        samples = out / "samples"
        with console.status(f"building sample videos in {samples} …"):
            make_sample_set(samples, scale="demo")
        _run([samples], out / "run", None, restart=True)


@config_app.command("init")
def config_init(
    path: Path = typer.Argument(Path("clipsieve.yaml"), help="Where to write the config."),
    force: bool = typer.Option(False, help="Overwrite an existing file."),
) -> None:
    """Write a commented default config."""
    with _user_errors():
        if path.exists() and not force:
            raise _fail(f"{path} exists; pass --force to overwrite it")
        path.write_text(DEFAULT_CONFIG_YAML, encoding="utf-8")
        console.print(f"wrote {path}")


register_detect_shots(app)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="clipsieve")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
