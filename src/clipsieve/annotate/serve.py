"""Serving the labelling page: where it may listen, what it serves, and the labels it writes.

Local pages (the labelling page, the threshold explorer) listen on loopback unless the user
says otherwise: :func:`check_bind` is that rule, in one place.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clipsieve.errors import UserError


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, port: int, allow_remote: bool, what: str) -> bool:
    """Refuse a non-loopback ``host`` without ``allow_remote`` and a port outside 1-65535, in
    one line naming ``what`` would be exposed; returns whether ``host`` is loopback."""
    loopback = is_loopback(host)
    if not loopback and not allow_remote:
        raise UserError(
            f"--host {host} would expose {what} to the network: add --allow-remote "
            "if that is what you want"
        )
    if not 0 < port < 65536:
        raise UserError(f"--port {port} is not a TCP port (1-65535)")
    return loopback


@dataclass
class LabellingPage:
    """The ASGI app, how many clips it offers and where their labels go."""

    app: Any
    clips: int
    labels: Path


def labelling_app(
    run_dir: Path,
    labeller: str,
    loopback: bool,
    sample: str = "random",
    stratify_by: str | None = None,
    model: Path | None = None,
    seed: int = 0,
) -> LabellingPage:
    """The labelling page of ``run_dir``: its clips in ``sample`` order, labels appended to the
    run's label store as ``labeller``; a loopback page answers only loopback Host headers."""
    from clipsieve.annotate.catalog import Catalog
    from clipsieve.annotate.sampling import clip_order
    from clipsieve.annotate.server import LOOPBACK_HOSTS, create_app
    from clipsieve.labels import LabelStore, labels_path

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
    return LabellingPage(app, len(order), store.path)


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
