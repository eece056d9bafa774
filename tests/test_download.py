"""``clipsieve download`` against a local HTTP server (127.0.0.1, free port) via yt-dlp's generic
extractor: whole files, section (span) downloads, a 404, a connection dropped mid-file, a slow
server, resume, and the metafile → run folder path that follows a download."""

from __future__ import annotations

import http.server
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from clipsieve.cli.ingest import register_ingest_meta
from clipsieve.ingest.download import (
    DownloadOptions,
    classify_failure,
    download_metafile,
    finished_file,
    format_selector,
)
from clipsieve.ingest.metafiles import read_metafile
from clipsieve.ingest.spans import ingest_metafile
from clipsieve.media.ffmpeg import run_ffmpeg
from clipsieve.table import read_parquet

FPS = 25


def _make_mp4(path: Path, seconds: float, rate: int = FPS) -> Path:
    run_ffmpeg(
        [
            "-f", "lavfi", "-i", f"testsrc2=size=96x64:rate={rate}", "-t", str(seconds),
            "-c:v", "libx264", "-preset", "ultrafast", "-g", str(rate), "-pix_fmt", "yuv420p",
            "-movflags", "+faststart", str(path),
        ]
    )  # fmt: skip
    return path


@dataclass
class Server:
    base: str
    root: Path
    hits: Counter = field(default_factory=Counter)

    def url(self, route: str) -> str:
        return f"{self.base}/{route}"


