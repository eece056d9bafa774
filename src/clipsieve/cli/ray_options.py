"""The options of post-run work on Ray (``score``, ``caption``, ``classify``, ``dedup``,
``export``); each command says what its workers do. :func:`clipsieve.engine.ray_pool.ray_options`
reads them."""

from __future__ import annotations

from typing import Any

import typer


def engine_option(what: str) -> Any:
    """``--engine local|ray``; ``what``: what the Ray workers do."""
    return typer.Option("local", "--engine", help=f"local, or ray: {what}.")


def address_option() -> Any:
    return typer.Option(
        None, "--address", help="Ray cluster: auto, HOST:PORT or ray://HOST:PORT (implies ray)."
    )


def workers_option(who: str) -> Any:
    """``--workers``; ``who``: what one worker is (caption workers, shard writers, ...)."""
    return typer.Option(None, "--workers", "-w", help=f"Ray: {who} (default: the cluster's CPUs).")


def gpus_option(who: str) -> Any:
    """``--gpus-per-worker``; ``who``: what one worker is."""
    help_text = f"Ray: GPU share of each {who} (0.25: four per GPU)."
    return typer.Option(0.0, "--gpus-per-worker", help=help_text)
