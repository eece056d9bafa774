"""Concept clusters of the clip embeddings: KMeans, quality scores, a 2-D map.

Follows the video-clustering study this project copies: mean-pooled frame embeddings per clip,
KMeans (k fixed, or picked by silhouette over a range), silhouette and Davies-Bouldin scores for
the chosen k, and a t-SNE map. Clips are clustered on the ``embedding`` column that the opt-in
``embed`` scorer writes (unit-length vectors, so Euclidean distance ranks like cosine distance).

Only rows with an embedding and ``status`` ok are clustered; the others get null ``cluster_id``
and ``cluster_dist``. Everything is seeded, so the same table and seed give the same clusters.
Keywords (``select/keywords.py``) and balancing (``select/balance.py``) build on the result.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from clipsieve.errors import UserError

EMBEDDING_COLUMN = "embedding"
MAX_MAP_POINTS = 5000  # t-SNE is O(n log n) but slow in practice; bigger runs are subsampled
MAX_SCORE_POINTS = 10000  # silhouette is O(n^2): scored on a seeded sample above this
SERIAL_BELOW = 5000  # rows under which KMeans/t-SNE run single-threaded (see _threads)
LARGE_CLUSTERING = 50_000  # above this many rows: _cluster_large (sample + Lloyd passes)
LARGE_SAMPLE = 20_000  # rows auto-k and the quality scores see in _cluster_large
LLOYD_PASSES = 3
BLOCK_ROWS = 32_768


class ClusterError(UserError):
    """The run cannot be clustered as asked (no embeddings, too few clips, bad k)."""


@dataclass
class Embeddings:
    """The clustered rows: their row numbers in the clip table, ids and the vector matrix."""

    rows: np.ndarray  # int64 positions in the clip table
    clip_ids: list[str]
    vectors: np.ndarray  # (n, d) float32 (float16 for large runs read from vectors/)
    model: str | None


@dataclass
class Clustering:
    """One KMeans result with the numbers the report and ``clusters.json`` show."""

    k: int
    labels: np.ndarray  # (n,) int cluster per embedded row
    distances: np.ndarray  # (n,) distance of each row to its own centre
    centres: np.ndarray  # (k, d)
    silhouette: float | None
    davies_bouldin: float | None
    k_scores: list[dict[str, Any]] = field(default_factory=list)  # the auto-k search


def load_embeddings(clips: pa.Table, run_dir: object = "RUN") -> Embeddings:
    """The ``embedding`` vectors of the clustered rows, or one error line saying how to add them.

    From the table's ``embedding`` column when it has one (an older run folder, or a table in
    memory), else from ``RUN/vectors/embedding.parquet``: float32 up to
    :data:`LARGE_CLUSTERING` clips, float16 above (halving the memory of the matrix).
    """
    how = f"run `clipsieve score {run_dir} --scorers embed` first"
    if EMBEDDING_COLUMN not in clips.column_names:
        from pathlib import Path

        from clipsieve.vectors import has_vectors

        if isinstance(run_dir, (str, Path)) and has_vectors(run_dir, EMBEDDING_COLUMN):
            return _file_embeddings(clips, Path(run_dir), how)
        raise ClusterError(f"{run_dir} has no '{EMBEDDING_COLUMN}' column: {how}")
    column = clips.column(EMBEDDING_COLUMN).combine_chunks()
    has_vector = column.is_valid().to_numpy(zero_copy_only=False)
    status = (
        clips.column("status").to_pylist()
        if "status" in clips.column_names
        else ["ok"] * clips.num_rows
    )
    models = (
        clips.column("embed_model").to_pylist()
        if "embed_model" in clips.column_names
        else [None] * clips.num_rows
    )
    rows = [i for i in range(clips.num_rows) if has_vector[i] and status[i] != "error"]
    if not rows:
        raise ClusterError(f"no clip in {run_dir} has an embedding: {how}")
    used = sorted({str(models[i]) for i in rows if models[i] is not None})
    if len(used) > 1:
        raise ClusterError(
            f"embeddings in {run_dir} come from different encoders ({', '.join(used)}): "
            f"re-run `clipsieve score {run_dir} --scorers embed` so all clips use one"
        )
    # straight from Arrow's flat value buffer: no Python float per element (1280 per clip)
    chosen = column.take(pa.array(rows, pa.int64()))
    lengths = pc.list_value_length(chosen).to_numpy(zero_copy_only=False)
    if len(set(lengths.tolist())) != 1 or lengths[0] == 0:
        raise ClusterError(
            f"embeddings in {run_dir} differ in length: re-run "
            f"`clipsieve score {run_dir} --scorers embed`"
        )
    flat = chosen.flatten().to_numpy(zero_copy_only=False)
    matrix = np.asarray(flat, dtype=np.float32).reshape(len(rows), int(lengths[0]))
    ids = [str(x) for x in clips.column("clip_id").to_pylist()]
    return Embeddings(
        rows=np.asarray(rows, dtype=np.int64),
        clip_ids=[ids[i] for i in rows],
        vectors=matrix,
        model=used[0] if used else None,
    )


def _file_embeddings(clips: pa.Table, run_dir: Any, how: str) -> Embeddings:
    import pyarrow.parquet as pq

    from clipsieve.vectors import vector_path, vectors_for_rows

    ok = np.ones(clips.num_rows, bool)
    if "status" in clips.column_names:
        status = pc.fill_null(pc.not_equal(clips.column("status"), "error"), True)
        ok = np.asarray(status.to_numpy(zero_copy_only=False), bool)
    stored = pq.ParquetFile(vector_path(run_dir, EMBEDDING_COLUMN)).metadata.num_rows
    dtype = np.float16 if stored > LARGE_CLUSTERING else np.float32
    rows, matrix = vectors_for_rows(
        clips, np.flatnonzero(ok), run_dir, EMBEDDING_COLUMN, dtype=dtype
    )
    if len(rows) == 0:
        raise ClusterError(f"no clip in {run_dir} has an embedding: {how}")
    used: list[str] = []
    if "embed_model" in clips.column_names:
        chosen = clips.column("embed_model").take(pa.array(rows, pa.int64()))
        used = sorted(str(m) for m in pc.unique(chosen).to_pylist() if m is not None)
    if len(used) > 1:
        raise ClusterError(
            f"embeddings in {run_dir} come from different encoders ({', '.join(used)}): "
            f"re-run `clipsieve score {run_dir} --scorers embed` so all clips use one"
        )
    ids = clips.column("clip_id").combine_chunks().take(pa.array(rows, pa.int64()))
    return Embeddings(
        rows=rows,
        clip_ids=[str(x) for x in ids.to_pylist()],
        vectors=matrix,
        model=used[0] if used else None,
    )


@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
    """One BLAS/OpenMP thread for small inputs.

    On small inputs threads buy nothing, and on a busy machine OpenMP's spinning workers make
    t-SNE and KMeans many times slower (measured: t-SNE of 60 points 106 s with the default
    threads vs 2.7 s with one, on 2 shared cores). Big inputs keep the library's default.
    """
    if n >= SERIAL_BELOW:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def _kmeans(vectors: np.ndarray, k: int, seed: int):  # -> sklearn KMeans
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, random_state=seed, n_init=10).fit(vectors)


def _scores(vectors: np.ndarray, labels: np.ndarray, seed: int) -> tuple[float, float] | None:
    """(silhouette, Davies-Bouldin), or None when fewer than 2 distinct clusters exist."""
    from sklearn.metrics import davies_bouldin_score, silhouette_score

    distinct = len(np.unique(labels))
    if distinct < 2 or distinct >= len(labels):
        return None
    sample = min(len(labels), MAX_SCORE_POINTS)
    sil = silhouette_score(vectors, labels, sample_size=sample, random_state=seed)
    return float(sil), float(davies_bouldin_score(vectors, labels))


def k_range(n: int, k_min: int, k_max: int) -> range:
    """The k values auto-k tries: ``k_min..k_max`` limited to ``n - 1`` (silhouette needs it)."""
    return range(max(2, k_min), min(k_max, n - 1) + 1)


def cluster_embeddings(
    vectors: np.ndarray,
    k: int | None,
    *,
    seed: int = 0,
    k_min: int = 2,
    k_max: int = 20,
) -> Clustering:
    """KMeans with ``k`` clusters, or (``k`` None) the k in ``k_min..k_max`` with best silhouette.

    Ties in silhouette go to the smaller k (fewer, broader concepts are easier to balance).
    Above :data:`LARGE_CLUSTERING` rows see :func:`_cluster_large`.
    """
    if len(vectors) > LARGE_CLUSTERING:
        return _cluster_large(vectors, k, seed=seed, k_min=k_min, k_max=k_max)
    with _threads(len(vectors)):
        return _cluster(vectors, k, seed=seed, k_min=k_min, k_max=k_max)


def _blocks_f32(vectors: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    for start in range(0, len(vectors), BLOCK_ROWS):
        yield start, np.asarray(vectors[start : start + BLOCK_ROWS], np.float32)


def _assign(vectors: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centre and distance to it for every row, block by block."""
    labels = np.empty(len(vectors), np.int64)
    distances = np.empty(len(vectors), np.float64)
    squared = (centres * centres).sum(axis=1)
    for start, block in _blocks_f32(vectors):
        d2 = squared[None, :] - 2.0 * block @ centres.T + (block * block).sum(axis=1)[:, None]
        best = d2.argmin(axis=1)
        labels[start : start + len(block)] = best
        distances[start : start + len(block)] = np.linalg.norm(block - centres[best], axis=1)
    return labels, distances