def _handler(server: Server) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        """Serves ``/v/NAME`` (with byte ranges), ``/drop/NAME`` (closes the connection after
        half the body), ``/slow/NAME`` (stalls after 1 KiB) and 404 for anything else."""

        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

        def _serve(self, body: bool) -> None:
            route, _, name = self.path.lstrip("/").partition("/")
            server.hits[self.path] += 1
            file = server.root / name
            if route not in ("v", "drop", "slow") or not name or not file.is_file():
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = file.read_bytes()
            start, end = 0, len(data) - 1
            match = re.match(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
            if match and route == "v":
                start = int(match.group(1) or 0)
                end = int(match.group(2)) if match.group(2) else end
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            else:
                self.send_response(200)
            chunk = data[start : end + 1]
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Accept-Ranges", "bytes" if route == "v" else "none")
            self.send_header("Content-Length", str(len(chunk)))
            self.end_headers()
            if not body:
                return
            try:
                if route == "drop":
                    self.wfile.write(chunk[: len(chunk) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if route == "slow":
                    self.wfile.write(chunk[:1024])
                    self.wfile.flush()
                    time.sleep(3.0)  # far beyond the test's socket timeout
                    self.close_connection = True
                    return
                self.wfile.write(chunk)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    return Handler


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("www")
    _make_mp4(root / "a.mp4", 4.0)
    _make_mp4(root / "b.mp4", 3.0)
    state = Server(base="", root=root)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    httpd.handle_error = lambda request, address: None  # clients hanging up are expected
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


FAST = DownloadOptions(workers=3, retries=1, backoff_s=0.01, socket_timeout_s=0.5)


def _urls(path: Path, urls: list[str]) -> Path:
    path.write_text("# test list\n" + "\n".join(urls) + "\n", encoding="utf-8")
    return path


def test_whole_files_failures_and_resume(server: Server, tmp_path: Path) -> None:
    meta_path = _urls(
        tmp_path / "urls.txt",
        [
            server.url("v/a.mp4"),
            server.url("v/b.mp4"),
            server.url("v/missing.mp4"),
            server.url("drop/a.mp4"),
            server.url("slow/b.mp4"),
        ],
    )
    meta = read_metafile(meta_path)
    out = tmp_path / "dl"
    started = time.monotonic()
    result = download_metafile(meta, out, FAST)
    first_s = time.monotonic() - started
    rows = {r["url"].split("/", 3)[3]: r for r in result.table.to_pylist()}
    assert [rows[k]["status"] for k in ("v/a.mp4", "v/b.mp4")] == ["ok", "ok"]
    assert rows["v/missing.mp4"]["download_reason"] == "http_404"
    assert rows["drop/a.mp4"]["download_reason"] == "network"
    assert rows["slow/b.mp4"]["download_reason"] in ("timeout", "network")
    for key in ("v/missing.mp4", "drop/a.mp4", "slow/b.mp4"):
        assert rows[key]["status"] == "error"
        assert rows[key]["error"].startswith(f"download: {rows[key]['download_reason']}: ")
    # Transient failures were retried once; a 404 is final.
    assert rows["drop/a.mp4"]["download_attempts"] == 2
    assert rows["v/missing.mp4"]["download_attempts"] == 1
    assert first_s < 30
    media = out / "videos"
    ok_file = Path(rows["v/a.mp4"]["path"])
    assert ok_file.parent == media and ok_file.name == f"{rows['v/a.mp4']['video_id']}.mp4"
    assert rows["v/a.mp4"]["size_bytes"] == (server.root / "a.mp4").stat().st_size
    # The dropped transfer left at most a .part file, which never counts as finished.
    drop_id = rows["drop/a.mp4"]["video_id"]
    assert finished_file(media, drop_id) is None
    # yt-dlp asked the server for the given URLs and nothing else.
    assert set(server.hits) <= {"/" + key for key in rows}
    stored = read_parquet(out / "videos.parquet").to_pylist()
    assert [r["video_id"] for r in stored] == [v.video_id for v in meta.videos]

    # Resume: finished files are not requested again; only failures are retried.
    before = Counter(server.hits)
    again = download_metafile(meta, out, replace(FAST, retries=0))
    new_hits = Counter(server.hits) - before
    assert again.skipped == 2 and again.fetched == 0 and again.failed == 3
    assert not any(path.startswith("/v/a.mp4") or path.startswith("/v/b.mp4") for path in new_hits)
    assert {r["video_id"]: r["download_skipped"] for r in again.table.to_pylist()}[
        rows["v/a.mp4"]["video_id"]
    ]


def _hdvg(path: Path, url: str) -> Path:
    meta = {
        "vidA": {
            "url": url,
            "clip": {
                "vidA.0.mp4": {
                    "span": ["00:00:00.500", "00:00:01.500"],
                    "fps": FPS,
                    "scene_split": [{"scene_cut": [0, -1], "clip_id": "vidA.0_0", "caption": "x"}],
                },
                "vidA.3.mp4": {
                    "span": ["00:00:02.000", "00:00:03.600"],
                    "fps": FPS,
                    "scene_split": [
                        {"scene_cut": [0, 15], "clip_id": "vidA.3_0", "caption": "first"},
                        {"scene_cut": [15, 40], "clip_id": "vidA.3_1", "caption": "second"},
                    ],
                },
            },
        }
    }
    path.write_text(json.dumps(meta), encoding="utf-8")
    return path


def test_sections_download_and_ingest(server: Server, tmp_path: Path) -> None:
    meta = read_metafile(_hdvg(tmp_path / "hdvg.json", server.url("v/a.mp4")))
    out = tmp_path / "dl"
    (out / "videos").mkdir(parents=True)
    (out / "videos" / "vidA.0.mp4").write_bytes(b"not a video")  # a broken earlier result
    result = download_metafile(meta, out, FAST)
    rows = result.table.to_pylist()
    assert [r["video_id"] for r in rows] == ["vidA.0", "vidA.3"]
    assert result.fetched == 2
    assert all(r["status"] == "ok" and r["download_mode"] == "section" for r in rows)
    from clipsieve.media.probe import probe_video

    frames = [probe_video(r["path"])["num_frames"] for r in rows]
    # Only the sections were fetched: 1.0 s and 1.6 s of the 4 s source (±1 frame).
    assert abs(frames[0] - 25) <= 1 and abs(frames[1] - 40) <= 1
    assert rows[1]["section_start_s"] == pytest.approx(2.0)

    run = ingest_metafile(meta, tmp_path / "run", out)
    clips = {c["span_id"]: c for c in run.clips.to_pylist()}
    assert set(clips) == {"vidA.0_0", "vidA.3_0", "vidA.3_1"}
    assert (clips["vidA.3_0"]["start_frame"], clips["vidA.3_0"]["end_frame"]) == (0, 15)
    assert clips["vidA.3_1"]["start_frame"] == 15
    assert clips["vidA.3_1"]["end_frame"] in (39, 40)
    assert clips["vidA.3_1"]["source_start_s"] == pytest.approx(2.6)
    assert clips["vidA.3_1"]["caption_src"] == "second"
    assert clips["vidA.3_1"]["caption_dataset"] == "hdvg"
    assert all(c["keep"] and c["status"] == "ok" for c in clips.values())
    assert (tmp_path / "run" / "clips.parquet").is_file()


def _app() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)
    register_ingest_meta(app)
    return app


def test_cli_download_reports_reasons(server: Server, tmp_path: Path) -> None:
    app = _app()
    meta_path = _urls(tmp_path / "u.txt", [server.url("v/b.mp4"), server.url("v/nope.mp4")])
    args = ["download", str(meta_path), "--out", str(tmp_path / "o"), "--retries", "0"]
    result = CliRunner().invoke(app, [*args, "--socket-timeout", "2"])
    assert result.exit_code == 0, result.output
    assert "1 fetched" in result.output and "http_404" in result.output
    missing = CliRunner().invoke(app, ["download", str(tmp_path / "no.json"), "--out", "x"])
    assert missing.exit_code == 2 and "metafile not found" in missing.output
    assert "Traceback" not in missing.output


def test_cookies_file_must_exist(tmp_path: Path) -> None:
    meta = read_metafile(_urls(tmp_path / "u.txt", ["http://127.0.0.1:9/x.mp4"]))
    with pytest.raises(Exception, match="cookies file not found"):
        download_metafile(meta, tmp_path / "o", DownloadOptions(cookies=str(tmp_path / "c.txt")))


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("Private video. Sign in if you've been granted access", "private"),
        ("Video unavailable. This video has been removed by the uploader", "unavailable"),
        ("Sign in to confirm your age. This video may be inappropriate", "age_restricted"),
        ("Sign in to confirm you’re not a bot. Use --cookies", "bot_check"),
        ("The uploader has not made this video available in your country", "geo_blocked"),
        ("Video unavailable. This video is not available in your country", "geo_blocked"),
        ("Unable to download webpage: HTTP Error 404: Not Found", "http_404"),
        ("Unable to download webpage: HTTP Error 503: Service Unavailable", "http_5xx"),
        ("HTTP Error 429: Too Many Requests", "http_429"),
        ("Unable to download: <urlopen error [Errno 111] Connection refused>", "network"),
        ("Read timed out.", "timeout"),
        ("Requested format is not available. Use --list-formats", "format_unavailable"),
        ("Unsupported URL: http://example.com/", "unsupported_url"),
        ("something new", "other"),
    ],
)  # fmt: skip
def test_classify_failure(message: str, reason: str) -> None:
    assert classify_failure(message) == reason


