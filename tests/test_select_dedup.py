"""Duplicate detection: exact, perceptual (pHash) and semantic; groups, ranking, real clips."""

from __future__ import annotations

import json
import random
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from clipsieve.cli import app
from clipsieve.errors import UserError
from clipsieve.runfolder import load_clips
from clipsieve.score.phash import to_signed
from clipsieve.select.dedup import (
    MIN_INFORMATIVE_BITS,
    DedupParams,
    deduplicate,
    hash_matrix,
    phash_distances,
    phash_pairs,
    rotate_hashes,
    semantic_pairs,
)


def _random_hash(rng: random.Random) -> int:
    """A textured frame's hash: exactly 32 of 64 bits set (median split of DCT coefficients)."""
    bits = [1] * 32 + [0] * 32
    rng.shuffle(bits)
    return int("".join(map(str, bits)), 2)


def _flip(value: int, n: int, rng: random.Random) -> int:
    for bit in rng.sample(range(64), n):
        value ^= 1 << bit
    return value


def _table(rows: list[dict]) -> pa.Table:
    base = {"keep": True, "drop_reason": None, "status": "ok", "path": None}
    return pa.Table.from_pylist([{**base, **r} for r in rows])


def test_phash_near_duplicates_grouped_and_best_kept() -> None:
    rng = random.Random(1)
    frames = [_random_hash(rng) for _ in range(4)]
    copy = [_flip(h, 3, rng) for h in frames]
    other = [_random_hash(rng) for _ in range(4)]
    clips = _table(
        [
            {
                "clip_id": "small",
                "video_id": "a",
                "resolution": 100,
                "duration_s": 2.0,
                "phash": [to_signed(h) for h in copy],
            },
            {
                "clip_id": "big",
                "video_id": "b",
                "resolution": 400,
                "duration_s": 2.0,
                "phash": [to_signed(h) for h in frames],
            },
            {
                "clip_id": "other",
                "video_id": "c",
                "resolution": 400,
                "duration_s": 2.0,
                "phash": [to_signed(h) for h in other],
            },
        ]
    )
    result = deduplicate(clips, DedupParams(methods=("phash",)))
    rows = {r["clip_id"]: r for r in result.table.to_pylist()}
    assert rows["big"]["keep"] and rows["big"]["dup_of"] is None
    assert rows["small"]["keep"] is False and rows["small"]["drop_reason"] == "duplicate"
    assert rows["small"]["dup_of"] == "big"
    assert rows["small"]["dup_group"] == rows["big"]["dup_group"] == 0
    assert rows["other"]["dup_group"] is None and rows["other"]["keep"]
    assert rows["small"]["dup_method"] == "phash"
    # keep-best can be reversed: lowest resolution first
    low = deduplicate(clips, DedupParams(methods=("phash",), keep_best=("-resolution",)))
    assert {r["clip_id"]: r["dup_of"] for r in low.table.to_pylist()}["big"] == "small"


def test_flat_frames_do_not_make_duplicates() -> None:
    """Black/faded frames hash to almost no set bits; they must not link unrelated clips."""
    rng = random.Random(2)
    black = 0  # all-dark frame: no AC energy, no bit above the median
    flat = 1 << 63  # flat grey frame: only the DC bit set
    a = [black, flat, _random_hash(rng), black]
    b = [black, flat, _random_hash(rng), black]
    hashes, mask = hash_matrix([[to_signed(h) for h in a], [to_signed(h) for h in b]], 4)
    assert mask.tolist() == [[False, False, True, False]] * 2
    assert phash_pairs(hashes, mask, threshold=10, size=100, seed=0) == []
    only_black = hash_matrix([[0, 0], [0, 0]], 2)
    assert phash_pairs(*only_black, threshold=10, size=100, seed=0) == []
    assert MIN_INFORMATIVE_BITS < 32


