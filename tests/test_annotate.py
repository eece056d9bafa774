"""The labelling page's server, label store, sampling and export (HTTP against real uvicorn)."""

from __future__ import annotations

import http.client
import json
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

import annotate_server
from clipsieve.annotate.catalog import Catalog
from clipsieve.annotate.sampling import clip_order, stratified_order, uncertainty_order
from clipsieve.cli import app
from clipsieve.errors import UserError
from clipsieve.labels import LabelStore, labels_path
from clipsieve.select.classifier import match_labels, read_labels


@pytest.fixture(scope="module")
def run_dir(sample_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One private copy of the shared run for this module's server."""
    target = tmp_path_factory.mktemp("annotate") / "run"
    shutil.copytree(sample_run, target)
    return target


@pytest.fixture(scope="module")
def server(run_dir: Path) -> Iterator[str]:
    with annotate_server.serve(run_dir) as url:
        yield url


def _raw_get(base: str, raw_path: str, headers: dict | None = None) -> tuple[int, bytes]:
    """GET a path exactly as written (httpx would normalise ``..`` away before sending)."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("GET", raw_path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _post(base: str, path: str, **kwargs) -> httpx.Response:
    return httpx.post(base + path, timeout=10, **kwargs)


# ---------------------------------------------------------------------------- store


def test_store_is_wal_persists_and_undo_takes_back_only_its_session(tmp_path: Path) -> None:
    path = tmp_path / "labels.sqlite"
    store = LabelStore(path)
    store.add("a", "label", 1, "ann", "s1")
    store.add("b", "label", 0, "bob", "s2")
    store.add("a", "label", 0, "ann", "s1")
    store.add("c", "skip", None, "ann", "s1")
    assert store.undo("s1").clip_id == "c"  # the skip
    assert store.undo("s1").clip_id == "a"  # ann's second label of a
    reopened = LabelStore(path)  # a server restart
    assert reopened.current() == {"a": 1, "b": 0}
    assert reopened.current("bob") == {"b": 0}
    assert {e.labeller for e in reopened.events(include_undone=True)} == {"ann", "bob"}
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchall()[0][0] == "wal"
    with pytest.raises(ValueError):
        store.add("a", "label", 2, "ann")


# ---------------------------------------------------------------------------- sampling


def test_stratified_order_visits_every_quantile_bin_first() -> None:
    values = np.r_[np.arange(100, dtype=float), np.nan]
    order = stratified_order(values, bins=5, seed=1)
    assert sorted(order) == list(range(101))
    first = order[:6]
    assert sorted(int(values[i] // 20) for i in first if not np.isnan(values[i])) == [0, 1, 2, 3, 4]
    assert any(np.isnan(values[i]) for i in first)


def test_uncertainty_order_puts_coin_flips_first_and_unscored_last() -> None:
    prob = np.array([0.9, 0.5, np.nan, 0.1, 0.45])
    assert uncertainty_order(prob) == [1, 4, 0, 3, 2]


def test_clip_order_modes(run_dir: Path) -> None:
    catalog = Catalog.load(run_dir)
    playable = sorted(e.index for e in catalog.entries if e.key)
    assert playable, "the sample run must have cut clips"
    for mode in ("random", "stratified"):
        assert sorted(clip_order(catalog, mode)) == playable
    with pytest.raises(UserError, match="train-classifier"):
        clip_order(catalog, "uncertainty", model=run_dir / "nope.json")
    with pytest.raises(UserError, match="--sample"):
        clip_order(catalog, "alphabetical")


# ---------------------------------------------------------------------------- server


def test_state_lists_playable_clips_with_scores(server: str, run_dir: Path) -> None:
    state = httpx.get(server + "/api/state", timeout=10).json()
    assert state["labeller"] == "tester" and state["clips"]
    clip = state["clips"][0]
    assert clip["url"].startswith("/files/clips/") and "flow_mean" in clip["scores"]
    page = httpx.get(server + "/", timeout=10)
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert httpx.get(server + "/static/app.js", timeout=10).status_code == 200


def test_clip_files_are_served_with_range_support(server: str) -> None:
    url = httpx.get(server + "/api/state", timeout=10).json()["clips"][0]["url"]
    whole = httpx.get(server + url, timeout=10)
    assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
    part = httpx.get(server + url, headers={"Range": "bytes=10-109"}, timeout=10)
    assert part.status_code == 206
    assert part.content == whole.content[10:110]
    assert part.headers["content-range"] == f"bytes 10-109/{len(whole.content)}"


@pytest.mark.parametrize(
    "raw_path",
    [
        "/files/clips.parquet",  # inside the run but not a clip file the table names
        "/files/../clips.parquet",
        "/files/clips/../run.json",
        "/files/%2e%2e/%2e%2e/etc/passwd",
        "/files/..%2f..%2fetc%2fpasswd",
        "/files/%2Fetc%2Fpasswd",
        "/files//etc/passwd",
        "/files/clips%2f..%2f..%2fetc%2fpasswd",
        "/files/clips/%252e%252e/run.json",
        "/static/../run.json",
        "/static/%2e%2e/server.py",
    ],
)
def test_only_clip_files_of_the_run_are_served(server: str, raw_path: str) -> None:
    status, body = _raw_get(server, raw_path)
    assert status in (400, 404), (raw_path, status)
    assert b"root:" not in body and b"clipsieve_stages" not in body


def test_symlinks_out_of_the_run_are_refused(run_copy: Path, tmp_path: Path) -> None:
    clips = sorted((run_copy / "clips").glob("*.mp4"))
    outside = tmp_path / "outside.mp4"
    outside.write_bytes(b"secret outside the run")
    clips[0].unlink()
    clips[0].symlink_to(outside)
    catalog = Catalog.load(run_copy)
    assert all(key != f"clips/{clips[0].name}" for key in catalog.files)
    # A symlink swapped in after the server started is refused at request time too.
    second = f"clips/{clips[1].name}"
    assert catalog.file_for(second) is not None
    clips[1].unlink()
    clips[1].symlink_to(outside)
    assert catalog.file_for(second) is None


def test_foreign_host_header_is_refused(server: str) -> None:
    status, _ = _raw_get(server, "/api/state", headers={"Host": "evil.example"})
    assert status == 400


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"label": 1},
        {"clip_id": "x", "label": 2},
        {"clip_id": "x", "label": True},
        {"clip_id": "x", "label": 1.0},
        {"clip_id": "x", "label": "1"},
        {"clip_id": "x", "label": None},
        {"clip_id": "x", "label": 1, "extra": 1},
        {"clip_id": "x", "label": 1, "session": "../x"},
        {"clip_id": "x", "label": 1, "labeller": "<script>"},
        {"clip_id": "", "label": 1},
        [1, 2],
    ],
)
def test_malformed_label_posts_are_rejected(server: str, run_dir: Path, body: object) -> None:
    before = len(LabelStore(labels_path(run_dir)).events(include_undone=True))
    response = _post(server, "/api/label", json=body)
    assert 400 <= response.status_code < 500
    assert len(LabelStore(labels_path(run_dir)).events(include_undone=True)) == before


def test_non_json_and_unknown_clip_posts_are_rejected(server: str) -> None:
    form = _post(server, "/api/label", data={"clip_id": "x", "label": "1"})
    assert 400 <= form.status_code < 500
    text = _post(server, "/api/label", content=b"not json", headers={"content-type": "text/plain"})
    assert 400 <= text.status_code < 500
    unknown = _post(server, "/api/label", json={"clip_id": "no-such-clip", "label": 1})
    assert unknown.status_code == 404
    assert _post(server, "/api/undo", json={"session": ""}).status_code == 422


def test_two_browsers_at_once_lose_nothing_and_export_round_trips(
    server: str, run_dir: Path, tmp_path: Path
) -> None:
    clips = [c["clip_id"] for c in httpx.get(server + "/api/state", timeout=10).json()["clips"]]
    store = LabelStore(labels_path(run_dir))
    before = len(store.events(include_undone=True))
    errors: list[str] = []

    def browser(session: str, label: int) -> None:
        with httpx.Client(base_url=server, timeout=30) as client:
            for clip_id in clips * 3:
                body = {"clip_id": clip_id, "label": label, "session": session}
                response = client.post("/api/label", json=body, headers={"X-Test": session})
                if response.status_code != 200:
                    errors.append(response.text)

    threads = [threading.Thread(target=browser, args=(f"b{i}", i % 2)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    events = store.events(include_undone=True)
    assert len(events) - before == 2 * 3 * len(clips)
    assert _post(server, "/api/undo", json={"session": "b0"}).json()["clip_id"] == clips[-1]

    out = tmp_path / "annotations.json"
    result = CliRunner().invoke(app, ["annotate", str(run_dir), "--export", str(out)])
    assert result.exit_code == 0, result.output
    exported = json.loads(out.read_text())
    assert exported == httpx.get(server + "/api/export", timeout=10).json()
    assert len(exported) == len(clips) and set(exported.values()) <= {0, 1}
    assert all(key.startswith("clips/") and key.endswith(".mp4") for key in exported)
    # The exported file is what train-classifier reads: every key finds its clip again.
    rows, labels, unmatched = match_labels(Catalog.load(run_dir).table, read_labels(out), run_dir)
    assert not unmatched and len(rows) == len(clips)


def test_cli_refuses_network_host_without_allow_remote(run_dir: Path) -> None:
    result = CliRunner().invoke(app, ["annotate", str(run_dir), "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "--allow-remote" in result.output


def test_labelling_server_bounds_request_bodies_and_slow_clients(
    run_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eight 50 MB bodies held 863 MB; a client trickling a body held a worker forever."""
    import socket
    import time

    monkeypatch.setattr("clipsieve.annotate.limits.BODY_TIMEOUT_S", 1.0)
    with annotate_server.serve(run_copy) as url:
        host, port = url.removeprefix("http://").rstrip("/").split(":")

        def exchange(head: str, body: bytes = b"", wait: float = 0.0) -> str:
            with socket.create_connection((host, int(port)), timeout=10) as sock:
                sock.sendall(head.encode() + body)
                time.sleep(wait)
                return sock.recv(4096).decode(errors="replace")

        big = (
            "POST /api/label HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Content-Length: 50000000\r\n\r\n"
        )
        assert exchange(big, b"x" * 1000).startswith("HTTP/1.1 413")
        chunked = (
            "POST /api/label HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        assert exchange(chunked, b"5\r\nhello\r\n").startswith("HTTP/1.1 411")
        slow = (
            "POST /api/label HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Content-Length: 100\r\n\r\n"
        )
        started = time.monotonic()
        answer = exchange(slow, b'{"clip_id": ')  # and then nothing more
        assert answer.startswith("HTTP/1.1 408") and time.monotonic() - started < 8
        # the page still works
        import httpx

        assert httpx.get(f"{url}/api/state").status_code == 200