def test_format_selector() -> None:
    assert (
        format_selector(720)
        == "bv*[height<=?720][ext=mp4]/bv*[height<=?720]/b[height<=?720][ext=mp4]/b[height<=?720]"
    )
    assert format_selector(None, audio=True) == "bv*[ext=mp4]+ba[ext=m4a]/bv*+ba/b"
    assert DownloadOptions(format="18").selector() == "18"  # fmt: skip


def test_sections_unsupported_falls_back_to_whole(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import clipsieve.ingest.download as dl

    real_fetch = dl._fetch

    def fetch(video, targets, folder, opts):  # type: ignore[no-untyped-def]
        if any(t.section is not None for t in targets):
            raise dl._FetchError("other", "This format cannot be partially downloaded. Aborting")
        real_fetch(video, targets, folder, opts)

    monkeypatch.setattr(dl, "_fetch", fetch)
    meta = read_metafile(_hdvg(tmp_path / "hdvg.json", server.url("v/b.mp4")))
    rows = download_metafile(meta, tmp_path / "dl", FAST).table.to_pylist()
    assert [(r["video_id"], r["download_mode"], r["status"]) for r in rows] == [
        ("vidA", "whole", "ok")
    ]
    assert "fetched whole" in rows[0]["download_note"] and len(rows[0]["spans"]) == 3
    clips = ingest_metafile(meta, tmp_path / "run", tmp_path / "dl").clips.to_pylist()
    by_id = {c["span_id"]: c for c in clips}
    # The whole 3 s file: spans keep their source times (2.6 s → frame 65, clamped at 75).
    assert (by_id["vidA.3_1"]["start_frame"], by_id["vidA.3_1"]["end_frame"]) == (65, 75)
    assert by_id["vidA.0_0"]["start_frame"] == 12
