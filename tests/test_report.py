"""The HTML report: counts, errors, drop reasons and one embedded thumbnail per kept clip."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipsieve.media.ffmpeg import run_ffmpeg
from clipsieve.report.html import write_report
from clipsieve.report.thumbs import thumbnail_jpeg
from clipsieve.table import CLIP_SCHEMA, VIDEO_SCHEMA, rows_to_table


@pytest.fixture(scope="module")
def red_blue(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """100 frames at 25 fps: 0-49 red, 50-99 blue; keyframes every 40 so 50 is mid-GOP."""
    path = tmp_path_factory.mktemp("media") / "red_blue.mp4"
    run_ffmpeg(
        [
            "-filter_complex",
            "color=c=red:s=160x90:r=25,trim=end_frame=50[a];"
            "color=c=blue:s=160x90:r=25,trim=end_frame=50[b];[a][b]concat=n=2:v=1:a=0[v]",
            "-map", "[v]", "-c:v", "libx264", "-preset", "ultrafast", "-g", "40",
            "-sc_threshold", "0", "-pix_fmt", "yuv420p", str(path),
        ]
    )  # fmt: skip
    return path


def _colour(jpeg: bytes) -> str:
    r, g, b = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB")).mean(axis=(0, 1))
    return "red" if r > 150 and b < 100 else "blue" if b > 150 and r < 100 else "other"


def test_thumbnail_is_the_requested_frame(red_blue: Path) -> None:
    assert _colour(thumbnail_jpeg(red_blue, 0)) == "red"
    assert _colour(thumbnail_jpeg(red_blue, 49)) == "red"  # after the keyframe at 40
    assert _colour(thumbnail_jpeg(red_blue, 50)) == "blue"  # mid-GOP, right after the change
    assert _colour(thumbnail_jpeg(red_blue, 99)) == "blue"
    assert _colour(thumbnail_jpeg(red_blue, time_s=1.96)) == "red"  # frame 49
    assert _colour(thumbnail_jpeg(red_blue, time_s=2.0)) == "blue"  # frame 50
    assert _colour(thumbnail_jpeg(red_blue)) == "blue"  # middle frame (50)
    image = Image.open(io.BytesIO(thumbnail_jpeg(red_blue, 10, max_side=64)))
    assert image.format == "JPEG" and image.size == (64, 36)


def test_thumbnail_failures_are_none(tmp_path: Path, red_blue: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    half = tmp_path / "half.mp4"
    half.write_bytes(red_blue.read_bytes()[: red_blue.stat().st_size // 2])
    assert thumbnail_jpeg(tmp_path / "missing.mp4", 0) is None
    assert thumbnail_jpeg(empty, 0) is None
    assert thumbnail_jpeg(half, 0) is None
    assert thumbnail_jpeg(red_blue, 100) is None  # past the last frame


def _tables(red_blue: Path, run_dir: Path):
    videos = rows_to_table(
        [
            {"video_id": "v0", "path": str(red_blue), "status": "ok"},
            {"video_id": "v1", "path": "/in/broken.mp4", "status": "error",
             "error": "probe: moov atom not found <truncated?>"},
        ],
        VIDEO_SCHEMA,
    )  # fmt: skip

    def clip(cid: str, start: int, end: int, **extra) -> dict:
        row = {
            "clip_id": cid, "video_id": "v0", "path": None, "source_path": str(red_blue),
            "shot_index": 0 if start < 50 else 1, "start_frame": start, "end_frame": end,
            "fps": 25.0, "num_frames": end - start, "duration_s": (end - start) / 25,
            "width": 160, "height": 90, "status": "ok", "keep": True,
        }  # fmt: skip
        row.update(extra)
        return row

    clips = rows_to_table(
        [
            clip("v0_0000", 0, 50, path=str(red_blue)),  # kept, cut file (absolute path)
            clip("v0_0001", 50, 100),  # kept, not cut: thumbnail from the source
            clip("v0_0002", 0, 10, keep=False, drop_reason="too_short"),
            clip("v0_0003", 10, 20, keep=False, drop_reason="too_short"),
            clip("v0_0004", 20, 30, keep=False, drop_reason="static"),
            clip("v0_0005", 30, 40, status="error", error="cut: ffmpeg failed", keep=None),
            clip("v0_0006", 60, 90, path="clips/gone.mp4", source_path="/nowhere.mp4"),
        ],
        CLIP_SCHEMA,
    )
    return videos, clips


def _kept_section(html: str) -> str:
    """The kept-clips gallery (the last section of the page)."""
    return html.split('<h2 id="kept">', 1)[1]


def _count(html: str, label: str) -> int:
    match = re.search(rf'data-count="{label}"><div class="n">(\d+)<', html)
    assert match, label
    return int(match.group(1))


def test_report_content(tmp_path: Path, red_blue: Path) -> None:
    videos, clips = _tables(red_blue, tmp_path)
    run_info = {
        "inputs": ["/in/folder"],
        "started_at": "2026-11-21T10:00:00Z",
        "versions": {"clipsieve": "0.1.0", "av": "18.1.0"},
        "config": {"min_s": 2.0},
    }
    out = write_report(tmp_path, videos, clips, run_info)
    assert out == tmp_path / "report.html"
    html = out.read_text(encoding="utf-8")

    expected = {
        "videos ingested": 2, "videos probed ok": 1, "videos with errors": 1,
        "shots detected": 2, "clips planned": 7, "clips kept": 3, "clips dropped": 3,
        "clips with errors": 1, "clips cut": 2,
    }  # fmt: skip
    assert {label: _count(html, label) for label in expected} == expected

    # errors, escaped; drop reasons with counts, most common first
    assert "probe: moov atom not found &lt;truncated?&gt;" in html
    assert "/in/broken.mp4" in html and "cut: ffmpeg failed" in html
    reasons = re.findall(r'<tr><td>([a-z_]+)</td><td class="num">(\d+)</td></tr>', html)
    assert reasons == [("too_short", "2"), ("static", "1")]

    # run summary
    assert "/in/folder" in html and "2026-11-21T10:00:00Z" in html and "av 18.1.0" in html

    # kept gallery: one embedded JPEG per kept clip that can be decoded, a placeholder for the
    # missing one (the selection sections above it have thumbnails of their own)
    kept = _kept_section(html)
    images = re.findall(r'<img src="data:image/jpeg;base64,([A-Za-z0-9+/=]+)"', kept)
    assert len(images) == 2 and kept.count("<img") == 2
    assert [_colour(base64.b64decode(b)) for b in images] == ["red", "blue"]
    assert kept.count('class="placeholder"') == 1
    for cid in ("v0_0000", "v0_0001", "v0_0006"):
        assert f'<div class="id">{cid}</div>' in html
    assert "2.00 s · 50 frames · 160×90" in html

    # self-contained: nothing fetched from the network
    assert not re.search(r"(src|href)=\"https?:", html) and "@import" not in html


def test_report_caps_thumbnails(tmp_path: Path, red_blue: Path) -> None:
    videos, clips = _tables(red_blue, tmp_path)
    html = write_report(tmp_path, videos, clips, {}, out=tmp_path / "r.html", max_thumbs=1)
    assert html == tmp_path / "r.html"
    text = html.read_text(encoding="utf-8")
    assert _kept_section(text).count("<img") == 1
    assert "Thumbnails of the first 1 of 3 kept clips" in text


def test_report_on_empty_run(tmp_path: Path) -> None:
    html = write_report(tmp_path, None, None, None).read_text(encoding="utf-8")
    assert _count(html, "videos ingested") == 0 and "No clips were kept." in html
    assert "No errors." in html


def test_big_table_counts_are_exact_and_pictures_come_from_a_sample(tmp_path: Path) -> None:
    """Above ``sample_rows`` the report reads a bounded sample for pictures; every count on
    the page is still over the whole table (DuckDB aggregates over the Parquet file)."""
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    n = 3000
    reasons = ["filter: aes >= 5", "duplicate", "too_short"]
    rows = []
    for i in range(n):
        status = "error" if i % 50 == 0 else "ok"
        keep = status == "ok" and i % 3 != 0
        rows.append(
            {
                "clip_id": f"c{i:05d}",
                "video_id": f"v{i // 10}",
                "shot_index": i % 10,
                "status": status,
                "error": "cut: broken" if status == "error" else None,
                "keep": keep,
                "drop_reason": None if keep or status == "error" else reasons[i % 3 - 1],
                "aes": float(rng.normal(5, 1)),
                "duration_s": 2.0,
            }
        )
    table = rows_to_table(rows, CLIP_SCHEMA)
    pq.write_table(table, tmp_path / "clips.parquet")
    page = write_report(
        tmp_path, None, tmp_path / "clips.parquet", {}, max_thumbs=0, sample_rows=200
    )
    html = page.read_text()
    errors = sum(r["status"] == "error" for r in rows)
    kept = sum(r["keep"] for r in rows)
    dropped = n - errors - kept

    def count(label: str) -> int:
        match = re.search(rf'data-count="{label}"><div class="n">(\d+)</div>', html)
        assert match, label
        return int(match.group(1))

    assert count("clips planned") == n and count("clips kept") == kept
    assert count("clips with errors") == errors and count("clips dropped") == dropped
    assert "uniform sample of 200 clips" in html
    small = write_report(tmp_path, None, table, {}, tmp_path / "small.html", max_thumbs=0)
    assert "uniform sample" not in small.read_text()  # 3,000 rows: read whole
