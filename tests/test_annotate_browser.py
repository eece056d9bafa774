"""The labelling page in a real headless Chromium: key presses end up in the label database.

Playwright's Python package drives the system Chromium (``/usr/bin/chromium`` or ``$CHROMIUM``)
through ``executable_path``; it never downloads a browser of its own.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

import annotate_server
from clipsieve.labels import LabelStore, labels_path


def _chromium() -> str | None:
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if candidate and Path(candidate).is_file():
            return candidate
    return shutil.which("chromium") or shutil.which("chromium-browser")


CHROMIUM = _chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on this machine")


def test_keys_in_the_browser_label_clips_and_survive_a_reload(run_copy: Path) -> None:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
    )
    with (
        annotate_server.serve(run_copy, labeller="tester") as url,
        sync_api.sync_playwright() as pw,
    ):
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--mute-audio"]
        )
        try:
            page = browser.new_page()
            page.goto(url + "/")
            page.wait_for_selector("body[data-ready='1']", timeout=20_000)
            clips = page.evaluate("window.clipsieve.clips.map(c => c.clip_id)")
            assert len(clips) >= 5
            for key in ("1", "0", "s", "1", "u", "0", "ArrowLeft", "ArrowRight", "ArrowRight"):
                page.keyboard.press(key)
            page.wait_for_function("window.clipsieve.pending === 0", timeout=20_000)
            assert page.evaluate("window.clipsieve.index") == 5
            src = page.evaluate("document.getElementById('video').getAttribute('src')")
            assert src == page.evaluate("window.clipsieve.clips[5].url")

            store = LabelStore(labels_path(run_copy))
            assert store.current() == {clips[0]: 1, clips[1]: 0, clips[3]: 0}
            live = store.events()
            assert [e.action for e in live] == ["label", "label", "skip", "label"]
            assert {e.labeller for e in live} == {"tester"}
            assert all(abs(e.created - time.time()) < 300 for e in live)
            undone = [e for e in store.events(include_undone=True) if e not in live]
            assert [(e.clip_id, e.label) for e in undone] == [(clips[3], 1)]

            # A new page (or a restarted server) starts at the first clip nobody has seen.
            page.reload()
            page.wait_for_selector("body[data-ready='1']", timeout=20_000)
            assert page.evaluate("window.clipsieve.index") == 4
            assert page.evaluate("window.clipsieve.clips[0].label") == 1
        finally:
            browser.close()
