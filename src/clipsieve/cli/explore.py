"""``clipsieve explore RUN_DIR``: choose filter thresholds by looking, on a local page."""

from __future__ import annotations

from pathlib import Path

import typer

from clipsieve.cli.common import console, keep_text, run_folder_command, user_errors


@run_folder_command(local_clips=True, lock=False)
def explore(
    run_dir: Path = typer.Argument(
        ..., parser=keep_text, help="A finished run folder with score columns."
    ),
    columns: str | None = typer.Option(
        None, "--columns", help="Comma-separated columns to explore (default: every score)."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8766, "--port", help="Port to listen on."),
    allow_remote: bool = typer.Option(
        False, "--allow-remote", help="Allow a --host other than loopback (no authentication!)."
    ),
) -> None:
    """A histogram and a range per score column, the live count of clips passing them all, and
    the clips just inside and outside each threshold; saves a filter and a preset."""
    import uvicorn

    from clipsieve.annotate.serve import check_bind
    from clipsieve.explore.data import ExploreData
    from clipsieve.explore.server import LOOPBACK_HOSTS, create_app

    with user_errors():
        loopback = check_bind(host, port, allow_remote, "the explorer")
        chosen = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
        with console.status("reading the score columns …"):
            data = ExploreData(run_dir, chosen)
    app = create_app(data, LOOPBACK_HOSTS if loopback else None)
    shown = f"[{host}]" if ":" in host else host
    console.print(
        f"exploring {len(data.columns)} columns over {data.total} kept clips of {run_dir} → "
        f"http://{shown}:{port}/  (saved presets go to {run_dir}/explore/; Ctrl-C stops)"
    )
    uvicorn.run(app, host=host, port=port, log_level="warning")


def register_explore(app: typer.Typer) -> None:
    """Add the ``explore`` command to ``app``."""
    app.command("explore")(explore)
