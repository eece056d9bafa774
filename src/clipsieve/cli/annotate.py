"""``clipsieve annotate``: label a run's clips good/bad in the browser, or export the labels.

Labels go to ``RUN_DIR/labels.sqlite`` the moment a key is pressed; ``--export FILE`` writes them
as the original project's ``annotations.json`` (``{scene_path: 0|1}``) and exits.
"""

from __future__ import annotations

import getpass
from pathlib import Path

import typer

from clipsieve.cli.common import console, keep_text, run_folder_command, user_errors


def _default_labeller() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "labeller"


@run_folder_command(local_clips=True, lock=False)
def annotate(
    run_dir: Path = typer.Argument(
        ..., parser=keep_text, help="A finished run folder (with cut clips)."
    ),
    labeller: str = typer.Option(
        None, "--labeller", help="Name stored with every label (default: your user name)."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8765, "--port", help="Port to listen on."),
    allow_remote: bool = typer.Option(
        False, "--allow-remote", help="Allow a --host other than loopback (no authentication!)."
    ),
    sample: str = typer.Option(
        "random", "--sample", help="Clip order: random, stratified or uncertainty."
    ),
    stratify_by: str | None = typer.Option(
        None, "--stratify-by", help="Score column for --sample stratified (default flow_mean)."
    ),
    model: Path | None = typer.Option(
        None, "--model", help="Classifier for --sample uncertainty (default RUN_DIR/classifier)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the random and stratified orders."),
    export: Path | None = typer.Option(
        None, "--export", help="Write the labels as annotations.json to this file and exit."
    ),
) -> None:
    """Label clips good/bad in the browser (1 good, 0 bad, s skip, u undo, arrows move)."""
    with user_errors():
        if export is not None:
            from clipsieve.annotate.serve import export_labels

            count = export_labels(run_dir, export, labeller)
            console.print(f"{count} labels → {export}")
            return
        _serve(
            run_dir,
            labeller or _default_labeller(),
            host,
            port,
            allow_remote,
            sample,
            stratify_by,
            model,
            seed,
        )


def _serve(
    run_dir: Path,
    labeller: str,
    host: str,
    port: int,
    allow_remote: bool,
    sample: str,
    stratify_by: str | None,
    model: Path | None,
    seed: int,
) -> None:
    import uvicorn

    from clipsieve.annotate.serve import check_bind, labelling_app

    loopback = check_bind(host, port, allow_remote, "the labelling page")
    page = labelling_app(run_dir, labeller, loopback, sample, stratify_by, model, seed)
    shown = f"[{host}]" if ":" in host else host
    console.print(
        f"labelling {page.clips} clips of {run_dir} as '{labeller}' ({sample} order) → "
        f"http://{shown}:{port}/  (labels in {page.labels}; Ctrl-C stops)"
    )
    uvicorn.run(page.app, host=host, port=port, log_level="warning")


def register_annotate(app: typer.Typer) -> None:
    """Add the ``annotate`` command to ``app``."""
    app.command("annotate")(annotate)
