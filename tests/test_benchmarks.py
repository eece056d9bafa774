"""The GPU benchmark stays runnable where there is no GPU: tiny random CLIP on the CPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_clip_scorers_benchmark_runs_on_cpu_with_a_tiny_model(tmp_path: Path) -> None:
    out = tmp_path / "clip_scorers.json"
    cmd = [sys.executable, str(REPO / "benchmarks/clip_scorers.py"), "--size", "tiny"]
    cmd += ["--device", "cpu", "--clips", "8", "--batch", "6", "--out", str(out)]
    cmd += ["--models-dir", str(tmp_path / "models"), "--transnet-windows", "1"]
    cmd += ["--decode-clips", "6", "--decode-threads", "2"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["device"] == "cpu" and result["clips"] == 8 and result["batch_frames"] == 6
    rates = result["clips_per_s"]
    assert set(rates) >= {"bare image forward (baseline)", "aesthetic", "match (+1 prompt)"}
    assert all(rate > 0 for rate in rates.values())
    assert "| aesthetic |" in done.stdout
    assert result["transnet_frames_per_s"] > 0 and "TransNetV2 shot detection" in done.stdout
    # the same scorers fed from clip files decoded by the scoring stage's sampler
    assert result["decoded_clips"] == 6
    assert rates["decode only (2 threads)"] > 0
    assert rates["decoded from files (2 threads) + aesthetic + match"] > 0
