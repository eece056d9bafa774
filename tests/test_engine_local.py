"""The local engine: pooled == serial, interrupted + resumed == uninterrupted, streaming merge.

The runs here use a small subset of the shared sample set (a video with cuts, a long take that
the policy splits into several clips, and the two broken files) and a cheap config, so a whole
run takes seconds; the default pipeline on the full set is covered by ``test_run_e2e.py``.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest

from clipsieve.config import RunConfig
from clipsieve.engine.checkpoint import ShardStore
from clipsieve.engine.tasks import join_chunks, split_rows
from clipsieve.pipeline_run import run_pipeline
from clipsieve.table import CLIP_SCHEMA, concat_tables, merge_parquet, read_parquet, write_parquet
from engine_runs import cheap_config, copy_subset
from run_tables import table_rows

SUBSET = ("cuts.mp4", "long_take.mp4", "empty.mp4", "truncated.mp4")


@pytest.fixture(scope="module")
def subset(sample_set: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_subset(sample_set, tmp_path_factory.mktemp("engine_subset"), SUBSET)


@pytest.fixture(scope="module")
def serial_run(subset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("serial") / "run"
    outputs = run_pipeline([subset], run_dir, cheap_config(workers=1))
    assert outputs.result.workers == 1
    return run_dir


def test_pooled_run_equals_serial_run_row_for_row(serial_run: Path, subset: Path, tmp_path: Path):
    run_dir = tmp_path / "pooled"
    seen: list[dict[str, tuple[int, int]]] = []

    def on_stages(stats) -> None:
        seen.append({name: (s.rows_in, s.rows_out) for name, s in stats.items()})

    outputs = run_pipeline([subset], run_dir, cheap_config(workers=2), stage_progress=on_stages)
    result = outputs.result
    # per-stage progress after every task: counts only grow, and end at the summary's
    assert len(seen) > len(SUBSET)
    for before, after in zip(seen, seen[1:], strict=False):
        assert all(after[n][0] >= rows[0] for n, rows in before.items())
    assert seen[-1] == {n: (s.rows_in, s.rows_out) for n, s in result.stats.items()}
    assert result.workers == 2 and result.processed == len(SUBSET)
    for name in ("videos.parquet", "clips.parquet"):
        assert table_rows(run_dir, name) == table_rows(serial_run, name), name
    # the long take was split into several clips, each cut and scored as its own task
    clips = result.clips.to_pylist()
    long_take = [c for c in clips if c["video_id"].startswith("long_take")]
    assert len(long_take) >= 2
    assert result.stats["cut"].rows_in == len(clips)
    assert result.counts.videos == len(SUBSET) and result.counts.video_errors == 2
    assert result.counts.clips == len(clips)
    assert result.counts.kept == sum(1 for c in clips if c["keep"] and c["status"] != "error")


def test_interrupted_run_resumes_to_the_same_tables(serial_run: Path, subset: Path, tmp_path):
    run_dir = tmp_path / "interrupted"

    def interrupt_after_first(path: str, done: int, total: int) -> None:
        raise KeyboardInterrupt  # what Ctrl-C raises in the parent, here after one commit

    with pytest.raises(KeyboardInterrupt):
        run_pipeline([subset], run_dir, cheap_config(workers=2), progress=interrupt_after_first)
    store = ShardStore(run_dir)
    finished = store.done_ids()
    assert 0 < len(finished) < len(SUBSET)
    assert not list((run_dir / "shards").glob(".*.tmp"))

    resumed = run_pipeline([subset], run_dir, cheap_config(workers=2)).result
    assert resumed.skipped == len(finished)
    assert resumed.processed == len(SUBSET) - len(finished)
    for name in ("videos.parquet", "clips.parquet"):
        assert table_rows(run_dir, name) == table_rows(serial_run, name), name


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_ctrl_c_stops_workers_and_prints_how_to_resume(subset: Path, tmp_path: Path):
    run_dir = tmp_path / "ctrl-c"
    config = tmp_path / "cheap.yaml"
    config.write_text(
        "shots: {detector: content}\nscore: {scorers: [static]}\n"
        "export: {formats: [parquet]}\nreport: {enabled: false}\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "clipsieve", "run", str(subset), "--out", str(run_dir),
         "--config", str(config), "--workers", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    workers: list[int] = []
    while time.monotonic() < deadline and proc.poll() is None:
        workers = [p for p in _children(proc.pid) if "spawn_main" in _cmdline(p)]
        if len(workers) == 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "run finished before it could be interrupted"
    time.sleep(1.0)  # let the workers start on their first tasks
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "resume with: clipsieve run" in err and "--workers 2" in err
    assert "Traceback" not in err
    assert all(not Path(f"/proc/{p}").exists() or _zombie(p) for p in workers)
    assert not list((run_dir / "shards").glob(".*.tmp")) if (run_dir / "shards").exists() else True


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_streaming_merge_equals_concatenation(tmp_path: Path):
    base = {"video_id": "v", "status": "ok"}
    shards = [
        [{**base, "clip_id": "a", "flow": None}],  # a column that is null in this shard
        [{**base, "clip_id": "b", "flow": 1.5, "extra": "x"}],  # and float here, plus a new one
        [],
        [{**base, "clip_id": "c", "flow": 2.0}],
    ]
    from clipsieve.table import rows_to_table

    tables = [rows_to_table(rows, CLIP_SCHEMA) for rows in shards]
    paths = [write_parquet(t, tmp_path / f"{i}.parquet") for i, t in enumerate(tables)]
    out = merge_parquet(paths, tmp_path / "merged.parquet", CLIP_SCHEMA, {"k": [1]})
    merged = read_parquet(out)
    want = concat_tables(tables, CLIP_SCHEMA)
    assert merged.schema.remove_metadata().equals(want.schema.remove_metadata())
    assert merged.to_pylist() == want.to_pylist()
    empty = read_parquet(merge_parquet([], tmp_path / "none.parquet", CLIP_SCHEMA))
    assert empty.num_rows == 0 and empty.schema.names == CLIP_SCHEMA.names


def test_split_and_join_keep_plan_order():
    table = pa.table({"clip_id": [f"c{i}" for i in range(7)], "video_id": ["v"] * 7})
    chunks = split_rows(table, 3)
    assert [c.num_rows for c in chunks] == [3, 3, 1]
    assert join_chunks(chunks).to_pylist() == table.to_pylist()
    assert join_chunks([]).num_rows == 0


def test_chunk_columns_come_back_in_the_serial_order():
    from clipsieve.engine.tasks import ClipTaskResult, reorder, serial_column_order

    # chunk 0 holds only a dropped clip: the cut stage added nothing, the scorer its columns;
    # chunk 1 got cut columns first. A serial run puts the cut columns first.
    dropped = pa.table({"clip_id": ["a"], "score": [None]})
    kept = pa.table({"clip_id": ["b"], "cut_mode": ["reencode"], "score": [1.0]})
    results = [
        ClipTaskResult("v", 0, dropped, {}, [[], ["score"]]),
        ClipTaskResult("v", 1, kept, {}, [["cut_mode"], ["score"]]),
    ]
    order = serial_column_order(["clip_id"], results)
    assert order == ["clip_id", "cut_mode", "score"]
    joined = reorder(join_chunks(r.clips for r in results), order)
    assert joined.column_names == order
    assert joined.to_pylist() == [
        {"clip_id": "a", "cut_mode": None, "score": None},
        {"clip_id": "b", "cut_mode": "reencode", "score": 1.0},
    ]


def test_a_video_that_kills_its_worker_is_isolated_and_the_run_goes_on(
    serial_run: Path, subset: Path, tmp_path: Path
):
    from clipsieve.pipeline import build_pipeline
    from crashing_stage import CrashOnName

    folder = tmp_path / "inputs"
    folder.mkdir()
    for name in SUBSET:
        shutil.copy(subset / name, folder / name)
    shutil.copy(subset / "cuts.mp4", folder / "poison.mp4")
    run_dir = tmp_path / "run"
    config = cheap_config(workers=2)
    pipeline = build_pipeline(config, run_dir)
    pipeline.clip_stages.insert(0, CrashOnName())
    outputs = run_pipeline([folder], run_dir, config, pipeline=pipeline)
    videos = {r["video_id"].split("-")[0]: r for r in table_rows(run_dir, "videos.parquet")}
    assert videos["poison"]["status"] == "error"
    assert "worker process died while processing this video alone" in videos["poison"]["error"]
    assert outputs.result.stats["engine"].errors == {"worker process died": 1}
    # rows of the videos that were in flight count once: their first tries were taken back
    assert outputs.result.stats["probe"].rows_in == len(SUBSET)
    # every other video went through untouched, including those in flight beside it
    clips = table_rows(run_dir, "clips.parquet", sort=True)
    assert not [c for c in clips if c["video_id"].startswith("poison")]
    expected = table_rows(serial_run, "clips.parquet", sort=True)
    drop = ("path", "source_path")
    assert [{k: v for k, v in c.items() if k not in drop} for c in clips] == [
        {k: v for k, v in c.items() if k not in drop} for c in expected
    ]
    # the quarantined video is committed: a second invocation redoes nothing
    again = run_pipeline([folder], run_dir, config, pipeline=pipeline).result
    assert again.processed == 0 and again.skipped == len(SUBSET) + 1


def test_workers_that_never_finish_a_task_stop_the_run_instead_of_blaming_videos(
    subset: Path, tmp_path: Path
):
    from clipsieve.engine.local import LocalRunner, WorkerDied
    from clipsieve.ingest.folder import ingest_rows
    from clipsieve.pipeline import build_pipeline
    from crashing_stage import CrashInSetup

    run_dir = tmp_path / "run"
    pipeline = build_pipeline(cheap_config(workers=2), run_dir)
    pipeline.clip_stages.insert(0, CrashInSetup())
    rows = ingest_rows([str(subset / "cuts.mp4")])
    with pytest.raises(WorkerDied, match="before finishing any task"):
        LocalRunner(pipeline, run_dir, workers=2).execute(rows)
    assert not ShardStore(run_dir).done_ids()  # nothing was marked as an error


def test_segmented_shot_detection_in_the_pool_equals_a_whole_read(subset: Path, tmp_path: Path):
    """A long video's segments run as tasks on several workers; the tables equal a serial
    run that reads every video whole (the long take is split in 3 segments here)."""

    def config(workers: int, segment_s: float | None) -> RunConfig:
        cfg = cheap_config(workers)
        cfg.shots.detector = "hybrid"
        cfg.shots.segment_s = segment_s
        return cfg

    whole = run_pipeline([subset], tmp_path / "whole", config(1, None)).result
    pooled = run_pipeline([subset], tmp_path / "pooled", config(2, 4.0)).result
    assert pooled.stats["shots"].rows_in == whole.stats["shots"].rows_in
    for name in ("videos.parquet", "clips.parquet"):
        assert table_rows(tmp_path / "pooled", name) == table_rows(tmp_path / "whole", name)
    videos = {
        r["video_id"].split("-")[0]: r for r in table_rows(tmp_path / "pooled", "videos.parquet")
    }
    assert videos["long_take"]["num_frames_decoded"] == 325
    # the pool's video task stopped at the shots stage for these segments (workers use split)
    from clipsieve.shots.stage import ShotDetectStage

    stage = ShotDetectStage(detector="hybrid", segment_s=4.0)
    assert stage.segments(videos["long_take"]) == [(0, 100), (100, 200), (200, None)]


def test_run_progress_shows_a_bar_per_stage_with_videos_and_clips_totals(tmp_path: Path):
    import io

    from rich.console import Console
    from rich.progress import Progress

    from clipsieve.cli.progress import RunProgress
    from clipsieve.engine.tasks import StageStats
    from clipsieve.pipeline import build_pipeline

    pipeline = build_pipeline(cheap_config(workers=2), tmp_path)
    with Progress(console=Console(file=io.StringIO()), auto_refresh=False) as progress:
        display = RunProgress(progress, pipeline, videos=10, todo=6)  # 4 resumed
        stats = {
            "probe": StageStats(rows_in=6, rows_out=6),
            "shots": StageStats(rows_in=5, rows_out=5),
            "policy": StageStats(rows_in=5, rows_out=12),
            "cut": StageStats(rows_in=7, rows_out=7),
        }
        stats["cut"].errors["cannot open"] = 2
        display.on_stages(stats)
        display.on_video("/videos/a.mp4", 5, 10)
        tasks = {t.description.strip(): t for t in progress.tasks}
    assert [name for name in tasks] == ["videos", "probe", "shots", "policy", "cut", "score"]
    assert (tasks["probe"].completed, tasks["probe"].total) == (6, 6)
    assert (tasks["shots"].completed, tasks["policy"].total) == (5, 6)
    # clip stages count clips, out of the clips planned so far
    assert (tasks["cut"].completed, tasks["cut"].total) == (7, 12)
    assert tasks["cut"].fields["current"] == "2 errors"
    assert tasks["score"].completed == 0 and tasks["score"].total is None
    assert (tasks["videos"].completed, tasks["videos"].total) == (5, 10)
    assert tasks["videos"].fields["current"] == "a.mp4"
