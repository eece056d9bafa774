"""The explorer's web app (FastAPI), with the labelling page's safety rules.

Routes: ``/`` the page; ``/api/columns`` histograms; ``POST /api/count`` the clips passing the
ranges; ``POST /api/strip`` clips just inside and outside one threshold; ``/clip/{row}`` a clip
file (only a file of the run folder, found by row number: no path from a request reaches the
disk); ``POST /api/save`` writes the chosen ranges as a filter expression and a preset YAML
into ``RUN/explore/``.

Bound to loopback, the Host header must be a loopback name (DNS rebinding); bodies are small
JSON with exactly the expected fields (so a cross-site form cannot post); bodies over 64 KB and
stalled uploads are refused (``annotate/limits.py``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.middleware.trustedhost import TrustedHostMiddleware

from clipsieve.annotate.limits import RequestLimits
from clipsieve.annotate.server import LOOPBACK_HOSTS
from clipsieve.errors import UserError
from clipsieve.explore.data import ExploreData
from clipsieve.table import atomic_path

PAGE = Path(__file__).parent / "static" / "explore.html"
OUT_DIR = "explore"
Bounds = tuple[float, float]


class Ranges(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ranges: dict[str, Bounds] = Field(default_factory=dict, max_length=256)


class StripQuery(Ranges):
    column: str = Field(min_length=1, max_length=256)
    edge: str = Field(pattern="^(lo|hi)$")


class SaveQuery(Ranges):
    name: str = Field(default="explored", pattern=r"^[A-Za-z0-9_.-]{1,64}$")


def create_app(data: ExploreData, allowed_hosts: tuple[str, ...] | None = LOOPBACK_HOSTS) -> Any:
    app = FastAPI(title="clipsieve explore", docs_url=None, redoc_url=None, openapi_url=None)
    if allowed_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    app.add_middleware(RequestLimits)

    def checked(query: Ranges) -> dict[str, Bounds]:
        try:
            return data.ranges(query.ranges)
        except UserError as exc:
            raise HTTPException(422, str(exc)) from None

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return PAGE.read_text(encoding="utf-8")

    @app.get("/api/columns")
    def columns() -> dict[str, Any]:
        return {"columns": [c.describe() for c in data.columns.values()], "total": data.total,
                "run": data.run_dir.name}  # fmt: skip

    @app.post("/api/count")
    def count(query: Ranges) -> dict[str, Any]:
        started = time.perf_counter()
        result = data.count(checked(query))
        result["ms"] = round(1000 * (time.perf_counter() - started), 2)
        result["expression"] = data.expression(checked(query))
        return result

    @app.post("/api/strip")
    def strip(query: StripQuery) -> dict[str, Any]:
        if query.column not in data.columns:
            raise HTTPException(422, f"no explored column {query.column!r}")
        return data.strip(checked(query), query.column, query.edge)

    @app.get("/clip/{row}")
    def clip(row: int) -> FileResponse:
        path = data.clip_file(row)
        if path is None:
            raise HTTPException(404, "no such clip")
        return FileResponse(path, media_type="video/mp4")

    @app.post("/api/save")
    def save(query: SaveQuery) -> dict[str, Any]:
        ranges = checked(query)
        expression = data.expression(ranges)
        if not expression:
            raise HTTPException(422, "no range narrows anything: move a control first")
        folder = data.run_dir / OUT_DIR
        folder.mkdir(exist_ok=True)
        preset = folder / f"{query.name}.yaml"
        with atomic_path(preset) as tmp:
            tmp.write_text(data.preset_yaml(ranges, query.name), encoding="utf-8")
        with atomic_path(folder / f"{query.name}.where.txt") as tmp:
            tmp.write_text(expression + "\n", encoding="utf-8")
        return {"expression": expression, "preset": str(preset),
                "command": f"clipsieve filter {data.run_dir} --preset {preset}"}  # fmt: skip

    return app
