"""``clipsieve caption RUN_DIR``: caption a finished run's kept clips with a VLM.

Examples::

    clipsieve caption runs/a --base-url http://127.0.0.1:8000/v1 --model Qwen/Qwen2.5-VL-7B-Instruct
    clipsieve caption runs/a --backend gemini --model gemini-2.0-flash --clean --english-only
    clipsieve caption runs/a --backend local --model /models/Qwen2.5-VL-3B-Instruct --frames 4
    clipsieve caption runs/a --rewrite --clean --dedup --rematch

Re-running the same command retries only clips without a caption or whose last attempt failed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from clipsieve.cli import vlm
from clipsieve.cli.common import console, keep_text, run_folder_command, user_errors
from clipsieve.cli.ray_options import address_option, engine_option, workers_option
from clipsieve.engine.ray_pool import ray_options


@run_folder_command
def caption(
    run_dir: Path = typer.Argument(
        ..., parser=keep_text, help="A run folder made by `clipsieve run`."
    ),
    backend: str = vlm.BACKEND,
    base_url: list[str] = vlm.BASE_URL,
    model: str | None = vlm.MODEL,
    api_key_env: str | None = vlm.API_KEY_ENV,
    prompt: str = typer.Option(
        "recaption", "--prompt", "-p", help="recaption, detailed, camera, or a text file."
    ),
    frames: int | None = vlm.FRAMES,
    frame_size: int | None = vlm.FRAME_SIZE,
    exact_frames: bool = vlm.EXACT_FRAMES,
    concurrency: int = vlm.CONCURRENCY,
    max_tokens: int | None = vlm.MAX_TOKENS,
    temperature: float | None = vlm.TEMPERATURE,
    timeout: float | None = vlm.TIMEOUT,
    retries: int | None = vlm.TRIES,
    all_rows: bool = typer.Option(False, "--all", help="Also caption dropped clips."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Caption clips again."),
    clean: bool = typer.Option(False, "--clean", help="Clean captions (openers, URLs, ...)."),
    english_only: bool = typer.Option(
        False, "--english-only", help="Mark clips whose caption is not English."
    ),
    dedup: bool = typer.Option(False, "--dedup", help="Mark clips repeating a caption."),
    score_words: bool = typer.Option(
        False, "--score-words", help="Append aesthetic and motion levels in words."
    ),
    rewrite: bool = typer.Option(False, "--rewrite", help="LLM rewrite pass (JSON answer)."),
    rewrite_prompt: str = typer.Option(
        "rewrite", "--rewrite-prompt", help="Prompt for --rewrite (name or file)."
    ),
    rematch: bool = typer.Option(
        False, "--rematch", help="Recompute the text-video match score on the new captions."
    ),
    engine: str = engine_option("decode frames and send requests from workers"),
    address: str | None = address_option(),
    workers: int | None = workers_option("caption workers"),
) -> None:
    """Caption kept clips with a VLM, then optionally clean, rewrite and re-score matching."""
    from clipsieve.caption.run import AnswerParts, caption_run
    from clipsieve.caption.stage import CaptionStage, PostOptions

    with user_errors():
        fields = vlm.stage_fields(
            backend, base_url, model, api_key_env, frames, frame_size, exact_frames, concurrency,
            max_tokens, temperature, timeout, retries, all_rows, overwrite,
        )  # fmt: skip
        ray = ray_options(engine, address, workers)
        stage = CaptionStage(prompt=prompt, **fields)
        post = PostOptions(
            clean=clean, english_only=english_only, dedup=dedup, score_words=score_words
        )
        with vlm.request_progress("caption") as (on_phase, on_row):
            stage.on_row = on_row
            try:
                outcome = caption_run(
                    run_dir,
                    stage,
                    post,
                    rewrite=rewrite_prompt if rewrite else None,
                    rematch=rematch,
                    progress=on_phase,
                    ray=ray,
                )
            except KeyboardInterrupt:
                saved = len(AnswerParts(run_dir).answered())
                console.print(
                    f"[yellow]interrupted.[/] {saved} answers are saved in {run_dir}/captions; "
                    "run the same command again to ask for the rest (the answers are merged "
                    "into clips.parquet when it finishes)",
                    highlight=False,
                    soft_wrap=True,
                )
                raise typer.Exit(code=130) from None
        _summary(outcome)
        sent = getattr(stage.backend_instance, "sent", None)
        if callable(sent):  # a pool of servers: how the requests were spread
            shares = ", ".join(f"{url} {n}" for url, n in sent().items())
            console.print(f"requests per server: {shares}", highlight=False, soft_wrap=True)


def _summary(outcome: Any) -> None:
    stats = outcome.caption
    console.print(
        f"captioned {stats.succeeded} clips, {stats.failed} failed, in {stats.seconds:.1f} s: "
        f"{stats.clips_per_s:.2f} clips/s, {stats.tokens_per_s:.0f} tokens/s "
        f"({stats.tokens_in} in, {stats.tokens_out} out)"
    )
    if outcome.rewrite is not None:
        r = outcome.rewrite
        console.print(f"rewrote {r.succeeded} captions, {r.failed} failed, in {r.seconds:.1f} s")
    marks = ", ".join(f"{reason} ×{n}" for reason, n in outcome.marks.items() if n)
    if marks:
        console.print(f"marked keep=false: {marks}")
    for message in sorted(outcome.errors)[:5]:
        console.print(f"  [yellow]{message}[/]", highlight=False)
    if outcome.errors:
        console.print(
            f"{sum(outcome.errors.values())} clips have caption errors; run the same command "
            "to retry them"
        )
    if outcome.rematched:
        console.print("match scores recomputed against the new captions")
    elif outcome.rematch_note:
        console.print(f"[yellow]match not recomputed:[/] {outcome.rematch_note}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the ``caption`` command to ``app``."""
    app.command("caption")(caption)
