"""The Ray engine gives the local engine's tables (one local Ray instance for the whole module).

Ray starts once here (``ray.init(num_cpus=2)``, about 4 s, no dashboard, no usage reporting,
``address="local"`` so it never joins a cluster it finds). Tables are compared row by row, sorted
by ``clip_id``/``video_id``, with clip paths made relative to their run folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from clipsieve.config import RunConfig
from clipsieve.engine.checkpoint import ShardStore
from clipsieve.engine.ray import (
    PRIVATE,
    _plan,
    _set_up,
    attach_stats,
    has_setup,
    split_clip_stages,
    take_stats,
    uses_actors,
)
from clipsieve.engine.tasks import StageStats
from clipsieve.media.probe import ProbeStage
from clipsieve.pipeline_run import run_pipeline
from clipsieve.shots.policy import ClipPlanStage
from clipsieve.shots.stage import ShotDetectStage
from clipsieve.table import VIDEO_SCHEMA, read_parquet, rows_to_table
from engine_runs import cheap_config, copy_subset, local_ray
from run_tables import table_rows

SUBSET = ("cuts.mp4", "long_take.mp4", "empty.mp4")


@pytest.fixture(scope="module")
def ray_session():
    with local_ray(num_gpus=1) as ray:  # a logical GPU: the actor-pool path is placed too
        yield ray


@pytest.fixture(scope="module")
def subset(sample_set: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_subset(sample_set, tmp_path_factory.mktemp("ray_subset"), SUBSET)


def _not_this_path(*args: object, **kwargs: object) -> None:
    raise AssertionError("the pipeline took the other Ray path")


def test_ray_run_equals_local_run(
    ray_session, subset: Path, tmp_path: Path, capfd, monkeypatch: pytest.MonkeyPatch
):
    """Without GPU stages the pipeline runs as plain Ray tasks, one per block of videos."""
    from clipsieve.engine.ray import RayRunner

    monkeypatch.setattr(RayRunner, "_dataset_batches", _not_this_path)
    local_dir, ray_dir = tmp_path / "local", tmp_path / "ray"
    local = run_pipeline([subset], local_dir, cheap_config(executor="local")).result
    ray_config = cheap_config(executor="ray")
    # the long take's clips run in chunks of 2: the first in its plan task, the others as
    # Ray tasks of their own
    ray_config.engine.clips_per_task = 2
    seen: list[dict] = []
    outputs = run_pipeline([subset], ray_dir, ray_config, stage_progress=seen.append)
    assert outputs.result.engine == "ray" and outputs.result.processed == len(SUBSET)
    summary = {n: (s.rows_in, s.rows_out, dict(s.errors)) for n, s in outputs.result.stats.items()}
    assert summary == {n: (s.rows_in, s.rows_out, dict(s.errors)) for n, s in local.stats.items()}
    # per-stage progress ends at the summary's counts (the last call has the final stats)
    assert seen and {n: s.rows_in for n, s in seen[-1].items()} == {
        n: s.rows_in for n, s in outputs.result.stats.items()
    }
    for name in ("videos.parquet", "clips.parquet"):
        assert table_rows(ray_dir, name, sort=True) == table_rows(local_dir, name, sort=True), name
    clips = read_parquet(ray_dir / "clips.parquet")
    assert not set(PRIVATE) & set(clips.column_names)
    # Ray's lines that repeat what the command shows itself are not printed
    err = capfd.readouterr().err
    assert "execution finished" not in err and "Progress bars" not in err
    # a second invocation finds every video committed and redoes nothing
    again = run_pipeline([subset], ray_dir, cheap_config(executor="ray")).result
    assert (again.processed, again.skipped) == (0, len(SUBSET))
    assert ShardStore(ray_dir).done_ids() == {
        r["video_id"] for r in table_rows(ray_dir, "videos.parquet", sort=True)
    }


def test_a_gpu_clip_stage_runs_in_an_actor_pool_with_the_local_tables(
    ray_session, subset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The score stage asks for a GPU (the driver places stages, so patching it there is
    enough): the pipeline runs on Ray Data, cut from the plan task, score in its actor pool on
    repartitioned blocks, and the tables, stats and markers of a video without clips come out
    as locally."""
    from clipsieve.engine.ray import RayRunner, split_clip_stages
    from clipsieve.pipeline import build_pipeline
    from clipsieve.score.stage import ScoreStage
    from clipsieve.stage import Resources

    local = run_pipeline([subset], tmp_path / "local", cheap_config(executor="local")).result
    monkeypatch.setattr(ScoreStage, "resources", lambda self: Resources(gpus=1.0))
    monkeypatch.setattr(RayRunner, "_task_batches", _not_this_path)
    ray_config = cheap_config(executor="ray")
    ray_config.engine.clips_per_task = 2
    inline, pooled = split_clip_stages(build_pipeline(ray_config, tmp_path).clip_stages, 1)
    assert [s.name for s in inline] == ["cut"] and [s.name for s in pooled] == ["score"]
    result = run_pipeline([subset], tmp_path / "ray", ray_config).result
    summary = {n: (s.rows_in, s.rows_out) for n, s in result.stats.items()}
    assert summary == {n: (s.rows_in, s.rows_out) for n, s in local.stats.items()}
    for name in ("videos.parquet", "clips.parquet"):
        assert table_rows(tmp_path / "ray", name, sort=True) == table_rows(
            tmp_path / "local", name, sort=True
        ), name


