"""``clipsieve annotate``: label a run's clips good/bad in the browser, or export the labels.

Labels go to ``RUN_DIR/labels.sqlite`` the moment a key is pressed; ``--export FILE`` writes them
as the original project's ``annotations.json`` (``{scene_path: 0|1}``) and exits.
"""

from __future__ import annotations

import getpass
import ipaddress
from pathlib import Path

import typer

from clipsieve.cli.common import console, keep_text, run_folder_command, user_errors
from clipsieve.errors import UserError


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _default_labeller() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "labeller"


def export_labels(run_dir: Path, out: Path, labeller: str | None = None) -> int:
    """Write ``annotations.json``; returns how many labels it holds."""
    from clipsieve.annotate.catalog import Catalog
    from clipsieve.annotate.server import export_annotations
    from clipsieve.labels import LabelStore, labels_path
    from clipsieve.table import write_json

    store = LabelStore(labels_path(run_dir), create=False)
    labels = export_annotations(Catalog.load(run_dir), store, labeller)
    write_json(labels, out)
    return len(labels)


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

    from clipsieve.annotate.catalog import Catalog
    from clipsieve.annotate.sampling import clip_order
    from clipsieve.annotate.server import LOOPBACK_HOSTS, create_app
    from clipsieve.labels import LabelStore, labels_path

    loopback = _is_loopback(host)
    if not loopback and not allow_remote:
        raise UserError(
            f"--host {host} would expose the labelling page to the network: add --allow-remote "
            "if that is what you want"
        )
    if not 0 < port < 65536:
        raise UserError(f"--port {port} is not a TCP port (1-65535)")
    catalog = Catalog.load(run_dir)
    order = clip_order(catalog, sample, seed=seed, stratify_by=stratify_by, model=model)
    store = LabelStore(labels_path(run_dir))
    app = create_app(
        run_dir,
        store,
        order,
        labeller,
        sample=sample,
        allowed_hosts=LOOPBACK_HOSTS if loopback else None,
        catalog=catalog,
    )
    shown = f"[{host}]" if ":" in host else host
    console.print(
        f"labelling {len(order)} clips of {run_dir} as '{labeller}' ({sample} order) → "
        f"http://{shown}:{port}/  (labels in {store.path}; Ctrl-C stops)"
    )
    uvicorn.run(app, host=host, port=port, log_level="warning")


def register_annotate(app: typer.Typer) -> None:
    """Add the ``annotate`` command to ``app``."""
    app.command("annotate")(annotate)