def test_turned_copies_match_through_rotated_hashes() -> None:
    """A portrait re-upload (frames turned a quarter) matches; exact rotation is invertible."""
    from clipsieve.score.phash import phash_int

    rng = np.random.default_rng(3)
    frames = [
        cv2.GaussianBlur(rng.integers(0, 255, (90, 160), dtype=np.uint8), (0, 0), 4)
        for _ in range(4)
    ]
    upright = [to_signed(phash_int(f)) for f in frames]
    turned = [to_signed(phash_int(np.rot90(f))) for f in frames]
    hashes, mask = hash_matrix([upright, turned], 4)
    for k in range(1, 4):
        exact = [phash_int(np.rot90(f, k)) for f in frames]
        approx = rotate_hashes(hashes[:1], k)[0]
        assert (
            np.mean([bin(int(a) ^ b).count("1") for a, b in zip(approx, exact, strict=True)]) <= 8
        )
    four = hashes
    for _ in range(4):
        four = rotate_hashes(four, 1)
    assert (four == hashes).all()
    assert phash_pairs(hashes, mask, 10, 100, 0, rotations=False) == []
    assert [(i, j) for i, j, _ in phash_pairs(hashes, mask, 10, 100, 0)] == [(0, 1)]


def test_partitioned_search_finds_the_same_pairs() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(30, 16))
    vectors = np.concatenate([centres, centres + rng.normal(scale=0.01, size=centres.shape)])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    full = {(i, j) for i, j, _ in semantic_pairs(vectors.astype(np.float32), 0.99, 1000, 0)}
    parted = {(i, j) for i, j, _ in semantic_pairs(vectors.astype(np.float32), 0.99, 8, 0)}
    assert full == {(i, i + 30) for i in range(30)}
    assert parted == full


def test_exact_duplicates_by_file_content(tmp_path: Path) -> None:
    for name, data in (("a.mp4", b"same"), ("b.mp4", b"same"), ("c.mp4", b"different")):
        (tmp_path / name).write_bytes(data)
    clips = _table(
        [
            {
                "clip_id": n,
                "video_id": n,
                "path": str(tmp_path / f"{n}.mp4"),
                "resolution": 1,
                "duration_s": 1.0,
            }
            for n in ("a", "b", "c")
        ]
    )
    result = deduplicate(clips, DedupParams(methods=("exact",)))
    rows = {r["clip_id"]: r for r in result.table.to_pylist()}
    assert rows["b"]["dup_of"] == "a" and rows["b"]["dup_method"] == "exact"
    assert rows["c"]["dup_group"] is None
    assert result.summary["pairs"] == {"exact": 1}


def test_rerun_is_stable_and_missing_columns_are_named() -> None:
    vec = [1.0, 0.0]
    clips = _table(
        [
            {
                "clip_id": "x",
                "video_id": "v",
                "resolution": 1,
                "duration_s": 1.0,
                "embedding": vec,
                "embed_model": "m",
            },
            {
                "clip_id": "y",
                "video_id": "w",
                "resolution": 1,
                "duration_s": 1.0,
                "embedding": vec,
                "embed_model": "m",
            },
        ]
    )
    once = deduplicate(clips, DedupParams(methods=("semantic",))).table
    twice = deduplicate(once, DedupParams(methods=("semantic",))).table
    assert (
        once.select(["keep", "dup_of"]).to_pylist() == twice.select(["keep", "dup_of"]).to_pylist()
    )
    assert [r["dup_of"] for r in twice.to_pylist()] == [None, "x"]
    with pytest.raises(UserError, match="column 'phash' missing.*--scorers phash"):
        deduplicate(clips, DedupParams(methods=("phash",)))
    with pytest.raises(UserError, match="unknown dedup method"):
        DedupParams(methods=("fuzzy",))


def _shot_source(expected: dict, video: str, start: int, end: int) -> str:
    """The synthetic source drawn at a clip's middle frame (sources repeat across videos)."""
    middle = (start + end) // 2
    shots = expected["videos"][video]["shots"]
    return next(s["source"] for s in shots if s["start"] <= middle < s["end"])