def test_ray_runs_a_long_videos_shot_segments_as_tasks_with_the_whole_reads_result(
    ray_session, subset: Path, tmp_path: Path
):
    """The long take (325 frames) in 3 segments of 100 frames, each a Ray task of its own."""
    local_config, ray_config = cheap_config(executor="local"), cheap_config(executor="ray")
    for config in (local_config, ray_config):
        config.shots.detector = "hybrid"
        config.cut.enabled = False
        config.score.scorers = []
    local_config.shots.segment_s = None  # read whole
    ray_config.shots.segment_s = 4.0
    run_pipeline([subset], tmp_path / "local", local_config)
    run_pipeline([subset], tmp_path / "ray", ray_config)
    for name in ("videos.parquet", "clips.parquet"):
        assert table_rows(tmp_path / "ray", name, sort=True) == table_rows(
            tmp_path / "local", name, sort=True
        ), name
    long_take = next(
        r for r in table_rows(tmp_path / "ray", "videos.parquet") if "long_take" in r["path"]
    )
    assert ShotDetectStage(detector="hybrid", segment_s=4.0).segments(long_take) == [
        (0, 100), (100, 200), (200, None)
    ]  # fmt: skip


@pytest.mark.slow
def test_ray_run_of_the_sample_set_equals_the_shared_local_run(
    ray_session, sample_set: Path, sample_run: Path, tmp_path: Path
):
    config = RunConfig()
    config.engine.executor = "ray"
    run_pipeline([sample_set], tmp_path / "ray", config)
    for name in ("videos.parquet", "clips.parquet"):
        assert table_rows(tmp_path / "ray", name, sort=True) == table_rows(
            sample_run, name, sort=True
        ), name


def test_gpu_stages_get_actor_pools_and_cpu_stages_are_set_up_once_per_process():
    from clipsieve.stage import Resources

    assert has_setup(ShotDetectStage()) and not has_setup(ClipPlanStage())
    assert not uses_actors(ShotDetectStage(), 1) and not uses_actors(ProbeStage(), 1)

    @dataclass
    class GpuStage(ClipPlanStage):
        worker_resources: ClassVar[Resources] = Resources(gpus=1.0)

    assert uses_actors(GpuStage(), 1)
    assert not uses_actors(GpuStage(), 0)  # no GPU in the cluster: CPU tasks, not a hang
    # clip stages run from the plan task up to the first actor-pool stage
    cpu_a, gpu, cpu_b = ClipPlanStage(), GpuStage(), ClipPlanStage()
    assert split_clip_stages([cpu_a, gpu, cpu_b], 1) == ((cpu_a,), (gpu, cpu_b))
    assert split_clip_stages([cpu_a, gpu, cpu_b], 0) == ((cpu_a, gpu, cpu_b), ())
    first = _set_up(ShotDetectStage(detector="content"))
    assert _set_up(ShotDetectStage(detector="content")) is first
    assert _set_up(ShotDetectStage(detector="histogram")) is not first