def _cluster_large(
    vectors: np.ndarray, k: int | None, *, seed: int, k_min: int, k_max: int
) -> Clustering:
    """KMeans for more rows than fit comfortably: choose k (and score it) on a seeded sample
    of :data:`LARGE_SAMPLE` rows exactly as :func:`_cluster` does, start from the sample's
    centres, then :data:`LLOYD_PASSES` Lloyd passes over every row in float32 blocks (the
    matrix may be float16). Silhouette and Davies-Bouldin are those of the sample."""
    rng = np.random.default_rng(seed)
    sample_rows = np.sort(rng.choice(len(vectors), LARGE_SAMPLE, replace=False))
    sample = np.asarray(vectors[sample_rows], np.float32)
    on_sample = _cluster(sample, k, seed=seed, k_min=k_min, k_max=k_max)
    centres = on_sample.centres.astype(np.float32)
    for _ in range(LLOYD_PASSES):
        sums = np.zeros_like(centres, dtype=np.float64)
        counts = np.zeros(len(centres), np.int64)
        squared = (centres * centres).sum(axis=1)
        for _start, block in _blocks_f32(vectors):
            d2 = squared[None, :] - 2.0 * block @ centres.T
            best = d2.argmin(axis=1)
            np.add.at(sums, best, block)
            counts += np.bincount(best, minlength=len(centres))
        moved = counts > 0  # an empty cluster keeps its centre
        centres[moved] = (sums[moved] / counts[moved, None]).astype(np.float32)
    labels, distances = _assign(vectors, centres)
    return Clustering(
        k=on_sample.k,
        labels=labels,
        distances=distances,
        centres=centres,
        silhouette=on_sample.silhouette,
        davies_bouldin=on_sample.davies_bouldin,
        k_scores=on_sample.k_scores,
    )


