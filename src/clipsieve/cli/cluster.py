"""``clipsieve cluster RUN_DIR``: concept clusters, their keywords and optional balancing.

Registered on the main app by :func:`register_cluster`; the work is in
:mod:`clipsieve.select.cluster_run`.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from clipsieve.cli import vlm
from clipsieve.cli.common import at_least, console, keep_text, run_folder_command, user_errors
from clipsieve.errors import UserError
from clipsieve.select.cluster_words import DescribeOptions


def _parse_k(text: str) -> int | None:
    if text.strip().lower() == "auto":
        return None
    try:
        return int(text)
    except ValueError:
        raise UserError(f"--k must be 'auto' or a whole number, got '{text}'") from None


def _describe_options(
    method: str | None,
    summariser: str | None,
    backend: str,
    base_url: list[str],
    model: str | None,
    api_key_env: str | None,
) -> DescribeOptions | None:
    from clipsieve.caption.stage import backend_params

    if method is None:
        return None
    if method not in ("llm", "bart"):
        raise UserError(f"--describe {method!r}: choose llm or bart")
    if method == "bart":
        return DescribeOptions("bart", model=summariser)
    params = backend_params(backend, base_url, model, api_key_env)
    return DescribeOptions("llm", model=model, backend=backend, backend_params=params)


@run_folder_command
def cluster(
    run_dir: Path = typer.Argument(
        ..., parser=keep_text, help="A run folder whose clips have embeddings."
    ),
    k: str = typer.Option("auto", "--k", help="Number of clusters, or 'auto' (best silhouette)."),
    k_min: int = typer.Option(2, "--k-min", help="Smallest k tried by --k auto."),
    k_max: int = typer.Option(20, "--k-max", help="Largest k tried by --k auto."),
    seed: int = typer.Option(0, "--seed", help="Seed for KMeans, t-SNE and balancing."),
    balance: str | None = typer.Option(
        None, "--balance", help="cap=N (clips per cluster) or temp=T[,size=M] (temperature)."
    ),
    nearest: int = typer.Option(20, "--nearest", help="Clips nearest a centre that describe it."),
    keywords: bool = typer.Option(True, "--keywords/--no-keywords", help="Describe clusters."),
    describe: str | None = typer.Option(
        None,
        "--describe",
        help="One line per cluster from its nearest clips' captions: llm (a language model "
        "through --backend/--base-url/--model) or bart (a summariser, --describe-model).",
    ),
    describe_model: str | None = typer.Option(
        None, "--describe-model", help="bart: summariser id or folder (facebook/bart-large-cnn)."
    ),
    backend: str = vlm.BACKEND,
    base_url: list[str] = vlm.BASE_URL,
    model: str | None = vlm.MODEL,
    api_key_env: str | None = vlm.API_KEY_ENV,
) -> None:
    """Cluster clip embeddings (KMeans), describe each cluster, optionally balance them."""
    from clipsieve.select.balance import parse_balance
    from clipsieve.select.cluster_run import CLUSTERS_FILE, ClusterParams, cluster_run

    with user_errors():
        at_least("--k-min", k_min, 2)
        at_least("--nearest", nearest, 1)
        if k_max < k_min:
            raise UserError(f"--k-max {k_max} is below --k-min {k_min}: give a range low to high")
        params = ClusterParams(
            k=_parse_k(k),
            k_min=k_min,
            k_max=k_max,
            seed=seed,
            nearest=nearest,
            keywords=keywords,
            balance=parse_balance(balance) if balance else None,
            describe=_describe_options(
                describe, describe_model, backend, base_url, model, api_key_env
            ),
        )
        with console.status("clustering …"):
            info = cluster_run(run_dir, params).info
    sil, dbi = info["silhouette"], info["davies_bouldin"]
    console.print(
        f"k={info['k']} ({info['k_mode']}) over {info['n_clustered']} clips · silhouette "
        f"{sil:.3f} · Davies–Bouldin {dbi:.3f}"
        if sil is not None
        else f"k={info['k']} over {info['n_clustered']} clips (one cluster: no scores)",
        highlight=False,
    )
    balanced = info["balance"]
    table = Table(title="clusters")
    for column in ("id", "size", "kept", "keywords"):
        table.add_column(column, justify="left" if column == "keywords" else "right")
    if any(entry.get("description") for entry in info["clusters"]):
        table.add_column("description", justify="left")
    if balanced:
        table.columns[2].header = "kept before → after"
    for entry in info["clusters"]:
        words = ", ".join(k["word"] for k in entry["keywords"][:6]) or "—"
        kept = str(entry["kept"])
        if balanced:
            key = str(entry["id"])
            kept = f"{balanced['before'].get(key, 0)} → {balanced['after'].get(key, 0)}"
        cells = [str(entry["id"]), str(entry["size"]), kept, words]
        if len(table.columns) > 4:
            cells.append(entry.get("description") or "—")
        table.add_row(*cells)
    console.print(table)
    if balanced:
        console.print(f"balance {balanced['spec']}: {balanced['dropped']} clips marked 'balance'")
    console.print(f"wrote {run_dir / CLUSTERS_FILE}; `clipsieve report {run_dir}` shows the map")


def register_cluster(app: typer.Typer) -> None:
    """Add the ``cluster`` command to ``app``."""
    app.command("cluster")(cluster)
