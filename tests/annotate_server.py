"""A real uvicorn server on 127.0.0.1 for the labelling-page tests, stopped when the test ends.

Loaded by file path (tests are not a package), see ``load_helper`` in the test modules.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn

from clipsieve.annotate.catalog import Catalog
from clipsieve.annotate.sampling import clip_order
from clipsieve.annotate.server import create_app
from clipsieve.labels import LabelStore, labels_path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve(run_dir: Path, labeller: str = "tester", sample: str = "random") -> Iterator[str]:
    """Run the labelling app for ``run_dir`` in a thread; yields its base URL."""
    catalog = Catalog.load(run_dir)
    store = LabelStore(labels_path(run_dir))
    app = create_app(
        run_dir, store, clip_order(catalog, sample), labeller, sample=sample, catalog=catalog
    )
    with serve_app(app) as url:
        yield url


@contextlib.contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """Run an ASGI app with uvicorn in a thread on a free loopback port; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the local server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
