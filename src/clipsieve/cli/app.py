"""The ``clipsieve`` command line (typer).

User-caused errors (bad path, bad config, unwritable output) end with one red line naming the
thing and the fix, and exit code 2 — never a traceback.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import typer
from rich.table import Table

from clipsieve.cli.annotate import register_annotate
from clipsieve.cli.caption import register as register_caption
from clipsieve.cli.classifier import register_classifier
from clipsieve.cli.classify import register_classify
from clipsieve.cli.cluster import register_cluster
from clipsieve.cli.common import console, holding, keep_text, run_folder_command
from clipsieve.cli.common import fail as _fail
from clipsieve.cli.common import progress_bar as _progress_bar
from clipsieve.cli.common import user_errors as _user_errors
from clipsieve.cli.evaluate import register_evaluate
from clipsieve.cli.explore import register_explore
from clipsieve.cli.export import register_export
from clipsieve.cli.ingest import register_ingest_meta
from clipsieve.cli.ray_options import address_option, engine_option, gpus_option, workers_option
from clipsieve.cli.report import register_report
from clipsieve.cli.select import register as register_select
from clipsieve.cli.shots import register as register_detect_shots
from clipsieve.config import DEFAULT_CONFIG_YAML, load_config
from clipsieve.engine.ray_pool import ray_options
from clipsieve.score.names import DEFAULT_SCORERS

app = typer.Typer(
    help="Turn raw video into a curated, captioned text-to-video training set.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Configuration files.", no_args_is_help=True)
app.add_typer(config_app, name="config", rich_help_panel="Workflows")


def _print_summary(outputs: object) -> None:
    from clipsieve.pipeline_run import RunOutputs

    assert isinstance(outputs, RunOutputs)
    result = outputs.result
    table = Table(title=f"stages ({_engine_label(result)})", show_lines=False)
    for column in ("stage", "seconds", "rows in", "rows out", "errors"):
        table.add_column(column, justify="left" if column in ("stage", "errors") else "right")
    for name, stats in result.stats.items():
        errors = ", ".join(f"{reason} ×{n}" for reason, n in stats.errors.most_common(3))
        table.add_row(name, f"{stats.seconds:.1f}", str(stats.rows_in), str(stats.rows_out), errors)
    if result.stats:
        console.print(table)
    counts = result.counts
    console.print(
        f"videos: {counts.videos} ({counts.video_errors} with errors) · clips: {counts.clips} "
        f"planned, {counts.kept} kept · this run processed {result.processed}, "
        f"resumed past {result.skipped}"
    )
    for name, path in outputs.files.items():
        console.print(f"  {name:<15} {path}")


def _engine_label(result: object) -> str:
    engine, workers = getattr(result, "engine", "local"), getattr(result, "workers", 0)
    return f"{engine}, {workers} workers" if engine == "local" else engine


def _resume_hint(inputs: list[str], out: str | Path, options: list[str]) -> str:
    """The exact command that resumes an interrupted run (the same command, minus --restart)."""
    import shlex

    words = ["clipsieve", "run", *map(str, inputs), "--out", str(out), *options]
    return " ".join(shlex.quote(w) for w in words)


def _run(
    inputs: list[str],
    out: str | Path,
    config_file: Path | None,
    restart: bool,
    workers: int | None = None,
    engine: str | None = None,
    address: str | None = None,
    rows: list[dict] | None = None,
    source_options: list[str] | None = None,
) -> None:
    from clipsieve.cli.progress import RunProgress
    from clipsieve.engine.checkpoint import ShardStore
    from clipsieve.pipeline_run import choose_engine, execute_run, prepare_run, run_folder_lock

    config = load_config(config_file)
    with _user_errors():
        note = choose_engine(config, engine, workers, address)
    if note:
        console.print(note, style="yellow", highlight=False, soft_wrap=True)
    with holding(run_folder_lock(out)):
        # fails fast, before any bar
        prepared = prepare_run(inputs, out, config, restart=restart, rows=rows)
        latest = prepared.run_info["invocations"][-1]
        for key, what in (
            ("replanned", "whose inputs changed"),
            ("retried", "that failed"),
            ("recut", "with clip files missing"),
        ):
            if latest.get(key):
                console.print(f"doing again {len(latest[key])} video(s) {what}", style="dim")
        done = ShardStore(prepared.run_dir).done_ids()
        todo_count = sum(row["video_id"] not in done for row in prepared.rows)
        # what says where the videos came from when they are not INPUTS (e.g. --metafile META)
        options = list(source_options or [])
        options += [*(["--config", str(config_file)] if config_file else [])]
        options += [*(["--workers", str(workers)] if workers else [])]
        options += [*(["--engine", engine] if engine else [])]
        options += [*(["--address", address] if address else [])]
        try:
            with _progress_bar() as progress:
                display = RunProgress(progress, prepared.pipeline, len(prepared.rows), todo_count)
                outputs = execute_run(
                    prepared, progress=display.on_video, stage_progress=display.on_stages
                )
        except KeyboardInterrupt:
            hint = _resume_hint([] if source_options else inputs, out, options)
            console.print(f"resume with: {hint}", highlight=False)
            raise

    _print_summary(outputs)
    report = outputs.files.get("report.html")
    if report:
        console.print(f"[bold green]report:[/] {report}")


@app.command()
def run(
    inputs: list[str] = typer.Argument(
        None,
        help="Video files or folders (searched recursively), or URLs: s3://bucket/prefix/, "
        "gs://..., https://host/video.mp4 (read through fsspec, cached per node).",
    ),
    out: str = typer.Option(
        ...,
        "--out",
        "-o",
        help="Run folder (created; re-run to resume): a path, or an fsspec URL such as "
        "s3://bucket/run (staged locally, uploaded as it goes).",
    ),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML config file."),
    restart: bool = typer.Option(False, help="Discard an earlier run in --out first."),
    workers: int | None = typer.Option(
        None, "--workers", "-w", min=1, help="Local worker processes (default: one per core)."
    ),
    engine: str | None = typer.Option(
        None, "--engine", help="local (process pool, default) or ray (Ray Data)."
    ),
    address: str | None = typer.Option(
        None, "--address", help="Ray cluster: auto, HOST:PORT or ray://HOST:PORT (implies ray)."
    ),
    metafile: Path | None = typer.Option(
        None,
        "--metafile",
        help="Take videos, clip spans and captions from a metafile (HD-VG json, Panda-70M csv, "
        "...) instead of searching INPUTS; shot detection is skipped.",
    ),
    videos_dir: Path | None = typer.Option(
        None, "--videos", help="With --metafile: the `clipsieve download` folder of its files."
    ),
    range_: str | None = typer.Option(
        None, "--range", help="With --metafile: videos START:END by index, as the original."
    ),
) -> None:
    """Run ingest → probe → shots → length policy → cut → score → export → report.

    With --metafile the INPUTS argument may be left out.
    """
    with _user_errors():
        rows, source = None, None
        if metafile is not None:
            from clipsieve.ingest.metafiles import read_metafile
            from clipsieve.ingest.spans import resolve_rows

            meta = read_metafile(metafile, select=range_)
            rows = resolve_rows(meta, videos_dir)
            inputs = [str(metafile)]
            source = ["--metafile", str(metafile)]
            source += ["--videos", str(videos_dir)] if videos_dir else []
            source += ["--range", range_] if range_ else []
        elif not inputs:
            raise _fail("give video files or folders, or --metafile FILE")
        _run(inputs, out, config, restart, workers, engine, address, rows, source)


@app.command()
def ingest(
    inputs: list[Path] = typer.Argument(..., help="Video files or folders (searched recursively)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for videos.parquet."),
) -> None:
    """Find videos and probe them into OUT/videos.parquet (broken files get an error row)."""
    from clipsieve.pipeline_run import probe_inputs
    from clipsieve.runlock import run_lock

    with _user_errors(), run_lock(out, "ingest", create=True):
        with _progress_bar() as progress:
            task = progress.add_task("probe", total=None, rate="", current="")

            def on_video(path: str, done: int, total: int) -> None:
                progress.update(task, completed=done, total=total, current=Path(path).name[:40])

            videos, path = probe_inputs([str(p) for p in inputs], out, on_video)
        bad = [r for r in videos.to_pylist() if r["status"] == "error"]
        console.print(f"{videos.num_rows} videos, {len(bad)} with errors → {path}")
        for row in bad:
            console.print(f"  [red]{row['path']}[/]: {row['error']}", highlight=False)


@app.command()
@run_folder_command
def score(
    run_dir: Path = typer.Argument(
        ..., parser=keep_text, help="A run folder made by `clipsieve run`."
    ),
    scorers: str = typer.Option(
        ",".join(DEFAULT_SCORERS), "--scorers", "-s", help="Comma-separated scorers."
    ),
    param: list[str] = typer.Option(
        [],
        "--param",
        "-p",
        help="Scorer parameter SCORER.KEY=VALUE (YAML value), e.g. motion.method=farneback.",
    ),
    option: list[str] = typer.Option(
        [],
        "--option",
        help="Category prompt for text-frame matching (adds the match scorer): "
        "--option animal gives match_animal.",
    ),
    engine: str = engine_option("decode and score on Ray workers"),
    address: str | None = address_option(),
    workers: int | None = workers_option("scoring workers"),
    gpus_per_worker: float = gpus_option("scoring worker"),
) -> None:
    """Add score columns to a run's clips (each clip decoded once for all scorers)."""
    from clipsieve.score.rescore import parse_scorer_params, score_step, with_options

    with _user_errors():
        ray = ray_options(engine, address, workers, gpus_per_worker)
        params = parse_scorer_params(param)
        names = with_options([s.strip() for s in scorers.split(",") if s.strip()], params, option)
        with _progress_bar() as progress:
            task = progress.add_task("score", total=None, rate="", current="")

            def on_progress(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            step = score_step(run_dir, names, scorer_params=params, progress=on_progress, ray=ray)
        console.print(f"scored {step.total} clips with {', '.join(names)} → {run_dir}")
        for message, count in step.errors.most_common(10):
            console.print(f"  [yellow]{count} ×[/] {message}", highlight=False)


def _replay(commands: list[list[str]]) -> None:
    """Run clipsieve commands in order, as typed; the first that fails stops the rest."""
    import shlex

    for args in commands:
        console.rule(f"clipsieve {shlex.join(args)}", style="dim")
        code = app(args, prog_name="clipsieve", standalone_mode=False)
        if code not in (None, 0):
            raise _fail(f"`clipsieve {shlex.join(args)}` failed (exit code {code}); stopped there")


@app.command()
def demo(
    out: Path = typer.Option(Path("demo-out"), "--out", "-o", help="Folder for samples and run."),
) -> None:
    """Build a sample set with ffmpeg and run every stage on it: run, filter, dedup, classifier,
    top-N, clusters, exports and the report (captioning needs a VLM server and is left out)."""

    from clipsieve.demo import post_run_commands, write_demo_config, write_demo_labels
    from clipsieve.media.synth import make_sample_set

    with _user_errors():
        samples, run_dir = out / "samples", out / "run"
        with console.status(f"building sample videos in {samples} …"):
            make_sample_set(samples, scale="demo")
        config = write_demo_config(out / "demo.yaml")
        _run([samples], run_dir, config, restart=True)
        labels = write_demo_labels(run_dir)
        _replay(post_run_commands(run_dir, labels))
        console.print(f"[bold green]demo done:[/] open {run_dir / 'report.html'}")


@app.command()
def recipe(
    name: str = typer.Argument(
        ..., help="A packaged recipe (hdvg-supershy) or a recipe .yaml file."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder ({out} in the recipe)."),
    set_: list[str] = typer.Option([], "--set", help="Recipe variable KEY=VALUE (repeatable)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the commands, run nothing."),
) -> None:
    """Replay a whole workflow: the recipe's clipsieve commands, in order."""

    from clipsieve.recipe import describe, load_recipe, parse_sets

    with _user_errors():
        loaded = load_recipe(name)
        commands = loaded.commands(loaded.values(out, parse_sets(set_)))
        if dry_run:
            typer.echo(describe(commands))
            return
        _replay(commands)
        console.print(f"[bold green]recipe {loaded.name} done:[/] {out}")


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
register_evaluate(app)
register_cluster(app)
register_export(app)
register_report(app)
register_annotate(app)
register_classifier(app)
register_ingest_meta(app)
register_select(app)
register_caption(app)
register_classify(app)
register_explore(app)

# `clipsieve --help` lists the commands in the order a dataset goes through them, in panels.
PANELS: list[tuple[str, tuple[str, ...]]] = [
    ("Sources", ("download", "ingest-meta", "ingest")),
    ("Run: shots, clips and scores", ("detect-shots", "run", "score")),
    (
        "Select",
        (
            "explore",
            "filter",
            "dedup",
            "topn",
            "annotate",
            "train-classifier",
            "predict",
            "cluster",
        ),
    ),
    ("Caption, classify and check", ("caption", "classify", "evaluate")),
    ("Deliver", ("export", "report")),
    ("Workflows", ("demo", "recipe")),
]


def _in_pipeline_order(typer_app: typer.Typer) -> None:
    """Put the registered commands in :data:`PANELS` order, each in its help panel."""
    order = {name: (i, panel) for i, (panel, names) in enumerate(PANELS) for name in names}
    order = {name: (rank, panel) for rank, (name, (_, panel)) in enumerate(order.items())}

    def name_of(info: typer.models.CommandInfo) -> str:
        assert info.callback is not None
        return info.name or info.callback.__name__.replace("_", "-")

    missing = [name_of(i) for i in typer_app.registered_commands if name_of(i) not in order]
    assert not missing, f"commands without a help panel: {missing}"
    typer_app.registered_commands.sort(key=lambda info: order[name_of(info)][0])
    for info in typer_app.registered_commands:
        info.rich_help_panel = order[name_of(info)][1]


_in_pipeline_order(app)


def _stop_on_sigterm() -> None:
    """SIGTERM (a scheduler's kill, `timeout`, `docker stop`) stops like Ctrl-C: the same
    saving, cleanup and message, instead of dying with nothing said."""

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


def main() -> None:
    """Console-script entry point."""
    _stop_on_sigterm()
    app(prog_name="clipsieve")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
