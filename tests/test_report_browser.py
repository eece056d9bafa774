"""The report in a real browser: headless Debian Chromium opens report.html from disk.

Chromium is driven over the DevTools protocol (a websocket on 127.0.0.1; the ``websockets``
client comes with google-genai): it loads the page, every console error, uncaught exception
and failed load is collected, every embedded image is decoded, and a screenshot is checked for
real content. Skipped only when no chromium binary exists (``make browser`` installs it).
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from clipsieve.report.html import write_report
from clipsieve.runfolder import load_clips, load_videos
from clipsieve.table import write_json

CHROMIUM = next(
    (p for p in (shutil.which("chromium"), shutil.which("chromium-browser")) if p), None
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary (run `make browser` to install Debian chromium)"
)
websockets_sync = pytest.importorskip("websockets.sync.client")


class DevTools:
    """A minimal DevTools-protocol client over one browser websocket (flattened sessions)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, session: str | None = None, timeout: float = 30, **params):
        msg_id = next(self.ids)
        message: dict[str, Any] = {"id": msg_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        deadline = time.monotonic() + timeout
        while True:
            reply = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            event = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            self.events.append(event)
            if event.get("method") == method:
                return event


def _problems(events: list[dict[str, Any]]) -> list[str]:
    out = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            out.append(f"exception: {params['exceptionDetails'].get('text')}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            out.append(f"console.{params['type']}: {params.get('args')}")
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            out.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
        elif method == "Network.loadingFailed":
            out.append(f"load failed: {params.get('errorText')}")
    return out


def open_in_chromium(page: Path, tmp: Path) -> tuple[list[str], Image.Image, dict[str, Any]]:
    """(problems, screenshot, page facts) of ``page`` opened in headless Chromium."""
    profile = tmp / "chromium-profile"
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
        f"--user-data-dir={profile}", "--window-size=1280,2000", "about:blank",
    ]  # fmt: skip
    proc = subprocess.Popen(
        [CHROMIUM, *flags], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.is_file() and len(port_file.read_text().splitlines()) >= 2):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"chromium did not start (exit code {proc.poll()})")
            time.sleep(0.1)
        port, path = port_file.read_text().splitlines()[:2]
        url = f"ws://127.0.0.1:{port}{path}"
        with websockets_sync.connect(url, max_size=64 * 1024 * 1024, open_timeout=20) as ws:
            tools = DevTools(ws)
            target = tools.call("Target.createTarget", url="about:blank")["targetId"]
            session = tools.call("Target.attachToTarget", targetId=target, flatten=True)[
                "sessionId"
            ]
            for domain in ("Page", "Runtime", "Log", "Network"):
                tools.call(f"{domain}.enable", session)
            tools.call("Page.navigate", session, url=page.resolve().as_uri())
            tools.wait_for("Page.loadEventFired", timeout=60)
            # lazy images below the fold are loaded and decoded too: a broken data URI fails
            facts = tools.call(
                "Runtime.evaluate",
                session,
                awaitPromise=True,
                returnByValue=True,
                expression="""(async () => {
                    const imgs = Array.from(document.images);
                    imgs.forEach(i => { i.loading = 'eager'; });
                    const bad = await Promise.all(imgs.map(i => i.decode().then(() => 0, () => 1)));
                    return {images: imgs.length, broken: bad.reduce((a, b) => a + b, 0),
                            sections: Array.from(document.querySelectorAll('h2')).map(h => h.id),
                            title: document.title};
                })()""",
            )["result"]["value"]
            shot = tools.call("Page.captureScreenshot", session, format="png")["data"]
            problems = _problems(tools.events)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return problems, Image.open(io.BytesIO(base64.b64decode(shot))).convert("RGB"), facts


def _fake_selection(run_dir: Path) -> None:
    """Give the copied run the side files and columns the selection commands would write."""
    clips = load_clips(run_dir)
    import pyarrow as pa

    from clipsieve.select.marks import set_column

    n = clips.num_rows
    ids = clips.column("clip_id").to_pylist()
    clips = set_column(clips, "flow_mean", pa.array([float(i) for i in range(n)], pa.float64()))
    clips = set_column(clips, "dup_group", pa.array([0 if i < 2 else None for i in range(n)]))
    clips = set_column(clips, "dup_of", pa.array([None, ids[0]] + [None] * (n - 2), pa.string()))
    clips = set_column(clips, "cluster_id", pa.array([i % 2 for i in range(n)], pa.int32()))
    from clipsieve.table import write_parquet

    write_parquet(clips, run_dir / "clips.parquet")
    write_json(
        {
            "where": "flow_mean >= 2",
            "total": n,
            "kept": n - 2,
            "steps": [
                {"condition": "flow_mean >= 2", "column": "flow_mean", "op": ">=", "value": 2,
                 "rows_in": n, "passed": n - 2},
            ],
        },
        run_dir / "funnel.json",
    )  # fmt: skip
    write_json(
        {
            "k": 2, "k_mode": "fixed", "silhouette": 0.4, "davies_bouldin": 0.9,
            "n_clustered": n, "balance": None,
            "clusters": [
                {"id": c, "size": n // 2, "kept": n // 2, "keyword_source": "captions",
                 "keywords": [{"word": f"word{c}", "score": 0.5}], "nearest": ids[c::2]}
                for c in (0, 1)
            ],
            "map": {"method": "tsne", "points": [
                {"clip_id": cid, "cluster": i % 2, "x": float(i), "y": float(i % 3)}
                for i, cid in enumerate(ids)
            ]},
        },
        run_dir / "clusters.json",
    )  # fmt: skip


def test_report_opens_in_chromium_without_errors(run_copy: Path, tmp_path: Path) -> None:
    _fake_selection(run_copy)
    page = write_report(run_copy, load_videos(run_copy), load_clips(run_copy), {}, max_thumbs=20)
    problems, shot, facts = open_in_chromium(page, tmp_path)
    assert problems == []
    assert facts["broken"] == 0 and facts["images"] >= 10
    for section in ("funnel", "scores", "percentiles", "duplicates", "clusters", "kept"):
        assert section in facts["sections"]
    pixels = np.asarray(shot, dtype=np.float64)
    assert shot.size[0] >= 800 and shot.size[1] >= 600
    assert pixels.std() > 20  # not a blank page
    assert len(np.unique(pixels.reshape(-1, 3)[::97], axis=0)) > 50  # text, figures, thumbnails