def test_dedup_finds_the_reencoded_copy_and_no_false_pair(
    run_copy: Path, sample_expected: dict
) -> None:
    """cuts_reencoded.mp4 re-encodes cuts.mp4 at a lower resolution; every pair it finds must
    show the same synthetic content (the generators are seeded, so e.g. the 'life' shot of
    cuts.mp4 and of mixed.mp4 are the same frames: a true duplicate, not a false pair)."""
    before = load_clips(run_copy)
    result = CliRunner().invoke(app, ["dedup", str(run_copy)])
    assert result.exit_code == 0, result.output
    clips = load_clips(run_copy).to_pylist()
    assert len(clips) == before.num_rows  # rows are never removed
    dup_name = next(n for n, v in sample_expected["videos"].items() if v["near_duplicate_of"])
    original = sample_expected["videos"][dup_name]["near_duplicate_of"]
    groups: dict[int, list[dict]] = {}
    for row in clips:
        if row["dup_group"] is not None:
            groups.setdefault(row["dup_group"], []).append(row)
    cross = 0
    for members in groups.values():
        files = [Path(m["source_path"]).name for m in members]
        sources = {
            _shot_source(sample_expected, f, m["start_frame"], m["end_frame"])
            for f, m in zip(files, members, strict=True)
        }
        assert len(sources) == 1, (files, sources)  # no false pair
        kept = [m for m in members if m["keep"]]
        assert len(kept) == 1
        assert Path(kept[0]["source_path"]).name != dup_name  # the lower-resolution copy loses
        cross += original in files and dup_name in files
    kept_before = [
        c
        for c in before.to_pylist()
        if Path(c["source_path"]).name == original and c["keep"] and c["status"] != "error"
    ]
    assert kept_before and cross == len(kept_before), "the re-encoded copy was not found"
    stages = json.loads((run_copy / "run.json").read_text())["steps"]
    assert any(s["name"] == "dedup" and "phash_threshold" in s["params"] for s in stages)


def test_matrix_product_distances_equal_xor_popcount() -> None:
    rng = np.random.default_rng(5)
    hashes = rng.integers(0, 2**63, size=(40, 4), dtype=np.int64).astype(np.uint64)
    mask = rng.random((40, 4)) > 0.3
    bits = np.bitwise_count(hashes[:, None, :] ^ hashes[None, :, :]).astype(float)
    both = mask[:, None, :] & mask[None, :, :]
    count = both.sum(axis=2)
    reference = np.where(
        count > 0, np.where(both, bits, 0).sum(axis=2) / np.maximum(count, 1), np.inf
    )
    got = phash_distances(hashes, mask, hashes, mask)
    assert (np.isfinite(got) == np.isfinite(reference)).all()
    finite = np.isfinite(reference)
    assert np.allclose(got[finite], reference[finite], atol=1e-4)


def test_lsh_finds_close_copies_and_never_invents_a_pair() -> None:
    from clipsieve.select.dedup_lsh import phash_pairs_lsh

    rng = random.Random(7)
    n = 3000
    rows = [[_random_hash(rng) for _ in range(4)] for _ in range(n)]
    planted = {}
    for k in range(120):
        src, dst = 2 * k, 2 * k + 1
        bits = k % 5  # 0-4 bits per frame: re-encode territory
        rows[dst] = [_flip(h, bits, rng) for h in rows[src]]
        planted[(src, dst)] = bits
    rows[241] = rotate_hashes(np.array([rows[240]], np.uint64).view(np.uint64), 1)[
        0
    ].tolist()  # a quarter-turned copy
    hashes, mask = hash_matrix([[to_signed(h) for h in r] for r in rows], 4)
    pairs, dist = phash_pairs_lsh(hashes, mask, 10.0)
    found = {tuple(p) for p in pairs.tolist()}
    all_pairs = {(a, b) for a, b, _ in phash_pairs(hashes, mask, 10.0, size=10**6, seed=0)}
    assert found <= all_pairs  # every LSH pair is within the threshold by the exact rule
    assert set(planted) <= found and (240, 241) in found
    assert (dist <= 10.0).all()


