"""Post-run work on Ray (`caption`, `score`, `dedup --method semantic`, `export --format
webdataset`): the same tables and files as the local engine, every clip handled exactly once."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import caption_server
from caption_server import wanted as _wanted
from clipsieve.cli import app
from clipsieve.runfolder import load_clips

pytest.importorskip("ray")


def test_caption_on_ray_with_two_servers_asks_each_clip_once(
    run_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    before = load_clips(run_copy).to_pylist()
    wanted = len(_wanted(before))
    with caption_server.StandInServer(0.05) as a, caption_server.StandInServer(0.05) as b:
        args = ["caption", str(run_copy), "--base-url", a.url, "--base-url", b.url]
        args += ["--model", "slow", "-j", "2", "--frame-size", "64"]
        result = CliRunner().invoke(app, [*args, "--engine", "ray", "--workers", "2"])
        assert result.exit_code == 0, result.output
        asked = [key for _, key, status in [*a.requests, *b.requests] if status == 200]
        assert a.requests and b.requests  # both servers were used
    rows = load_clips(run_copy).to_pylist()
    assert len(rows) == len(before)
    assert len(asked) == wanted
    assert all(r["caption_raw"] and not r["caption_error"] for r in _wanted(rows))
    info = [s for s in __import__("json").loads((run_copy / "run.json").read_text())["steps"]]
    caption = next(s for s in info if s["name"] == "caption")
    assert caption["params"]["engine"] == "ray"


def test_score_on_ray_writes_the_table_a_local_score_writes(
    run_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    local = tmp_path / "local"
    shutil.copytree(run_copy, local)
    scorers = ["--scorers", "static,phash"]
    result = CliRunner().invoke(app, ["score", str(local), *scorers])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(
        app, ["score", str(run_copy), *scorers, "--engine", "ray", "--workers", "2"]
    )
    assert result.exit_code == 0, result.output
    assert load_clips(run_copy).to_pylist() == load_clips(local).to_pylist()
    steps = __import__("json").loads((run_copy / "run.json").read_text())["steps"]
    assert next(s for s in steps if s["name"] == "score")["params"]["engine"] == "ray"


def test_semantic_dedup_on_ray_embeds_on_the_workers_then_dedups_as_a_local_run(
    run_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`dedup --method semantic --engine ray` on clips without embeddings: the embedding pass
    runs on the Ray workers (recorded as a score step on Ray), and the marks equal a local run's."""
    import json
    import shutil

    from clipsieve.vectors import has_vectors

    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    local = tmp_path / "local"
    shutil.copytree(run_copy, local)
    assert not has_vectors(run_copy, "embedding")
    args = ["--method", "semantic", "--cosine", "0.9"]
    result = CliRunner().invoke(app, ["dedup", str(local), *args])
    assert result.exit_code == 0, result.output
    assert "embedding them here first" in result.output
    result = CliRunner().invoke(
        app, ["dedup", str(run_copy), *args, "--engine", "ray", "--workers", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "embedding them on Ray first" in result.output
    assert has_vectors(run_copy, "embedding")
    on_ray, here = load_clips(run_copy, vectors=True), load_clips(local, vectors=True)
    assert on_ray.column("embed_model").to_pylist() == here.column("embed_model").to_pylist()
    vectors = zip(
        on_ray.column("embedding").to_pylist(), here.column("embedding").to_pylist(), strict=True
    )
    for a, b in vectors:
        assert (a is None) == (b is None)
        if a is not None:
            assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-4
    marks = ("clip_id", "keep", "drop_reason", "dup_group")
    assert on_ray.select(marks).to_pylist() == here.select(marks).to_pylist()
    steps = json.loads((run_copy / "run.json").read_text())["steps"]
    assert [s["name"] for s in steps][-2:] == ["score", "dedup"]
    assert steps[-2]["params"]["engine"] == "ray"
    again = CliRunner().invoke(app, ["dedup", str(run_copy), *args, "--engine", "ray"])
    assert again.exit_code == 0 and "embedding them" not in again.output  # vectors kept


def test_webdataset_export_on_ray_writes_the_shards_a_local_export_writes(
    run_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shards planned by the driver, written by two Ray workers: the same files, byte for
    byte, as the local export (and the export is recorded with its engine)."""
    import json

    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    args = ["--format", "webdataset", "--shard-count", "2"]
    result = CliRunner().invoke(app, ["export", str(run_copy), *args, "--out", str(local)])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(
        app,
        ["export", str(run_copy), *args, "--out", str(on_ray), "--engine", "ray", "-w", "2"],
    )
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in local.iterdir())
    assert len([n for n in written if n.endswith(".tar")]) >= 2
    assert sorted(p.name for p in on_ray.iterdir()) == written
    for name in written:
        if name != "export.json":  # names its own folder
            assert (on_ray / name).read_bytes() == (local / name).read_bytes(), name
    steps = json.loads((run_copy / "run.json").read_text())["steps"]
    assert [s["params"]["engine"] for s in steps if s["name"] == "export"] == ["ray"]
    result = CliRunner().invoke(
        app, ["export", str(run_copy), "--format", "jsonl", "--engine", "ray"]
    )
    assert result.exit_code == 2 and "--engine ray writes webdataset shards" in result.output
