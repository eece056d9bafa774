"""``clipsieve cluster`` on a run folder: cluster, describe, map, balance, save.

Adds ``cluster_id`` (int) and ``cluster_dist`` (distance to the cluster centre) to the clip
table and writes ``RUN_DIR/clusters.json`` for the report::

    {"version", "seed", "k", "k_mode": "auto"|"fixed", "k_min", "k_max",
     "silhouette", "davies_bouldin", "k_scores": [{"k", "silhouette", "davies_bouldin"}],
     "embed_model", "n_clustered", "n_unclustered",
     "clusters": [{"id", "size", "kept", "mean_dist", "keywords": [{"word", "score"}],
                   "keyword_source": "captions"|"imagenet"|"none", "nearest": [clip_id]}],
     "map": {"method": "tsne"|"pca", "points": [{"clip_id", "cluster", "x", "y"}]},
     "balance": null | {"spec", "seed", "before": {id: n}, "after": {id: n}, "dropped"}}

Re-clustering changes what a cluster id means, so earlier ``balance`` marks are always
cleared first and re-applied only when ``--balance`` is given again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from clipsieve.select.balance import (
    BALANCE_REASON,
    BalanceSpec,
    balance_clusters,
)
from clipsieve.select.cluster import (
    Clustering,
    Embeddings,
    cluster_embeddings,
    load_embeddings,
    map_coordinates,
    nearest_to_centre,
)
from clipsieve.select.cluster_keywords import DEFAULT_TEXT_MODEL, describe_cluster
from clipsieve.select.cluster_words import DescribeOptions, make_describer
from clipsieve.select.marks import apply_marks, release_own_marks, set_column
from clipsieve.steps import StepContext, apply_step
from clipsieve.steps.narrow import NarrowTableStep
from clipsieve.table import CAPTION_COLUMNS, caption_of, write_json

CLUSTERS_FILE = "clusters.json"
VERSION = "1"

# (captions of the nearest clips, their clip files) -> (keywords, source)
Describe = Callable[[Sequence[str | None], Sequence[str]], tuple[list[tuple[str, float]], str]]


@dataclass
class ClusterParams:
    """What ``clipsieve cluster`` was asked to do (recorded as the step's params)."""

    k: int | None = None  # None: pick by silhouette over k_min..k_max
    k_min: int = 2
    k_max: int = 20
    seed: int = 0
    nearest: int = 20  # clips nearest the centre that describe a cluster
    top_n: int = 10
    threshold: float = 0.2
    keywords: bool = True
    text_model: str = DEFAULT_TEXT_MODEL
    balance: BalanceSpec | None = None
    describe: DescribeOptions | None = None  # a one-line description per cluster (llm, bart)

    def record(self) -> dict[str, Any]:
        return {
            "k": self.k if self.k is not None else "auto",
            "k_min": self.k_min,
            "k_max": self.k_max,
            "seed": self.seed,
            "nearest": self.nearest,
            "top_n": self.top_n,
            "threshold": self.threshold,
            "keywords": self.keywords,
            "text_model": self.text_model,
            "balance": str(self.balance) if self.balance else None,
            "describe": self.describe.record() if self.describe else None,
        }


@dataclass
class ClusterOutcome:
    table: pa.Table
    info: dict[str, Any]  # the content of clusters.json


def _captions_of(clips: pa.Table, rows: list[int]) -> list[str | None]:
    """The captions (:func:`clipsieve.table.caption_of`) of ``rows`` only."""
    present = [c for c in CAPTION_COLUMNS if c in clips.column_names]
    chosen = clips.select(present).take(pa.array(rows, pa.int64()))
    return [caption_of(row) for row in chosen.to_pylist()]


def _files_of(clips: pa.Table, rows: list[int], run_dir: Path) -> list[str]:
    """The clip files of ``rows`` that have one (absolute)."""
    if "path" not in clips.column_names:
        return []
    paths = clips.column("path").take(pa.array(rows, pa.int64())).to_pylist()
    return [str(p if Path(p).is_absolute() else run_dir / p) for p in paths if p]


def _kept_counts(table: pa.Table, rows: np.ndarray, labels: np.ndarray, k: int) -> list[int]:
    """Kept (and not failed) clustered rows per cluster."""
    kept = pc.fill_null(table.column("keep"), False)
    if "status" in table.column_names:
        kept = pc.and_(kept, pc.fill_null(pc.not_equal(table.column("status"), "error"), True))
    mask = np.asarray(kept.to_numpy(zero_copy_only=False), bool)[rows]
    return np.bincount(labels[mask], minlength=k).astype(int).tolist()


def _describe_all(
    clips: pa.Table,
    run_dir: Path,
    emb: Embeddings,
    clustering: Clustering,
    params: ClusterParams,
    describe: Describe | None,
) -> list[dict[str, Any]]:
    out = []
    describer, described_by = (None, None)
    if params.describe is not None:
        describer, described_by = make_describer(params.describe)
    for cluster in range(clustering.k):
        members = clustering.labels == cluster
        near = nearest_to_centre(clustering, cluster, params.nearest)
        rows = emb.rows[near].tolist()
        keywords: list[tuple[str, float]] = []
        source = "none"
        description = None
        if describer is not None:
            description = describer([c for c in _captions_of(clips, rows) if c])
        if params.keywords:
            near_captions = _captions_of(clips, rows)
            near_files = _files_of(clips, rows, run_dir)
            if describe is not None:
                keywords, source = describe(near_captions, near_files)
            else:
                keywords, source = describe_cluster(
                    near_captions,
                    near_files,
                    top_n=params.top_n,
                    threshold=params.threshold,
                    text_model=params.text_model,
                )
        out.append(
            {
                "id": cluster,
                "size": int(members.sum()),
                "mean_dist": round(float(clustering.distances[members].mean()), 6),
                "keywords": [{"word": w, "score": s} for w, s in keywords],
                "keyword_source": source,
                "nearest": [emb.clip_ids[i] for i in near.tolist()],
            }
        )
        if describer is not None:  # only asked for: clusters.json keeps its shape otherwise
            out[-1]["description"] = description
            out[-1]["description_source"] = described_by if description else None
    return out


def cluster_table(
    clips: pa.Table,
    run_dir: Path,
    params: ClusterParams,
    describe: Describe | None = None,
) -> ClusterOutcome:
    """Cluster ``clips`` (a run's clip table) and return the new table and ``clusters.json``."""
    emb = load_embeddings(clips, run_dir)
    clustering = cluster_embeddings(
        emb.vectors, params.k, seed=params.seed, k_min=params.k_min, k_max=params.k_max
    )
    missing = np.ones(clips.num_rows, bool)
    missing[emb.rows] = False
    ids = np.zeros(clips.num_rows, np.int32)
    ids[emb.rows] = clustering.labels
    dists = np.zeros(clips.num_rows, np.float64)
    dists[emb.rows] = clustering.distances
    table = set_column(clips, "cluster_id", pa.array(ids, pa.int32(), mask=missing))
    table = set_column(table, "cluster_dist", pa.array(dists, pa.float64(), mask=missing))

    balance: dict[str, Any] | None = None
    if params.balance is not None:
        result = balance_clusters(table, params.balance, seed=params.seed)
        table = result.table
        balance = {
            "spec": str(params.balance),
            "seed": params.seed,
            "before": {str(c): n for c, n in result.before.items()},
            "after": {str(c): n for c, n in result.after.items()},
            "dropped": sum(result.before.values()) - sum(result.after.values()),
        }
    else:
        keep, reasons = release_own_marks(table, lambda r: r == BALANCE_REASON)
        table = apply_marks(table, keep, reasons)

    clusters = _describe_all(clips, run_dir, emb, clustering, params, describe)
    kept_counts = _kept_counts(table, emb.rows, clustering.labels, clustering.k)
    for entry, kept in zip(clusters, kept_counts, strict=True):
        entry["kept"] = kept
    positions, coords, method = map_coordinates(emb.vectors, seed=params.seed)
    points = [
        {
            "clip_id": emb.clip_ids[p],
            "cluster": int(clustering.labels[p]),
            "x": round(float(x), 4),
            "y": round(float(y), 4),
        }
        for p, (x, y) in zip(positions.tolist(), np.asarray(coords).tolist(), strict=True)
    ]
    sources = sorted({c["keyword_source"] for c in clusters})
    info = {
        "version": VERSION,
        "seed": params.seed,
        "k": clustering.k,
        "k_mode": "fixed" if params.k is not None else "auto",
        "k_min": params.k_min,
        "k_max": params.k_max,
        "silhouette": clustering.silhouette,
        "davies_bouldin": clustering.davies_bouldin,
        "k_scores": clustering.k_scores,
        "embed_model": emb.model,
        "n_clustered": len(emb.rows),
        "n_unclustered": clips.num_rows - len(emb.rows),
        "keyword_sources": sources,
        "clusters": clusters,
        "map": {"method": method, "points": points},
        "balance": balance,
    }
    return ClusterOutcome(table, info)


def step_record(params: ClusterParams, info: dict[str, Any]) -> dict[str, Any]:
    """The provenance entry for ``clips.parquet`` metadata and ``run.json``."""
    return {
        "name": "cluster",
        "version": VERSION,
        "outputs": ["cluster_id", "cluster_dist", "keep", "drop_reason"],
        "params": params.record(),
        "result": {
            "k": info["k"],
            "silhouette": info["silhouette"],
            "davies_bouldin": info["davies_bouldin"],
            "embed_model": info["embed_model"],
        },
    }


class ClusterStep(NarrowTableStep):
    """Clustering as a post-run step: reads the table's scalar columns (captions and clip files
    name the clusters) and the embeddings from ``vectors/``, writes the cluster columns and the
    balance marks, and ``clusters.json``."""

    name = "cluster"
    version = VERSION
    writes = ("cluster_id", "cluster_dist", "keep", "drop_reason")
    all_scalars = True  # clips.parquet holds no vectors: load_embeddings reads vectors/

    def __init__(self, params: ClusterParams, describe: Describe | None = None) -> None:
        self.settings, self.describe = params, describe
        self.outcome: ClusterOutcome | None = None

    def compute(self, narrow: pa.Table, ctx: StepContext) -> pa.Table:
        self.outcome = cluster_table(narrow, ctx.run_dir, self.settings, self.describe)
        return self.outcome.table

    def record(self) -> dict[str, Any]:
        assert self.outcome is not None
        return step_record(self.settings, self.outcome.info)


def cluster_run(
    run_dir: str | Path, params: ClusterParams, describe: Describe | None = None
) -> ClusterOutcome:
    """Cluster a finished run in place: rewrite its clip table, write ``clusters.json``."""
    run_dir = Path(run_dir)
    step = ClusterStep(params, describe)
    apply_step(run_dir, step)
    assert step.outcome is not None
    write_json(step.outcome.info, run_dir / CLUSTERS_FILE)
    return step.outcome