def test_above_partition_size_the_lsh_path_gives_the_same_groups() -> None:
    rng = random.Random(3)
    rows = []
    for g in range(30):
        base = [_random_hash(rng) for _ in range(4)]
        for c in range(3 if g % 3 == 0 else 1):
            rows.append(
                {
                    "clip_id": f"g{g:02d}c{c}",
                    "video_id": f"v{g}",
                    "resolution": 100 * (c + 1),
                    "duration_s": 2.0,
                    "phash": [to_signed(_flip(h, c, rng)) for h in base],
                }
            )
    clips = _table(rows)
    exact = deduplicate(clips, DedupParams(methods=("phash",))).table
    banded = deduplicate(clips, DedupParams(methods=("phash",), partition_size=8)).table
    columns = ["keep", "drop_reason", "dup_group", "dup_of", "dup_method"]
    assert banded.select(columns).to_pylist() == exact.select(columns).to_pylist()
    assert exact.column("dup_of").null_count == len(rows) - 20  # 10 groups of 3: 20 copies


def test_bit_twiddled_rotation_equals_turning_the_unpacked_bit_matrix() -> None:
    """rotate_hashes transposes in-register; the reference unpacks the 8x8 bit matrix."""
    from clipsieve.score.phash import _ROT_FLIP

    def reference(hashes: np.ndarray, turns: int) -> np.ndarray:
        if turns % 4 == 0:
            return hashes
        raw = hashes.astype(">u8").view(np.uint8).reshape(*hashes.shape, 8)
        bits = np.unpackbits(raw, axis=-1).reshape(*hashes.shape, 8, 8)
        if turns % 4 in (1, 3):
            bits = np.swapaxes(bits, -1, -2)
        bits = np.where(_ROT_FLIP[turns % 4], 1 - bits, bits).astype(np.uint8)
        packed = np.packbits(bits.reshape(*hashes.shape, 64), axis=-1)
        return packed.view(">u8").reshape(hashes.shape).astype(np.uint64)

    rng = np.random.default_rng(5)
    hashes = rng.integers(0, 2**63, (500, 3), dtype=np.int64).view(np.uint64)
    hashes[0] = [np.uint64(2**64 - 1), np.uint64(1), np.uint64(2**63)]
    for turns in range(5):
        assert np.array_equal(rotate_hashes(hashes, turns), reference(hashes, turns))


def test_default_ranking_keeps_the_better_copy_and_says_why(tmp_path: Path) -> None:
    """Of a pristine clip and its starved re-encode (same resolution and length), the old
    default ranking (resolution, duration, clip_id) kept the starved one by its name."""
    import subprocess

    import imageio_ffmpeg

    from clipsieve.pipeline_run import run_pipeline
    from engine_runs import cheap_config

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    inputs = tmp_path / "in"
    inputs.mkdir()
    pristine, starved = inputs / "b_pristine.mp4", inputs / "a_starved.mp4"
    source = ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=3"]
    subprocess.run([ffmpeg, "-v", "error", *source, "-c:v", "libx264", "-crf", "12",
                    "-pix_fmt", "yuv420p", str(pristine)], check=True)  # fmt: skip
    subprocess.run([ffmpeg, "-v", "error", "-i", str(pristine), "-c:v", "libx264", "-b:v", "12k",
                    "-pix_fmt", "yuv420p", str(starved)], check=True)  # fmt: skip
    run_dir = tmp_path / "run"
    config = cheap_config()
    config.policy.min_s = 1.0
    run_pipeline([inputs], run_dir, config)
    result = CliRunner().invoke(app, ["dedup", str(run_dir), "--method", "exact,phash"])
    assert result.exit_code == 0, result.output
    rows = [r for r in load_clips(run_dir).to_pylist() if r["dup_group"] is not None]
    kept = [r for r in rows if r["dup_of"] is None]
    dropped = [r for r in rows if r["dup_of"] is not None]
    assert len(kept) == 1 and dropped
    assert "b_pristine" in kept[0]["source_path"]
    assert all("a_starved" in r["source_path"] for r in dropped)
    assert kept[0]["dup_kept_by"].startswith("higher source_bitrate")
    assert CliRunner().invoke(app, ["report", str(run_dir)]).exit_code == 0
    assert "kept copy: higher source_bitrate" in (run_dir / "report.html").read_text()
