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

from clipsieve.cli.common import (
    address_option,
    at_least,
    console,
    engine_option,
    keep_text,
    progress_bar,
    run_folder_command,
    user_errors,
    workers_option,
)
from clipsieve.engine.ray_pool import ray_options


@run_folder_command
def caption(
    run_dir: Path = typer.Argument(
        ..., parser=keep_text, help="A run folder made by `clipsieve run`."
    ),
    backend: str = typer.Option("openai", "--backend", "-b", help="openai, gemini or local."),
    base_url: list[str] = typer.Option(
        [],
        "--base-url",
        help="OpenAI-compatible server (default http://127.0.0.1:8000/v1). Repeat for a pool "
        "of servers: each keeps -j requests in flight, each request goes to the least loaded.",
    ),
    model: str | None = typer.Option(None, "--model", "-m", help="Model name, id or local path."),
    api_key_env: str | None = typer.Option(
        None, "--api-key-env", help="Environment variable holding the API key."
    ),
    prompt: str = typer.Option(
        "recaption", "--prompt", "-p", help="recaption, detailed, camera, or a text file."
    ),
    frames: int | None = typer.Option(None, "--frames", "-k", help="Frames per clip."),
    frame_size: int | None = typer.Option(
        None, "--frame-size", help="Short side of frames in px (gemini: square side)."
    ),
    exact_frames: bool = typer.Option(
        False,
        "--exact-frames",
        help="Decode every frame for exact positions (default: nearest reference frame, faster).",
    ),
    concurrency: int = typer.Option(8, "--concurrency", "-j", help="Requests in flight."),
    max_tokens: int | None = typer.Option(None, "--max-tokens", help="Answer length limit."),
    temperature: float | None = typer.Option(None, "--temperature"),
    timeout: float | None = typer.Option(None, "--timeout", help="Seconds per request."),
    retries: int | None = typer.Option(None, "--tries", help="Tries per request (default 5)."),
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
    from clipsieve.caption.stage import CaptionStage, PostOptions, backend_params

    with user_errors():
        for option, value, low in (
            ("--frames", frames, 1),
            ("--frame-size", frame_size, 16),
            ("--concurrency", concurrency, 1),
            ("--max-tokens", max_tokens, 1),
            ("--timeout", timeout, 0.1),
            ("--tries", retries, 1),
            ("--temperature", temperature, 0),
        ):
            at_least(option, value, low)
        ray = ray_options(engine, address, workers)
        stage = CaptionStage(
            backend=backend,
            backend_params=backend_params(
                backend,
                list(base_url),
                model,
                api_key_env,
                max_tokens,
                temperature,
                timeout,
                retries,
            ),  # fmt: skip
            prompt=prompt,
            frames=frames,
            frame_size=frame_size,
            exact_frames=exact_frames,
            concurrency=max(1, concurrency),
            all_rows=all_rows,
            overwrite=overwrite,
        )
        post = PostOptions(
            clean=clean, english_only=english_only, dedup=dedup, score_words=score_words
        )
        with progress_bar() as bar:
            task = bar.add_task("caption", total=0, rate="", current="")
            state = {"failed": 0}

            def on_phase(phase: str, total: int) -> None:
                bar.reset(task, total=total, description=phase)
                state["failed"] = 0

            def on_row(ok: bool) -> None:
                state["failed"] += not ok
                elapsed = bar.tasks[0].elapsed or 0.0
                done = bar.tasks[0].completed + 1
                rate = f"{done / elapsed:.1f} clips/s" if elapsed > 0 else ""
                failed = f"{state['failed']} failed" if state["failed"] else ""
                bar.update(task, advance=1, rate=rate, current=failed)

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
