"""The labelling web app: a FastAPI server for one run folder and its static page.

Routes: ``/`` the page, ``/static/*`` its JS/CSS (package data), ``/files/{key}`` clip files
(HTTP Range via Starlette's FileResponse, so the browser can seek and loop), ``/api/state`` the
clips in labelling order with scores, captions and current labels, ``POST /api/label`` and
``POST /api/undo``, ``/api/export`` the ``annotations.json`` view.

Safety, because a browser page is reachable by any site the user visits:
* files are served only through the catalog's allow-list (see ``catalog.py``): no path from a
  request is ever joined onto the disk, so ``../``, encoded ``%2e%2e``, absolute paths and
  symlinks pointing out of the run all end in 404;
* bound to loopback, the Host header must be a loopback name (defeats DNS rebinding);
* label posts must be JSON with exactly the expected fields and types (4xx otherwise), so a
  cross-site HTML form cannot post labels.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.middleware.trustedhost import TrustedHostMiddleware

from clipsieve.annotate.catalog import Catalog
from clipsieve.annotate.limits import RequestLimits
from clipsieve.labels import LabelStore

STATIC_DIR = Path(__file__).parent / "static"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
_NAME = re.compile(r"^[\w .@+-]{1,64}$")


class LabelPost(BaseModel):
    """One key press: a label (exactly the integers 0 or 1) or ``"skip"``."""

    model_config = ConfigDict(extra="forbid")

    clip_id: str = Field(min_length=1, max_length=512)
    label: Any
    session: str = Field(default="", max_length=64, pattern=r"^[A-Za-z0-9_-]*$")
    labeller: str | None = Field(default=None, max_length=64)

    @field_validator("label", mode="before")
    @classmethod
    def _label(cls, value: Any) -> Any:
        # type() not isinstance(): True and 1.0 are not labels, however Python compares them.
        if (type(value) is int and value in (0, 1)) or value == "skip":
            return value
        raise ValueError('label must be 0, 1 or "skip"')

    @field_validator("labeller")
    @classmethod
    def _labeller(cls, value: str | None) -> str | None:
        if value is not None and not _NAME.match(value):
            raise ValueError("labeller: 1-64 letters, digits, spaces or . @ + - _")
        return value


class UndoPost(BaseModel):
    """Take back the latest live event of one page session."""

    model_config = ConfigDict(extra="forbid")

    session: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")


def create_app(
    run_dir: str | Path,
    store: LabelStore,
    order: list[int],
    labeller: str,
    sample: str = "random",
    allowed_hosts: tuple[str, ...] | None = LOOPBACK_HOSTS,
    catalog: Catalog | None = None,
) -> FastAPI:
    """The app for one run; ``order`` lists catalog positions in labelling order."""
    catalog = catalog or Catalog.load(run_dir)
    app = FastAPI(title="clipsieve annotate", docs_url=None, redoc_url=None, openapi_url=None)
    if allowed_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    app.add_middleware(RequestLimits)  # bounded bodies, no endless slow uploads
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    def label_of(clip_id: str) -> dict[str, Any]:
        latest = None
        for event in store.events():
            if event.clip_id == clip_id and event.action == "label":
                latest = event
        if latest is None:
            return {"clip_id": clip_id, "label": None, "labeller": None}
        return {"clip_id": clip_id, "label": latest.label, "labeller": latest.labeller}

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/files/{key:path}", include_in_schema=False)
    def clip_file(key: str) -> FileResponse:
        path = catalog.file_for(key)
        if path is None:
            raise HTTPException(status_code=404, detail="not a clip file of this run")
        return FileResponse(path, media_type="video/mp4" if path.suffix == ".mp4" else None)

    @app.get("/api/state")
    def state() -> dict[str, Any]:
        events = store.events()
        current: dict[str, tuple[int, str]] = {}
        seen: set[str] = set()
        for event in events:
            seen.add(event.clip_id)
            if event.action == "label":
                current[event.clip_id] = (int(event.label or 0), event.labeller)
        clips = []
        for position in order:
            entry = catalog.entries[position]
            label = current.get(entry.clip_id)
            clips.append(
                {
                    "clip_id": entry.clip_id,
                    "url": f"/files/{entry.key}",
                    "caption": entry.caption,
                    "scores": entry.scores,
                    "label": label[0] if label else None,
                    "labeller": label[1] if label else None,
                    "seen": entry.clip_id in seen,
                }
            )
        start = next((i for i, c in enumerate(clips) if not c["seen"]), len(clips) - 1)
        return {
            "run": catalog.root.name,
            "labeller": labeller,
            "sample": sample,
            "start": max(start, 0),
            "clips": clips,
        }

    @app.post("/api/label")
    def post_label(post: LabelPost) -> dict[str, Any]:
        if post.clip_id not in catalog.by_id:
            raise HTTPException(status_code=404, detail=f"unknown clip_id {post.clip_id!r}")
        skip = post.label == "skip"
        store.add(
            post.clip_id,
            "skip" if skip else "label",
            None if skip else int(post.label),
            post.labeller or labeller,
            post.session,
        )
        return label_of(post.clip_id)

    @app.post("/api/undo")
    def post_undo(post: UndoPost) -> dict[str, Any]:
        event = store.undo(post.session)
        if event is None:
            return {"clip_id": None, "label": None, "labeller": None}
        return label_of(event.clip_id)

    @app.get("/api/export")
    def export() -> JSONResponse:
        return JSONResponse(export_annotations(catalog, store))

    return app


def export_annotations(
    catalog: Catalog, store: LabelStore, labeller: str | None = None
) -> dict[str, int]:
    """``{scene_path: 0|1}`` as the original project's ``annotations.json``.

    The key is the clip file's path relative to the run folder (``clips/<clip_id>.mp4``), or the
    clip id for a clip without a file; ``train-classifier`` matches either.
    """
    return {
        catalog.export_key(clip_id): label
        for clip_id, label in sorted(store.current(labeller).items())
    }
