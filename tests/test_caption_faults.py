"""Caption runs against a misbehaving server: cut bodies, wrong content types, crashes.

Every fault must leave the run finished (or stopped with the documented one-line error), every
row present exactly once, the failed rows marked with ``caption_error``, and a second run against
a healthy server asking again for exactly the rows that failed.
"""

from __future__ import annotations

import socket
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from typer.testing import CliRunner

import caption_server
from caption_server import wanted as _wanted
from clipsieve.caption.openai_compat import OpenAIBackend
from clipsieve.caption.run import caption_run
from clipsieve.caption.stage import CaptionStage, PostOptions
from clipsieve.cli import app
from clipsieve.runfolder import load_clips


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    with caption_server.StandInServer() as srv:
        yield srv


@pytest.fixture
def crashing_server() -> Iterator[Any]:
    """A server of its own: it goes down and comes back during the test."""
    with caption_server.StandInServer() as srv:
        yield srv


def _stage(server: Any, model: str = "echo", **backend: Any) -> CaptionStage:
    params = {"base_url": server.url, "model": model, "backoff_s": 0.0, "max_tries": 2, **backend}
    return CaptionStage(backend_params=params, concurrency=4, frame_size=64)


def _assert_rows_intact(run_dir: Path, before: list[dict]) -> list[dict]:
    """The table still holds each clip exactly once; returns its rows."""
    rows = load_clips(run_dir).to_pylist()
    ids = [r["clip_id"] for r in rows]
    assert len(rows) == len(before)
    assert not [i for i, n in Counter(ids).items() if n > 1], "duplicated clip_id"
    assert set(ids) == {r["clip_id"] for r in before}
    return rows


def _retry_heals(run_dir: Path, server: Any, before: list[dict], failed: int) -> set[str]:
    """A healthy second run asks once per failed row and leaves every wanted row captioned."""
    server.reset()
    outcome = caption_run(run_dir, _stage(server), PostOptions())
    assert len(server.requests) == failed == outcome.caption.attempted
    assert outcome.caption.succeeded == failed
    rows = _assert_rows_intact(run_dir, before)
    assert all(r["caption_raw"] and not r["caption_error"] for r in _wanted(rows))
    return {key for _, key, _ in server.requests}


def _wait_listening(url: str, within_s: float = 10.0) -> None:
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"stand-in server did not come back on port {port}")


