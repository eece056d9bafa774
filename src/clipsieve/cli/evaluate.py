"""``clipsieve evaluate RUN_DIR``: selected vs random and captions vs re-captions.

Prints one verdict line per metric in a rich table and writes ``RUN_DIR/evaluation.json``;
``clipsieve report RUN_DIR`` then shows the same table in the HTML report.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from clipsieve.cli.common import console, keep_text, progress_bar, run_folder_command, user_errors


def _fmt(value: object, digits: int = 3) -> str:
    if not isinstance(value, (int, float)):
        return "–"
    return f"{value + 0.0:.{digits}g}"  # + 0.0 turns -0.0 into 0


OUTCOME = {"better": "[green]better[/]", "worse": "[red]worse[/]", "unclear": "unclear"}


def _print(document: dict) -> None:
    table = Table(
        title=f"selected ({document['selected']}) vs {document['draws']} random subsets of the "
        f"pool ({document['pool']}), seed {document['seed']}",
        caption="gain: selected − random in the better direction (↓: lower is better)",
    )
    for name in ("metric", "n", "selected", "random", "gain [95% CI]", "p", "selection is"):
        table.add_column(name, justify="left" if name in ("metric", "selection is") else "right")
    for m in document["metrics"]:
        gain = (
            f"{_fmt(m['gain'])} [{_fmt(m['ci_low'])}, {_fmt(m['ci_high'])}]"
            if m["gain"] is not None
            else "–"
        )
        table.add_row(
            m["metric"] + ("" if m["higher_is_better"] else " ↓"),
            f"{m['n_selected']}/{m['n_pool']}",
            _fmt(m["selected_mean"]),
            _fmt(m["random_mean"]),
            gain,
            m["p_text"] or "–",
            OUTCOME.get(m["outcome"], "not compared"),
        )
    if document["metrics"]:
        console.print(table)
    else:
        console.print("no metric to compare (score the run first: `clipsieve score RUN_DIR`)")
    for m in document["metrics"]:
        console.print(m["verdict"], highlight=False, soft_wrap=True)
    captions = document["captions"]
    if captions["n_pairs"]:
        stats = Table(title=f"captions on {captions['n_pairs']} clips with both")
        for name in ("", "mean words", "all lower case", "capitalised", "ends with . ! ?", "vocab"):
            stats.add_column(name, justify="left" if not name else "right")
        for column, s in captions["text_stats"].items():
            stats.add_row(
                column,
                _fmt(s["mean_words"]),
                f"{s['share_lowercase']:.0%}",
                f"{s['share_capitalised']:.0%}",
                f"{s['share_end_punctuation']:.0%}",
                str(s["vocabulary"]),
            )
        console.print(stats)
        if captions["clip"]:
            console.print(captions["clip"]["verdict"], highlight=False)


@run_folder_command
def evaluate(
    run_dir: Path = typer.Argument(
        ..., parser=keep_text, help="A finished run folder (after filter/top-N/...)."
    ),
    metric: list[str] = typer.Option(
        [],
        "--metric",
        "-m",
        help="Score column to compare; COLUMN:low when lower is better (repeatable; "
        "default: every numeric score column, plus clip_sim when CLIP is available).",
    ),
    draws: int = typer.Option(
        1000, "--draws", help="Random subsets and bootstrap resamples per metric."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the random subsets and bootstraps."),
    clip: bool = typer.Option(
        True, "--clip/--no-clip", help="CLIP text–frame similarity (needs a CLIP checkpoint)."
    ),
    clip_model: str = typer.Option(
        "",
        "--clip-model",
        help="CLIP checkpoint: local folder or hub id (default openai/clip-vit-large-patch14; "
        "looked up under $CLIPSIEVE_MODELS first).",
    ),
    text_column: str | None = typer.Option(
        None,
        "--text-column",
        help="Caption column for clip_sim: caption_src or caption (default: the one that "
        "covers more pool clips).",
    ),
    frame_step: int = typer.Option(
        2, "--frame-step", help="Score every Nth frame of each clip with CLIP (2 as the original)."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda for CLIP."),
) -> None:
    """Show whether the selection beats random subsets of the same size, and whether new
    captions beat the source captions; writes RUN_DIR/evaluation.json."""
    from clipsieve.evaluate.runner import EvaluateOptions, evaluate_run

    options = EvaluateOptions(
        metrics=list(metric),
        draws=draws,
        seed=seed,
        clip=clip,
        clip_model=clip_model,
        text_column=text_column,
        frame_step=frame_step,
        device=device,
    )
    with user_errors(), progress_bar() as progress:
        task = progress.add_task("CLIP", total=None, rate="", current="", visible=False)

        def on_progress(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total, visible=True)

        def note(line: str) -> None:
            progress.console.print(f"[yellow]{line}[/]", highlight=False)

        document = evaluate_run(run_dir, options, progress=on_progress, notes=note)
    _print(document)
    console.print(
        f"wrote {run_dir / 'evaluation.json'} (run `clipsieve report {run_dir}` to add it to "
        "the report)",
        highlight=False,
    )


def register_evaluate(app: typer.Typer) -> None:
    """Add the ``evaluate`` command to ``app``."""
    app.command("evaluate")(evaluate)
