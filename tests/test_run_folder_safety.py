"""Nothing lost whatever order users run things in: the run-folder lock, post-run work kept
across a resumed `run`, post-run steps recorded apart from the run's stages."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from clipsieve.cli import app
from clipsieve.pipeline_run import run_pipeline
from clipsieve.runfolder import load_clips
from clipsieve.runlock import LOCK_FILE, RunFolderBusy, run_lock
from clipsieve.steps.carry import PREVIOUS_FILE
from engine_runs import cheap_config, copy_subset

runner = CliRunner()


def _invoke(*args: str):
    return runner.invoke(app, list(args))


@pytest.fixture
def small_run(sample_set: Path, tmp_path: Path) -> tuple[Path, Path]:
    """(inputs folder with two videos, a finished cheap run over them)."""
    (tmp_path / "in").mkdir()
    inputs = copy_subset(sample_set, tmp_path / "in", ("cuts.mp4", "long_take.mp4"))
    run_pipeline([inputs], tmp_path / "run", cheap_config())
    return inputs, tmp_path / "run"


def _post_run_columns(run_dir: Path) -> dict[str, dict]:
    wanted = ("keep", "drop_reason", "filter_pass", "dup_group", "dup_of", "topn_rank")
    rows = load_clips(run_dir).to_pylist()
    return {r["clip_id"]: {k: r.get(k) for k in wanted} for r in rows}


# -- 1. a resumed `run` keeps what filter/dedup/topn wrote


def test_rerunning_run_keeps_post_run_columns_and_steps(
    small_run: tuple[Path, Path], sample_set: Path
) -> None:
    inputs, run_dir = small_run
    for args in (
        ("filter", str(run_dir), "--where", "duration_s >= 5"),
        ("dedup", str(run_dir), "--method", "exact,phash"),
        ("topn", str(run_dir), "--by", "duration_s", "-n", "1"),
    ):
        result = _invoke(*args)
        assert result.exit_code == 0, result.output
    before = _post_run_columns(run_dir)
    assert any(r["filter_pass"] is False for r in before.values())  # the filter did drop some
    steps_before = [s["name"] for s in json.loads((run_dir / "run.json").read_text())["steps"]]
    assert steps_before == ["filter", "dedup", "topn"]

    run_pipeline([inputs], run_dir, cheap_config())  # the README's way to resume
    assert _post_run_columns(run_dir) == before
    info = json.loads((run_dir / "run.json").read_text())
    assert [s["name"] for s in info["steps"]] == steps_before
    assert not any("stale" in s for s in info["steps"])
    metadata = pq.read_schema(run_dir / "clips.parquet").metadata
    assert b"clipsieve_steps" in metadata and b'"filter"' in metadata[b"clipsieve_steps"]
    assert not (run_dir / PREVIOUS_FILE).exists()

    # a video added to the inputs: old rows keep their marks, new rows wait for the steps
    shutil.copy(sample_set / "fades.mp4", inputs / "fades.mp4")
    run_pipeline([inputs], run_dir, cheap_config())
    after = _post_run_columns(run_dir)
    for clip_id, values in before.items():
        assert after[clip_id] == values
    new = [v for k, v in after.items() if k not in before]
    assert new and all(v["filter_pass"] is None and v["topn_rank"] is None for v in new)
    info = json.loads((run_dir / "run.json").read_text())
    assert all(s["stale"]["rows_added"] == len(new) for s in info["steps"])
    result = _invoke("report", str(run_dir))
    assert result.exit_code == 0, result.output
    page = (run_dir / "report.html").read_text()
    assert "added clips these steps never saw" in page and "<code>dedup</code>" in page

    # running a step again clears its stale mark
    assert _invoke("filter", str(run_dir), "--where", "duration_s >= 5").exit_code == 0
    steps = {s["name"]: s for s in json.loads((run_dir / "run.json").read_text())["steps"]}
    assert "stale" not in steps["filter"] and "stale" in steps["dedup"]


def test_post_run_score_does_not_block_resuming_run(small_run: tuple[Path, Path]) -> None:
    """A post-run `score` was recorded in place of the run's own score stage, and `run` then
    refused to resume ("different 'score' settings")."""
    inputs, run_dir = small_run
    result = _invoke("score", str(run_dir), "--scorers", "static")
    assert result.exit_code == 0, result.output
    info = json.loads((run_dir / "run.json").read_text())
    run_score = next(s for s in info["stages"] if s["name"] == "score")
    assert [s["name"] for s in run_score["params"]["scorers"]] == ["static", "phash"]
    assert any(s["name"] == "score" for s in info["steps"])
    run_pipeline([inputs], run_dir, cheap_config())  # resumes, no RunDirError


def test_a_run_killed_after_keeping_the_table_aside_still_carries_it(
    small_run: tuple[Path, Path],
) -> None:
    """Kill point: after the table was kept aside, before the carry-over (the merge wrote a
    table without the post-run columns). The next run carries from the table kept aside."""
    inputs, run_dir = small_run
    assert _invoke("filter", str(run_dir), "--where", "duration_s >= 5").exit_code == 0
    before = _post_run_columns(run_dir)
    os.link(run_dir / "clips.parquet", run_dir / PREVIOUS_FILE)
    # what the killed run's merge left: the checkpoints' table, no step records
    table = load_clips(run_dir).drop_columns(["filter_pass"]).replace_schema_metadata(None)
    pq.write_table(table, run_dir / "clips.tmp.parquet")
    os.replace(run_dir / "clips.tmp.parquet", run_dir / "clips.parquet")
    run_pipeline([inputs], run_dir, cheap_config())
    assert _post_run_columns(run_dir) == before


# -- 2. one writer at a time


def test_lock_refuses_a_second_writer_and_names_the_holder(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from clipsieve.runlock import run_lock
                with run_lock({str(folder)!r}, "filter"):
                    print("held", flush=True)
                    time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        busy = pytest.raises(RunFolderBusy, match=r"in use by `clipsieve filter` \(pid \d+")
        with busy, run_lock(folder, "topn"):
            pass
        with pytest.raises(RunFolderBusy):  # waits, then refuses
            started = time.monotonic()
            with run_lock(folder, "topn", wait=1.0):
                pass
        assert time.monotonic() - started >= 1.0
    finally:
        holder.kill()  # a killed holder: the kernel drops its lock, nothing to clean up
        holder.wait()
    assert (folder / LOCK_FILE).exists()  # the stale file is taken over, not in the way
    with run_lock(folder, "topn"):
        assert "topn" in (folder / LOCK_FILE).read_text()


def test_lock_is_reentrant_in_one_process(tmp_path: Path) -> None:
    with run_lock(tmp_path, "run"):
        with run_lock(tmp_path, "carry-over"):
            pass
        assert json.loads((tmp_path / LOCK_FILE).read_text())["command"] == "run"
    assert (tmp_path / LOCK_FILE).read_text() == ""


def test_commands_refuse_a_run_folder_in_use(small_run: tuple[Path, Path]) -> None:
    inputs, run_dir = small_run
    before = (run_dir / "clips.parquet").read_bytes()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\nfrom clipsieve.runlock import run_lock\n"
            f"with run_lock({str(run_dir)!r}, 'caption'):\n"
            "    print('held', flush=True)\n    time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        for args in (
            ("filter", str(run_dir), "--where", "duration_s >= 1"),
            ("topn", str(run_dir), "--by", "duration_s", "-n", "1"),
            ("run", str(inputs), "--out", str(run_dir)),
        ):
            result = _invoke(*args)
            assert result.exit_code == 2, result.output
            assert "in use by `clipsieve caption`" in result.output
            assert "Traceback" not in result.output
    finally:
        holder.kill()
        holder.wait()
    assert (run_dir / "clips.parquet").read_bytes() == before
    assert _invoke("filter", str(run_dir), "--where", "duration_s >= 1").exit_code == 0


def test_post_run_command_on_a_missing_folder_leaves_no_folder(tmp_path: Path) -> None:
    result = _invoke("filter", str(tmp_path / "nothing"), "--where", "duration_s > 1")
    assert result.exit_code == 2 and not (tmp_path / "nothing").exists()


# -- 4. --out inside an input folder


def test_out_inside_an_input_folder_is_refused(sample_set: Path, tmp_path: Path) -> None:
    """It was accepted; the next run ingested its own clips (3 → 10 videos, clips of clips)."""
    (tmp_path / "in").mkdir()
    inputs = copy_subset(sample_set, tmp_path / "in", ("cuts.mp4",))
    result = _invoke("run", str(inputs), "--out", str(inputs / "run"))
    assert result.exit_code == 2, result.output
    assert "inside the input folder" in result.output and "Traceback" not in result.output
    assert not (inputs / "run" / "clips.parquet").exists()


# -- 9. special files and absurd worker counts


def test_a_named_pipe_among_the_inputs_becomes_an_error_row(
    sample_set: Path, tmp_path: Path
) -> None:
    """A FIFO blocked ingest forever in open()."""
    (tmp_path / "in").mkdir()
    inputs = copy_subset(sample_set, tmp_path / "in", ("cuts.mp4",))
    os.mkfifo(inputs / "pipe.mp4")
    command = [sys.executable, "-m", "clipsieve", "run", str(inputs), "--out", str(tmp_path / "r")]
    command += ["--workers", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    videos = {
        Path(r["path"]).name: r
        for r in pq.read_table(tmp_path / "r" / "videos.parquet").to_pylist()
    }
    assert videos["pipe.mp4"]["status"] == "error"
    assert "not a regular file (a named pipe)" in videos["pipe.mp4"]["error"]
    assert videos["cuts.mp4"]["status"] == "ok"


def test_workers_are_capped_with_one_line(sample_set: Path, tmp_path: Path) -> None:
    """--workers 10000 started a process per task in flight (5 GB for 10 tiny videos)."""
    from clipsieve.engine.local import capped_workers, default_workers

    cap = 4 * default_workers()
    assert capped_workers(10_000)[0] == cap and "using" in (capped_workers(10_000)[1] or "")
    assert capped_workers(2) == (2, None)
    (tmp_path / "in").mkdir()
    inputs = copy_subset(sample_set, tmp_path / "in", ("cuts.mp4",))
    result = _invoke("run", str(inputs), "--out", str(tmp_path / "r"), "--workers", "10000")
    assert result.exit_code == 0, result.output
    assert f"using {cap}" in result.output
    info = json.loads((tmp_path / "r" / "run.json").read_text())
    assert info["invocations"][-1]["workers"] <= cap


# -- 10. a moved run folder keeps working


def test_a_moved_run_folder_resumes_and_its_clip_paths_follow(
    small_run: tuple[Path, Path], tmp_path: Path
) -> None:
    """It was refused as "different 'cut' settings" (the clip folder is a cut parameter)."""
    inputs, run_dir = small_run
    assert _invoke("filter", str(run_dir), "--where", "duration_s >= 5").exit_code == 0
    before = _post_run_columns(run_dir)
    moved = tmp_path / "elsewhere" / "run"
    moved.parent.mkdir()
    shutil.move(run_dir, moved)
    run_pipeline([inputs], moved, cheap_config())  # no RunDirError
    rows = load_clips(moved).to_pylist()
    cut = [r for r in rows if r["path"]]
    assert cut and all(r["path"].startswith(str(moved)) and Path(r["path"]).is_file() for r in cut)
    assert _post_run_columns(moved) == before
    out = tmp_path / "export"
    result = _invoke("export", str(moved), "--format", "opensora-csv", "--out", str(out))
    assert result.exit_code == 0, result.output


# -- 10. one line, exit 2, for what a user can get wrong


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["caption", "{run}", "--frames", "-2"], "--frames -2: must be at least 1"),
        (["caption", "{run}", "--max-tokens", "-1"], "--max-tokens -1: must be at least 1"),
        (["caption", "{run}", "-j", "0"], "--concurrency 0: must be at least 1"),
        (["caption", "{run}", "--tries", "0"], "--tries 0: must be at least 1"),
        (
            ["export", "{run}", "--format", "webdataset", "--shard-count", "0"],
            "--shard-count 0: must be at least 1",
        ),
        (["cluster", "{run}", "--k-min", "50", "--k-max", "10"], "--k-max 10 is below --k-min 50"),
        (
            ["export", "{run}", "--format", "opensora-csv", "--out", "{file}/sub"],
            "a file is in the way",
        ),
        (["report", "{run}", "--out", "/proc/clipsieve-test/x.html"], "cannot use /proc"),
    ],
)
def test_user_mistakes_are_one_line(
    run_copy: Path, tmp_path: Path, args: list[str], expected: str
) -> None:
    (tmp_path / "a_file").write_text("x")
    words = [a.format(run=run_copy, file=tmp_path / "a_file") for a in args]
    result = _invoke(*words)
    assert result.exit_code == 2, result.output
    assert expected in result.output and "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if "error:" in line]) == 1


def test_ffmpeg_failures_name_the_cause_not_conversion_failed() -> None:
    from clipsieve.media.ffmpeg import _last_error_line

    stderr = (
        "[libx264 @ 0x55d] using cpu capabilities: MMX2 SSE2Fast\n"
        "[libx264 @ 0x55d] width not divisible by 2 (1x1000)\n"
        "[vost#0:0/libx264 @ 0x5e] Error while opening encoder - maybe incorrect parameters\n"
        "Conversion failed!\n"
    )
    assert _last_error_line(stderr) == "width not divisible by 2 (1x1000)"
    assert _last_error_line("only this\n") == "only this"


# -- 8. no silent wrong scores from a replaced source


def test_score_refuses_a_changed_source_when_the_clip_file_is_gone(
    sample_set: Path, tmp_path: Path
) -> None:
    import pickle

    from clipsieve.media.source_check import SourceCheck

    (tmp_path / "in").mkdir()
    inputs = copy_subset(sample_set, tmp_path / "in", ("cuts.mp4",))
    run_dir = tmp_path / "run"
    run_pipeline([inputs], run_dir, cheap_config())
    kept = [r for r in load_clips(run_dir).to_pylist() if r["path"]]
    Path(kept[0]["path"]).unlink()  # the clip file is gone: score decodes the source span
    assert _invoke("score", str(run_dir), "--scorers", "static").exit_code == 0
    row = next(r for r in load_clips(run_dir).to_pylist() if r["clip_id"] == kept[0]["clip_id"])
    assert row["status"] == "ok" and row["rgb_diff_mean"] is not None  # same source: fine

    shutil.copy(sample_set / "long_take.mp4", inputs / "cuts.mp4")  # another video, same name
    assert _invoke("score", str(run_dir), "--scorers", "static").exit_code == 0
    row = next(r for r in load_clips(run_dir).to_pylist() if r["clip_id"] == kept[0]["clip_id"])
    assert "changed since the run" in (row["score_errors"] or row["error"] or "")
    assert pickle.loads(pickle.dumps(SourceCheck())).source({"source_path": "x"}) == "x"


# -- 5. a killed export keeps the previous one and blocks nothing


def test_export_killed_mid_shards_keeps_the_previous_export(run_copy: Path, tmp_path: Path) -> None:
    """Kill point: after the second shard of the new export is closed. It used to delete the
    previous complete export first, leave a third of the shards and no index, then refuse every
    later export into that folder."""
    out = tmp_path / "wds"
    args = ["export", str(run_copy), "--format", "webdataset", "--out", str(out)]
    assert _invoke(*args, "--shard-count", "2").exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert any(name.endswith(".tar") for name in before) and len(before) > 2
    killer = textwrap.dedent(
        """
        import os, sys
        from clipsieve.export import webdataset
        from clipsieve.cli import main
        closed = []
        original = webdataset._OpenShard.close
        def close(self):
            entry = original(self)
            closed.append(entry)
            if len(closed) == 2:
                os._exit(9)  # as a kill -9 here
            return entry
        webdataset._OpenShard.close = close
        sys.argv = ["clipsieve", *sys.argv[1:]]
        main()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", killer, *args, "--shard-count", "1"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 9, done.stderr
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert after == before  # the previous export, whole, with its index
    result = _invoke(*args, "--shard-count", "1")  # and the next export is not refused
    assert result.exit_code == 0, result.output
    assert not list(out.parent.glob(".wds.partial-*"))
    shards = [p for p in out.iterdir() if p.name.endswith(".tar")]
    assert len(shards) > len([n for n in before if n.endswith(".tar")])


def test_run_cuts_a_deleted_clip_file_again(small_run: tuple[Path, Path], tmp_path: Path) -> None:
    """`export` said "re-run `clipsieve run`" for a deleted clip, and `run` did not re-cut it."""
    inputs, run_dir = small_run
    kept = [r for r in load_clips(run_dir).to_pylist() if r["path"] and r["keep"]]
    Path(kept[0]["path"]).unlink()
    out = tmp_path / "export"
    result = _invoke("export", str(run_dir), "--format", "opensora-csv", "--out", str(out))
    assert result.exit_code == 2 and "run `clipsieve run` again" in result.output
    run_pipeline([inputs], run_dir, cheap_config())
    assert Path(kept[0]["path"]).is_file()
    info = json.loads((run_dir / "run.json").read_text())
    assert info["invocations"][-1]["recut"] == [kept[0]["video_id"]]
    result = _invoke("export", str(run_dir), "--format", "opensora-csv", "--out", str(out))
    assert result.exit_code == 0, result.output
