"""Run folders at s3:// URLs, against a local S3 stand-in on 127.0.0.1 (see ``s3_server``).

The URL run must equal a local run table for table (with URLs where the local run has paths),
resume from what the bucket holds, on this machine or a fresh one, and say in one line what is
wrong with a bucket it cannot use.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from clipsieve.config import RunConfig
from clipsieve.export.opensora import opensora_table
from clipsieve.media.frames import FrameSampler, FrameSpec
from clipsieve.pipeline_run import run_pipeline
from clipsieve.storage import (
    STAGING_ENV,
    RunLocation,
    StorageError,
    is_url,
    staging_dir_for,
)
from clipsieve.table import read_parquet
from engine_runs import cheap_config, copy_subset, local_ray
from run_tables import table_rows
from s3_server import LocalS3, local_s3

pytest.importorskip("s3fs")
pytest.importorskip("moto")

SUBSET = ("cuts.mp4", "long_take.mp4", "empty.mp4", "truncated.mp4")


@pytest.fixture(scope="module")
def s3() -> LocalS3:
    with local_s3() as server:
        yield server


@pytest.fixture(autouse=True)
def staging(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "staging"
    monkeypatch.setenv(STAGING_ENV, str(folder))
    return folder


@pytest.fixture(scope="module")
def subset(sample_set: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_subset(sample_set, tmp_path_factory.mktemp("s3_subset"), SUBSET)


def s3_config(workers: int = 2, executor: str = "local") -> RunConfig:
    """The cheap pipeline with the csv export (its relpath column is checked too)."""
    return cheap_config(workers, executor, formats=("parquet", "csv"))


@pytest.fixture(scope="module")
def local_run(subset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("s3_local_run")
    run_pipeline([subset], run_dir, s3_config(1))
    return run_dir


def remote_rows(s3: LocalS3, prefix: str, name: str) -> list[dict]:
    """Rows of a table in the bucket, clip URLs made relative to the run folder, by id."""
    table = pq.read_table(f"{s3.bucket}/{prefix}/{name}", filesystem=s3.filesystem())
    root = s3.url(prefix) + "/"
    rows = table.to_pylist()
    for row in rows:
        if row.get("path") and str(row["path"]).startswith(root):
            row["path"] = row["path"][len(root) :]
    key = "clip_id" if name.startswith("clips") else "video_id"
    return sorted(rows, key=lambda r: r[key])


def assert_same_tables(s3: LocalS3, prefix: str, local_run: Path) -> None:
    for name in ("videos.parquet", "clips.parquet"):
        assert remote_rows(s3, prefix, name) == table_rows(local_run, name, sort=True), name


def test_run_into_a_bucket_equals_a_local_run(
    s3: LocalS3, subset: Path, local_run: Path, staging: Path
):
    outputs = run_pipeline([subset], s3.url("runs/equal"), s3_config())
    assert outputs.files["clips.parquet"] == s3.url("runs/equal/clips.parquet")
    assert_same_tables(s3, "runs/equal", local_run)
    keys = s3.keys("runs/equal")
    clips = remote_rows(s3, "runs/equal", "clips.parquet")
    cut = sorted(r["path"] for r in clips if r["path"])
    assert cut and [k for k in keys if k.startswith("clips/")] == cut
    assert {"run.json", "videos.parquet", "clips.parquet", "clips.csv"} <= set(keys)
    shard_keys = {k for k in keys if k.startswith("shards/")}
    assert len(shard_keys) == 2 * len(SUBSET)
    # every clip was uploaded and its local copy deleted; only metadata stays staged
    staged = staging_dir_for(s3.url("runs/equal"))
    assert staged.parent == staging and not list((staged / "clips").glob("*.mp4"))
    run_json = json.loads(s3.filesystem().cat_file(f"{s3.bucket}/runs/equal/run.json"))
    assert [s["name"] for s in run_json["stages"]][-1] == "publish"
    csv = s3.filesystem().cat_file(f"{s3.bucket}/runs/equal/clips.csv").decode()
    assert s3.url("runs/equal/clips/") in csv and ",clips/" in csv
    # a second invocation finds every video committed in the bucket and redoes nothing
    again = run_pipeline([subset], s3.url("runs/equal"), s3_config()).result
    assert (again.processed, again.skipped) == (0, len(SUBSET))


def test_a_fresh_machine_resumes_from_what_the_bucket_holds(
    s3: LocalS3, subset: Path, local_run: Path
):
    url = s3.url("runs/resume")
    run_pipeline([subset], url, s3_config())
    fs = s3.filesystem()
    # the videos shard (the commit marker) of two videos never arrived, and this machine's
    # staging folder is gone: the bucket alone says what is finished
    markers = sorted(fs.glob(f"{s3.bucket}/runs/resume/shards/*.videos.parquet"))
    for marker in markers[:2]:
        fs.rm(marker)
    shutil.rmtree(staging_dir_for(url))
    resumed = run_pipeline([subset], url, s3_config()).result
    assert (resumed.processed, resumed.skipped) == (2, len(SUBSET) - 2)
    assert_same_tables(s3, "runs/resume", local_run)


def test_staged_shards_the_bucket_never_got_are_redone(s3: LocalS3, subset: Path, local_run: Path):
    url = s3.url("runs/partial")
    run_pipeline([subset], url, s3_config())
    fs = s3.filesystem()
    marker = sorted(fs.glob(f"{s3.bucket}/runs/partial/shards/*.videos.parquet"))[0]
    fs.rm(marker)  # killed after the local commit, before its upload
    location = RunLocation.resolve(url)
    assert location.sync_shards("shards") == (0, 1)
    resumed = run_pipeline([subset], url, s3_config()).result
    assert resumed.processed == 1
    assert_same_tables(s3, "runs/partial", local_run)


def test_restart_clears_the_bucket_folder(s3: LocalS3, subset: Path):
    url = s3.url("runs/restart")
    run_pipeline([subset], url, s3_config())
    fs = s3.filesystem()
    fs.pipe(f"{s3.bucket}/runs/restart/shards/stale.videos.parquet", b"not parquet")
    config = s3_config()
    config.cut.enabled = False
    result = run_pipeline([subset], url, config, restart=True).result
    assert result.processed == len(SUBSET)
    assert not [k for k in s3.keys("runs/restart") if k.startswith(("clips/", "shards/stale"))]


def test_ray_run_into_a_bucket_equals_the_local_run(
    s3: LocalS3, subset: Path, local_run: Path, tmp_path: Path
):
    """Ray workers find the bucket through the same AWS_* variables (set before ray.init)."""
    with local_ray():
        run_pipeline([subset], s3.url("runs/ray"), s3_config(executor="ray"))
    assert_same_tables(s3, "runs/ray", local_run)


def test_a_bucket_that_does_not_exist_is_one_clear_error(s3: LocalS3, subset: Path):
    with pytest.raises(StorageError, match=r"cannot write to run folder s3://no-such-bucket/run"):
        run_pipeline([subset], "s3://no-such-bucket/run", s3_config())


def test_a_url_without_its_fsspec_backend_names_the_package(subset: Path):
    with pytest.raises(StorageError, match="not installed|Protocol not known|cannot open"):
        run_pipeline([subset], "nosuchproto://bucket/run", s3_config())


def test_the_cli_reports_a_bad_bucket_in_one_line(s3: LocalS3, subset: Path):
    from typer.testing import CliRunner

    from clipsieve.cli import app

    result = CliRunner().invoke(app, ["run", str(subset), "--out", "s3://no-such-bucket/x"])
    assert result.exit_code == 2
    assert "cannot write to run folder s3://no-such-bucket/x" in result.output
    assert "Traceback" not in result.output


def test_clip_readers_open_urls(s3: LocalS3, sample_set: Path):
    """Scorers, captioning and the report read clips of a URL run folder in place."""
    fs = s3.filesystem()
    fs.put_file(str(sample_set / "cuts.mp4"), f"{s3.bucket}/read/cuts.mp4")
    sampler = FrameSampler({"mid": FrameSpec(count=3, short_side=64)})
    local = sampler.sample(sample_set / "cuts.mp4")["mid"]
    remote = sampler.sample(s3.url("read/cuts.mp4"))["mid"]
    assert remote.indices.tolist() == local.indices.tolist()
    assert (remote.images == local.images).all()
    from clipsieve.report.thumbs import _frame_image

    assert _frame_image(s3.url("read/cuts.mp4"), 10, None).size == (
        _frame_image(str(sample_set / "cuts.mp4"), 10, None).size
    )


def test_locations_and_urls():
    assert is_url("s3://b/x") and is_url("gs://b") and not is_url("/tmp/x")
    assert not is_url("file:///tmp/x")
    assert RunLocation.resolve("file:///tmp/run").local == Path("/tmp/run")
    remote = RunLocation.resolve("s3://bucket/run/")
    assert remote.remote and remote.target == "s3://bucket/run"
    assert remote.url("clips/a.mp4") == "s3://bucket/run/clips/a.mp4"
    assert remote.local == staging_dir_for("s3://bucket/run")
    assert staging_dir_for("s3://bucket/run") != staging_dir_for("s3://bucket/run2")


def test_opensora_csv_keeps_clip_urls_with_a_relpath_inside_the_run_folder(local_run: Path):
    clips = read_parquet(local_run / "clips.parquet")
    urls = [
        f"s3://b/run/clips/{Path(p).name}" if p else None for p in clips.column("path").to_pylist()
    ]
    table = clips.set_column(clips.column_names.index("path"), "path", [urls])
    rows = opensora_table(table, "s3://b/run").to_pylist()
    assert rows and all(r["path"].startswith("s3://b/run/clips/") for r in rows)
    assert all(r["relpath"] == "clips/" + r["path"].rsplit("/", 1)[1] for r in rows)


def test_post_run_commands_work_on_a_bucket_run_folder(s3: LocalS3, subset: Path):
    """filter and report pull the tables, run locally, and upload what they changed."""
    from typer.testing import CliRunner

    from clipsieve.cli import app

    url = s3.url("runs/post")
    run_pipeline([subset], url, s3_config())
    before = remote_rows(s3, "runs/post", "clips.parquet")
    s3.filesystem().pipe(f"{s3.bucket}/runs/post/notes/a.txt", b"kept")
    cli = CliRunner()
    result = cli.invoke(app, ["filter", url, "--durmin", "2.5"])
    assert result.exit_code == 0, result.output
    assert (staging_dir_for(url) / "notes" / "a.txt").read_text() == "kept"  # nested files too
    after = remote_rows(s3, "runs/post", "clips.parquet")
    dropped = [r for r in after if r["drop_reason"] and "filter" in r["drop_reason"]]
    assert dropped and all(r["duration_s"] < 2.5 for r in dropped)
    assert len(after) == len(before)
    result = cli.invoke(app, ["report", url])
    assert result.exit_code == 0, result.output
    html = s3.filesystem().cat_file(f"{s3.bucket}/runs/post/report.html").decode()
    assert "data:image/jpeg;base64" in html  # thumbnails decoded from the clips' URLs
    result = cli.invoke(app, ["export", url, "--format", "webdataset"])
    assert result.exit_code == 0, result.output  # clips read from their URLs into the shards
    fs = s3.filesystem()
    index = json.loads(fs.cat_file(f"{s3.bucket}/runs/post/export/webdataset/index.json"))
    assert index["total"] == sum(r["keep"] and r["status"] == "ok" for r in after) > 0
    shard = index["shards"][0]
    data = fs.cat_file(f"{s3.bucket}/runs/post/export/webdataset/{shard['name']}")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        meta = json.loads(tar.extractfile(f"{shard['first_key']}.json").read())
        clip = tar.extractfile(f"{shard['first_key']}.mp4").read()
    assert meta["path"].startswith("s3://") and clip == fs.cat_file(meta["path"])
    wds = s3.url("exports/wds")  # straight into a bucket folder: the same shards
    result = cli.invoke(app, ["export", url, "--format", "webdataset", "--out", wds])
    assert result.exit_code == 0, result.output
    uploaded = fs.cat_file(f"{s3.bucket}/exports/wds/{shard['name']}")
    assert uploaded == data and fs.exists(f"{s3.bucket}/exports/wds/export.json")
    small = ["--shard-count", "1", "--out", wds]
    result = cli.invoke(app, ["export", url, "--format", "webdataset", *small])
    assert result.exit_code == 0, result.output
    index = json.loads(fs.cat_file(f"{s3.bucket}/exports/wds/index.json"))
    names = {p.rsplit("/", 1)[-1] for p in fs.find(f"{s3.bucket}/exports/wds")}
    assert names == {s["name"] for s in index["shards"]} | {"index.json", "export.json"}
    fs.pipe(f"{s3.bucket}/exports/other/keep.txt", b"not an export")
    other = s3.url("exports/other")
    result = cli.invoke(app, ["export", url, "--format", "webdataset", "--out", other])
    assert result.exit_code == 2 and "was not made by `clipsieve export`" in result.output
    result = cli.invoke(app, ["export", url, "--format", "jsonl", "--out", wds])
    assert result.exit_code == 2 and "only webdataset exports go to a URL" in result.output
    result = cli.invoke(app, ["annotate", url])
    assert result.exit_code == 2 and "needs the clip files on disk" in result.output
    result = cli.invoke(app, ["report", s3.url("runs/none")])
    assert result.exit_code == 2 and "has no clips.parquet" in result.output


def patch_put_file(monkeypatch: pytest.MonkeyPatch, put_file) -> None:
    """Replace S3FileSystem.put_file for the filesystems made from now on (fsspec binds the
    sync methods of an instance when it is made, and caches instances)."""
    import s3fs

    monkeypatch.setattr(s3fs.S3FileSystem, "put_file", put_file)
    s3fs.S3FileSystem.clear_instance_cache()


def test_a_failed_shard_upload_stops_the_run_with_one_line_and_resumes(
    s3: LocalS3, subset: Path, local_run: Path, monkeypatch: pytest.MonkeyPatch
):
    """The bucket fails mid-run (after s3fs's own retries): one StorageError naming the file;
    the re-run redoes the video whose commit marker never arrived."""
    import s3fs

    url = s3.url("runs/flaky")
    real_put = s3fs.S3FileSystem.put_file
    markers = {"n": 0}

    def flaky_put(self, lpath, rpath, *args, **kwargs):
        if str(rpath).endswith(".videos.parquet"):
            markers["n"] += 1
            if markers["n"] == 2:
                raise OSError("connection reset by peer")
        return real_put(self, lpath, rpath, *args, **kwargs)

    patch_put_file(monkeypatch, flaky_put)
    with pytest.raises(
        StorageError,
        match=r"upload of shards/.*videos.parquet to s3://.*"
        r"failed: connection reset by peer; .*run the same command again",
    ):
        run_pipeline([subset], url, s3_config())
    patch_put_file(monkeypatch, real_put)
    resumed = run_pipeline([subset], url, s3_config()).result
    assert (resumed.processed, resumed.skipped) == (len(SUBSET) - 1, 1)
    assert_same_tables(s3, "runs/flaky", local_run)


def test_a_failed_clip_upload_stops_the_run_instead_of_failing_the_clip(
    s3: LocalS3, subset: Path, local_run: Path, monkeypatch: pytest.MonkeyPatch
):
    """A store that refuses uploads would fail every later clip too: the run stops with one
    line, nothing is committed as an error, and the re-run finishes the same tables."""
    import s3fs

    url = s3.url("runs/clipfail")
    real_put = s3fs.S3FileSystem.put_file

    def refuse_clips(self, lpath, rpath, *args, **kwargs):
        if str(rpath).endswith(".mp4"):
            raise PermissionError("Access Denied")
        return real_put(self, lpath, rpath, *args, **kwargs)

    patch_put_file(monkeypatch, refuse_clips)
    with pytest.raises(StorageError, match=r"upload of .*\.mp4 to s3://.* failed: Access Denied"):
        run_pipeline([subset], url, s3_config(1))  # one worker: this process
    patch_put_file(monkeypatch, real_put)
    resumed = run_pipeline([subset], url, s3_config()).result
    assert resumed.processed + resumed.skipped == len(SUBSET) and resumed.processed >= 1
    assert_same_tables(s3, "runs/clipfail", local_run)


def _placeless(rows: list[dict]) -> list[dict]:
    """Rows without where the sources are (a bucket here, a folder in the local run)."""
    out = []
    for row in rows:
        row = {k: v for k, v in row.items() if k != "source_path"}
        if "clip_id" not in row:
            row.pop("path", None)  # a videos row's path is its source
        out.append(row)
    return out


def test_no_shared_disk_sources_and_run_folder_in_a_bucket_on_ray(
    s3: LocalS3, subset: Path, local_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The issue's "no shared disk" run: sources in a bucket, the run folder in a bucket, two
    Ray workers reading sources through their node cache; then a fresh machine (no staging, no
    cache) resumes from the bucket alone. Tables equal a local run over local copies."""
    cache = tmp_path / "source-cache"
    monkeypatch.setenv("CLIPSIEVE_SOURCE_CACHE", str(cache))
    fs = s3.filesystem()
    for name in SUBSET:
        fs.put_file(str(subset / name), f"{s3.bucket}/sources/{name}")
    url = s3.url("runs/nodisk")
    with local_ray(num_cpus=2):
        run_pipeline([s3.url("sources/")], url, s3_config(executor="ray"))
    for name in ("videos.parquet", "clips.parquet"):
        got = _placeless(remote_rows(s3, "runs/nodisk", name))
        assert got == _placeless(table_rows(local_run, name, sort=True)), name
    sources = {r["source_path"] for r in remote_rows(s3, "runs/nodisk", "clips.parquet")}
    assert sources and all(s.startswith(s3.url("sources/")) for s in sources)

    markers = sorted(fs.glob(f"{s3.bucket}/runs/nodisk/shards/*.videos.parquet"))
    for marker in markers[:2]:
        fs.rm(marker)
    shutil.rmtree(staging_dir_for(url))
    shutil.rmtree(cache, ignore_errors=True)
    resumed = run_pipeline([s3.url("sources/")], url, s3_config()).result
    assert (resumed.processed, resumed.skipped) == (2, len(SUBSET) - 2)
    for name in ("videos.parquet", "clips.parquet"):
        got = _placeless(remote_rows(s3, "runs/nodisk", name))
        assert got == _placeless(table_rows(local_run, name, sort=True)), name

    # export from the bucket into the bucket, shards written and uploaded by two Ray workers
    from typer.testing import CliRunner

    from clipsieve.cli import app

    wds = s3.url("runs/nodisk-wds")
    args = ["export", url, "--format", "webdataset", "--shard-count", "2", "--out", wds]
    result = CliRunner().invoke(app, [*args, "--engine", "ray", "--workers", "2"])
    assert result.exit_code == 0, result.output
    index = json.loads(fs.cat_file(f"{s3.bucket}/runs/nodisk-wds/index.json"))
    kept = [r for r in table_rows(local_run, "clips.parquet") if r["keep"] and r["status"] == "ok"]
    assert index["total"] == len(kept) and len(index["shards"]) >= 2
    for shard in index["shards"]:
        data = fs.cat_file(f"{s3.bucket}/runs/nodisk-wds/{shard['name']}")
        assert hashlib.sha256(data).hexdigest() == shard["sha256"]
