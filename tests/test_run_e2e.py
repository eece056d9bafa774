"""End to end on the generated sample set: run, explain every input, obey the policy, resume.

The sample set (``clipsieve.media.synth``, test scale) has videos with hard cuts at known frames,
a fade, a static segment, burned-in text, a near-duplicate, a zero-byte and a truncated file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pyarrow as pa
import pytest

from clipsieve.config import RunConfig
from clipsieve.export.opensora import OPENSORA_COLUMNS
from clipsieve.media.synth import make_sample_set
from clipsieve.pipeline_run import RunDirError, run_pipeline
from clipsieve.table import read_csv, read_jsonl, read_parquet

TOLERANCE_FRAMES = 1


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("samples")
    make_sample_set(folder, scale="test")
    return folder


@pytest.fixture(scope="module")
def expected(samples) -> dict:
    return json.loads((samples / "expected.json").read_text())


@pytest.fixture(scope="module")
def finished_run(samples, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    outputs = run_pipeline([samples], run_dir, RunConfig())
    return outputs


def _files(expected: dict) -> dict[str, dict]:
    return expected["videos"]


def _decoded_frames(path: str) -> int:
    with av.open(path) as container:
        return sum(1 for _ in container.decode(video=0))


def test_every_input_has_a_row_and_bad_files_are_explained(finished_run, samples, expected):
    videos = {Path(r["path"]).name: r for r in finished_run.result.videos.to_pylist()}
    assert set(videos) == set(_files(expected))
    for name, info in _files(expected).items():
        row = videos[name]
        if info.get("expected_error"):
            assert row["status"] == "error", name
            assert row["error"].startswith("probe: ") and "\n" not in row["error"]
        else:
            assert row["status"] == "ok", (name, row["error"])
            assert row["num_frames"] == info["num_frames"], name


def test_detected_cuts_match_known_cuts(finished_run, expected):
    videos = {Path(r["path"]).name: r for r in finished_run.result.videos.to_pylist()}
    for name, info in _files(expected).items():
        if info.get("expected_error"):
            continue
        found = list(videos[name]["cuts"])
        for cut in info["hard_cuts"]:
            assert any(abs(cut - f) <= TOLERANCE_FRAMES for f in found), (name, cut, found)
        boundaries = list(info["hard_cuts"]) + [g[0] for g in info["gradual_transitions"]]
        for f in found:
            near_cut = any(abs(f - c) <= TOLERANCE_FRAMES for c in info["hard_cuts"])
            in_gradual = any(a - 1 <= f <= b + 1 for a, b in info["gradual_transitions"])
            assert near_cut or in_gradual, (name, "false cut", f, boundaries)


def test_clip_lengths_obey_the_policy_and_cut_files_hold_exact_frames(finished_run):
    policy = RunConfig().policy
    clips = finished_run.result.clips.to_pylist()
    assert clips, "no clips planned"
    kept = [c for c in clips if c["keep"]]
    dropped = [c for c in clips if not c["keep"]]
    assert kept and dropped, "sample set should exercise both kept and dropped shots"
    for clip in kept:
        assert policy.min_s - 1e-6 <= clip["duration_s"] <= policy.max_s + 1e-6, clip["clip_id"]
        assert clip["status"] == "ok", clip["error"]
        assert Path(clip["path"]).exists()
        assert _decoded_frames(clip["path"]) == clip["end_frame"] - clip["start_frame"]
    for clip in dropped:
        assert clip["drop_reason"] in {"too_short", "short_tail"}
        assert clip["path"] is None
    ids = [c["clip_id"] for c in clips]
    assert len(ids) == len(set(ids))


def test_run_dir_holds_tables_exports_and_report(finished_run):
    run_dir = finished_run.run_dir
    info = json.loads((run_dir / "run.json").read_text())
    assert {s["name"] for s in info["stages"]} >= {"probe", "shots", "policy", "cut"}
    assert info["config"]["policy"]["min_s"] == 2.0
    assert read_parquet(run_dir / "clips.parquet").num_rows == finished_run.result.clips.num_rows
    kept = [c for c in finished_run.result.clips.to_pylist() if c["keep"]]
    csv_rows = read_csv(run_dir / "clips.csv")
    # Open-Sora's column order first: its training scripts read the csv by these names
    assert list(csv_rows[0])[:10] == OPENSORA_COLUMNS
    assert len(csv_rows) == len(kept) == len(read_jsonl(run_dir / "clips.jsonl"))
    report = (run_dir / "report.html").read_text()
    assert "too_short" in report
    assert report.count("<img") >= len(kept)


def _normalised(table: pa.Table, run_dir: Path) -> list[dict]:
    rows = table.to_pylist()
    for row in rows:
        if row.get("path") and str(row["path"]).startswith(str(run_dir)):
            row["path"] = os.path.relpath(row["path"], run_dir)
    return rows


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "clipsieve", *args]


def test_sigkilled_run_resumes_to_the_same_tables(finished_run, samples, tmp_path):
    run_dir = tmp_path / "killed"
    proc = subprocess.Popen(
        _cli("run", str(samples), "--out", str(run_dir)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    shards = run_dir / "shards"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if shards.exists() and any(shards.glob("*.videos.parquet")):
            break
        time.sleep(0.01)
    assert proc.poll() is None, "run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished_before = len(list(shards.glob("*.videos.parquet")))
    assert 0 < finished_before < len(finished_run.result.videos)

    resumed = subprocess.run(
        _cli("run", str(samples), "--out", str(run_dir)), capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    info = json.loads((run_dir / "run.json").read_text())
    last = info["invocations"][-1]
    assert last["skipped"] == finished_before and last["processed"] >= 1

    for name in ("videos.parquet", "clips.parquet"):
        got = _normalised(read_parquet(run_dir / name), run_dir)
        want = _normalised(read_parquet(finished_run.run_dir / name), finished_run.run_dir)
        assert got == want, name


def test_rerun_with_other_settings_is_refused(finished_run, samples):
    config = RunConfig()
    config.policy.min_s = 3.0
    with pytest.raises(RunDirError, match="different 'policy' settings"):
        run_pipeline([samples], finished_run.run_dir, config)


SCORE_COLUMNS = ("rgb_diff_mean", "flow_mean", "camera_motion", "sharpness", "phash")


def test_kept_clips_are_scored_and_static_scores_low(finished_run, expected):
    kept = [c for c in finished_run.result.clips.to_pylist() if c["keep"]]
    for clip in kept:
        assert clip["score_errors"] is None, clip["score_errors"]
        for column in SCORE_COLUMNS:
            assert clip[column] is not None, (clip["clip_id"], column)
    by_file: dict[str, list[dict]] = {}
    for clip in kept:
        by_file.setdefault(Path(clip["source_path"]).name, []).append(clip)
    static_ranges = expected["videos"]["static.mp4"]["static_ranges"]

    def still_fraction(clip: dict) -> float:
        inside = sum(
            max(0, min(clip["end_frame"], b + 1) - max(clip["start_frame"], a))
            for a, b in static_ranges
        )
        return inside / (clip["end_frame"] - clip["start_frame"])

    # The hold starts after a short moving lead-in, so the clip is mostly (not wholly) still.
    held = [c for c in by_file["static.mp4"] if still_fraction(c) >= 0.75]
    assert held, "no kept clip lies mostly inside the static hold"
    moving = by_file["long_take.mp4"]
    assert max(c["flow_mean"] for c in held) * 5 < min(c["flow_mean"] for c in moving)
    assert all(c["camera_motion"] == "static" for c in held)


def test_score_command_rescores_a_run_folder(finished_run, tmp_path):
    import shutil

    from typer.testing import CliRunner

    from clipsieve.cli import app

    copy = tmp_path / "run"
    shutil.copytree(finished_run.run_dir, copy)
    result = CliRunner().invoke(app, ["score", str(copy), "--scorers", "static"])
    assert result.exit_code == 0, result.output
    clips = read_parquet(copy / "clips.parquet").to_pylist()
    before = {c["clip_id"]: c for c in finished_run.result.clips.to_pylist()}
    for clip in clips:
        assert clip["rgb_diff_mean"] == before[clip["clip_id"]]["rgb_diff_mean"]
    assert "clips.csv" in result.output  # the note that the stale views were removed
    assert not (copy / "clips.csv").exists()
    views = CliRunner().invoke(app, ["export", str(copy), "--format", "views"])
    assert views.exit_code == 0, views.output
    csv_header = list(read_csv(copy / "clips.csv")[0])
    assert "rgb_diff_mean" in csv_header
    bad = CliRunner().invoke(app, ["score", str(tmp_path / "nothing"), "--scorers", "static"])
    assert bad.exit_code == 2 and "has no clips.parquet" in bad.output