def _planned_and_failed_video():
    """Video ``a`` with a cut at frame 50 of 100; video ``b`` failed its probe."""
    return rows_to_table(
        [
            {"video_id": "a", "path": "a.mp4", "status": "ok", "cuts": [50], "num_frames": 100,
             "fps": 25.0},
            {"video_id": "b", "path": "b.mp4", "status": "error", "error": "probe: empty"},
        ],
        VIDEO_SCHEMA,
    )  # fmt: skip


def test_plan_tags_every_clip_and_marks_videos_without_clips():
    videos = _planned_and_failed_video()
    out = _plan(videos, ClipPlanStage()).to_pylist()
    a = [r for r in out if r["video_id"] == "a"]
    b = [r for r in out if r["video_id"] == "b"]
    assert [r["_cs_pos"] for r in a] == list(range(len(a))) and a[0]["_cs_count"] == len(a)
    assert len(b) == 1 and b[0]["_cs_pos"] == -1 and b[0]["_cs_count"] == 0


def test_a_user_error_in_a_ray_task_comes_back_as_that_error(ray_session):
    """Ray passes task exceptions as text; the driver rebuilds clipsieve's one-line errors."""
    from clipsieve.engine.ray import user_error_in
    from clipsieve.storage import StorageError

    def fail(batch):
        raise StorageError("upload of a.mp4 to s3://b/run/clips/a.mp4 failed: access denied")

    dataset = ray_session.data.range(2).map_batches(fail, batch_format="pyarrow")
    with pytest.raises(Exception) as raised:
        dataset.materialize()
    error = user_error_in(raised.value)
    assert isinstance(error, StorageError)
    assert str(error) == "upload of a.mp4 to s3://b/run/clips/a.mp4 failed: access denied"
    assert user_error_in(RuntimeError("ray.exceptions.RayTaskError: something else")) is None


@dataclass
class _Numbered(ClipPlanStage):
    """A clip stage for the plan test: numbers the rows it gets."""

    name: ClassVar[str] = "numbered"
    table: ClassVar[str] = "clips"

    def process(self, batch):
        import pyarrow as pa

        return batch.append_column("n", pa.array(range(batch.num_rows), pa.int64()))


def test_plan_runs_the_clip_stages_on_small_plans_and_passes_markers():
    videos = _planned_and_failed_video()
    stats: dict = {}
    out = _plan(videos, ClipPlanStage(), stats, (_Numbered(),), clips_per_task=16)
    a = [r for r in out.to_pylist() if r["video_id"] == "a"]
    b = [r for r in out.to_pylist() if r["video_id"] == "b"]
    assert [r["n"] for r in a] == list(range(len(a))) and len(a) >= 2
    assert [r["_cs_pos"] for r in a] == list(range(len(a)))
    assert len(b) == 1 and b[0]["n"] is None and b[0]["_cs_pos"] == -1
    assert (stats["policy"].rows_in, stats["numbered"].rows_in) == (2, len(a))


def test_stats_ride_on_the_first_row_and_add_up():
    videos = rows_to_table([{"video_id": "a", "path": "a.mp4"}, {"video_id": "b"}], VIDEO_SCHEMA)
    first = attach_stats(videos, {"probe": StageStats(rows_in=2, rows_out=2, seconds=1.0)})
    again, carried = take_stats(first)
    assert again.column_names == videos.column_names and carried["probe"].rows_in == 2
    both = attach_stats(again, {**carried, "shots": StageStats(rows_in=2, rows_out=2)})
    _, total = take_stats(both)
    assert {n: s.rows_in for n, s in total.items()} == {"probe": 2, "shots": 2}
    assert take_stats(videos) == (videos, {})
