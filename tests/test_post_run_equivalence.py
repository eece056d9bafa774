"""The post-run step runner changes nothing a user sees: same rows, marks and scores.

The fixture (see ``tests/data/demo_post_run/apply_post_run.py``) holds the demo run's clip table
as the previous version wrote it and what that version's filter, dedup, classifier, predict,
top-N and cluster commands made of it. The same commands, applied by the current code to a copy,
must give the same table (every column, every row, in order), the same ``funnel.json`` and
``clusters.json``; the embedding moves out of the table into ``vectors/`` unchanged.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from clipsieve.vectors import read_vectors

DATA = Path(__file__).parent / "data" / "demo_post_run"
NEW_COLUMNS = ("dup_kept_by",)  # what the current version adds: why a duplicate's copy won


def _fixture_module():
    spec = importlib.util.spec_from_file_location("apply_post_run", DATA / "apply_post_run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_post_run_commands_match_the_previous_version(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(DATA / "input", run)
    old_embedding = pq.read_table(run / "clips.parquet", columns=["clip_id", "embedding"])
    _fixture_module().apply(run)

    got = pq.read_table(run / "clips.parquet")
    assert all(c in got.column_names for c in NEW_COLUMNS)
    got = got.drop_columns(list(NEW_COLUMNS))
    expected = pq.read_table(DATA / "expected.parquet")
    assert got.column_names == expected.column_names
    assert got.num_rows == expected.num_rows == 34
    for name in expected.column_names:
        assert got.column(name).to_pylist() == expected.column(name).to_pylist(), name
    for name in ("funnel.json", "clusters.json"):
        assert json.loads((run / name).read_text()) == json.loads((DATA / name).read_text())
    # the marks did something: every step decided some rows
    reasons = {r for r in got.column("drop_reason").to_pylist() if r}
    assert any(r.startswith("filter: ") for r in reasons) and "duplicate" in reasons
    assert any(r is not None for r in got.column("topn_rank").to_pylist())
    assert any(c is not None for c in got.column("cluster_id").to_pylist())

    ids, vectors = read_vectors(run, "embedding")
    before = {
        c: v
        for c, v in zip(*(old_embedding.column(i).to_pylist() for i in (0, 1)), strict=True)
        if v is not None
    }
    assert ids == list(before)
    np.testing.assert_array_equal(vectors, np.array([before[c] for c in ids], np.float32))
