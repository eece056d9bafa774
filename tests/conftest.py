"""Session-wide fixtures: one generated sample set and one finished run, shared by many tests.

``sample_run`` is built once per test session and must be treated as read-only; a test that
changes a run folder (filter, dedup, caption, ...) takes ``run_copy``, its own copy.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from clipsieve.config import RunConfig
from clipsieve.media.synth import make_sample_set
from clipsieve.pipeline_run import RunOutputs, run_pipeline


@pytest.fixture(scope="session")
def sample_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated test-scale sample set (see ``clipsieve.media.synth``)."""
    folder = tmp_path_factory.mktemp("sample_set")
    make_sample_set(folder, scale="test")
    return folder


@pytest.fixture(scope="session")
def sample_expected(sample_set: Path) -> dict:
    """The sample set's ground truth (``expected.json``)."""
    return json.loads((sample_set / "expected.json").read_text())


@pytest.fixture(scope="session")
def sample_run_outputs(sample_set: Path, tmp_path_factory: pytest.TempPathFactory) -> RunOutputs:
    """A finished default run over the sample set (read-only: copy it before changing it)."""
    return run_pipeline([sample_set], tmp_path_factory.mktemp("sample_run"), RunConfig())


@pytest.fixture(scope="session")
def sample_run(sample_run_outputs: RunOutputs) -> Path:
    """The folder of the shared finished run (read-only)."""
    return sample_run_outputs.run_dir


@pytest.fixture
def run_copy(sample_run: Path, tmp_path: Path) -> Path:
    """A private copy of the shared finished run that a test may change."""
    target = tmp_path / "run"
    shutil.copytree(sample_run, target)
    return target


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny randomly initialised CLIP checkpoint folder (real loading code, no download)."""
    from clipsieve.testing import randominit

    return str(randominit.write_clip(tmp_path_factory.mktemp("tiny-clip") / "clip"))


@pytest.fixture
def fresh_encoders() -> Iterator[None]:
    """No encoder cached from another test before or after this one."""
    from clipsieve.models import encoders

    encoders.clear_encoder_cache()
    yield
    encoders.clear_encoder_cache()
