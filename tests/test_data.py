"""``clipsieve.data.ClipDataset``: frames from webdataset shards, a Parquet export or a run
folder, in a DataLoader with two workers, every clip once and every file closed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

import clipsieve
from clipsieve.data import ClipDataset
from clipsieve.errors import UserError


@pytest.fixture(scope="module")
def exports(sample_run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    run = clipsieve.open_run(sample_run)
    root = tmp_path_factory.mktemp("exports")
    return {
        "webdataset": run.export("webdataset", out=root / "wds", shard_count=2).out,
        "parquet": run.export("parquet", out=root / "parquet").out,
        "run": sample_run,
    }


def _kept_ids(run_dir: Path) -> list[str]:
    import polars as pl

    kept = clipsieve.open_run(run_dir).clips().filter(pl.col("keep") & (pl.col("status") == "ok"))
    return sorted(kept.select("clip_id").collect()["clip_id"].to_list())


@pytest.mark.parametrize("kind", ["webdataset", "parquet", "run"])
def test_two_workers_see_every_clip_once(kind: str, exports: dict, sample_run: Path) -> None:
    dataset = ClipDataset(exports[kind], num_frames=4, size=(48, 64), columns=["fps"])
    loader = DataLoader(dataset, batch_size=None, num_workers=2)
    seen = []
    for sample in loader:
        frames = sample["frames"]
        assert frames.dtype == torch.uint8 and tuple(frames.shape) == (4, 3, 48, 64)
        assert sample["fps"] and sample["fps"] > 0 and "caption" in sample
        seen.append(sample["clip_id"])
    assert sorted(seen) == _kept_ids(sample_run)  # none twice, none missed


def test_frames_sampling_size_and_stride(exports: dict) -> None:
    uniform = next(iter(ClipDataset(exports["webdataset"], num_frames=3, size=32)))
    t, c, h, w = uniform["frames"].shape
    assert (t, c) == (3, 3) and min(h, w) == 32 and w % 2 == 0
    strided = next(iter(ClipDataset(exports["webdataset"], num_frames=5, size=32, stride=2)))
    assert strided["clip_id"] == uniform["clip_id"] and strided["frames"].shape[0] == 5
    # the first strided frame is the clip's first frame; uniform sampling starts later
    assert not torch.equal(strided["frames"][0], uniform["frames"][0])


def test_shuffle_changes_the_order_not_the_set(exports: dict) -> None:
    dataset = ClipDataset(exports["webdataset"], num_frames=1, size=16, shuffle=True, seed=3)
    first = [s["clip_id"] for s in dataset]
    dataset.set_epoch(1)
    second = [s["clip_id"] for s in dataset]
    assert sorted(first) == sorted(second)


def test_no_file_left_open(exports: dict) -> None:
    def open_files() -> int:
        return len(os.listdir("/proc/self/fd"))

    dataset = ClipDataset(exports["parquet"], num_frames=2, size=16)
    list(dataset)
    before = open_files()
    for _ in range(3):
        list(dataset)
    assert open_files() <= before


def test_not_a_dataset_folder_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="neither an export"):
        ClipDataset(tmp_path)
    with pytest.raises(UserError, match="num_frames"):
        ClipDataset(tmp_path, num_frames=0)