# What each fault looks like in the row's caption_error.
FAULTS = {
    "truncated": "broken answer (RemoteProtocolError",
    "html": "malformed JSON answer (text/html)",
    "html-502": "HTTP 502: <!DOCTYPE html>",
    "not-json": "malformed JSON answer (application/json)",
    "gzip-lie": "broken answer (DecodingError",
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_fails_a_subset_and_next_run_retries_exactly_it(
    fault: str, run_copy: Path, server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = load_clips(run_copy).to_pylist()
    # The CLI has no backoff flag; a short fixed wait keeps the test fast.
    monkeypatch.setattr("clipsieve.caption.backends.RetryPolicy.delay", lambda *a: 0.01)
    server.reset()
    args = ["caption", str(run_copy), "--base-url", server.url, "--model", f"{fault}-odd"]
    result = CliRunner().invoke(app, [*args, "--tries", "2", "-j", "4", "--frame-size", "64"])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "run the same command" in result.output
    rows = _assert_rows_intact(run_copy, before)
    wanted = _wanted(rows)
    failed = [r for r in wanted if r["caption_error"]]
    done = [r for r in wanted if r["caption_raw"]]
    assert failed and done and len(failed) + len(done) == len(wanted)
    for row in failed:
        assert (
            FAULTS[fault] in row["caption_error"]
            and "gave up after 2 tries" in row["caption_error"]
        )
        assert row["caption_raw"] is None and row["status"] == "ok" and row["keep"] is True
    odd_keys = {key for _, key, _ in server.requests if int(key, 16) % 2}
    assert len(odd_keys) == len(failed)
    assert Counter(key for _, key, _ in server.requests if key in odd_keys) == dict.fromkeys(
        odd_keys, 2
    )  # each failing clip tried exactly --tries times
    assert _retry_heals(run_copy, server, before, len(failed)) == odd_keys


def test_fault_on_first_try_only_is_healed_by_the_retry(run_copy: Path, server: Any) -> None:
    before = load_clips(run_copy).to_pylist()
    for fault in sorted(FAULTS):
        server.reset()
        stage = _stage(server, f"{fault}-first")
        stage.overwrite = True  # caption the same clips again under the next fault
        outcome = caption_run(run_copy, stage, PostOptions())
        assert outcome.caption.failed == 0, fault
        rows = _assert_rows_intact(run_copy, before)
        assert all(r["caption_attempts"] == 2 for r in _wanted(rows)), fault
        assert len(server.requests) == 2 * len(_wanted(rows)), fault


def test_server_crash_and_restart_mid_run_loses_nothing(
    run_copy: Path, crashing_server: Any
) -> None:
    before = load_clips(run_copy).to_pylist()
    wanted = len(_wanted(before))
    crashing_server.crash_after(wanted // 3, down_s=1.0)
    url = crashing_server.url
    # 8 tries with backoff 0.25 s doubling (capped at 1 s) wait >= 2.8 s: longer than the outage
    # (1 s, plus up to 0.5 s for the listener to notice the shutdown).
    stage = _stage(crashing_server, max_tries=8, backoff_s=0.25, max_backoff_s=1.0)
    started = time.monotonic()
    outcome = caption_run(run_copy, stage, PostOptions())
    assert time.monotonic() - started < 30
    assert crashing_server.crashes == 1 and crashing_server.url == url  # same port after restart
    statuses = Counter(status for _, _, status in crashing_server.requests)
    # the request the crash swallowed, and any sent on a connection it had not cut yet
    assert 1 <= statuses[0] <= stage.workers
    rows = _assert_rows_intact(run_copy, before)
    assert outcome.caption.failed == 0 and outcome.caption.succeeded == wanted
    assert all(r["caption_raw"] and not r["caption_error"] for r in _wanted(rows))
    assert max(r["caption_attempts"] for r in _wanted(rows)) > 1  # someone had to retry
    crashing_server.reset()
    assert caption_run(run_copy, _stage(crashing_server), PostOptions()).caption.attempted == 0
    assert crashing_server.requests == []


def test_server_down_longer_than_retries_stops_then_next_run_finishes(
    run_copy: Path, crashing_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = load_clips(run_copy).to_pylist()
    wanted = len(_wanted(before))
    crashing_server.crash_after(wanted // 3, down_s=2.0)
    monkeypatch.setattr("clipsieve.caption.backends.RetryPolicy.delay", lambda *a: 0.01)
    args = ["caption", str(run_copy), "--base-url", crashing_server.url, "--tries", "2"]
    result = CliRunner().invoke(app, [*args, "-j", "4", "--frame-size", "64"])
    assert result.exit_code == 2, result.output  # the documented "server unreachable" stop
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if "error:" in line]
    assert len(errors) == 1 and "cannot reach" in errors[0]
    rows = _assert_rows_intact(run_copy, before)
    failed = [r for r in _wanted(rows) if r["caption_error"]]
    done = [r for r in _wanted(rows) if r["caption_raw"]]
    assert failed and len(failed) + len(done) == wanted
    assert len(done) >= wanted // 3 - 4  # what was answered before the crash was kept
    assert any("not attempted" in r["caption_error"] for r in failed)
    _wait_listening(crashing_server.url)
    _retry_heals(run_copy, crashing_server, before, len(failed))


def test_hostile_usage_values_do_not_break_a_reply() -> None:
    data = {
        "choices": [{"message": {"content": [{"type": "text", "text": " hi "}]}}],
        "usage": {"prompt_tokens": "many", "completion_tokens": -3},
    }
    reply = OpenAIBackend()._reply(data, 0.1, 1)
    assert reply.text == "hi" and reply.tokens_in is None and reply.tokens_out is None
    assert OpenAIBackend()._reply({**data, "usage": [1, 2]}, 0.1, 1).tokens_in is None


class _BuggyBackend(caption_server.ScriptedBackend):
    """Raises an unexpected exception (not CaptionFailed) for every other clip."""

    name = "buggy"
    calls: ClassVar[list[int]] = []

    def answer(self, call: int):
        from clipsieve.caption.backends import CaptionReply

        if call % 2:
            raise KeyError("surprise")
        return CaptionReply(text="a caption", model="buggy")


def test_unexpected_backend_exception_costs_one_row(run_copy: Path) -> None:
    _BuggyBackend.calls.clear()
    before = load_clips(run_copy).to_pylist()
    stage = CaptionStage(backend=f"{__name__}:_BuggyBackend", concurrency=1)  # module:Class
    outcome = caption_run(run_copy, stage, PostOptions())
    rows = _wanted(_assert_rows_intact(run_copy, before))
    failed = [r for r in rows if r["caption_error"]]
    assert len(failed) == outcome.caption.failed == (len(rows) + 1) // 2
    assert all(r["caption_error"] == "caption: KeyError: 'surprise'" for r in failed)


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_interrupted_caption_keeps_every_answer_it_got(run_copy: Path, signal_name: str) -> None:
    """Kill point: a signal while requests are in flight. Ctrl-C used to print "Finished work
    is saved" and save nothing; SIGTERM saved nothing and said nothing. Now the answers that
    came back are in the parts, the message counts them, and the next run asks only the rest."""
    import signal
    import subprocess

    from clipsieve.caption.run import AnswerParts

    before = load_clips(run_copy).to_pylist()
    wanted = len(_wanted(before))
    with caption_server.StandInServer(slow_s=0.4) as slow:
        command = [sys.executable, "-m", "clipsieve", "caption", str(run_copy)]
        command += ["--base-url", slow.url, "--model", "slow", "-j", "2", "--frame-size", "64"]
        process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while sum(status == 200 for *_, status in slow.requests) < 4:
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.05)
        process.send_signal(getattr(signal, signal_name))
        _, stderr = process.communicate(timeout=60)
        answered = sum(status == 200 for *_, status in slow.requests)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    saved = len(AnswerParts(run_copy).answered())
    assert 4 <= saved == answered < wanted  # every answer that came back, nothing more
    assert f"{saved} answers are saved" in stderr
    _assert_rows_intact(run_copy, before)

    with caption_server.StandInServer() as healthy:
        result = CliRunner().invoke(
            app, ["caption", str(run_copy), "--base-url", healthy.url, "--frame-size", "64"]
        )
        assert result.exit_code == 0, result.output
        assert len(healthy.requests) == wanted - saved  # only the rest was asked
    rows = _assert_rows_intact(run_copy, before)
    assert all(r["caption_raw"] for r in _wanted(rows))
