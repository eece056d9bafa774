"""``clipsieve filter``, ``clipsieve dedup`` and ``clipsieve topn``: selection on a finished run.

All three mark rows (``keep``/``drop_reason``; rows are never removed); the work is in
:mod:`clipsieve.select.apply`, this module parses and prints. Registered on the main app by
:func:`register`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from clipsieve.cli.common import console, keep_text, run_folder_command, user_errors
from clipsieve.cli.ray_options import address_option, engine_option, gpus_option, workers_option
from clipsieve.select.apply import (
    FilterOutcome,
    dedup_run,
    filter_run,
    marked_duplicates,
    topn_run,
)


def print_funnel(funnel: dict[str, Any]) -> None:
    """The funnel as a rich table: rows entering, passing and unscored at each condition."""
    table = Table(title=f"filter funnel ({funnel['eligible']} of {funnel['total']} rows decided)")
    for name, justify in (
        ("#", "right"),
        ("condition", "left"),
        ("rows in", "right"),
        ("passed", "right"),
        ("dropped", "right"),
        ("unscored", "right"),
        ("pass %", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for i, step in enumerate(funnel["steps"], 1):
        rows_in, passed = step["rows_in"], step["passed"]
        share = f"{100 * passed / rows_in:.1f}" if rows_in else "-"
        table.add_row(
            str(i),
            step["condition"],
            str(rows_in),
            str(passed),
            str(rows_in - passed),
            str(step["unscored"]),
            share,
        )
    console.print(table)
    before = ", ".join(f"{reason} x{n}" for reason, n in funnel["excluded_before"].items())
    if before:
        console.print(f"not decided (dropped earlier): {before}", highlight=False)
    console.print(f"kept {funnel['kept']} of {funnel['eligible']}")


def _topn_line(summary: dict[str, Any]) -> str:
    cap = "no cap" if summary["n"] is None else f"n={summary['n']}"
    return (
        f"top-N by {summary['by']} ({cap} per video, one per span): kept {summary['kept']} of "
        f"{summary['eligible']} · same span {summary['dropped_same_span']} · over cap "
        f"{summary['dropped_over_cap']} · unscored {summary['dropped_unscored']}"
    )


def _print_filter(run_dir: Path, outcome: FilterOutcome) -> None:
    print_funnel(outcome.funnel)
    if outcome.top_n:
        console.print(_topn_line(outcome.top_n), highlight=False)
    if outcome.stale_selection:
        console.print(
            "[yellow]note:[/] dedup/top-N ran before this filter; run them again so they "
            "decide over the newly kept rows",
            highlight=False,
        )
    console.print(f"funnel → {outcome.path}")


SHOWN_DUPLICATES = 20


def _print_duplicates(clips_file: Path) -> None:
    """The first few marked copies (the table has them all: ``dup_of``, ``dup_group``)."""
    shown, total = marked_duplicates(clips_file, SHOWN_DUPLICATES)
    for row in shown:
        console.print(
            f"  group {row['dup_group']}: {row['clip_id']} → duplicate of {row['dup_of']} "
            f"({row['dup_method']})",
            highlight=False,
        )
    if total > len(shown):
        console.print(f"  … and {total - len(shown)} more (columns dup_of, dup_group)", style="dim")


def register(app: typer.Typer) -> None:
    """Add the ``filter``, ``dedup`` and ``topn`` commands to ``app``."""

    @app.command("filter")
    @run_folder_command
    def filter_command(
        run_dir: Path = typer.Argument(
            ..., parser=keep_text, help="A run folder made by `clipsieve run`."
        ),
        where: list[str] = typer.Option(
            [], "--where", "-w", help='Filter expression, e.g. "flow_mean >= 0.5" (repeatable).'
        ),
        preset: str | None = typer.Option(
            None,
            "--preset",
            "-p",
            help="Shipped recipe (easyanimate, opensora-v1.2, "
            "hdvg-supershy) or a preset .yaml file.",
        ),
        keep_unscored: bool = typer.Option(
            False, help="Let rows whose score is missing (null) pass instead of failing."
        ),
        fmin: float | None = typer.Option(None, help="num_frames >= VALUE."),
        fmax: float | None = typer.Option(None, help="num_frames <= VALUE."),
        fpsmax: float | None = typer.Option(None, help="fps <= VALUE."),
        hwmax: float | None = typer.Option(None, help="resolution (height*width) <= VALUE."),
        hmin: float | None = typer.Option(None, help="height >= VALUE."),
        wmin: float | None = typer.Option(None, help="width >= VALUE."),
        armin: float | None = typer.Option(None, help="aspect_ratio (h/w) >= VALUE."),
        armax: float | None = typer.Option(None, help="aspect_ratio (h/w) <= VALUE."),
        durmin: float | None = typer.Option(None, help="duration_s >= VALUE."),
        durmax: float | None = typer.Option(None, help="duration_s <= VALUE."),
        aesmin: float | None = typer.Option(None, help="aes >= VALUE."),
        flowmin: float | None = typer.Option(None, help="flow_mean >= VALUE."),
        flowmax: float | None = typer.Option(None, help="flow_mean <= VALUE."),
        matchmin: float | None = typer.Option(None, help="match >= VALUE."),
        ocrmax: float | None = typer.Option(None, help="text_boxes <= VALUE."),
        text_area_max: float | None = typer.Option(None, help="text_area_ratio <= VALUE."),
        lang: list[str] = typer.Option([], help="Caption language(s): lang in (...)."),
        remove_empty_caption: bool = typer.Option(
            False, help="Drop rows whose caption is missing or empty."
        ),
    ) -> None:
        """Mark clips that fail a filter expression (keep=false, drop_reason); print the funnel.

        Re-running recomputes from a clean slate of filter's own earlier drops; rows dropped by
        other steps (length policy, cut errors, dedup, top-N) stay dropped.
        """
        flags = {
            "fmin": fmin,
            "fmax": fmax,
            "fpsmax": fpsmax,
            "hwmax": hwmax,
            "hmin": hmin,
            "wmin": wmin,
            "armin": armin,
            "armax": armax,
            "durmin": durmin,
            "durmax": durmax,
            "aesmin": aesmin,
            "flowmin": flowmin,
            "flowmax": flowmax,
            "matchmin": matchmin,
            "ocrmax": ocrmax,
            "text-area-max": text_area_max,
        }
        flags = {
            k: (int(v) if v is not None and float(v).is_integer() else v)
            for k, v in flags.items()
            if v is not None
        }
        with user_errors():
            outcome = filter_run(
                run_dir, where, preset, keep_unscored, flags, lang, remove_empty_caption
            )
            _print_filter(run_dir, outcome)

    @app.command("dedup")
    @run_folder_command
    def dedup_command(
        run_dir: Path = typer.Argument(
            ..., parser=keep_text, help="A run folder made by `clipsieve run`."
        ),
        method: str = typer.Option(
            "auto", help="Comma-separated: exact, phash, semantic; auto = all with columns."
        ),
        phash_threshold: float = typer.Option(
            10.0, help="Max mean Hamming distance (bits of 64) between clips' frame pHashes."
        ),
        phash_rotations: bool = typer.Option(
            True, help="Also match copies turned by quarter turns (portrait re-uploads)."
        ),
        cosine: float = typer.Option(0.98, help="Min embedding cosine similarity."),
        keep_best: str = typer.Option(
            "auto",
            help="Ranking of the copy to keep: columns, highest first; '-col' = lowest first. "
            "auto: by quality (quality_prob, the source's bitrate, sharpness, aes, then "
            "resolution and length; those the table has).",
        ),
        partition_size: int = typer.Option(
            20000, help="Compare within KMeans partitions of about this many clips."
        ),
        seed: int = typer.Option(0, help="KMeans seed for partitioning."),
        engine: str = engine_option(
            "the embedding pass of --method semantic (clips without embeddings) on Ray workers"
        ),
        address: str | None = address_option(),
        workers: int | None = workers_option("embedding workers"),
        gpus_per_worker: float = gpus_option("embedding worker"),
    ) -> None:
        """Find duplicate clips; keep the best copy of each group, mark the others.

        ``--method semantic`` on clips without embeddings runs the embedding pass first (the
        ``embed`` scorer, as `clipsieve score --scorers embed` would), here or on Ray."""
        from clipsieve.engine.ray_pool import ray_options

        with user_errors():
            ray = ray_options(engine, address, workers, gpus_per_worker)
            methods = (
                ()
                if method.strip() == "auto"
                else tuple(m.strip() for m in method.split(",") if m.strip())
            )
            with console.status("looking for duplicates …"):
                outcome = dedup_run(
                    run_dir,
                    ray,
                    lambda line: console.print(line, style="dim"),
                    methods=methods,
                    phash_threshold=phash_threshold,
                    phash_rotations=phash_rotations,
                    cosine_threshold=cosine,
                    keep_best=tuple(c.strip() for c in keep_best.split(",") if c.strip()),
                    partition_size=partition_size,
                    seed=seed,
                )
            for message, count in sorted(outcome.embed_errors.items(), key=lambda kv: -kv[1])[:5]:
                console.print(f"  [yellow]{count} ×[/] {message}", highlight=False)
            s = outcome.summary
            pairs = ", ".join(f"{m} {n}" for m, n in s["pairs"].items())
            console.print(
                f"dedup ({', '.join(s['methods'])}) over {s['candidates']} kept clips: "
                f"{s['groups']} duplicate groups, {s['dropped']} copies marked "
                f"(pairs: {pairs})",
                highlight=False,
            )
            _print_duplicates(outcome.clips_file)

    @app.command("topn")
    @run_folder_command
    def topn_command(
        run_dir: Path = typer.Argument(
            ..., parser=keep_text, help="A run folder made by `clipsieve run`."
        ),
        by: str = typer.Option(..., "--by", help="Column to rank by (e.g. quality_prob, aes)."),
        n: int = typer.Option(1, "-n", "--n", help="Keep at most N clips per source video."),
        no_cap: bool = typer.Option(False, help="No per-video cap: only one clip per span."),
        ascending: bool = typer.Option(False, help="Lower values rank first."),
    ) -> None:
        """Keep the best N clips of each source video and one per original clip span."""
        with user_errors():
            summary = topn_run(run_dir, by, None if no_cap else n, ascending)
            console.print(_topn_line(summary), highlight=False)
