"""`caption` over a pool of servers: every clip exactly once, requests spread by load."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

import caption_server
from caption_server import closed_port_url as _closed_port_url
from caption_server import wanted as _wanted
from clipsieve.caption.backend_registry import make_backend
from clipsieve.caption.backends import CaptionRequest
from clipsieve.caption.errors import BackendUnavailable
from clipsieve.caption.server_pool import OpenAIServerPool
from clipsieve.cli import app
from clipsieve.runfolder import load_clips


def test_two_servers_caption_every_clip_once_and_share_the_requests(run_copy: Path) -> None:
    before = load_clips(run_copy).to_pylist()
    wanted = len(_wanted(before))
    with caption_server.StandInServer(slow_s=0.05) as a, caption_server.StandInServer() as b:
        args = ["caption", str(run_copy), "--base-url", a.url, "--base-url", b.url]
        result = CliRunner().invoke(
            app, [*args, "--model", "slow", "-j", "2", "--frame-size", "64"]
        )
        assert result.exit_code == 0, result.output
        asked = [key for _, key, status in [*a.requests, *b.requests] if status == 200]
    rows = load_clips(run_copy).to_pylist()
    assert len(rows) == len(before)
    assert len(asked) == wanted  # every clip once, none twice
    assert all(r["caption_raw"] for r in _wanted(rows))
    # both servers worked, and the least-loaded rule gave the fast one more
    assert a.requests and b.requests
    assert len(a.requests) > len(b.requests)


def test_a_pool_sets_aside_an_unreachable_server(tmp_path: Path) -> None:
    import numpy as np

    with caption_server.StandInServer() as up:
        pool = make_backend(
            "openai", base_url=[_closed_port_url(), up.url], model="echo", max_tries=1
        )
        assert isinstance(pool, OpenAIServerPool) and pool.servers == 2
        pool.check()  # one of two is enough
        image = np.zeros((8, 8, 3), np.uint8)
        request = CaptionRequest("describe", (image,), (b"\xff\xd8jpeg",))
        for _ in range(4):
            assert pool.caption(request).text
        down_url = pool.members[0].backend.shown_url
        assert pool.sent()[down_url] <= 1  # tried at most once, then set aside
        pool.close()
    dead = make_backend("openai", base_url=[_closed_port_url(), _closed_port_url()])
    try:
        dead.check()
        raise AssertionError("a pool of unreachable servers must stop captioning")
    except BackendUnavailable as exc:
        assert "none of the 2 caption servers" in str(exc)
