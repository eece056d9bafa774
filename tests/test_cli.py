"""The command line: one-line errors with exit code 2, config init, ingest."""

from __future__ import annotations

import pyarrow.parquet as pq
from typer.testing import CliRunner

from clipsieve.cli import app
from clipsieve.config import DEFAULT_CONFIG_YAML
from clipsieve.media.ffmpeg import run_ffmpeg

runner = CliRunner()


def _error_line(result) -> str:
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert lines, "no output"
    return lines[-1]


def test_missing_input_is_one_line_exit_2(tmp_path):
    result = runner.invoke(app, ["run", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "input not found" in _error_line(result)
    assert "Traceback" not in result.output


def test_bad_config_key_is_one_line_exit_2(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("cut: {mode: fastest}\n")
    result = runner.invoke(app, ["run", str(tmp_path), "--out", str(tmp_path / "o"), "-c", config])
    assert result.exit_code == 2
    assert "cut.mode must be 'reencode' | 'copy'" in _error_line(result)


def test_unwritable_output_is_one_line_exit_2(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = runner.invoke(app, ["run", str(tmp_path), "--out", str(blocker / "sub")])
    assert result.exit_code == 2
    assert "cannot write to output folder" in _error_line(result)


def test_config_init_writes_default_and_refuses_overwrite(tmp_path):
    path = tmp_path / "c.yaml"
    assert runner.invoke(app, ["config", "init", str(path)]).exit_code == 0
    assert path.read_text() == DEFAULT_CONFIG_YAML
    again = runner.invoke(app, ["config", "init", str(path)])
    assert again.exit_code == 2 and "--force" in _error_line(again)


def test_ingest_probes_and_flags_broken_files(tmp_path):
    videos = tmp_path / "in"
    videos.mkdir()
    run_ffmpeg(
        ["-f", "lavfi", "-i", "testsrc2=s=96x64:r=25:d=1", "-pix_fmt", "yuv420p"]
        + [str(videos / "good.mp4")]
    )
    (videos / "empty.mp4").write_bytes(b"")
    result = runner.invoke(app, ["ingest", str(videos), "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    rows = {
        r["path"].rsplit("/", 1)[-1]: r
        for r in pq.read_table(tmp_path / "o/videos.parquet").to_pylist()
    }
    assert rows["good.mp4"]["status"] == "ok" and rows["good.mp4"]["num_frames"] == 25
    assert rows["empty.mp4"]["status"] == "error"
    assert rows["empty.mp4"]["error"] == "probe: empty file (0 bytes)"
