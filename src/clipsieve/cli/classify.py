"""``clipsieve classify RUN_DIR``: a VLM says what kind of footage each kept clip is.

Examples::

    clipsieve classify runs/a --base-url http://127.0.0.1:8000/v1 -m Qwen/Qwen2.5-VL-7B-Instruct
    clipsieve classify runs/a --labels panda70m --backend gemini --model gemini-2.0-flash
    clipsieve filter runs/a --where "content_type == 'natural' and not content_watermark"

Re-running the same command asks only clips without a readable answer.
"""

from __future__ import annotations

from pathlib import Path

import typer

from clipsieve.cli import vlm
from clipsieve.cli.common import console, keep_text, run_folder_command, user_errors
from clipsieve.cli.ray_options import address_option, engine_option, workers_option
from clipsieve.engine.ray_pool import ray_options

LABELS_HELP = (
    "Label set: broad (natural, slideshow, screen recording, split screen, ...), panda70m "
    "(Panda-70M's desirability classes), or a YAML file with types: and flags:."
)


@run_folder_command
def classify(
    run_dir: Path = typer.Argument(
        ..., parser=keep_text, help="A run folder made by `clipsieve run`."
    ),
    labels: str = typer.Option("broad", "--labels", "-l", help=LABELS_HELP),
    engine: str = engine_option("decode frames and send requests from workers"),
    address: str | None = address_option(),
    workers: int | None = workers_option("classify workers"),
    backend: str = vlm.BACKEND,
    base_url: list[str] = vlm.BASE_URL,
    model: str | None = vlm.MODEL,
    api_key_env: str | None = vlm.API_KEY_ENV,
    concurrency: int = vlm.CONCURRENCY,
    timeout: float | None = vlm.TIMEOUT,
    retries: int | None = vlm.TRIES,
    max_tokens: int | None = vlm.MAX_TOKENS,
    temperature: float | None = vlm.TEMPERATURE,
    frames: int | None = typer.Option(None, "--frames", "-k", help="Frames per clip (default 4)."),
    frame_size: int | None = vlm.FRAME_SIZE,
    exact_frames: bool = vlm.EXACT_FRAMES,
    all_rows: bool = typer.Option(False, "--all", help="Also classify dropped clips."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Classify clips again."),
) -> None:
    """Ask a VLM which type of footage each kept clip is (content_type, content_flags)."""
    from clipsieve.classify.run import classify_run
    from clipsieve.classify.stage import ClassifyStage

    with user_errors():
        ray = ray_options(engine, address, workers)
        fields = vlm.stage_fields(
            backend, base_url, model, api_key_env, frames, frame_size, exact_frames, concurrency,
            max_tokens, temperature, timeout, retries, all_rows, overwrite,
        )  # fmt: skip
        stage = ClassifyStage(labels=labels, **fields)
        _ = stage.label_set  # a bad label set fails before any request
        with vlm.request_progress("classify") as (on_phase, on_row):
            stage.on_row = on_row
            outcome = classify_run(run_dir, stage, progress=on_phase, ray=ray)
    stats = outcome.stats
    console.print(
        f"classified {stats.succeeded} clips, {stats.failed} failed, in {stats.seconds:.1f} s "
        f"({stats.clips_per_s:.2f} clips/s) with label set {stage.label_set.name}"
    )
    for name, count in sorted(outcome.types.items(), key=lambda kv: -kv[1]):
        console.print(f"  {name:<22} {count}", highlight=False)
    if outcome.flags:
        flags = ", ".join(f"{name} ×{n}" for name, n in sorted(outcome.flags.items()))
        console.print(f"  flags: {flags}", highlight=False)
    for message, count in sorted(outcome.errors.items(), key=lambda kv: -kv[1])[:5]:
        console.print(f"  [yellow]{count} ×[/] {message}", highlight=False)
    if outcome.errors:
        console.print("run the same command again to ask the clips without an answer")


def register_classify(app: typer.Typer) -> None:
    """Add the ``classify`` command to ``app``."""
    app.command("classify")(classify)