def _cluster(
    vectors: np.ndarray, k: int | None, *, seed: int, k_min: int, k_max: int
) -> Clustering:
    n = len(vectors)
    k_scores: list[dict[str, Any]] = []
    if k is None:
        candidates = k_range(n, k_min, k_max)
        if len(candidates) == 0:
            raise ClusterError(
                f"auto k needs at least {max(3, k_min + 1)} clips with embeddings, found {n}: "
                "pass a fixed --k or score more clips"
            )
        best: tuple[float, int] | None = None
        for candidate in candidates:
            labels = _kmeans(vectors, candidate, seed).labels_
            scored = _scores(vectors, labels, seed)
            sil, dbi = scored if scored else (None, None)
            k_scores.append({"k": candidate, "silhouette": sil, "davies_bouldin": dbi})
            if sil is not None and (best is None or sil > best[0] + 1e-12):
                best = (sil, candidate)
        k = best[1] if best else candidates[0]
    if k < 1:
        raise ClusterError(f"--k must be at least 1, got {k}")
    if k > n:
        raise ClusterError(f"--k {k} is more than the {n} clips with embeddings: pass a smaller k")
    model = _kmeans(vectors, k, seed)
    labels = model.labels_.astype(np.int64)
    centres = model.cluster_centers_.astype(np.float32)
    distances = np.linalg.norm(vectors - centres[labels], axis=1)
    scored = _scores(vectors, labels, seed)
    return Clustering(
        k=k,
        labels=labels,
        distances=distances.astype(np.float64),
        centres=centres,
        silhouette=scored[0] if scored else None,
        davies_bouldin=scored[1] if scored else None,
        k_scores=k_scores,
    )


def nearest_to_centre(clustering: Clustering, cluster: int, count: int) -> np.ndarray:
    """Positions (into the embedded rows) of the ``count`` members closest to the centre."""
    members = np.flatnonzero(clustering.labels == cluster)
    order = np.argsort(clustering.distances[members], kind="stable")
    return members[order[:count]]


def map_coordinates(vectors: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """(positions, (m, 2) coordinates, method) of a 2-D map of the embedded rows.

    t-SNE as the study drew it; above :data:`MAX_MAP_POINTS` rows a seeded sample is mapped.
    With fewer than 5 rows t-SNE is meaningless and the two main PCA axes are used instead.
    """
    n = len(vectors)
    positions = np.arange(n)
    if n > MAX_MAP_POINTS:
        rng = np.random.default_rng(seed)
        positions = np.sort(rng.choice(n, MAX_MAP_POINTS, replace=False))
    data = vectors[positions].astype(np.float64)
    if len(data) < 5:
        centred = data - data.mean(axis=0, keepdims=True)
        if len(data) < 2:
            return positions, np.zeros((len(data), 2)), "pca"
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        coords = centred @ vt[:2].T
        if coords.shape[1] < 2:
            coords = np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
        return positions, coords, "pca"
    from sklearn.manifold import TSNE

    perplexity = float(min(30.0, max(2.0, (len(data) - 1) / 3)))
    tsne = TSNE(n_components=2, perplexity=perplexity, random_state=seed, init="pca")
    with _threads(len(data)):
        return positions, tsne.fit_transform(data), "tsne"
