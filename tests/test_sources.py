"""Source videos at URLs: https:// from a loopback file server, s3:// from the S3 stand-in.

A run over URL sources must give the same tables as a run over the same files on disk (same
``video_id``s: the fingerprint hashes the same sampled bytes), read each object through the
bounded per-node cache, and turn missing objects, unknown protocols and bad prefixes into one
line or an error row.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clipsieve.cli import app
from clipsieve.media.sources import SourceCache, SourceUnavailable
from clipsieve.pipeline_run import run_pipeline
from engine_runs import cheap_config, copy_subset
from http_server import serve_folder
from run_tables import table_rows
from s3_server import local_s3

SUBSET = ("cuts.mp4", "long_take.mp4")
PLACE = ("path", "source_path")  # where the files are: the only columns that may differ


@pytest.fixture(scope="module")
def videos(sample_set: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_subset(sample_set, tmp_path_factory.mktemp("url_sources"), SUBSET)


@pytest.fixture(scope="module")
def local_run(videos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("url_local_run") / "run"
    run_pipeline([videos], run_dir, cheap_config())
    return run_dir


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "source-cache"
    monkeypatch.setenv("CLIPSIEVE_SOURCE_CACHE", str(folder))
    return folder


def _without_place(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in PLACE} for r in rows]


def _assert_same_tables(run_dir: Path, local_run: Path) -> None:
    for name in ("videos.parquet", "clips.parquet"):
        got = _without_place(table_rows(run_dir, name, sort=True))
        assert got == _without_place(table_rows(local_run, name, sort=True)), name


def test_https_sources_give_the_tables_of_local_files(
    videos: Path, local_run: Path, tmp_path: Path, cache_dir: Path
) -> None:
    with serve_folder(videos) as (base, counts):
        urls = [f"{base}/{name}" for name in SUBSET]
        run_dir = tmp_path / "run"
        run_pipeline(urls, run_dir, cheap_config())
    _assert_same_tables(run_dir, local_run)
    sources = {r["source_path"] for r in table_rows(run_dir, "clips.parquet")}
    assert sources == set(urls)  # the rows name the URLs, not the cache
    # each object was downloaded once (probe, shots and cut shared the cached copy)
    full_gets = {p: n for p, n in counts.items() if p.endswith(".mp4")}
    assert set(full_gets) == {f"/{n}" for n in SUBSET}
    assert not [p for p in cache_dir.iterdir() if not p.name.startswith(".")]  # cleaned


def test_s3_prefix_sources_give_the_tables_of_local_files(
    videos: Path, local_run: Path, tmp_path: Path, cache_dir: Path
) -> None:
    with local_s3("clipsieve-sources") as s3:
        fs = s3.filesystem()
        for name in SUBSET:
            fs.put_file(str(videos / name), f"{s3.bucket}/videos/{name}")
        fs.put_file(str(videos / SUBSET[0]), f"{s3.bucket}/videos/notes.txt")  # not a video
        run_dir = tmp_path / "run"
        result = CliRunner().invoke(
            app,
            ["run", s3.url("videos/"), "--out", str(run_dir), "--workers", "1"]
            + ["--config", str(_cheap_yaml(tmp_path))],
        )
        assert result.exit_code == 0, result.output
        _assert_same_tables(run_dir, local_run)

        missing = CliRunner().invoke(app, ["run", s3.url("nothing/"), "--out", str(tmp_path / "m")])
        assert missing.exit_code == 2 and "input not found: s3://" in missing.output
        assert "Traceback" not in missing.output


def _cheap_yaml(folder: Path) -> Path:
    import yaml

    path = folder / "cheap.yaml"
    path.write_text(yaml.safe_dump(cheap_config().to_dict()))
    return path


def test_a_missing_object_is_an_error_row_and_an_unknown_protocol_one_line(
    videos: Path, tmp_path: Path, cache_dir: Path
) -> None:
    with serve_folder(videos) as (base, _):
        run_dir = tmp_path / "run"
        run_pipeline([f"{base}/{SUBSET[0]}", f"{base}/gone.mp4"], run_dir, cheap_config())
    rows = {r["path"].rsplit("/", 1)[-1]: r for r in table_rows(run_dir, "videos.parquet")}
    assert rows["gone.mp4"]["status"] == "error"
    assert "object not found" in rows["gone.mp4"]["error"]
    assert rows[SUBSET[0]]["status"] == "ok"
    result = CliRunner().invoke(app, ["run", "nosuch://bucket/v.mp4", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "nosuch://" in result.output
    assert "Traceback" not in result.output


def test_the_cache_is_bounded_shared_and_never_evicts_what_a_worker_holds(
    videos: Path, tmp_path: Path
) -> None:
    sizes = {name: (videos / name).stat().st_size for name in SUBSET}
    cache = SourceCache(tmp_path / "c", max_bytes=max(sizes.values()) + 1)
    with serve_folder(videos) as (base, counts):
        first, second = (f"{base}/{name}" for name in SUBSET)
        with cache.local(first) as held:
            # a second object over the limit: the held one stays (a worker is reading it)
            with cache.local(second) as other:
                assert Path(held).is_file() and Path(other).is_file()
            assert Path(held).is_file()
        # nothing held: the next fetch evicts the least recently used to fit the limit
        with cache.local(first):
            pass
        assert cache.size_bytes() <= cache.max_bytes

        # concurrent workers asking for one object download it once
        cache.clear()
        before = counts[f"/{SUBSET[0]}"]
        seen: list[str] = []

        def fetch() -> None:
            with cache.local(first) as path:
                seen.append(Path(path).read_bytes()[:16].hex())

        threads = [threading.Thread(target=fetch) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(seen) == 4 and len(set(seen)) == 1
        assert counts[f"/{SUBSET[0]}"] - before == 1
        missing = pytest.raises(SourceUnavailable, match="object not found")
        with missing, cache.local(f"{base}/nope.mp4"):
            pass
    assert cache.clear() >= 1 and cache.size_bytes() == 0
    shutil.rmtree(tmp_path / "c")


def test_metafile_rows_naming_objects_are_read_in_place(
    videos: Path, tmp_path: Path, cache_dir: Path
) -> None:
    """An Open-Sora csv whose `path` column holds s3:// objects (https:// rows stay download
    sources for `clipsieve download`, as before)."""
    import csv

    with local_s3("clipsieve-meta") as s3:
        s3.filesystem().put_file(str(videos / SUBSET[0]), f"{s3.bucket}/v/{SUBSET[0]}")
        meta = tmp_path / "meta.csv"
        with open(meta, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["path", "text"])
            writer.writerow([s3.url(f"v/{SUBSET[0]}"), "a pattern with cuts"])
            writer.writerow([s3.url("v/missing.mp4"), "not there"])
        out = tmp_path / "run"
        result = CliRunner().invoke(
            app,
            ["run", "--metafile", str(meta), "--out", str(out), "-w", "1"]
            + ["--config", str(_cheap_yaml(tmp_path))],
        )
        assert result.exit_code == 0, result.output
    clips = {Path(r["source_path"]).name: r for r in table_rows(out, "clips.parquet")}
    assert clips[SUBSET[0]]["status"] == "ok" and clips[SUBSET[0]]["caption_src"]
    assert clips["missing.mp4"]["status"] == "error"
    assert "object not found" in clips["missing.mp4"]["error"]
