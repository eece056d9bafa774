"""``clipsieve caption`` end to end on a finished run, against the stand-in server."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from typer.testing import CliRunner

import caption_server
from caption_server import closed_port_url as _closed_port_url
from caption_server import wanted as _wanted
from clipsieve.caption.run import caption_run
from clipsieve.caption.stage import CaptionStage, PostOptions
from clipsieve.cli import app
from clipsieve.errors import UserError
from clipsieve.runfolder import load_clips
from clipsieve.score.base import Scorer
from clipsieve.table import parquet_metadata


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    with caption_server.StandInServer() as srv:
        yield srv


def _stage(server: Any, model: str = "echo", **kw: Any) -> CaptionStage:
    params = {"base_url": server.url, "model": model, "backoff_s": 0.0, "max_tries": 2}
    return CaptionStage(backend_params=params, **{"concurrency": 4, "frame_size": 64, **kw})


def test_caption_run_records_captions_and_provenance(run_copy: Path, server: Any) -> None:
    before = load_clips(run_copy).to_pylist()
    server.reset()
    outcome = caption_run(run_copy, _stage(server), PostOptions(clean=True))
    rows = load_clips(run_copy).to_pylist()
    assert len(rows) == len(before)  # no row lost or added
    kept = _wanted(rows)
    assert kept and outcome.caption.succeeded == len(kept) == len(server.requests)
    for row in kept:
        assert row["caption_raw"].startswith("The video shows clip ")
        assert row["caption"].startswith("Clip ") and row["caption"].endswith("in 3 frames.")
        assert row["caption_model"] == "echo" and row["caption_prompt"] == "recaption"
        assert row["caption_tokens_in"] > 3 * 85 and row["caption_tokens_out"] == 8
        assert row["caption_latency_s"] > 0 and row["caption_error"] is None
        assert row["caption_src"] is None
    for row in rows:
        if row not in kept:
            assert row["caption"] is None and row["caption_raw"] is None
    assert outcome.caption.clips_per_s > 0 and outcome.caption.tokens_per_s > 0
    steps = parquet_metadata(run_copy / "clips.parquet")["clipsieve_steps"]
    assert steps[-1]["name"] == "caption" and steps[-1]["params"]["prompt"] == "recaption"
    assert not (run_copy / "clips.csv").exists()  # the view described the old table
    views = CliRunner().invoke(app, ["export", str(run_copy), "--format", "views"])
    assert views.exit_code == 0, views.output
    assert "caption" in (run_copy / "clips.csv").read_text().splitlines()[0]
    server.reset()  # a second run has nothing left to do
    again = caption_run(run_copy, _stage(server), PostOptions(clean=True))
    assert again.caption.attempted == 0 and server.requests == []


def test_failures_keep_rows_and_rerun_retries_only_them(run_copy: Path, server: Any) -> None:
    server.reset()
    outcome = caption_run(run_copy, _stage(server, "fail-odd"), PostOptions())
    rows = load_clips(run_copy).to_pylist()
    failed = [r for r in rows if r["caption_error"]]
    done = [r for r in rows if r["caption_raw"]]
    assert failed and done, "fail-odd should fail some clips and pass others"
    assert outcome.caption.failed == len(failed)
    assert all(
        "HTTP 500" in r["caption_error"] and "gave up after 2" in r["caption_error"] for r in failed
    )
    assert all(r["status"] == "ok" and r["keep"] for r in failed)  # clip itself not marked
    failed_keys = {k for _, k, status in server.requests if status == 500}
    server.reset()
    caption_run(run_copy, _stage(server, "echo"), PostOptions())
    assert {k for _, k, _ in server.requests} == failed_keys
    assert len(server.requests) == len(failed)
    rows = load_clips(run_copy).to_pylist()
    assert all(r["caption_raw"] and not r["caption_error"] for r in _wanted(rows))


def test_unreachable_server_one_line_and_rows_record_it(run_copy: Path) -> None:
    url = _closed_port_url()
    result = CliRunner().invoke(app, ["caption", str(run_copy), "--base-url", url])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in result.output
    assert url in result.output and "--base-url" in result.output
    rows = load_clips(run_copy).to_pylist()
    wanted = _wanted(rows)
    assert wanted and all("cannot reach" in r["caption_error"] for r in wanted)


def test_fatal_answer_stops_the_run_once(run_copy: Path, server: Any) -> None:
    server.reset()
    with pytest.raises(UserError, match="HTTP 401"):
        caption_run(run_copy, _stage(server, "unauthorized", concurrency=1), PostOptions())
    assert len(server.requests) == 1  # the others were not attempted
    rows = _wanted(load_clips(run_copy).to_pylist())
    assert sum("not attempted" in r["caption_error"] for r in rows) == len(rows) - 1


def test_cli_rewrite_clean_english_only(run_copy: Path, server: Any) -> None:
    server.reset()
    flags = shlex.split("--model german --frames 2 --frame-size 64 -j 4 --english-only")
    args = ["caption", str(run_copy), "--base-url", server.url, *flags]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "clips/s" in result.output and "tokens/s" in result.output
    rows = load_clips(run_copy).to_pylist()
    german = [r for r in rows if r["caption_raw"]]
    assert german and all(r["drop_reason"] == "caption_language" and not r["keep"] for r in german)
    server.reset()
    # Overwrite with English captions, then rewrite: the language marks are undone.
    flags = shlex.split("--model echo --overwrite --frame-size 64 --rewrite --clean --english-only")
    args = ["caption", str(run_copy), "--base-url", server.url, *flags]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = [r for r in load_clips(run_copy).to_pylist() if r["caption_raw"]]
    assert len(rows) == len(german) and all(r["keep"] for r in rows)
    for row in rows:
        assert row["caption_rewrite"].startswith("rewritten: clip ")
        assert row["caption"] == row["caption_rewrite"].capitalize() or row["caption"].startswith(
            "rewritten: clip"
        )


@dataclass
class _FakeMatch(Scorer):
    """Stands in for the text-video match scorer: records the captions it was asked about."""

    name: ClassVar[str] = "match"
    version: ClassVar[str] = "0"
    columns: ClassVar[tuple[str, ...]] = ("match",)
    calls: ClassVar[list[int]] = []

    def frame_spec(self):
        from clipsieve.media.frames import FrameSpec

        return FrameSpec(count=1, short_side=32)

    def setup(self) -> None:
        return None

    def score(self, frames) -> dict[str, Any]:
        _FakeMatch.calls.append(len(frames.images))
        return {"match": 42.0}

    def params(self) -> dict[str, Any]:
        return {}


def test_rematch_calls_the_match_scorer_by_name(run_copy: Path, server: Any, monkeypatch) -> None:
    import types

    from clipsieve.score import names as score_names

    module = types.ModuleType("clipsieve_tests_fake_match")
    module.FakeMatch = _FakeMatch
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(score_names.SCORERS, "match", f"{module.__name__}:FakeMatch")
    _FakeMatch.calls.clear()
    outcome = caption_run(run_copy, _stage(server), PostOptions(), rematch=True)
    rows = load_clips(run_copy).to_pylist()
    assert outcome.rematched and _FakeMatch.calls
    assert all(r["match"] == 42.0 for r in _wanted(rows))
    assert all(r["caption"] for r in _wanted(rows))


def test_rematch_without_match_scorer_is_one_line(run_copy: Path, server: Any, monkeypatch) -> None:
    from clipsieve.score import names as score_names

    monkeypatch.delitem(score_names.SCORERS, "match", raising=False)
    with pytest.raises(UserError, match="--rematch needs"):
        caption_run(run_copy, _stage(server), PostOptions(), rematch=True)
    assert all(r["caption"] for r in _wanted(load_clips(run_copy).to_pylist()))


class _DownBackend(caption_server.ScriptedBackend):
    """Passes the preflight, then loses the connection on every request (server died)."""

    name = "down"
    calls: ClassVar[list[int]] = []

    def answer(self, call: int):
        from clipsieve.caption.errors import CaptionFailed

        raise CaptionFailed(
            "cannot reach http://x (ConnectError) (gave up after 5 tries)", "unreachable"
        )


def test_server_dying_mid_run_stops_after_a_few_clips(run_copy: Path) -> None:
    _DownBackend.calls.clear()
    stage = CaptionStage(backend=f"{__name__}:_DownBackend", concurrency=1)  # module:Class
    with pytest.raises(UserError, match="cannot reach"):
        caption_run(run_copy, stage, PostOptions())
    rows = _wanted(load_clips(run_copy).to_pylist())
    assert len(_DownBackend.calls) == 3 < len(rows)
    assert all(r["caption_error"] for r in rows)
    assert sum("not attempted" in r["caption_error"] for r in rows) == len(rows) - 3
