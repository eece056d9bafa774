"""What `caption` and `classify` share on the command line: the backend and request options,
their checks, and the progress display of requests."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import typer

from clipsieve.cli.common import at_least, progress_bar

BACKEND = typer.Option("openai", "--backend", "-b", help="openai, gemini or local.")
BASE_URL = typer.Option(
    [],
    "--base-url",
    help="OpenAI-compatible server (default http://127.0.0.1:8000/v1). Repeat for a pool "
    "of servers: each keeps -j requests in flight, each request goes to the least loaded.",
)
MODEL = typer.Option(None, "--model", "-m", help="Model name, id or local path.")
API_KEY_ENV = typer.Option(None, "--api-key-env", help="Environment variable holding the API key.")
FRAMES = typer.Option(None, "--frames", "-k", help="Frames per clip.")
FRAME_SIZE = typer.Option(
    None, "--frame-size", help="Short side of frames in px (gemini: square side)."
)
EXACT_FRAMES = typer.Option(
    False,
    "--exact-frames",
    help="Decode every frame for exact positions (default: nearest reference frame, faster).",
)
CONCURRENCY = typer.Option(8, "--concurrency", "-j", help="Requests in flight.")
MAX_TOKENS = typer.Option(None, "--max-tokens", help="Answer length limit.")
TEMPERATURE = typer.Option(None, "--temperature")
TIMEOUT = typer.Option(None, "--timeout", help="Seconds per request.")
TRIES = typer.Option(None, "--tries", help="Tries per request (default 5).")


def check_request_options(**values: float | None) -> None:
    """Refuse request options below their least sensible value, one line each."""
    lowest = {"frames": 1, "frame_size": 16, "concurrency": 1, "max_tokens": 1,
              "timeout": 0.1, "tries": 1, "temperature": 0}  # fmt: skip
    for name, value in values.items():
        at_least("--" + name.replace("_", "-"), value, lowest[name])


def stage_fields(
    backend: str, base_url: list[str], model: str | None, api_key_env: str | None,
    frames: int | None, frame_size: int | None, exact_frames: bool, concurrency: int,
    max_tokens: int | None, temperature: float | None, timeout: float | None,
    tries: int | None, all_rows: bool, overwrite: bool,
) -> dict[str, Any]:  # fmt: skip
    """The fields of a caption-type stage from the shared options, checked first."""
    from clipsieve.caption.stage import backend_params

    check_request_options(
        frames=frames, frame_size=frame_size, concurrency=concurrency, max_tokens=max_tokens,
        timeout=timeout, tries=tries, temperature=temperature,
    )  # fmt: skip
    params = backend_params(
        backend, base_url, model, api_key_env, max_tokens, temperature, timeout, tries
    )
    return {"backend": backend, "backend_params": params, "frames": frames,
            "frame_size": frame_size, "exact_frames": exact_frames,
            "concurrency": max(1, concurrency), "all_rows": all_rows,
            "overwrite": overwrite}  # fmt: skip


@contextlib.contextmanager
def request_progress(first_phase: str) -> Iterator[tuple[Callable[..., None], Any]]:
    """A progress bar for request passes: ``(on_phase(phase, total), on_row(ok))``."""
    with progress_bar() as bar:
        task = bar.add_task(first_phase, total=0, rate="", current="")
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

        yield on_phase, on_row
