"""The Python API: docs/api.md's example runs as written, and the steps match the commands."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import clipsieve
from clipsieve.errors import UserError

DOCS = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def test_the_documented_example_runs_as_written(tmp_path: Path) -> None:
    code = re.search(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
    assert code is not None
    script = tmp_path / "example.py"
    script.write_text(code.group(1), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "filter kept" in done.stdout and "torch.Size([4, 8, 3, 64, 112])" in done.stdout
    run = clipsieve.open_run(tmp_path / "runs" / "demo")
    names = [step["name"] for step in run.info["steps"]]
    assert names[:4] == ["filter", "dedup", "export", "report"]
    assert (tmp_path / "runs" / "demo" / "report.html").is_file()


def test_import_is_light_and_names_are_there() -> None:
    code = (
        "import sys, clipsieve; "
        "heavy = [m for m in ('torch', 'av', 'polars', 'pyarrow', 'cv2') if m in sys.modules]; "
        "assert not heavy, heavy; "
        "assert callable(clipsieve.run) and callable(clipsieve.open_run); print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "ok", done.stderr


def test_steps_from_python_equal_the_commands(run_copy: Path, tmp_path: Path) -> None:
    import shutil

    from typer.testing import CliRunner

    from clipsieve.cli import app
    from clipsieve.runfolder import load_clips

    other = tmp_path / "other"
    shutil.copytree(run_copy, other)
    run = clipsieve.open_run(run_copy)
    run.filter(where=["flow_mean >= 0.1"], durmin=1.0)
    run.topn("sharpness", n=2)
    cli = CliRunner()
    assert (
        cli.invoke(app, ["filter", str(other), "-w", "flow_mean >= 0.1", "--durmin", "1"]).exit_code
        == 0
    )
    assert cli.invoke(app, ["topn", str(other), "--by", "sharpness", "-n", "2"]).exit_code == 0
    columns = ["clip_id", "keep", "drop_reason"]
    assert load_clips(run_copy).select(columns).equals(load_clips(other).select(columns))


def test_user_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="has no clips.parquet"):
        clipsieve.open_run(tmp_path)
    with pytest.raises(UserError, match="give video files or folders"):
        clipsieve.run([], tmp_path / "run")
