"""The threshold explorer: counts equal `clipsieve filter`'s, strips sit at the thresholds, no
path escapes, and in a real Chromium moving a control changes the count and the saved preset is
one `clipsieve filter --preset` accepts."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import annotate_server
from clipsieve.cli import app
from clipsieve.explore.data import ExploreData
from clipsieve.explore.server import create_app
from clipsieve.runfolder import load_clips
from test_annotate_browser import CHROMIUM


def _kept_after_filter(run_dir: Path, *args: str) -> int:
    result = CliRunner().invoke(app, ["filter", str(run_dir), *args])
    assert result.exit_code == 0, result.output
    return sum(1 for r in load_clips(run_dir).to_pylist() if r["keep"] and r["status"] == "ok")


def test_counts_and_the_expression_match_filter(run_copy: Path) -> None:
    data = ExploreData(run_copy)
    assert {"flow_mean", "sharpness"} <= set(data.columns)
    flow = data.columns["flow_mean"]
    sharp = data.columns["sharpness"]
    ranges = {
        "flow_mean": (float(np.nanmedian(flow.values)), flow.hi),
        "sharpness": (sharp.lo, float(np.nanpercentile(sharp.values, 80))),
    }
    counted = data.count(ranges)["count"]
    expression = data.expression(ranges)
    assert "flow_mean >=" in expression and "sharpness <=" in expression
    assert 0 < counted < data.total
    assert _kept_after_filter(run_copy, "--where", expression) == counted


def test_strips_sit_on_each_side_of_the_threshold(run_copy: Path) -> None:
    data = ExploreData(run_copy)
    flow = data.columns["flow_mean"]
    threshold = float(np.nanmedian(flow.values))
    strip = data.strip({"flow_mean": (threshold, flow.hi)}, "flow_mean", "lo")
    assert strip["inside"] and strip["outside"]
    assert all(c["value"] >= threshold for c in strip["inside"])
    assert all(c["value"] < threshold for c in strip["outside"])
    inside = [c["value"] for c in strip["inside"]]
    assert inside == sorted(inside)  # nearest the threshold first


def test_the_server_serves_only_run_files_and_loopback_hosts(run_copy: Path) -> None:
    data = ExploreData(run_copy)
    client = TestClient(create_app(data), base_url="http://127.0.0.1")
    assert client.get("/api/columns").json()["total"] == data.total
    strip = client.post(
        "/api/strip", json={"ranges": {}, "column": "flow_mean", "edge": "lo"}
    ).json()
    row = strip["inside"][0]["row"]
    assert client.get(f"/clip/{row}").status_code == 200
    for bad in ("-1", "999999", "..%2f..%2fetc%2fpasswd"):
        assert client.get(f"/clip/{bad}").status_code in (404, 422)
    assert client.post("/api/count", json={"ranges": {"nope": [0, 1]}}).status_code == 422
    assert client.post("/api/count", json={"ranges": {}, "extra": 1}).status_code == 422
    evil = TestClient(create_app(data), base_url="http://evil.example")
    assert evil.get("/api/columns").status_code == 400  # DNS rebinding: not a loopback Host


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on this machine")
def test_in_chromium_a_moved_control_changes_the_count_and_the_preset_works(
    run_copy: Path,
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    data = ExploreData(run_copy)
    with annotate_server.serve_app(create_app(data)) as url, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--mute-audio"])  # fmt: skip
        try:
            page = browser.new_page()
            page.goto(url + "/")
            page.wait_for_selector("#count[data-count]", timeout=20_000)
            total = int(page.get_attribute("#count", "data-count"))
            assert total == data.total
            flow = data.columns["flow_mean"]
            middle = float(np.nanmedian(flow.values))
            page.evaluate(
                """([value]) => {
                    const input = document.querySelector("input[name='flow_mean.lo']");
                    input.value = value;
                    input.dispatchEvent(new Event("input"));
                    input.dispatchEvent(new Event("change"));
                }""",
                [middle],
            )
            page.wait_for_function(f"+document.getElementById('count').dataset.count < {total}")
            page.wait_for_selector("#strip-inside .clip video", timeout=20_000)
            shown = int(page.get_attribute("#count", "data-count"))
            assert "flow_mean >=" in page.inner_text("#expression")
            page.fill("#name", "motion")
            page.click("#save")
            page.wait_for_selector("#saved[data-preset]", timeout=20_000)
            preset = Path(page.get_attribute("#saved", "data-preset"))
        finally:
            browser.close()
    assert preset == run_copy / "explore" / "motion.yaml" and preset.is_file()
    copy = run_copy.parent / "copy"
    shutil.copytree(run_copy, copy)
    assert _kept_after_filter(copy, "--preset", str(preset)) == shown
