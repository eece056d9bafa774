"""Ingest: which files are found, deterministic and unique video ids."""

from __future__ import annotations

import os
import shutil

import pytest

from clipsieve.ingest.folder import IngestError, find_videos, ingest_rows, make_video_id


def _touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_finds_video_extensions_recursively_and_sorted(tmp_path):
    for name in ["b.mp4", "a.MKV", "sub/c.webm", "sub/deeper/d.mov", "e.avi", "f.m4v", "g.ts"]:
        _touch(tmp_path / name)
    _touch(tmp_path / "h.m2ts")
    _touch(tmp_path / "notes.txt")
    _touch(tmp_path / "image.jpg")
    found = find_videos([tmp_path])
    names = [p.relative_to(tmp_path).as_posix() for p in found]
    assert names == sorted(names)
    assert set(names) == {
        "b.mp4",
        "a.MKV",
        "sub/c.webm",
        "sub/deeper/d.mov",
        "e.avi",
        "f.m4v",
        "g.ts",
        "h.m2ts",
    }


def test_explicit_file_is_taken_whatever_its_extension(tmp_path):
    odd = _touch(tmp_path / "video.bin")
    assert find_videos([odd]) == [odd.absolute()]


def test_missing_input_is_a_clear_error(tmp_path):
    with pytest.raises(IngestError, match="input not found: .*nope"):
        find_videos([tmp_path / "nope"])


def test_symlink_loop_does_not_hang(tmp_path):
    _touch(tmp_path / "a.mp4")
    os.symlink(tmp_path, tmp_path / "loop")
    assert [p.name for p in find_videos([tmp_path])] == ["a.mp4"]


def test_video_id_is_stable_across_locations_and_readable(tmp_path):
    first = _touch(tmp_path / "one" / "My Clip (1).mp4", b"abc" * 100_000)
    copy_dir = tmp_path / "elsewhere"
    copy_dir.mkdir()
    second = copy_dir / first.name
    shutil.copy(first, second)
    assert make_video_id(first) == make_video_id(second)
    assert make_video_id(first).startswith("My_Clip_1-")
    other = _touch(tmp_path / "one" / "other.mp4", b"abd" * 100_000)
    assert make_video_id(other).split("-")[-1] != make_video_id(first).split("-")[-1]


def test_identical_files_get_unique_deterministic_ids(tmp_path):
    _touch(tmp_path / "x" / "same.mp4", b"data")
    _touch(tmp_path / "y" / "same.mp4", b"data")
    ids = [r["video_id"] for r in ingest_rows([tmp_path])]
    assert len(set(ids)) == 2
    assert ids[1] == ids[0] + "-2"
    assert ids == [r["video_id"] for r in ingest_rows([tmp_path])]


def test_unicode_names_give_ascii_ids(tmp_path):
    path = _touch(tmp_path / "vidéo «ünï» 'q'.mp4")
    video_id = make_video_id(path)
    assert video_id.isascii() and " " not in video_id and "'" not in video_id
